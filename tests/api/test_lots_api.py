"""The API of lots: expiring points in the balance, deductions, expiry terms of rules."""
from __future__ import annotations

import secrets
from datetime import timedelta

from pointsapp.domain import ledger, rules
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from tests.factories import balance, rule_terms
from tests.unit.helpers import award


def deduct_rule(s, points=10):
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(name_zh="乱扔垃圾", name_en="Littering", points=points, kind="deduct"))
    db.session.commit()
    return rule


def grant(s, volunteer, points, expires_on):
    ledger.credit(
        ledger.issuance_account(s.street), ledger.account_for_volunteer(volunteer), points,
        reason="测试", cause_key=f"test:{secrets.token_hex(6)}", expires_on=expires_on,
    )
    db.session.commit()


def test_the_balance_api_tells_the_points_expiring_within_30_days(api_as, street):
    today = local_today()
    grant(street, street.vol_a, 5, today + timedelta(days=29))
    grant(street, street.vol_a, 7, today + timedelta(days=31))
    resp = api_as("vol_a").get("/me/balance")
    assert resp.status_code == 200
    assert resp.json["expiring_soon"] == 5
    assert resp.json["expiring_first_date"] == (today + timedelta(days=29)).isoformat()


def test_staff_deduct_through_the_api_at_most_what_is_available(api_as, street, check_ledger):
    rule = deduct_rule(street, points=10)
    award(street, street.vol_a, 25)
    resp = api_as("staff_a").post("/deductions", {"volunteer_id": street.vol_a.id, "rule_id": rule.id, "reason": "违规停车"})
    assert resp.status_code == 201, resp.json
    assert (resp.json["requested"], resp.json["deducted"], resp.json["shortfall"]) == (10, 10, 0)
    assert balance(street.vol_a).balance == 15 and balance(street.vol_a).earned == 25
    assert api_as("vol_a").post("/deductions", {"volunteer_id": street.vol_a.id, "rule_id": rule.id, "reason": "x y"}).status_code == 403
    resp = api_as("staff_a").post("/deductions", {"volunteer_id": street.vol_a.id, "rule_id": rule.id})
    assert resp.status_code == 422
    check_ledger()


def test_admin_sets_an_expiry_policy_through_the_api(api_as, street):
    resp = api_as("street_admin").put(
        f"/rules/{street.meeting.id}",
        {"name_zh": "参加会议", "name_en": "Attend a meeting", "category": "meeting", "unit": "occurrence",
         "points": 10, "expiry_policy": "next_year_end"},
    )
    assert resp.status_code == 200, resp.json
    assert (resp.json["expiry_policy"], resp.json["expiry_months"], resp.json["kind"]) == ("next_year_end", None, "earn")
