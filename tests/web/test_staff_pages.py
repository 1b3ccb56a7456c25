"""Grid staff pages: the approval queue and recording attendance, each scoped to a subtree."""
from __future__ import annotations

from sqlalchemy import func, select

from pointsapp.extensions import db
from pointsapp.models import Activity, Transfer
from tests.factories import balance, yesterday
from tests.web.conftest import errors_at, hidden_inputs, page_text, use_english


def attendance_form(client) -> dict:
    resp = client.get("/staff/attendance")
    assert resp.status_code == 200
    return hidden_inputs(resp)


def post_attendance(client, hidden: dict, **data):
    payload = {"activity_date": yesterday().isoformat(), "hours": "", "note": "", **hidden, **data}
    return client.post("/staff/attendance", data=payload)


# --- the approval queue ---------------------------------------------------------------------


def test_queue_lists_pending_claims_in_the_staff_subtree(street, client, login, pending_claim):
    use_english(client)
    login("staff_a")
    resp = client.get("/staff/")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "张秀华" in text and "Attend a meeting" in text and "楼栋会议" in text and "10 points" in text
    body = resp.get_data(as_text=True)
    assert f'action="/staff/claims/{pending_claim.id}/approve"' in body
    assert f'action="/staff/claims/{pending_claim.id}/reject"' in body


def test_staff_of_another_community_neither_sees_nor_decides_the_claim(street, client, login, auth, pending_claim):
    login("staff_b")
    assert "张秀华" not in page_text(client.get("/staff/"))
    assert auth.post(f"/staff/claims/{pending_claim.id}/approve").status_code == 404
    assert auth.post(f"/staff/claims/{pending_claim.id}/reject", {"reason": "不是我们的"}).status_code == 404
    assert client.get(f"/staff/claims/{pending_claim.id}/photo").status_code == 404
    db.session.expire_all()
    assert db.session.get(Activity, pending_claim.id).status == "pending"
    assert balance(street.vol_a).balance == 0


def test_approving_credits_the_points_and_a_second_click_changes_nothing(
    street, client, login, auth, pending_claim, check_ledger
):
    use_english(client)
    login("staff_a")
    first = auth.post(f"/staff/claims/{pending_claim.id}/approve")
    assert first.status_code == 302 and first.headers["Location"].endswith("/staff/")
    assert "Approved: 10 points for 张秀华." in page_text(client.get("/staff/"))
    second = auth.post(f"/staff/claims/{pending_claim.id}/approve")
    assert second.status_code == 302
    assert "This claim was already approved; nothing was changed." in page_text(client.get("/staff/"))
    assert balance(street.vol_a).balance == 10
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.activity_id == pending_claim.id)) == 1
    check_ledger()


def test_approve_without_csrf_token_is_refused(street, client, login, pending_claim):
    login("staff_a")
    assert client.post(f"/staff/claims/{pending_claim.id}/approve").status_code == 400
    db.session.expire_all()
    assert db.session.get(Activity, pending_claim.id).status == "pending"


def test_staff_approve_the_ticked_claims_together(street, client, login, auth, check_ledger):
    from pointsapp.domain import claims, rules
    from tests.factories import rule_terms

    two_votes = rules.create_rule(street.street_admin, street.street, rule_terms(
        name_zh="见义勇为", name_en="Brave deed", category="brave_deed", points=50, approvals_required=2))
    db.session.commit()
    a = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    b = claims.submit_claim(street.vol_a2, rule_id=street.patrol.id, activity_date=yesterday(), hours="5")
    voted = claims.submit_claim(street.vol_a2, rule_id=two_votes.id, activity_date=yesterday())
    db.session.commit()
    claims.approve_claim(street.staff_a, voted.id)
    db.session.commit()
    use_english(client)
    login("staff_a")
    body = client.get("/staff/").get_data(as_text=True)
    assert 'id="approve-selected"' in body and 'action="/staff/claims/approve"' in body
    for act in (a, b):
        assert f'name="activity_ids" value="{act.id}" form="approve-selected"' in body
    assert f'value="{voted.id}" form="approve-selected"' not in body  # already voted on by this verifier

    resp = auth.post("/staff/claims/approve", {"activity_ids": [str(a.id), str(b.id)]})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/staff/")
    text = page_text(client.get("/staff/"))
    assert "Claims approved: 2, 18 points credited. Capped by their rule: 1." in text
    assert (balance(street.vol_a).balance, balance(street.vol_a2).balance) == (10, 8)

    again = auth.post("/staff/claims/approve", {"activity_ids": [str(a.id)]})
    assert again.status_code == 302
    assert "The claim of 张秀华" in page_text(client.get("/staff/"))
    assert auth.post("/staff/claims/approve", {}).status_code == 302
    assert "Choose at least one claim." in page_text(client.get("/staff/"))
    assert auth.post("/staff/claims/approve", {"activity_ids": ["x"]}).status_code == 400
    assert auth.post("/staff/claims/approve", {"activity_ids": [str(2 ** 40)]}).status_code == 404
    check_ledger()


def test_approving_the_ticked_claims_needs_the_csrf_token_and_the_scope(street, client, login, auth, pending_claim):
    login("staff_b")
    assert auth.post("/staff/claims/approve", {"activity_ids": [str(pending_claim.id)]}).status_code == 404
    login("staff_a")
    assert client.post("/staff/claims/approve", data={"activity_ids": [str(pending_claim.id)]}).status_code == 400
    db.session.expire_all()
    assert db.session.get(Activity, pending_claim.id).status == "pending"


def test_rejecting_needs_a_reason_shown_at_the_claim(street, client, login, auth, pending_claim):
    login("staff_a")
    use_english(client)
    resp = auth.post(f"/staff/claims/{pending_claim.id}/reject", {"reason": ""})
    assert resp.status_code == 422
    assert "Give the volunteer a reason for the rejection." in page_text(resp)
    db.session.expire_all()
    assert db.session.get(Activity, pending_claim.id).status == "pending"

    resp = auth.post(f"/staff/claims/{pending_claim.id}/reject", {"reason": "没有签到记录"})
    assert resp.status_code == 302
    db.session.expire_all()
    act = db.session.get(Activity, pending_claim.id)
    assert (act.status, act.reject_reason) == ("rejected", "没有签到记录")
    text = page_text(client.get("/staff/"))
    assert "Rejected the claim of 张秀华." in text and "Nothing is waiting." in text


def test_volunteers_and_cashiers_cannot_open_staff_pages(street, client, login):
    login("vol_a")
    assert client.get("/staff/").status_code == 403
    assert client.get("/staff/attendance").status_code == 403
    login("cashier")
    assert client.get("/staff/").status_code == 403


# --- recording attendance -------------------------------------------------------------------


def test_attendance_form_lists_only_active_volunteers_in_the_subtree(street, client, login):
    from pointsapp.domain import people

    people.set_active(street.admin_a, street.vol_a2.id, False)
    db.session.commit()
    login("staff_a")
    resp = client.get("/staff/attendance")
    text = page_text(resp)
    assert "张秀华" in text
    assert "刘建国" not in text  # deactivated
    assert "孙丽" not in text  # community B
    assert "陈网格" not in text  # staff, not a volunteer
    assert hidden_inputs(resp)["batch_key"]


def test_staff_records_a_meeting_for_many_volunteers_and_sees_the_summary(street, client, login, check_ledger):
    use_english(client)
    login("staff_a")
    resp = post_attendance(
        client, attendance_form(client), rule_id=street.meeting.id, volunteer_ids=[street.vol_a.id, street.vol_a2.id]
    )
    assert resp.status_code == 302
    summary = client.get(resp.headers["Location"])
    assert summary.status_code == 200
    assert "2 volunteers credited, 20 points in all." in page_text(summary)
    assert balance(street.vol_a).balance == 10 and balance(street.vol_a2).balance == 10
    check_ledger()


def test_attendance_summary_says_who_was_capped(street, client, login, check_ledger):
    use_english(client)
    login("staff_a")
    resp = post_attendance(
        client, attendance_form(client), rule_id=street.patrol.id, hours="5", volunteer_ids=[street.vol_a.id]
    )
    assert resp.status_code == 302
    text = page_text(client.get(resp.headers["Location"]))
    assert "1 volunteer credited, 8 points in all." in text
    assert "张秀华: capped: 8 of 10 credited (daily cap 8)" in text
    assert balance(street.vol_a).balance == 8
    check_ledger()


def test_a_cap_note_is_said_in_the_pages_language(street, client, login, check_ledger):
    """The note is kept in one form (the API gives it so); the pages say it in Chinese."""
    login("staff_a")
    resp = post_attendance(
        client, attendance_form(client), rule_id=street.patrol.id, hours="5", volunteer_ids=[street.vol_a.id]
    )
    text = page_text(client.get(resp.headers["Location"]))
    assert "张秀华：因达到上限，应得 10 分，实记 8 分（每日上限 8 分）" in text
    assert "capped" not in text
    login("vol_a")
    text = page_text(client.get("/volunteer/claims"))
    assert "因达到上限，应得 10 分，实记 8 分（每日上限 8 分）" in text and "capped" not in text
    check_ledger()


def test_a_cap_note_in_another_form_is_shown_as_it_is(app):
    from pointsapp.web.template_helpers import cap_note_text

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert cap_note_text("capped: 0 of 4 credited (daily cap 8, monthly cap 30)") == (
            "因达到上限，应得 4 分，实记 0 分（每日上限 8 分、每月上限 30 分）")
        assert cap_note_text("capped by hand") == "capped by hand"
        assert cap_note_text("capped: 0 of 4 credited (weekly cap 8)") == "capped: 0 of 4 credited (weekly cap 8)"
        assert cap_note_text(None) == ""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert cap_note_text("capped: 2 of 4 credited (monthly cap 30)") == "capped: 2 of 4 credited (monthly cap 30)"


def test_double_submitting_the_attendance_form_credits_once(street, client, login, check_ledger):
    use_english(client)
    login("staff_a")
    hidden = attendance_form(client)
    for _ in range(2):
        resp = post_attendance(client, hidden, rule_id=street.meeting.id, volunteer_ids=[street.vol_a.id])
        assert resp.status_code == 302
    assert "nothing was recorded twice" in page_text(client.get(resp.headers["Location"]))
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 1
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_staff_cannot_record_for_a_volunteer_outside_the_subtree(street, client, login):
    login("staff_a")
    use_english(client)
    resp = post_attendance(
        client, attendance_form(client), rule_id=street.meeting.id, volunteer_ids=[street.vol_a.id, street.vol_b.id]
    )
    assert resp.status_code == 422
    assert errors_at(resp, "volunteer_ids")
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0
    assert balance(street.vol_b).balance == 0


def test_attendance_needs_volunteers_and_hours_for_per_hour_rules(street, client, login):
    login("staff_a")
    use_english(client)
    resp = post_attendance(client, attendance_form(client), rule_id=street.meeting.id)
    assert resp.status_code == 422
    assert errors_at(resp, "volunteer_ids") == ["Choose at least one volunteer."]
    resp = post_attendance(client, attendance_form(client), rule_id=street.patrol.id, volunteer_ids=[street.vol_a.id])
    assert resp.status_code == 422
    assert errors_at(resp, "hours") == ["This activity earns points by the hour: enter how many hours, e.g. 1.5."]
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_attendance_summary_of_another_staff_member_is_not_shown(street, client, login):
    login("staff_a")
    hidden = attendance_form(client)
    resp = post_attendance(client, hidden, rule_id=street.meeting.id, volunteer_ids=[street.vol_a.id])
    login("staff_b")
    assert client.get(resp.headers["Location"]).status_code == 404


def test_attendance_put_on_public_notice_says_so_not_zero_points(street, client, login, check_ledger):
    from tests.unit.test_approval_notice import notice_on

    notice_on(street, 3)
    use_english(client)
    login("staff_a")
    resp = post_attendance(client, attendance_form(client), rule_id=street.meeting.id,
                           volunteer_ids=[street.vol_a.id, street.vol_a2.id])
    assert resp.status_code == 302
    text = page_text(client.get(resp.headers["Location"]))
    assert "2 volunteers posted for public notice until" in text
    assert "credited, 0 points" not in text and "on notice" in text
    assert balance(street.vol_a).balance == 0
    check_ledger()
