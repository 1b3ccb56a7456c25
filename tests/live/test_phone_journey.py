"""The whole loop in a real browser at phone size, in Chinese and in English.

A volunteer logs in on her phone and claims a meeting; the grid worker approves it on his; she
sees the new balance, redeems a reward and opens the voucher; the cashier's phone scans the QR
code through its camera (Chromium's fake camera plays a video made from the QR image that her
screen shows) and confirms; her voucher page turns to "redeemed" by itself; the ledger balances.
The pages run under the strict Content-Security-Policy the app is meant to be served with, and any
violation (an inline script or style) fails the test. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

from contextlib import contextmanager

import io
import re
import time
from datetime import timedelta, timezone

import pytest
from PIL import Image

from pointsapp.extensions import db
from pointsapp.models import Voucher
from tests.factories import PASSWORD, balance

from .browser import CspWatch, launch, phone, require_chromium, snap, write_y4m

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test requirement: make test installs it")
expect = sync_api.expect

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

WORDS = {
    "zh": {
        "locale": "zh-CN",
        "username": "用户名",
        "password": "密码",
        "log_in": "登录",
        "spendable": "可用积分",
        "claim": "申请积分",
        "activity": "积分事项",
        "meeting": "参加会议：10 积分",
        "send": "提交申请",
        "waiting": "待审核",
        "approve": "通过",
        "rewards": "兑换商品",
        "redeem": "兑换",
        "ready": "可以使用",
        "valid": "兑换券有效",
        "confirm": "确认核销，发放商品",
        "redeemed": "已兑换",
        "vouchers": "我的兑换券",
        "start_camera": "打开摄像头",
        "do_not": "请勿发放",
        "mine": "您刚才已核销",
    },
    "en": {
        "locale": "en-US",
        "username": "Username",
        "password": "Password",
        "log_in": "Log in",
        "spendable": "Points you can spend",
        "claim": "Claim points",
        "activity": "Activity",
        "meeting": "Attend a meeting: 10 points",
        "send": "Send claim",
        "waiting": "Waiting",
        "approve": "Approve",
        "rewards": "Rewards",
        "redeem": "Redeem",
        "ready": "Ready to use",
        "valid": "Valid voucher",
        "confirm": "Confirm and hand over",
        "redeemed": "Redeemed",
        "vouchers": "My vouchers",
        "start_camera": "Start the camera",
        "do_not": "Do not hand over",
        "mine": "Already redeemed by you",
    },
}


@pytest.fixture
def strict_csp(app):
    """Serve every response with the strict policy (scripts and styles from this site only)."""

    @app.after_request
    def _csp(resp):
        resp.headers.setdefault("Content-Security-Policy", STRICT_CSP)
        return resp


@pytest.fixture
def pw():
    require_chromium()
    with sync_api.sync_playwright() as playwright:
        yield playwright


def log_in(page, words: dict, username: str) -> None:
    page.goto("/login")
    page.get_by_label(words["username"]).fill(username)
    page.get_by_label(words["password"]).fill(PASSWORD)
    page.get_by_role("button", name=words["log_in"], exact=True).click()
    expect(page).not_to_have_url(re.compile(r"/login"))


@contextmanager
def logged_in_phone(pw, base_url: str, username: str, lang: str = "zh"):
    """A 360-pixel phone in a fresh Chromium, logged in as ``username``; its page. On leaving, the
    strict Content-Security-Policy must have refused nothing."""
    csp = CspWatch()
    browser = launch(pw)
    try:
        page = phone(browser, locale="zh-CN" if lang == "zh" else "en", base_url=base_url).new_page()
        csp.attach(page)
        log_in(page, WORDS[lang], username)
        yield page
        assert csp.violations == []
    finally:
        browser.close()


def assert_every_field_is_labelled(page) -> None:
    page.wait_for_load_state("load")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], f"inputs without a label on {page.url}: {unlabelled}"


def assert_fits_the_phone(page) -> None:
    page.wait_for_load_state("load")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than a 360px phone"


def assert_tables_fit(page) -> None:
    """No table of the page scrolls sideways inside its box (a column out of sight)."""
    hidden = page.evaluate(
        "() => [...document.querySelectorAll('main table')].map(t => t.scrollWidth - t.clientWidth)"
    )
    assert hidden and max(hidden) <= 0, f"{page.url}: tables wider than their box by {hidden} px"


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_phone_journey_claim_approve_redeem_scan_confirm(
    lang, street, app, strict_csp, live_server, pw, check_ledger, tmp_path
):
    words = WORDS[lang]
    rice_id = street.rice.id
    db.session.rollback()  # hold no database transaction while the server works (SQLite locks)
    csp = CspWatch()
    browser = launch(pw)
    cashier_browser = None
    try:
        # --- the volunteer claims a meeting -------------------------------------------------
        if lang == "en":
            # She starts in a Chinese browser and switches to English once; the choice stays.
            vol_ctx = phone(browser, locale="zh-CN", base_url=live_server)
            vol = vol_ctx.new_page()
            csp.attach(vol)
            vol.goto("/login")
            vol.get_by_role("button", name="Switch to English").click()
            expect(vol.locator("html")).to_have_attribute("lang", "en")
        else:
            vol_ctx = phone(browser, locale=words["locale"], base_url=live_server)
            vol = vol_ctx.new_page()
            csp.attach(vol)
        log_in(vol, words, "vol_a")
        expect(vol.locator("#available")).to_have_text("0")
        assert_fits_the_phone(vol)

        vol.get_by_role("link", name=words["claim"]).first.click()
        expect(vol).to_have_url(re.compile(r"/volunteer/claim$"))
        vol.get_by_label(words["activity"]).select_option(label=words["meeting"])
        expect(vol.locator("#hours-box")).to_be_hidden()  # a meeting counts once, not by the hour
        assert_every_field_is_labelled(vol)
        vol.get_by_role("button", name=words["send"]).click()
        expect(vol.locator(".status-pending").first).to_contain_text(words["waiting"])

        # --- the grid worker approves it on his phone ---------------------------------------
        staff_ctx = phone(browser, locale=words["locale"], base_url=live_server)
        staff = staff_ctx.new_page()
        csp.attach(staff)
        log_in(staff, words, "staff_a")
        card = staff.locator("li.card", has_text="张秀华")
        expect(card).to_be_visible()
        assert_every_field_is_labelled(staff)
        assert_fits_the_phone(staff)
        snap(staff, f"{lang}-1-approval-queue")
        # Among many cards' buttons, a screen reader hears whose claim this one approves.
        card.get_by_role("button", name=re.compile(rf'^{words["approve"]} · 张秀华 · ')).click()
        expect(staff.locator("li.card", has_text="张秀华")).to_have_count(0)

        # --- she sees the new balance, redeems rice and opens the voucher --------------------
        vol.goto("/volunteer/")
        expect(vol.locator("#available")).to_have_text("10")
        expect(vol.locator("ul.entries")).to_contain_text("10")
        snap(vol, f"{lang}-2-volunteer-home")
        vol.goto("/volunteer/history")
        expect(vol.locator("main")).to_contain_text("+10")
        assert_fits_the_phone(vol)
        assert_tables_fit(vol)
        snap(vol, f"{lang}-2-history")
        vol.goto("/volunteer/")
        vol.get_by_role("link", name=words["rewards"]).first.click()
        expect(vol).to_have_url(re.compile(r"/volunteer/rewards$"))
        assert_fits_the_phone(vol)
        snap(vol, f"{lang}-3-rewards")
        vol.locator(f"#reward-{rice_id}").get_by_role("button", name=words["redeem"]).click()
        expect(vol).to_have_url(re.compile(r"/volunteer/vouchers/\d+$"))
        expect(vol.locator("#voucher-status")).to_contain_text(words["ready"])
        expect(vol.locator("#fallback-code")).to_have_text(re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}$"))
        expect(vol.locator("#countdown")).to_have_text(re.compile(r"\d"))
        assert_fits_the_phone(vol)
        snap(vol, f"{lang}-4-voucher")
        voucher_id = int(vol.url.rsplit("/", 1)[1])
        # The QR code exactly as her screen shows it becomes the cashier's camera picture.
        shown_qr = Image.open(io.BytesIO(vol.locator(".qr").screenshot()))
        camera_file = write_y4m(shown_qr, tmp_path / "voucher-qr.y4m")

        # --- the cashier scans it through the camera and confirms ----------------------------
        cashier_browser = launch(pw, camera_file=camera_file)
        cash_ctx = phone(cashier_browser, locale=words["locale"], base_url=live_server, camera=True)
        cash = cash_ctx.new_page()
        csp.attach(cash)
        log_in(cash, words, "cashier")  # lands on the redeem page; the camera starts by itself
        expect(cash.locator("#result.ok")).to_be_visible(timeout=30_000)
        expect(cash.locator("#result")).to_contain_text(words["valid"])
        expect(cash.locator("#result")).to_contain_text("大米 5kg")
        assert_fits_the_phone(cash)
        snap(cash, f"{lang}-5-scan-result")
        with db.session.no_autoflush:
            assert db.session.get(Voucher, voucher_id).status == "issued"  # looking up takes nothing
        db.session.rollback()
        cash.get_by_role("button", name=words["confirm"]).click()
        expect(cash.locator(".flash.done")).to_contain_text("大米 5kg")
        snap(cash, f"{lang}-6-redeemed-at-counter")

        # --- her voucher page turns to "redeemed" by itself -----------------------------------
        expect(vol.locator("#voucher-status")).to_contain_text(words["redeemed"], timeout=10_000)
        expect(vol.locator("#fallback-code")).to_have_count(0)
        snap(vol, f"{lang}-7-voucher-redeemed")

        # Scanning the same voucher again at the same till (as after a lost answer): the camera
        # reads it, and the answer says this cashier redeemed it a moment ago; not a refusal.
        cash.get_by_role("button", name=words["start_camera"]).click()
        expect(cash.locator("#result.mine")).to_contain_text(words["mine"], timeout=30_000)
        expect(cash.locator("#result.refused")).to_have_count(0)

        assert csp.violations == []
    finally:
        if cashier_browser is not None:
            cashier_browser.close()
        browser.close()

    db.session.rollback()
    assert db.session.get(Voucher, voucher_id).status == "redeemed"
    b = balance(street.vol_a)
    assert (b.available, b.held, b.earned) == (0, 0, 10)
    check_ledger()


def _issue_rice_voucher(street) -> tuple[int, str]:
    """Give vol_a 50 points and a rice voucher; return its id and fallback code."""
    from pointsapp.domain import vouchers

    from tests.factories import give_points

    give_points(street, street.vol_a, 50)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    result = issued.voucher.id, vouchers.format_code(issued.code)
    db.session.rollback()
    return result


@pytest.mark.slow
def test_cashier_without_a_camera_redeems_with_the_keyboard_and_sees_refusals_in_words(
    street, app, strict_csp, live_server, pw, check_ledger
):
    voucher_id, code = _issue_rice_voucher(street)
    csp = CspWatch()
    browser = launch(pw)  # no camera at all
    try:
        cash = phone(browser, locale="en-US", base_url=live_server).new_page()
        csp.attach(cash)
        log_in(cash, WORDS["en"], "cashier")
        # The page says why the camera cannot help, and the code field is ready to type into.
        expect(cash.locator("#scan-status")).to_contain_text("Type the code below")
        expect(cash.locator("#scanner")).to_be_visible()  # shown by its script (hidden without scripts)
        expect(cash.locator("#manual-title")).to_have_text("Or type the code")
        assert_every_field_is_labelled(cash)
        # A field's edge is seen (#767676, 4.5:1 on white), not Pico's pale grey.
        code_box = cash.get_by_label("Scan the QR code or type the 8-character code")
        code_box.blur()
        expect(code_box).to_have_css("border-top-color", "rgb(118, 118, 118)")
        cash.get_by_label("Scan the QR code or type the 8-character code").focus()
        cash.keyboard.type(code.lower().replace("-", " "))
        cash.keyboard.press("Enter")
        expect(cash.locator("#result.ok")).to_contain_text("✔")
        expect(cash.locator("#result.ok")).to_contain_text("Valid voucher")
        # The confirm button has the focus: one more Enter hands the reward over.
        expect(cash.get_by_role("button", name="Confirm and hand over")).to_be_focused()
        # Its focus ring is white on the green verdict, where the blue one could not be seen.
        expect(cash.get_by_role("button", name="Confirm and hand over")).to_have_css("outline-color", "rgb(255, 255, 255)")
        cash.keyboard.press("Enter")
        expect(cash.locator(".flash.done")).to_contain_text("大米 5kg")

        # The same code again at the same till: said in words that this cashier redeemed it a
        # moment ago, and what to do, not in colour alone.
        cash.get_by_label("Scan the QR code or type the 8-character code").fill(code)
        cash.keyboard.press("Enter")
        mine = cash.locator("#result.mine")
        expect(mine).to_contain_text("Already redeemed by you")
        expect(mine).to_contain_text("If you have not handed the goods over yet, hand them over now. Do not redeem it again.")
        snap(cash, "en-8-redeemed-by-you-at-counter")
        assert csp.violations == []
    finally:
        browser.close()
    db.session.rollback()
    assert db.session.get(Voucher, voucher_id).status == "redeemed"
    check_ledger()


@pytest.mark.slow
def test_the_till_offline_says_nothing_can_be_checked_and_keeps_the_code_instead_of_sending_it(
    street, app, strict_csp, live_server, pw, tmp_path
):
    import qrcode

    from pointsapp.domain import vouchers

    voucher_id, code = _issue_rice_voucher(street)
    token = vouchers.token_for(db.session.get(Voucher, voucher_id).nonce)
    db.session.rollback()
    camera_file = write_y4m(qrcode.make(token, border=4).get_image(), tmp_path / "voucher-qr.y4m")
    csp = CspWatch()
    browser = launch(pw, camera_file=camera_file)
    try:
        cash = phone(browser, locale="en-US", base_url=live_server, camera=True).new_page()
        csp.attach(cash)
        log_in(cash, WORDS["en"], "cashier")  # the camera starts and reads the voucher
        expect(cash.locator("#result.ok")).to_be_visible(timeout=30_000)
        till = cash.url
        sent = []
        cash.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)

        cash.context.set_offline(True)
        banner = cash.locator("#offline-note")
        expect(banner).to_contain_text("No connection: vouchers cannot be checked now")
        expect(banner).not_to_contain_text("saved on this phone")
        # The camera reads the code again: it stays in the field, and the page says why.
        cash.get_by_role("button", name="Start the camera").click()
        refusal = cash.locator("#lookup-offline")
        expect(refusal).to_be_visible(timeout=30_000)
        expect(cash.locator("#code")).to_have_value(token)
        snap(cash, "en-10-till-offline")
        # Typed and sent with the keyboard: the same.
        cash.locator("#code").fill(code)
        cash.locator("#code").press("Enter")
        expect(refusal).to_be_visible()
        expect(cash.locator("#code")).to_have_value(code)
        cash.wait_for_timeout(500)
        assert cash.url == till and sent == []

        # The connection is back: the note goes, and the code is looked up.
        cash.context.set_offline(False)
        expect(refusal).to_be_hidden()
        expect(banner).to_be_hidden()
        cash.locator("#code").press("Enter")
        expect(cash.locator("#result.ok")).to_contain_text("大米 5kg")
        assert csp.violations == []
    finally:
        browser.close()


# Each resolves true as soon as its condition holds, or false after about ten seconds.
_CONTROLLED = """() => navigator.serviceWorker.ready.then(() => navigator.serviceWorker.controller !== null
    || new Promise(done => {
        navigator.serviceWorker.addEventListener('controllerchange', () => done(true));
        setTimeout(() => done(navigator.serviceWorker.controller !== null), 10000);
    }))"""
_POLL = """async check => {
    for (let i = 0; i < 100; i++) {
        if (await check()) return true;
        await new Promise(next => setTimeout(next, 100));
    }
    return false;
}"""
_VOUCHER_KEPT = f"""id => ({_POLL})(() => caches.open('points-pages-v1')
    .then(c => c.match('/volunteer/vouchers/' + id)).then(Boolean))"""
_PAGES_FORGOTTEN = f"""() => ({_POLL})(() => caches.keys()
    .then(keys => !keys.some(k => k.startsWith('points-pages'))))"""


def _open_the_list_and_keep(vol, voucher_id: int) -> None:
    """Open the vouchers list and wait until the service worker has kept the voucher's page."""
    with vol.expect_response(re.compile(rf"/volunteer/vouchers/{voucher_id}$")):
        vol.goto("/volunteer/vouchers")
    assert vol.evaluate(_VOUCHER_KEPT, voucher_id)


@pytest.mark.slow
def test_vouchers_stay_readable_offline_and_are_forgotten_at_log_out(street, app, strict_csp, live_server, pw):
    voucher_id, code = _issue_rice_voucher(street)
    browser = launch(pw)
    try:
        ctx = phone(browser, locale="zh-CN", base_url=live_server)
        vol = ctx.new_page()
        log_in(vol, WORDS["zh"], "vol_a")
        # The service worker installs on the first page and takes control of it.
        # The waits below run as one evaluated function that polls in the page: Playwright's
        # wait_for_function would re-evaluate a string, which the strict CSP (no 'unsafe-eval')
        # refuses whenever the first check is not already true.
        assert vol.evaluate(_CONTROLLED)
        # Opening the list is enough: the page fetches each usable voucher for the worker to keep.
        _open_the_list_and_keep(vol, voucher_id)

        ctx.set_offline(True)  # in the shop, no signal
        vol.goto("/volunteer/vouchers")
        expect(vol.locator(f"#voucher-{voucher_id}")).to_contain_text("大米 5kg")
        expect(vol.locator("#offline-note")).to_be_visible()
        vol.goto("/volunteer/")  # not kept: the saved vouchers are shown instead of an error
        expect(vol.locator(f"#voucher-{voucher_id}")).to_contain_text("大米 5kg")
        vol.goto(f"/volunteer/vouchers/{voucher_id}")
        expect(vol.locator("#fallback-code")).to_have_text(code)
        expect(vol.locator(".qr svg")).to_be_visible()
        snap(vol, "zh-9-voucher-offline")

        def voucher_gone_offline():
            ctx.set_offline(True)
            response = None
            try:
                response = vol.goto(f"/volunteer/vouchers/{voucher_id}")
            except sync_api.Error:
                pass  # nothing saved any more: the browser has nothing to show offline
            assert response is None or code not in vol.content()
            ctx.set_offline(False)

        # A shared phone: someone else logs in without the first volunteer logging out.
        ctx.set_offline(False)
        log_in(vol, WORDS["zh"], "vol_a2")
        assert vol.evaluate(_PAGES_FORGOTTEN)
        voucher_gone_offline()

        # The volunteer again, who logs out this time.
        log_in(vol, WORDS["zh"], "vol_a")
        _open_the_list_and_keep(vol, voucher_id)
        vol.get_by_role("button", name="退出登录").click()
        expect(vol).to_have_url(re.compile(r"/login"))
        assert vol.evaluate(_PAGES_FORGOTTEN)
        voucher_gone_offline()
    finally:
        browser.close()


@pytest.mark.slow
def test_after_the_idle_logout_the_saved_voucher_still_shows_with_a_signal_and_without(
        street, app, strict_csp, live_server, pw):
    voucher_id, code = _issue_rice_voucher(street)
    browser = launch(pw)
    try:
        ctx = phone(browser, locale="zh-CN", base_url=live_server)
        vol = ctx.new_page()
        log_in(vol, WORDS["zh"], "vol_a")
        assert vol.evaluate(_CONTROLLED)
        _open_the_list_and_keep(vol, voucher_id)

        # On the walk to the shop the session passes its idle limit; she opens the app: the
        # login page, which says why, and which keeps her vouchers.
        app.config["IDLE_TIMEOUT"] = timedelta(seconds=1)
        time.sleep(2.2)
        vol.goto("/volunteer/")
        expect(vol).to_have_url(re.compile(r"/login"))
        expect(vol.locator(".flash")).to_be_visible()  # "logged out after … minutes without activity"

        # In the shop, no signal: the voucher is still on the phone.
        ctx.set_offline(True)
        vol.goto(f"/volunteer/vouchers/{voucher_id}")
        expect(vol.locator("#fallback-code")).to_have_text(code)
        expect(vol.locator("#offline-note")).to_be_visible()

        # With a signal, the voucher's address shows the saved voucher, not the login page, and
        # says why; the till checks the voucher with the server.
        ctx.set_offline(False)
        vol.goto(f"/volunteer/vouchers/{voucher_id}")
        expect(vol).to_have_url(re.compile(rf"/volunteer/vouchers/{voucher_id}$"))
        expect(vol.locator("#fallback-code")).to_have_text(code)
        expect(vol.locator(".qr svg")).to_be_visible()
        expect(vol.locator("#saved-copy-note")).to_be_visible()
        expect(vol.locator("#offline-note")).to_be_hidden()
        snap(vol, "zh-9-voucher-after-idle-logout")
        # Any other page leads to the login page.
        vol.goto("/volunteer/rewards")
        expect(vol).to_have_url(re.compile(r"/login"))
    finally:
        browser.close()


@pytest.mark.slow
def test_a_voucher_past_its_expiry_by_the_phone_clock_does_not_reload_without_end(
        street, app, strict_csp, live_server, pw):
    voucher_id, code = _issue_rice_voucher(street)
    with db.session.no_autoflush:
        expires_at = db.session.get(Voucher, voucher_id).expires_at
    db.session.rollback()
    # Two days on: past the expiry whatever the time zones of the phone and the server.
    phone_time = expires_at.replace(tzinfo=expires_at.tzinfo or timezone.utc) + timedelta(days=2)
    voucher_page = re.compile(rf"/volunteer/vouchers/{voucher_id}$")
    browser = launch(pw)
    try:
        ctx = phone(browser, locale="zh-CN", base_url=live_server)
        vol = ctx.new_page()
        log_in(vol, WORDS["zh"], "vol_a")
        assert vol.evaluate(_CONTROLLED)
        with vol.expect_response(voucher_page):
            vol.goto("/volunteer/vouchers")
        assert vol.evaluate(_VOUCHER_KEPT, voucher_id)
        loads = []
        vol.on("framenavigated", lambda frame: loads.append(frame.url) if frame == vol.main_frame else None)
        asked = []
        vol.on("request", lambda r: asked.append(r.url) if voucher_page.search(r.url) else None)

        # Online, the phone's clock ahead of the server's: the page asks the server once, which
        # still says "ready to use", and stays.
        vol.clock.set_system_time(phone_time)
        vol.goto(f"/volunteer/vouchers/{voucher_id}")
        vol.wait_for_timeout(3000)
        assert len(asked) <= 2, f"{len(asked)} requests for the voucher page in 3 s"
        expect(vol.locator("#voucher-status")).to_contain_text("可以使用")

        # Offline in the shop, the saved copy past its expiry: it says so, in place, once.
        ctx.set_offline(True)
        loads.clear()
        vol.goto(f"/volunteer/vouchers/{voucher_id}")
        expect(vol.locator("#voucher-status")).to_contain_text("已过期")
        vol.wait_for_timeout(2000)
        assert len(loads) == 1, f"{len(loads)} page loads in 2 s"
        expect(vol.locator("#fallback-code")).to_be_hidden()
        expect(vol.locator(".qr")).to_be_hidden()
        expect(vol.locator("#countdown")).to_be_visible()
        expect(vol.locator("details.cancel")).to_be_hidden()
        snap(vol, "zh-9-voucher-expired-offline")
    finally:
        browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_with_large_system_text_the_volunteer_pages_fit_a_360_pixel_phone(lang, street, app, strict_csp, live_server, pw):
    from tests.factories import give_points

    give_points(street, street.vol_a, 9999)  # four- and five-figure amounts and balances
    give_points(street, street.vol_a, 9998)
    voucher_id, code = _issue_rice_voucher(street)
    db.session.rollback()
    wider = {}
    with logged_in_phone(pw, live_server, "vol_a", lang=lang) as page:
        for path in ("/volunteer/", "/volunteer/rewards", "/volunteer/history", "/volunteer/vouchers",
                     f"/volunteer/vouchers/{voucher_id}", "/volunteer/claim", "/volunteer/claims",
                     "/volunteer/statement"):
            page.goto(path)
            # Android's largest text setting scales the root font by about 1.3.
            page.evaluate("document.documentElement.style.fontSize = '130%'")
            # The page never scrolls sideways; the history's table is made to fit as well (other
            # tables scroll inside their box, and say so).
            wider[path] = page.evaluate(
                """() => [document.documentElement, ...document.querySelectorAll('main table.history')]
                    .map(el => el.scrollWidth - el.clientWidth)"""
            )
            snap(page, f"{lang}-11-large-text{path}")
    too_wide = {path: px for path, px in wider.items() if max(px) > 0}
    assert too_wide == {}, f"px wider than the phone (the page, then the history table): {too_wide}"


def test_a_photo_over_the_limit_is_refused_before_it_is_sent_and_the_note_stays(
        street, app, strict_csp, live_server, pw, tmp_path):
    photo = tmp_path / "IMG_2041.jpg"
    photo.write_bytes(b"\xff\xd8\xff" + b"0" * 3000)  # its size is what counts here
    app.config["PHOTO_MAX_BYTES"], before = 2000, app.config["PHOTO_MAX_BYTES"]
    sent = []
    db.session.rollback()
    try:
        with logged_in_phone(pw, live_server, "vol_a") as page:
            page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
            page.goto("/volunteer/claim")
            page.get_by_label("备注").fill("楼道清扫，拍了照片")
            page.set_input_files("#photo", str(photo))
            page.get_by_role("button", name="提交申请").click()
            error = page.locator("#too-large-photo")
            expect(error).to_contain_text("照片超过了")
            expect(page.locator("#photo")).to_have_attribute("aria-invalid", "true")
            expect(page.get_by_label("备注")).to_have_value("楼道清扫，拍了照片")
            assert sent == []
    finally:
        app.config["PHOTO_MAX_BYTES"] = before
