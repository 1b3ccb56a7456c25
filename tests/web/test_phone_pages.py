"""Phone pages: the voucher's own status feed, the installable app, reward pictures, locale formats,
and pages that keep to a strict Content-Security-Policy (no inline script, handler or style)."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

from PIL import Image

from pointsapp.domain import vouchers
from pointsapp.extensions import db
from tests.web.conftest import page_text, use_english
from tests.web.inline import inline_code

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"


# --- the voucher page's status feed ---------------------------------------------------------


def test_the_voucher_owner_reads_its_status_and_sees_it_turn_to_redeemed(street, client, login, issued_voucher):
    login("vol_a")
    url = f"/volunteer/vouchers/{issued_voucher.voucher.id}/status"
    resp = client.get(url, headers={"Accept": "application/json"})
    assert resp.status_code == 200
    assert resp.get_json() == {"id": issued_voucher.voucher.id, "status": "issued"}
    assert resp.headers["Cache-Control"] == "no-store"

    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    assert client.get(url).get_json()["status"] == "redeemed"


def test_nobody_else_can_read_a_voucher_status(street, client, login, auth, issued_voucher):
    url = f"/volunteer/vouchers/{issued_voucher.voucher.id}/status"
    assert client.get(url).status_code == 302  # not logged in: to the login page
    login("vol_a2")
    resp = client.get(url, headers={"Accept": "application/json"})
    assert resp.status_code == 404
    assert "status" not in resp.get_json()
    auth.logout()
    login("cashier")  # not a volunteer at all
    assert client.get(url, headers={"Accept": "application/json"}).status_code == 403


def test_the_open_voucher_page_carries_what_its_script_needs_and_a_redeemed_one_does_not(
    street, client, login, issued_voucher
):
    login("vol_a")
    vid = issued_voucher.voucher.id
    body = client.get(f"/volunteer/vouchers/{vid}").get_data(as_text=True)
    assert f'data-status-url="/volunteer/vouchers/{vid}/status"' in body
    assert 'data-status="issued"' in body and 'id="countdown"' in body
    assert 'data-template="还剩 {d} 天 {h} 小时 {m} 分钟"' in body

    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    body = client.get(f"/volunteer/vouchers/{vid}").get_data(as_text=True)
    assert "data-status-url" not in body and 'id="fallback-code"' not in body
    assert "已兑换" in page_text(client.get(f"/volunteer/vouchers/{vid}"))


# --- strict Content-Security-Policy: no inline code ---------------------------------------------


def test_no_template_has_inline_script_handlers_or_styles():
    problems = {}
    for path in TEMPLATES.rglob("*.html"):
        found = inline_code(path.read_text(encoding="utf-8"))
        if found:
            problems[str(path.relative_to(TEMPLATES))] = found
    assert problems == {}


def test_rendered_phone_pages_have_no_inline_code(street, client, login, auth, issued_voucher):
    login("vol_a")
    for url in ("/volunteer/", "/volunteer/rewards", "/volunteer/vouchers", f"/volunteer/vouchers/{issued_voucher.voucher.id}", "/volunteer/claim"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert inline_code(resp.get_data(as_text=True)) == [], url
    auth.logout()
    login("cashier")
    body = client.get("/merchant/").get_data(as_text=True)
    assert inline_code(body) == []
    assert re.search(r'<script src="/static/vendor/jsqr/jsQR\.js\?v=[0-9a-f]{12}" defer></script>', body)


# --- installable app and offline vouchers -------------------------------------------------------


def test_the_manifest_names_the_app_in_the_page_language_and_its_icons_exist(client):
    resp = client.get("/manifest.webmanifest", headers={"Accept-Language": "zh-CN"})
    assert resp.status_code == 200 and resp.mimetype == "application/manifest+json"
    manifest = json.loads(resp.get_data(as_text=True))
    assert manifest["name"] == "志愿者积分" and manifest["display"] == "standalone" and manifest["start_url"] == "/"
    sizes = set()
    for icon in manifest["icons"]:
        png = client.get(icon["src"])
        assert png.status_code == 200, icon["src"]
        with Image.open(io.BytesIO(png.data)) as img:
            assert f"{img.width}x{img.height}" == icon["sizes"]
        sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes
    english = client.get("/manifest.webmanifest", headers={"Accept-Language": "en"}).get_json()
    assert english["name"] == "Volunteer points"


def test_the_service_worker_is_served_from_the_root_for_every_page(client):
    resp = client.get("/sw.js")
    assert resp.status_code == 200
    assert resp.headers["Service-Worker-Allowed"] == "/"
    assert "no-cache" in resp.headers["Cache-Control"]
    assert "javascript" in resp.mimetype
    worker = resp.get_data(as_text=True)
    assert "/volunteer/vouchers" in worker and "points-pages" in worker
    page = client.get("/login").get_data(as_text=True)
    assert 'data-sw="/sw.js"' in page and 'rel="manifest"' in page
    assert "data-forget-offline" not in page  # never logged in, or logged out by the idle limit


def test_only_the_login_page_after_pressing_log_out_forgets_the_saved_vouchers(street, client, auth):
    from pointsapp.web.security import SEEN_KEY

    auth.login("vol_a")
    with client.session_transaction() as sess:
        sess[SEEN_KEY] -= 31 * 60  # idle past the limit, on the way to the shop
    assert "/login" in client.get("/volunteer/").headers["Location"]
    assert "data-forget-offline" not in client.get("/login").get_data(as_text=True)

    auth.login("vol_a")
    auth.logout()
    assert 'data-forget-offline="1"' in client.get("/login").get_data(as_text=True)
    assert "data-forget-offline" not in client.get("/login").get_data(as_text=True)  # once


# --- reward pictures ----------------------------------------------------------------------------


def _png(colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), colour).save(out, "PNG")
    return out.getvalue()


def test_an_admin_gives_a_reward_a_picture_and_volunteers_see_it(street, client, login, auth):
    login("street_admin")
    rice = street.rice.id
    resp = client.post(
        f"/admin/rewards/{rice}/picture",
        data={"csrf_token": auth.csrf(f"/admin/rewards/{rice}"), "picture": (io.BytesIO(_png()), "rice.png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302
    auth.logout()
    login("vol_a")
    assert f'src="/volunteer/rewards/{rice}/picture"' in client.get("/volunteer/rewards").get_data(as_text=True)
    pic = client.get(f"/volunteer/rewards/{rice}/picture")
    assert pic.status_code == 200 and pic.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(pic.data)) as img:
        assert max(img.size) == 480  # re-encoded and shrunk
    placeholder = client.get(f"/volunteer/rewards/{street.oil.id}/picture")
    assert placeholder.status_code == 200 and placeholder.mimetype == "image/svg+xml"


def test_a_file_that_is_not_a_picture_is_refused_and_nothing_is_stored(street, client, login, auth):
    login("street_admin")
    rice = street.rice.id
    resp = client.post(
        f"/admin/rewards/{rice}/picture",
        data={"csrf_token": auth.csrf(f"/admin/rewards/{rice}"), "picture": (io.BytesIO(b"<script>x</script>"), "x.png")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "无法读取这个文件。请上传 JPEG、PNG、WebP 或 GIF 格式的照片。" in page_text(resp)
    assert client.get(f"/volunteer/rewards/{rice}/picture").mimetype == "image/svg+xml"


def test_only_the_rewards_admins_may_change_its_picture(street, client, login, auth):
    login("vol_a")
    resp = client.post(
        f"/admin/rewards/{street.rice.id}/picture",
        data={"csrf_token": auth.csrf("/volunteer/"), "picture": (io.BytesIO(_png()), "rice.png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 403


# --- language and locale formats ----------------------------------------------------------------


def test_the_language_follows_the_browser_until_the_person_chooses(client):
    assert "用户名" in page_text(client.get("/login"))
    assert "Username" in page_text(client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}))
    assert "用户名" in page_text(client.get("/login", headers={"Accept-Language": "fr-FR"}))  # default: Chinese


def test_dates_are_written_one_way_in_both_languages(street, client, login, issued_voucher):
    login("vol_a")
    vid = issued_voucher.voucher.id
    chinese = page_text(client.get(f"/volunteer/vouchers/{vid}"))
    assert re.search(r"有效期至 \d{4}-\d{2}-\d{2} \d{2}:\d{2}\b", chinese)
    assert not re.search(r"\d{4}/\d{1,2}/\d{1,2}", chinese)
    use_english(client)
    english = page_text(client.get(f"/volunteer/vouchers/{vid}"))
    assert re.search(r"Valid until \d{4}-\d{2}-\d{2} \d{2}:\d{2}\b", english)


def test_the_language_button_on_a_page_a_form_produced_goes_back_to_the_forms_page(street, client, login, auth):
    login("cashier")
    # The cashier typed a wrong code at /merchant/ and got the refusal from POST /merchant/lookup.
    refused = auth.post("/merchant/lookup", {"code": "ZZZZ-ZZZZ"}, token_from="/merchant/",
                        headers={"Referer": "http://localhost/merchant/"})
    assert refused.status_code in (404, 422)
    lang_form = re.search(r'action="/lang/en">.*?name="next" value="([^"]*)"', refused.get_data(as_text=True), re.S)
    assert lang_form.group(1) == "/merchant/"
    switched = auth.post("/lang/en", {"next": lang_form.group(1)}, token_from="/merchant/")
    assert switched.status_code == 302 and switched.headers["Location"] == "/merchant/"
    assert client.get("/merchant/").status_code == 200
    # An address only a form can send to is never where the button leads: the start page instead.
    assert auth.post("/lang/zh_CN", {"next": "/merchant/lookup"}, token_from="/merchant/").headers["Location"] == "/"
    assert auth.post("/lang/zh_CN", {"next": "/no/such/page"}, token_from="/merchant/").headers["Location"] == "/"
    assert auth.post("/lang/zh_CN", {"next": "/merchant/today?x=1"},
                     token_from="/merchant/").headers["Location"] == "/merchant/today?x=1"


def test_the_language_choice_outlives_the_browser_session(app, client, auth):
    resp = auth.post("/lang/en", {}, token_from="/login")
    assert resp.status_code == 302
    lang_cookie = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("lang=")]
    assert lang_cookie and "lang=en" in lang_cookie[0] and "Expires=" in lang_cookie[0]
    # A new browser session (no session cookie) on the same phone: the lasting cookie still says English.
    fresh = app.test_client()
    fresh.set_cookie("lang", "en")
    assert "Username" in page_text(fresh.get("/login"))
    fresh.set_cookie("lang", "xx")  # nonsense is ignored: Chinese
    assert "用户名" in page_text(fresh.get("/login"))


def test_buttons_among_many_alike_name_what_they_act_on_for_screen_readers(street, client, login, pending_claim):
    login("vol_a")
    rewards = client.get("/volunteer/rewards").get_data(as_text=True)
    assert re.search(r'>兑换<span class="visually-hidden"> · 大米 5kg</span></button>', rewards)
    login("staff_a")
    queue = client.get("/staff/").get_data(as_text=True)
    # Whose claim, for what, on which day: a volunteer may have two claims of one kind.
    which = f"{pending_claim.volunteer.full_name} · 参加会议 · {pending_claim.activity_date.isoformat()}"
    assert f'>通过<span class="visually-hidden"> · {which}</span></button>' in queue
    assert f'>驳回<span class="visually-hidden"> · {which}</span></button>' in queue
    assert f'选择<span class="visually-hidden"> · {which}</span>' in queue


def test_error_pages_say_in_words_what_happened_and_what_to_do(street, client, login):
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert re.search(r"<title>页面不存在", missing.get_data(as_text=True))
    assert "<h1>页面不存在</h1>" in missing.get_data(as_text=True) and "错误 404" in page_text(missing)
    use_english(client)
    login("vol_a")
    forbidden = client.get("/admin/")
    assert forbidden.status_code == 403
    assert "<h1>Not allowed</h1>" in forbidden.get_data(as_text=True)
    assert "ask your community or street office" in page_text(forbidden)
    wrong_method = client.get("/merchant/lookup")
    assert wrong_method.status_code == 405 and "Go back to the page you came from" in page_text(wrong_method)


def test_a_second_login_page_left_open_sends_a_logged_in_person_home_not_to_form_expired(app, street, client, auth):
    stale = client.get("/login")  # tab A
    assert auth.login("vol_a").status_code == 302  # tab B
    from tests.conftest import csrf_from

    token = csrf_from(stale.get_data(as_text=True))
    again = client.post("/login", data={"csrf_token": token + "x", "username": "vol_a", "password": "correct-horse-1"})
    assert again.status_code == 302 and again.headers["Location"] == "/"


def test_english_says_one_point_and_many_points(street, client, login):
    from pointsapp.domain import claims, rules
    from tests.factories import rule_terms, yesterday

    one = rules.create_rule(street.street_admin, street.street, rule_terms(name_zh="小事", name_en="Small thing", points=1))
    db.session.commit()
    claims.submit_claim(street.vol_a, rule_id=one.id, activity_date=yesterday())
    claims.submit_claim(street.vol_a2, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    use_english(client)
    login("staff_a")
    queue = page_text(client.get("/staff/"))
    assert "1 point" in queue and "1 points" not in queue and "10 points" in queue
    login("vol_a")
    claim_page = page_text(client.get("/volunteer/claim"))
    assert "Small thing: 1 point" in claim_page and "Small thing: 1 points" not in claim_page
    # Chinese has one form.
    with client.session_transaction() as sess:
        sess["lang"] = "zh_CN"
    assert "小事：1 积分" in page_text(client.get("/volunteer/claim"))


# --- the main menu ----------------------------------------------------------------------------


def _menu(html: str) -> tuple[list[str], list[str]]:
    """The main menu's links as (in the header, under "More"), each ``label`` or ``*label`` for
    the page being shown."""
    nav = re.search(r'<nav aria-label="[^"]*">(.*?)</nav>', html, re.S).group(1)
    shown, _, folded = nav.partition('<details class="more">')

    def labels(part):
        return [("*" if "aria-current" in attrs else "") + re.sub(r"\s+", " ", text).strip()
                for attrs, text in re.findall(r"<a ([^>]*)>(.*?)</a>", part, re.S)]

    return labels(shown), labels(folded)


def test_a_street_admins_long_menu_keeps_three_links_and_folds_the_rest_under_more(street, client, login):
    login("street_admin")
    html = client.get("/budgets/").get_data(as_text=True)
    shown, folded = _menu(html)
    assert shown == ["积分审核", "管理", "统计报表"]
    assert folded == ["签到活动", "光荣榜", "*预算", "表格导入导出", "结算", "API 令牌", "密码"]
    assert re.search(r"<summary>更多 · 预算</summary>", html)  # says where the page is
    assert re.search(r'<details class="more">.*action="/logout".*</details>', html, re.S)  # log out in it too
    shown, folded = _menu(client.get("/admin/people").get_data(as_text=True))
    assert shown == ["积分审核", "*管理", "统计报表"] and "*" not in "".join(folded)
    # A check-in page (/staff/events/...) is not an approvals page (/staff/): one link is marked.
    for path in ("/staff/events", "/staff/events/new"):
        shown, folded = _menu(client.get(path).get_data(as_text=True))
        assert "*签到活动" in folded and "*" not in "".join(shown), (path, shown, folded)


def test_a_short_menu_is_all_in_the_header(street, client, login):
    login("vol_a")
    html = client.get("/volunteer/").get_data(as_text=True)
    assert "<details" not in re.search(r"<nav .*?</nav>", html, re.S).group(0)
    assert _menu(html) == (["*我的积分", "密码"], [])
    client.post("/logout", data={"csrf_token": ""})
    login("cashier")
    assert _menu(client.get("/merchant/redeem").get_data(as_text=True)) == (["*兑换", "结算", "API 令牌", "密码"], [])
