"""Budgets by API: recording funding (idempotent, refusals as 4xx) and the liability figures."""
from __future__ import annotations

from sqlalchemy import func, select

from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import BudgetFunding
from tests.unit.helpers import award


def _body(street, **over):
    return {"org_unit_id": street.street.id, "amount": "350000", "source": "street_grant",
            "funded_on": local_today().isoformat(), "note": "年度积分经费", **over}


def test_the_street_admin_funds_once_per_key_and_reads_the_liability(api_as, street, check_ledger):
    admin = api_as("street_admin")
    first = admin.post("/budgets/funding", _body(street), key="fund-1")
    assert first.status_code == 201 and first.json["fen"] == 35_000_000
    again = admin.post("/budgets/funding", _body(street), key="fund-1")
    assert again.status_code == 201 and again.json == first.json
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 1
    award(street, street.vol_a, 40)
    resp = admin.get("/budgets")
    assert resp.status_code == 200
    [row] = resp.json
    assert row["org_unit_id"] == street.street.id and row["fen_per_point"] == 100
    assert row["points"]["issued"] == 40 and row["points"]["outstanding"] == 40 and row["fen"]["issued"] is None
    assert row["fen"]["outstanding"] == row["fen"]["held"] == 4000  # held at today's ¥1 a point
    assert row["budget"] == {"funded_fen": 35_000_000, "fen_per_point": 100, "capacity": 350_000, "used": 40,
                             "remaining": 349_960}
    check_ledger()


def test_refusals_are_4xx_with_a_clear_message_and_write_nothing(api_as, street):
    admin = api_as("street_admin")
    for over, status, field in (
        ({"amount": "0"}, 422, "amount"),
        ({"amount": "12.345"}, 422, "amount"),
        ({"amount": "1e20"}, 422, "amount"),
        ({"amount": "-10"}, 422, "note"),  # the note is the reason: required
        ({"note": None, "amount": "-10"}, 422, "note"),
        ({"source": "lottery"}, 422, "source"),
        ({"funded_on": "2026-02-30"}, 422, "funded_on"),
        ({"funded_on": "2999-01-01"}, 422, "funded_on"),
        ({"org_unit_id": street.grid_a.id}, 422, "org_unit_id"),
    ):
        body = _body(street, **over)
        if over.get("amount") == "-10" and "note" not in over:
            body["note"] = ""
        resp = admin.post("/budgets/funding", body)
        assert resp.status_code == status, (over, resp.json)
        assert resp.json["message"], over
        assert field in str(resp.json), (over, resp.json)
    assert api_as("admin_a").post("/budgets/funding", _body(street)).status_code == 404
    assert api_as("staff_a").post("/budgets/funding", _body(street)).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 0


def test_a_community_admin_funding_their_own_community_is_refused(api_as, street):
    own = _body(street, org_unit_id=street.community_a.id, source="partner")
    resp = api_as("admin_a").post("/budgets/funding", own)
    assert resp.status_code == 403 and resp.json["code"] == "funding_from_above"
    assert resp.json["message"].startswith("青山社区的积分经费由上一级录入")
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 0
    # The street admin, the level above, records it.
    assert api_as("street_admin").post("/budgets/funding", own).status_code == 201
