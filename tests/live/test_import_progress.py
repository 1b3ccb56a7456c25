"""The import page in a real browser: the script streams the upload's progress into a bar and
shows the result in place; the roster is imported exactly once."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from pointsapp.extensions import db
from pointsapp.models import User
from pointsapp.spreadsheets import csv_bytes
from tests.unit.test_imports import HEADER

from .browser import CspWatch, launch, phone, require_chromium, snap
from .test_phone_journey import WORDS, log_in

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test requirement: make test installs it")
expect = sync_api.expect

ROWS = 60


@pytest.fixture
def pw():
    require_chromium()
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.mark.slow
def test_an_admin_uploads_a_roster_and_the_bar_counts_the_rows_then_the_result_appears(
    street, app, live_server, pw, tmp_path
):
    roster = tmp_path / "roster.csv"
    roster.write_bytes(csv_bytes(HEADER, [
        ["青山社区", "第二网格", f"{i}号楼", "", f"lz-{i}", f"楼长{i}", "", "楼长"] for i in range(ROWS)
    ]))
    browser = launch(pw)
    try:
        ctx = phone(browser, locale="zh-CN", base_url=live_server)
        page = ctx.new_page()
        csp = CspWatch()
        csp.attach(page)
        log_in(page, WORDS["zh"], "street_admin")
        page.goto("/sheets/")
        assert page.is_checked("#dry_run")  # a clerk checks the file first
        page.set_input_files("#file", str(roster))
        with page.expect_response(lambda r: r.url.endswith("/sheets/import")) as answered:
            page.get_by_role("button", name="上传").click()
        assert answered.value.headers["content-type"].startswith("application/x-ndjson")
        expect(page.locator("#import-result")).to_contain_text("检查通过")
        # The bar took its length from the server's count of rows, and the page never reloaded.
        assert page.eval_on_selector("#import-bar", "bar => [bar.max, bar.value]") == [ROWS, ROWS]
        assert page.url.endswith("/sheets/")
        assert db.session.scalar(select(func.count()).select_from(User).where(User.username.like("lz-%"))) == 0
        db.session.rollback()

        page.uncheck("#dry_run")
        page.set_input_files("#file", str(roster))
        page.get_by_role("button", name="上传").click()
        expect(page.locator("#import-result")).to_contain_text(f"已导入 {ROWS} 行")
        snap(page, "zh-10-import-done")
        assert csp.violations == []
    finally:
        browser.close()
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.username.like("lz-%"))) == ROWS


@pytest.mark.slow
def test_a_file_over_the_limit_is_refused_beside_the_form_and_sent_at_most_once(street, app, live_server, pw, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_bytes(csv_bytes(HEADER, [
        ["青山社区", "第二网格", f"{i}号楼", "", f"lz-{i}", f"楼长{i}", "", "楼长"] for i in range(400)
    ]))
    size = roster.stat().st_size
    browser = launch(pw)
    sent = []
    try:
        page = phone(browser, locale="zh-CN", base_url=live_server).new_page()
        csp = CspWatch()
        csp.attach(page)
        page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/sheets/import") else None)
        log_in(page, WORDS["zh"], "street_admin")
        # The page knows the limit: a larger file is refused at once, without sending it.
        app.config["UPLOAD_MAX_BYTES"] = size - 1
        page.goto("/sheets/")
        page.set_input_files("#file", str(roster))
        page.get_by_role("button", name="上传").click()
        expect(page.locator("#import-outcome .error")).to_contain_text("文件太大")
        assert sent == []
        # Should the server refuse it all the same (its own limit), it is not sent a second time.
        app.config["UPLOAD_MAX_BYTES"], app.config["MAX_CONTENT_LENGTH"] = size * 2, size // 2
        page.goto("/sheets/")
        page.set_input_files("#file", str(roster))
        page.get_by_role("button", name="上传").click()
        expect(page.locator("#import-outcome .error")).to_contain_text("文件太大")
        page.wait_for_timeout(500)
        assert len(sent) == 1
        assert page.url.endswith("/sheets/")
        snap(page, "zh-11-import-too-large")
        assert csp.violations == []
    finally:
        browser.close()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.username.like("lz-%"))) == 0
