"""Pages of multi-verifier approval and public notice: the queue's votes, the public board,
objections from residents (no login) and their resolution by staff."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from pointsapp.domain import claims, notice, rules
from pointsapp.extensions import db
from pointsapp.models import Activity, AuditRecord, NoticeObjection
from tests.conftest import csrf_from
from tests.factories import balance, rule_terms, yesterday
from tests.web.conftest import page_text, use_english


def two_approval_claim(s):
    rule = rules.create_rule(
        s.street_admin, s.street,
        rule_terms(name_zh="见义勇为", name_en="Brave deed", category="brave_deed", points=50, approvals_required=2),
    )
    act = claims.submit_claim(s.vol_a, rule_id=rule.id, activity_date=yesterday(), note="扶老人过马路")
    db.session.commit()
    return act


def on_notice(s):
    notice.set_notice_days(s.admin_a, s.community_a, 7)
    act = claims.submit_claim(s.vol_a, rule_id=s.meeting.id, activity_date=yesterday(), note="楼栋会议")
    db.session.commit()
    claims.approve_claim(s.staff_a, act.id)
    db.session.commit()
    return act


def test_the_queue_shows_votes_so_far_and_a_voter_cannot_vote_twice(street, client, login, auth):
    act = two_approval_claim(street)
    use_english(client)
    login("staff_a")
    resp = auth.post(f"/staff/claims/{act.id}/approve", token_from="/staff/", follow_redirects=True)
    text = page_text(resp)
    assert "Your approval was recorded (1 of 2)" in text
    assert "1/2 approved: 陈网格" in text
    body = resp.get_data(as_text=True)
    assert f'id="voted-{act.id}"' in body and f'action="/staff/claims/{act.id}/approve"' not in body
    resp = auth.post(f"/staff/claims/{act.id}/approve", token_from="/staff/", follow_redirects=True)
    assert "already voted" in page_text(resp)
    assert balance(street.vol_a).balance == 0
    auth.logout()
    login("admin_a")
    assert "1/2 approved: 陈网格" in page_text(client.get("/staff/"))
    auth.post(f"/staff/claims/{act.id}/approve", token_from="/staff/")
    assert db.session.get(Activity, act.id).status == "approved" and balance(street.vol_a).balance == 50


def test_the_public_board_needs_no_login_and_masks_names(street, client):
    act = on_notice(street)
    resp = client.get("/notice/")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "张*华" in text and "张秀华" not in text and "楼栋会议" not in text
    assert yesterday().strftime("%Y-%m") in text and "10" in text
    assert f'href="/notice/{act.id}/object"' in resp.get_data(as_text=True)


def test_the_public_board_shows_only_the_surname_of_someone_who_asked_for_it(street, client):
    street.vol_a.honour_display = "initials"
    db.session.commit()
    act = on_notice(street)
    board, form = page_text(client.get("/notice/")), page_text(client.get(f"/notice/{act.id}/object"))
    assert "张**" in board and "张*华" not in board
    assert "张**" in form and "张*华" not in form


def test_a_resident_objects_without_login_and_a_reason_is_required(street, client):
    act = on_notice(street)
    page = client.get(f"/notice/{act.id}/object")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    records = db.session.scalar(select(func.count()).select_from(AuditRecord))
    resp = client.post(f"/notice/{act.id}/object", data={"csrf_token": token, "reason": "  ", "contact": ""})
    assert resp.status_code == 422
    assert "reason is required" in page_text(resp) or "理由" in page_text(resp) or "原因" in page_text(resp)
    assert db.session.scalar(select(func.count()).select_from(NoticeObjection)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditRecord)) == records
    resp = client.post(f"/notice/{act.id}/object", data={"csrf_token": token, "reason": "她那天不在", "contact": "王先生"})
    assert resp.status_code == 302
    [o] = db.session.scalars(select(NoticeObjection)).all()
    assert (o.reason, o.contact, o.filed_by_id, o.status) == ("她那天不在", "王先生", None, "open")


def test_staff_uphold_an_objection_and_the_volunteer_sees_why(street, client, login, auth, check_ledger):
    act = on_notice(street)
    objection = notice.file_objection(act.id, "她那天不在")
    db.session.commit()
    use_english(client)
    login("staff_b")
    assert client.get("/staff/notice").status_code == 200 and "她那天不在" not in page_text(client.get("/staff/notice"))
    resp = auth.post(f"/staff/objections/{objection.id}/resolve", {"decision": "uphold", "note": "核实"}, token_from="/staff/")
    assert resp.status_code == 404
    auth.logout()
    login("staff_a")
    assert "她那天不在" in page_text(client.get("/staff/notice"))
    resp = auth.post(f"/staff/objections/{objection.id}/resolve", {"decision": "uphold", "note": ""}, token_from="/staff/")
    assert resp.status_code == 422 and db.session.get(NoticeObjection, objection.id).status == "open"
    auth.post(f"/staff/objections/{objection.id}/resolve", {"decision": "uphold", "note": "核实：未参加"}, token_from="/staff/")
    assert db.session.get(Activity, act.id).status == "withheld"
    auth.logout()
    login("vol_a")
    text = page_text(client.get("/volunteer/claims"))
    assert "Withheld after an objection" in text and "核实：未参加" in text
    check_ledger()


def test_an_admin_turns_notice_on_for_a_community(street, client, login, auth):
    login("admin_a")
    resp = auth.post(f"/admin/org/{street.community_a.id}/notice", {"notice_days": "5"}, token_from="/admin/org")
    assert resp.status_code == 302
    db.session.expire_all()
    assert street.community_a.notice_days == 5
    auth.post(f"/admin/org/{street.grid_a.id}/notice", {"notice_days": "5"}, token_from="/admin/org")
    db.session.expire_all()
    assert street.grid_a.notice_days is None
    resp = auth.post(f"/admin/org/{street.community_b.id}/notice", {"notice_days": "5"}, token_from="/admin/org")
    assert resp.status_code == 404
