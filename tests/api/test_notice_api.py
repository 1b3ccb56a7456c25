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


def test_an_admin_turns_a_communitys_public_notice_on_and_off_through_the_api(street, api_as):
    from sqlalchemy import func, select

    from pointsapp.models import AuditRecord

    admin = api_as("admin_a")
    path = f"/org-units/{street.community_a.id}/notice"
    resp = admin.put(path, json={"notice_days": 7})
    assert resp.status_code == 200 and resp.get_json()["notice_days"] == 7
    assert admin.put(path, json={"notice_days": 7}).status_code == 200  # again: no change, no second record
    units = {u["id"]: u for u in admin.get("/org-units").get_json()}
    assert units[street.community_a.id]["notice_days"] == 7 and units[street.grid_a.id]["notice_days"] is None
    assert notice.notice_days_for(street.vol_a.org_unit) == 7
    changes = db.session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "notice.setting_changed"))
    assert changes == 1

    for body in ({"notice_days": 16}, {"notice_days": -1}, {"days": 3}, {}):
        resp = admin.put(path, json=body)
        assert resp.status_code == 422, body
    assert admin.put(f"/org-units/{street.grid_a.id}/notice", json={"notice_days": 3}).status_code == 422
    assert api_as("admin_b").put(path, json={"notice_days": 1}).status_code in (403, 404)
    assert api_as("staff_a").put(path, json={"notice_days": 1}).status_code == 403
    assert api_as("vol_a").put(path, json={"notice_days": 1}).status_code == 403
    assert admin.put(path, json={"notice_days": None}).get_json()["notice_days"] is None
    assert admin.put(path, json={"notice_days": 3}).get_json()["notice_days"] == 3
    assert admin.put(path, json={"notice_days": 0}).get_json()["notice_days"] is None
    db.session.expire_all()
    assert notice.notice_days_for(street.vol_a.org_unit) is None
