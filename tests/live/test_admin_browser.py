"""Admin pages in a real browser (Debian's Chromium), under the strict Content-Security-Policy:
actions that cannot be undone ask first (app.js), and nothing happens when the admin says no."""
from __future__ import annotations

import re

import pytest

from pointsapp.extensions import db
from pointsapp.models import User

from tests.web.conftest import issued_voucher, pending_claim  # noqa: F401  (fixtures)

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


# Android's largest text setting scales the root font by about 1.3. Set before the page's own
# script runs, as on such a phone, so that app.js measures the tables at that size.
LARGE_TEXT = """new MutationObserver((records, watch) => {
    if (document.documentElement) { document.documentElement.style.fontSize = '130%'; watch.disconnect(); }
}).observe(document, {childList: true});"""


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_with_large_system_text_no_staff_page_scrolls_sideways_on_a_360_pixel_phone(
        lang, street, app, strict_csp, live_server, pw, pending_claim, issued_voucher):
    from pointsapp.domain import vouchers

    redeemed = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    vouchers.confirm_redemption(street.cashier, redeemed.code)
    db.session.commit()
    pages = {
        "street_admin": ["/admin/", "/admin/rules", f"/admin/rules/{street.meeting.id}", "/admin/rules/new",
                         "/admin/merchants", f"/admin/merchants/{street.shop.id}", "/admin/people",
                         f"/admin/people/{street.vol_a.id}", f"/admin/people/{street.vol_a.id}/ledger",
                         "/admin/people/new", "/admin/audit", "/admin/org", "/reports/", "/budgets/", "/sheets/",
                         "/settlement/", f"/settlement/{street.shop.id}", "/account/tokens/", "/honours/",
                         "/staff/events", "/staff/events/new"],
        "admin_a": ["/admin/", "/admin/people", "/staff/", "/staff/attendance", "/reports/", "/budgets/"],
        "staff_a": ["/staff/", "/staff/attendance", "/staff/deductions", "/staff/notice", "/honours/"],
        "cashier": ["/merchant/", "/merchant/today", "/settlement/", "/account/tokens/"],
    }
    db.session.rollback()
    wider, unhinted = {}, {}
    for username, paths in pages.items():
        with logged_in_phone(pw, live_server, username, lang=lang) as page:
            page.context.add_init_script(LARGE_TEXT)
            for path in paths:
                page.goto(path)
                page.wait_for_load_state("load")
                assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "20.8px", path
                px = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                if px > 0:
                    wider[f"{username} {path}"] = px
                # A table may scroll inside its box, but then it says so above it.
                silent = page.evaluate(
                    """() => [...document.querySelectorAll('main table')]
                        .filter(t => t.scrollWidth > t.clientWidth + 1)
                        .filter(t => !(t.previousElementSibling && t.previousElementSibling.matches('.wide-table-hint')))
                        .length"""
                )
                if silent:
                    unhinted[f"{username} {path}"] = silent
                snap(page, f"{lang}-large-text-{username}{path}")
    assert wider == {}, f"px wider than the phone: {wider}"
    assert unhinted == {}, f"tables wider than the phone with no hint: {unhinted}"


@pytest.mark.slow
def test_with_large_system_text_a_short_table_and_a_date_stay_whole(street, app, strict_csp, live_server, pw,
                                                                   issued_voucher):
    statement = f"/settlement/{street.shop.id}"
    db.session.rollback()
    with logged_in_phone(pw, live_server, "street_admin") as page:
        page.context.add_init_script(LARGE_TEXT)
        page.goto("/honours/")
        # Four columns of rank, name, points and hours fit without scrolling.
        assert page.evaluate("[...document.querySelectorAll('main table.honour-table')]"
                             ".every(t => t.scrollWidth <= t.clientWidth + 1)")
        page.goto(statement)
        # The month of the statement's heading is not split at its hyphen (2026-/09).
        month = page.locator("main h1 .nowrap")
        expect(month).to_have_text(re.compile(r"^\d{4}-\d\d$"))
        box = month.bounding_box()
        assert box["height"] < 1.6 * 1.3 * 16 * 1.6, box  # one line of the heading


@pytest.mark.slow
def test_on_a_phone_the_tills_list_of_the_day_is_cards_that_never_scroll(street, app, strict_csp, live_server, pw,
                                                                          issued_voucher):
    from pointsapp.domain import vouchers

    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    with logged_in_phone(pw, live_server, "cashier") as page:
        page.context.add_init_script(LARGE_TEXT)
        page.goto("/merchant/today")
        table = page.locator("#redemptions")
        assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1")
        assert page.locator(".wide-table-hint").count() == 0
        # Each line names its column; the head is left for screen readers only.
        assert page.locator("#redemptions thead").bounding_box()["height"] <= 1
        reward = page.locator("#redemptions td[data-label='兑换商品']")
        expect(reward).to_have_text("大米 5kg")
        label = reward.evaluate("td => getComputedStyle(td, '::before').content")
        assert label == '"兑换商品"'
        snap(page, "large-text-cashier-today-cards")
