"""Pages and API of lots: deducting points, expiring points on the volunteer's home and history,
expiry terms on the rule form."""
from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from pointsapp.cli import expire_points
from pointsapp.domain import ledger, rules
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import PointRule, Transfer
from tests.factories import balance, rule_terms
from tests.unit.helpers import award
from tests.web.conftest import hidden_inputs, page_text, use_english


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


def test_staff_deduct_points_and_are_told_the_shortfall(street, client, login, check_ledger):
    rule = deduct_rule(street, points=10)
    award(street, street.vol_a, 6)
    use_english(client)
    login("staff_a")
    resp = client.get("/staff/deductions")
    assert resp.status_code == 200 and "Littering" in page_text(resp)
    assert "Attend a meeting" not in page_text(resp)  # earning rules are not offered
    hidden = hidden_inputs(resp)
    resp = client.post("/staff/deductions", data={**hidden, "volunteer_id": street.vol_a.id, "rule_id": rule.id, "reason": "楼道堆物"})
    assert resp.status_code == 302
    text = page_text(client.get(resp.headers["Location"]))
    assert "6 points were deducted" in text and "4 fewer" in text
    assert balance(street.vol_a).balance == 0
    # The same form again (a double click) deducts nothing more.
    resp = client.post("/staff/deductions", data={**hidden, "volunteer_id": street.vol_a.id, "rule_id": rule.id, "reason": "楼道堆物"})
    assert resp.status_code == 302
    assert db.session.scalar(select(Transfer.id).where(Transfer.kind == "deduction").offset(1)) is None
    # Without a reason: refused at the field.
    resp = client.post("/staff/deductions", data={**hidden_inputs(client.get("/staff/deductions")),
                                                   "volunteer_id": street.vol_a.id, "rule_id": rule.id, "reason": ""})
    assert resp.status_code == 422
    check_ledger()


def test_the_volunteer_sees_points_expiring_soon_and_expiries_and_deductions_in_history(street, client, login, check_ledger):
    from pointsapp.domain import deductions

    today = local_today()
    grant(street, street.vol_a, 4, today - timedelta(days=1))
    grant(street, street.vol_a, 6, today + timedelta(days=12))
    grant(street, street.vol_a, 20, None)
    expire_points(today)
    rule = deduct_rule(street, points=3)
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="违规", submission_key="w1")
    db.session.commit()
    use_english(client)
    login("vol_a")
    home = page_text(client.get("/volunteer/"))
    # 3 of the 6 expiring points went to the deduction (earliest first): 3 are left to expire.
    assert f"3 points expire soon: spend them by {(today + timedelta(days=12)).isoformat()}" in home
    history = page_text(client.get("/volunteer/history"))
    assert "Points expired (earned" in history and "Deduction:" in history


def test_admin_sets_an_expiry_policy_on_the_rule_form(street, client, login):
    use_english(client)
    login("street_admin")
    rule = street.meeting
    resp = client.get(f"/admin/rules/{rule.id}")
    assert 'name="expiry_policy"' in resp.get_data(as_text=True)
    form = hidden_inputs(resp)
    data = {**form, "name_zh": "参加会议", "name_en": "Attend a meeting", "category": "meeting", "unit": "occurrence",
            "points": "10", "is_active": "y", "needs_approval": "y", "expiry_policy": "months", "expiry_months": ""}
    resp = client.post(f"/admin/rules/{rule.id}", data=data)
    assert resp.status_code == 422  # months without a number
    resp = client.post(f"/admin/rules/{rule.id}", data={**data, "expiry_months": "6"})
    assert resp.status_code == 302
    db.session.expire_all()
    v = db.session.get(PointRule, rule.id).current
    assert (v.expiry_policy, v.expiry_months) == ("months", 6)
    assert "expire 6 months after the activity" in page_text(client.get("/admin/rules"))
