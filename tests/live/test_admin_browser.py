"""Admin pages in a real browser (Debian's Chromium), under the strict Content-Security-Policy:
actions that cannot be undone ask first (app.js), and nothing happens when the admin says no."""
from __future__ import annotations

import re

import pytest

from pointsapp.extensions import db
from pointsapp.models import User

from .browser import snap
from .test_phone_journey import (  # noqa: F401  (pw, strict_csp: fixtures)
    WORDS, assert_fits_the_phone, assert_tables_fit, log_in, logged_in_phone, pw, strict_csp,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test requirement: make test installs it")
expect = sync_api.expect


@pytest.mark.slow
def test_deactivating_a_person_asks_first_and_no_changes_nothing(street, app, strict_csp, live_server, pw):
    person_id = street.vol_a2.id
    db.session.rollback()
    asked = []
    with logged_in_phone(pw, live_server, "admin_a") as page:
        page.goto(f"/admin/people/{person_id}")

        def answer(dialog, accept):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda d: answer(d, False))
        page.get_by_role("button", name="停用账号").click()
        page.wait_for_load_state("load")
        expect(page).to_have_url(re.compile(rf"/admin/people/{person_id}$"))
        expect(page.get_by_role("button", name="停用账号")).to_be_visible()  # still active
        db.session.expire_all()
        assert db.session.get(User, person_id).is_active
        db.session.rollback()

        page.once("dialog", lambda d: answer(d, True))
        page.get_by_role("button", name="停用账号").click()
        expect(page.get_by_role("button", name="恢复账号")).to_be_visible()
        snap(page, "admin-deactivated")
        # The audit log has the record, readable on the phone: each record a card, nothing cut off.
        page.goto("/admin/audit")
        expect(page.locator("#audit")).to_contain_text("用户名")
        assert_fits_the_phone(page)
        assert_tables_fit(page)
        snap(page, "admin-audit-log")
    assert asked == ["停用 刘建国？重新启用前无法登录。"] * 2
    db.session.expire_all()
    assert not db.session.get(User, person_id).is_active


@pytest.mark.slow
def test_a_table_wider_than_the_phone_says_it_scrolls_sideways(street, app, strict_csp, live_server, pw):
    db.session.rollback()
    with logged_in_phone(pw, live_server, "street_admin") as page:
        page.goto("/admin/rules")
        widths = page.evaluate("() => [...document.querySelectorAll('main table')].map(t => t.scrollWidth - t.clientWidth)")
        assert widths and max(widths) > 0  # the rules table is wider than 360 pixels
        expect(page.locator(".wide-table-hint").first).to_have_text("⇆ 表格较宽，请左右滑动查看所有列。")
        snap(page, "admin-rules-wide-table")
        desk = page.context.browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server,
                                   locale="zh-CN").new_page()
        log_in(desk, WORDS["zh"], "street_admin")
        desk.goto("/admin/rules")
        desk.wait_for_load_state("load")
        assert desk.locator(".wide-table-hint").count() == 0  # room enough on a desk


@pytest.mark.slow
def test_a_street_admins_menu_takes_one_row_of_the_phone_and_more_opens_to_log_out(street, app, strict_csp,
                                                                                   live_server, pw):
    db.session.rollback()
    with logged_in_phone(pw, live_server, "street_admin") as page:
        page.goto("/reports/")
        header = page.locator("header.top").bounding_box()
        assert header["height"] < 110, header  # the brand's line and one line of menu
        more = page.locator("details.more")
        expect(more.get_by_role("link", name="预算")).to_be_hidden()
        more.locator("summary").click()
        expect(more.get_by_role("link", name="预算")).to_be_visible()
        snap(page, "admin-menu-more")
        more.get_by_role("button", name="退出登录").click()
        expect(page).to_have_url(re.compile(r"/login"))
