"""The API of multi-verifier approval and public notice."""
from __future__ import annotations

from datetime import timedelta

from pointsapp.domain import notice
from pointsapp.extensions import db
from pointsapp.models import Activity
from tests.factories import balance
from tests.web.test_notice_pages import on_notice, two_approval_claim


def test_the_api_lists_votes_notices_and_files_and_resolves_objections(street, api_as, check_ledger):
    act = two_approval_claim(street)
    staff = api_as("staff_a")
    assert staff.post(f"/claims/{act.id}/approve").status_code == 200
    votes = staff.get(f"/claims/{act.id}/votes").get_json()
    assert (votes["approvals"], votes["approvals_required"], votes["status"]) == (1, 2, "pending")
    assert votes["votes"][0]["voter_name"] == "陈网格"
    resp = staff.post(f"/claims/{act.id}/approve")
    assert resp.status_code == 409 and resp.get_json()["code"] == "already_voted"

    noticed = on_notice(street)
    listed = staff.get("/notices").get_json()
    assert [n["id"] for n in listed] == [noticed.id] and listed[0]["status"] == "on_notice"
    admin = api_as("admin_a")
    resp = admin.post(f"/notices/{noticed.id}/objections", json={"reason": ""})
    assert resp.status_code == 422
    resp = admin.post(f"/notices/{noticed.id}/objections", json={"reason": "核实一下"})
    assert resp.status_code == 201
    objection_id = resp.get_json()["id"]
    assert api_as("staff_b").post(f"/objections/{objection_id}/resolve", json={"decision": "dismiss"}).status_code == 404
    resp = staff.post(f"/objections/{objection_id}/resolve", json={"decision": "dismiss"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "dismissed"
    assert notice.publish_one(noticed.id, db.session.get(Activity, noticed.id).notice_until + timedelta(seconds=1))
    db.session.commit()
    assert balance(street.vol_a).balance == 10
    check_ledger()
