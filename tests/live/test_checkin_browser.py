"""Check-in in a real browser (Debian's Chromium), under the strict Content-Security-Policy.

The staff's event page renews its QR code by itself (the code is made to turn every 2 seconds
here) and counts who signs in; a volunteer's phone opens the code's URL, is sent to log in, comes
back and signs in with one tap.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from pointsapp.domain import checkin
from pointsapp.domain.clock import now_utc
from pointsapp.extensions import db
from pointsapp.models import Activity, CheckinAttendance

from .browser import CspWatch, launch, phone, snap
from .test_phone_journey import logged_in_phone, pw, strict_csp  # noqa: F401  (fixtures)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test requirement: make test installs it")
expect = sync_api.expect


def _event(street):
    start = now_utc() - timedelta(minutes=5)
    event = checkin.create_event(
        street.staff_a, title="楼道清洁", rule_id=street.patrol.id, org_unit_id=street.grid_a.id,
        place="1号楼下", starts_at=start, ends_at=start + timedelta(hours=2),
    )
    db.session.commit()
    event_id = event.id
    db.session.rollback()  # hold no transaction while the server works (SQLite locks)
    return event_id


@pytest.mark.slow
def test_the_event_page_renews_its_qr_code_and_counts_sign_ins(street, app, strict_csp, live_server, pw, monkeypatch):
    monkeypatch.setattr(checkin, "SLOT_SECONDS", 2)
    event_id = _event(street)
    with logged_in_phone(pw, live_server, "staff_a") as page:
        page.goto(f"/staff/events/{event_id}")
        link = page.locator("#checkin-url")
        first = link.get_attribute("href")
        first_image = page.locator("#checkin-qr").get_attribute("src")
        assert re.match(rf"^{re.escape(live_server)}/checkin/{event_id}/[A-Za-z0-9_-]+$", first)
        expect(link).not_to_have_attribute("href", first, timeout=15_000)
        assert page.locator("#checkin-qr").get_attribute("src") != first_image
        snap(page, "checkin-1-event-qr")
        # A volunteer signs in meanwhile: the count on the page follows.
        checkin.sign_in(street.vol_a, event_id)
        db.session.commit()
        db.session.rollback()
        expect(page.locator("#present")).to_have_text("1", timeout=15_000)


@pytest.mark.slow
def test_a_phone_opens_the_code_logs_in_and_signs_in(street, app, strict_csp, live_server, pw, monkeypatch):
    monkeypatch.setattr(checkin, "SLOT_SECONDS", 3600)  # the code stays valid however slow the run
    event_id = _event(street)
    with app.test_request_context(base_url=live_server):
        from pointsapp.web.checkin import checkin_url

        url = checkin_url(event_id)
    csp = CspWatch()
    browser = launch(pw)
    try:
        vol = phone(browser, locale="zh-CN", base_url=live_server).new_page()
        csp.attach(vol)
        vol.goto(url)  # what the phone camera opens
        expect(vol).to_have_url(re.compile(r"/login\?next="))
        vol.get_by_label("用户名").fill("vol_a")
        vol.get_by_label("密码").fill("correct-horse-1")
        vol.get_by_role("button", name="登录", exact=True).click()
        expect(vol).to_have_url(re.compile(rf"/checkin/{event_id}/"))
        expect(vol.locator("h1")).to_contain_text("楼道清洁")
        snap(vol, "checkin-2-confirm")
        db.session.rollback()
        assert db.session.scalar(db.select(db.func.count()).select_from(CheckinAttendance)) == 0  # GET wrote nothing
        db.session.rollback()  # and the test holds no lock while the server writes
        vol.get_by_role("button", name="签到").click()
        expect(vol.locator(".flash")).to_contain_text("签到成功")
        expect(vol.get_by_role("button", name="签退")).to_be_visible()
        overflow = vol.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        snap(vol, "checkin-3-signed-in")
        assert csp.violations == []
    finally:
        browser.close()
    db.session.rollback()
    row = db.session.scalar(db.select(CheckinAttendance))
    assert row.volunteer_id == street.vol_a.id and row.signed_in_at is not None


@pytest.mark.slow
def test_staff_tick_every_claim_on_a_phone_and_approve_them_together(street, app, strict_csp, live_server, pw):
    """The approval queue's "select all" box (app.js, under the strict policy) ticks each claim;
    one tap approves them all."""
    from pointsapp.domain import claims
    from tests.factories import balance, yesterday

    for v in (street.vol_a, street.vol_a2):
        claims.submit_claim(v, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    db.session.rollback()
    with logged_in_phone(pw, live_server, "staff_a") as page:
        page.goto("/staff/")
        boxes = page.locator('input[name="activity_ids"]')
        expect(boxes).to_have_count(2)
        button = page.get_by_role("button", name="通过所选")
        expect(button).to_be_disabled()  # nothing ticked yet
        boxes.nth(0).check()
        expect(page.locator("#picked-count")).to_have_text("已选：1 条")
        expect(button).to_be_enabled()
        page.get_by_label("全选").check()
        for i in range(2):
            expect(boxes.nth(i)).to_be_checked()
        expect(page.locator("#picked-count")).to_have_text("已选：2 条")
        snap(page, "queue-1-all-ticked")
        button.click()
        expect(page.locator("body")).to_contain_text("已通过 2 条申请，发放 20 积分。")
        expect(page.locator('input[name="activity_ids"]')).to_have_count(0)
        snap(page, "queue-2-approved")
    db.session.rollback()
    assert (balance(street.vol_a).balance, balance(street.vol_a2).balance) == (10, 10)


@pytest.mark.slow
def test_a_refused_rejection_low_on_a_long_queue_shows_its_error_on_the_screen(street, app, strict_csp, live_server, pw):
    """Rejecting the last of many claims without a reason comes back as the whole queue, at its
    top; app.js brings the error and its field into view, with the cursor in the field."""
    from pointsapp.domain import claims
    from tests.factories import yesterday

    for days in range(12):
        for v in (street.vol_a, street.vol_a2):
            claims.submit_claim(v, rule_id=street.meeting.id, activity_date=yesterday() - timedelta(days=days))
    db.session.commit()
    db.session.rollback()
    with logged_in_phone(pw, live_server, "staff_a") as page:
        page.goto("/staff/")
        rejects = page.get_by_role("button", name="驳回")
        expect(rejects).to_have_count(24)
        rejects.nth(23).click()
        error = page.locator(".field-error")
        expect(error).to_have_count(1)
        expect(error).to_be_in_viewport()
        assert page.evaluate("window.scrollY") > 2000  # the page is long: this was scrolled to
        focused = page.evaluate("document.activeElement && document.activeElement.name")
        assert focused == "reason"
        snap(page, "queue-3-rejection-refused")
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(Activity).where(Activity.status == "pending")) == 24


@pytest.mark.slow
def test_going_back_after_recording_attendance_does_not_send_it_again(street, app, strict_csp, live_server, pw):
    """Back from the summary brings the attendance form back empty (the pages are not stored, so
    it is a new form with a new key): the same meeting is not credited twice by sending it again."""
    from tests.factories import balance

    meeting_id = street.meeting.id
    db.session.rollback()
    with logged_in_phone(pw, live_server, "staff_a") as page:
        page.goto("/staff/attendance")
        page.get_by_label("积分事项", exact=True).select_option(value=str(meeting_id))
        page.get_by_label("张秀华").check()
        page.get_by_role("button", name="登记并记积分").click()
        expect(page).to_have_url(re.compile(r"/staff/attendance/[\w-]+$"))
        expect(page.locator("#summary")).to_contain_text("10")
        page.go_back()
        expect(page).to_have_url(re.compile(r"/staff/attendance$"))
        page.wait_for_load_state("load")
        expect(page.get_by_label("张秀华")).not_to_be_checked()
        page.get_by_role("button", name="登记并记积分").click()
        expect(page.locator(".field-error, .error").first).to_be_visible()  # nobody ticked: refused
        snap(page, "attendance-back-empty")
    db.session.rollback()
    assert balance(street.vol_a).balance == 10
