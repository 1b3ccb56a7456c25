"""Sessions and passwords over HTTP: a new session at login, logout and password changes that end
every session of the person, the idle timeout, cookie flags, forced change after an admin reset."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from pointsapp import create_app
from pointsapp.domain import people
from pointsapp.extensions import db
from pointsapp.models import AuditRecord, User
from pointsapp.web.security import SEEN_KEY
from tests.conftest import AuthActions, csrf_from
from tests.factories import PASSWORD, yesterday
from tests.web.conftest import errors_at, hidden_inputs, page_text, use_english


def second_browser(app):
    client = app.test_client()
    return client, AuthActions(client)


def change_password(client, current: str, new: str, confirm: str | None = None):
    page = client.get("/account/password")
    return client.post(
        "/account/password",
        data={
            "csrf_token": hidden_inputs(page)["csrf_token"],
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        },
    )


def test_login_starts_a_new_session_and_keeps_only_the_language(street, client, auth):
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
        sess["lang"] = "en"
    assert auth.login("vol_a").status_code == 302
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["lang"] == "en"
        assert sess["_sv"] == 0 and isinstance(sess[SEEN_KEY], int)


def test_logout_ends_every_session_of_the_person_on_every_device(app, street, client, auth):
    phone, phone_auth = second_browser(app)
    auth.login("vol_a")
    phone_auth.login("vol_a")
    assert phone.get("/volunteer/").status_code == 200
    # Someone else's session is not touched.
    other, other_auth = second_browser(app)
    other_auth.login("vol_a2")

    auth.logout()
    assert client.get("/volunteer/").status_code == 302
    resp = phone.get("/volunteer/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert other.get("/volunteer/").status_code == 200


def test_a_stolen_cookie_is_useless_after_logout(app, street, client, auth):
    auth.login("vol_a")
    with client.session_transaction() as sess:
        stolen = dict(sess)
    auth.logout()
    thief = app.test_client()
    with thief.session_transaction() as sess:
        sess.update(stolen)
    resp = thief.get("/volunteer/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_changing_the_password_keeps_this_browser_and_logs_out_the_others(app, street, client, auth):
    phone, phone_auth = second_browser(app)
    auth.login("vol_a")
    phone_auth.login("vol_a")
    resp = change_password(client, PASSWORD, "a-quiet-garden-7")
    assert resp.status_code == 302
    assert client.get("/volunteer/").status_code == 200
    assert phone.get("/volunteer/").status_code == 302
    assert people.authenticate("vol_a", "a-quiet-garden-7") is not None
    assert people.authenticate("vol_a", PASSWORD) is None


@pytest.mark.parametrize(
    "current, new, confirm, field, message",
    [
        ("wrong-password-1", "a-quiet-garden-7", None, "current_password", "current password is wrong"),
        (PASSWORD, "short", None, "new_password", "at least 10 characters"),
        (PASSWORD, "password123", None, "new_password", "most common passwords"),
        (PASSWORD, "qwertyuiop", None, "new_password", "most common passwords"),
        (PASSWORD, "vol_a-is-me-2024", None, "new_password", "must not contain the username"),
        (PASSWORD, PASSWORD, None, "new_password", "different from the current one"),
        (PASSWORD, "a-quiet-garden-7", "a-quiet-garden-8", "confirm_password", "differ"),
    ],
)
def test_a_bad_new_password_is_refused_at_its_field_and_changes_nothing(
    street, client, auth, current, new, confirm, field, message
):
    use_english(client)
    auth.login("vol_a")
    before = db.session.get(User, street.vol_a.id).password_hash
    resp = change_password(client, current, new, confirm)
    assert resp.status_code == 422
    assert any(message in e for e in errors_at(resp, field)), errors_at(resp, field)
    db.session.expire_all()
    assert db.session.get(User, street.vol_a.id).password_hash == before
    assert client.get("/volunteer/").status_code == 200  # still logged in


def test_admin_reset_forces_a_new_password_at_the_next_login(app, street, client, auth):
    vol_browser, vol_auth = second_browser(app)
    vol_auth.login("vol_a")
    auth.login("admin_a")
    resp = auth.post(f"/admin/people/{street.vol_a.id}/password", token_from=f"/admin/people/{street.vol_a.id}")
    assert resp.status_code == 200
    temporary = page_text(resp).split("：" if "：" in page_text(resp) else ":")[1].split()[0]
    assert len(temporary) == 14 and temporary.count("-") == 2
    # The volunteer's open session ended with the reset.
    assert vol_browser.get("/volunteer/").status_code == 302
    # The reset is audited, without the password.
    rec = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "person.password_reset"))
    assert rec.actor_id == street.admin_a.id and rec.target_id == street.vol_a.id
    assert temporary not in rec.summary

    # The temporary password logs in, but every page leads to the change-password page.
    resp = vol_auth.login("vol_a", temporary)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/password")
    for path in ("/volunteer/", "/volunteer/rewards", "/"):
        resp = vol_browser.get(path)
        assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/password"), path
    resp = vol_auth.post(f"/volunteer/rewards/{street.rice.id}/redeem", token_from="/account/password")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/password")
    assert vol_browser.get("/account/password").status_code == 200

    assert change_password(vol_browser, temporary, "my-own-secret-42").status_code == 302
    assert vol_browser.get("/volunteer/").status_code == 200
    assert not db.session.get(User, street.vol_a.id).must_change_password


def test_a_first_login_with_an_activation_code_asks_for_the_code_not_a_current_password(street, client, auth):
    """The slip's code typed without its dashes logs in; the next page says what it is for."""
    code, fields = people.new_activation_code()
    user = db.session.get(User, street.vol_a.id)
    for key, value in fields.items():
        setattr(user, key, value)
    db.session.commit()
    assert "第一次登录？请把纸条上的激活码当作密码输入。" in page_text(client.get("/login"))
    resp = auth.login("vol_a", code.replace("-", "").upper())
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/password")
    page = client.get("/account/password")
    text = page_text(page)
    assert "设置密码" in text and "激活码" in text and "当前密码" not in text
    assert "管理员已重置您的密码" not in text
    wrong = change_password(client, "aaaa-bbbb-cccc-dddd", "my-own-secret-42")
    assert wrong.status_code == 422
    assert errors_at(wrong, "current_password") == ["激活码不对：请照着纸条上的样子输入。"]
    assert 'type="text"' in re.search(r'<input[^>]*name="current_password"[^>]*>', page.get_data(as_text=True)).group(0)
    assert re.search(r'<button type="submit" class="primary">设置密码</button>', page.get_data(as_text=True))
    done = change_password(client, code.replace("-", " "), "my-own-secret-42")
    assert done.status_code == 302
    assert "密码已设置，欢迎使用。" in page_text(client.get(done.headers["Location"], follow_redirects=True))
    user = db.session.get(User, street.vol_a.id)
    db.session.refresh(user)
    assert user.activation_hash is None and not user.must_change_password
    assert "当前密码" in page_text(client.get("/account/password"))  # from now on, a password


def test_an_admin_cannot_reset_the_password_of_someone_outside_their_subtree_or_above_them(street, client, auth):
    auth.login("admin_a")
    for target in (street.vol_b, street.street_admin):
        resp = auth.post(f"/admin/people/{target.id}/password")
        assert resp.status_code in (403, 404)
        db.session.expire_all()
        assert not db.session.get(User, target.id).must_change_password
    assert db.session.scalar(select(AuditRecord).where(AuditRecord.action == "person.password_reset")) is None


def test_a_session_idle_longer_than_the_timeout_is_ended(street, client, auth):
    use_english(client)
    auth.login("vol_a")
    assert client.get("/volunteer/").status_code == 200
    with client.session_transaction() as sess:
        sess[SEEN_KEY] -= 31 * 60
    resp = client.get("/volunteer/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert "without activity" in page_text(client.get("/login"))
    with client.session_transaction() as sess:
        assert "_user_id" not in sess and sess.get("lang") == "en"


def test_a_form_sent_after_the_idle_timeout_is_said_not_to_have_been_saved(street, client, auth):
    from pointsapp.models import Activity

    auth.login("vol_a")
    form = hidden_inputs(client.get("/volunteer/claim"))
    with client.session_transaction() as sess:
        sess[SEEN_KEY] -= 31 * 60
    resp = client.post("/volunteer/claim", data={**form, "rule_id": str(street.meeting.id),
                                                 "activity_date": yesterday().isoformat(), "note": "楼栋会议"})
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    shown = page_text(client.get("/login"))
    assert "您已超过 30 分钟没有操作，已自动退出登录。" in shown
    assert "刚才提交的内容没有保存，请登录后重新提交。" in shown
    assert db.session.query(Activity).count() == 0
    # In English, one minute is a minute.
    use_english(client)
    client.application.config["IDLE_TIMEOUT"], before = timedelta(minutes=1), client.application.config["IDLE_TIMEOUT"]
    try:
        auth.login("vol_a")
        with client.session_transaction() as sess:
            sess[SEEN_KEY] -= 2 * 60
        client.get("/volunteer/")
        assert "logged out after 1 minute without activity." in page_text(client.get("/login"))
    finally:
        client.application.config["IDLE_TIMEOUT"] = before


def test_after_logging_in_again_a_form_address_leads_home_and_a_page_address_to_the_page(street, client):
    for target, lands in (("/staff/claims/1/approve", "/"), ("/staff/", "/staff/")):
        client.get("/login")
        token = csrf_from(client.get("/login").get_data(as_text=True))
        resp = client.post(f"/login?next={target}", data={"csrf_token": token, "username": "staff_a",
                                                           "password": PASSWORD})
        assert resp.status_code == 302 and resp.headers["Location"] == lands, target
        client.post("/logout", data={"csrf_token": csrf_from(client.get("/staff/").get_data(as_text=True))})


def test_activity_within_the_timeout_keeps_the_session_alive(street, client, auth):
    auth.login("vol_a")
    with client.session_transaction() as sess:
        sess[SEEN_KEY] -= 29 * 60
    assert client.get("/volunteer/").status_code == 200
    with client.session_transaction() as sess:
        assert time.time() - sess[SEEN_KEY] < 5  # the clock restarted


def test_the_session_cookie_is_written_when_the_session_changes_not_on_every_page(street, client, auth):
    auth.login("vol_a")
    assert client.get("/volunteer/").status_code == 200
    # Within the minute of the last-seen time nothing in the session changes: no new cookie.
    resp = client.get("/volunteer/")
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    # A minute on, the last-seen time moves, and the cookie (and its expiry) with it.
    with client.session_transaction() as sess:
        sess[SEEN_KEY] -= 61
    resp = client.get("/volunteer/")
    assert resp.status_code == 200 and "Expires=" in resp.headers["Set-Cookie"]
    with client.session_transaction() as sess:
        assert time.time() - sess[SEEN_KEY] < 5


def test_a_deactivated_persons_open_session_ends_at_once(app, street, client, auth):
    auth.login("vol_a")
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    resp = client.get("/volunteer/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_session_cookie_is_httponly_lax_and_secure_when_configured(database_url, tmp_path, monkeypatch):
    from pointsapp.config import TestConfig

    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "inst"))
    for secure in (False, True):
        settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
        settings.update(SQLALCHEMY_DATABASE_URI=database_url, SECRET_KEY="k", SESSION_COOKIE_SECURE=secure)
        app = create_app(settings)
        with app.app_context():
            client = app.test_client()
            resp = client.get("/login", base_url="https://localhost" if secure else "http://localhost")
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
            assert ("Secure" in cookie) is secure
            assert ("Strict-Transport-Security" in resp.headers) is secure
            db.session.remove()
            db.engine.dispose()


def test_pages_with_personal_data_are_not_cached(street, client, auth):
    auth.login("vol_a")
    assert client.get("/volunteer/history").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/app.css").headers.get("Cache-Control", "")


def test_login_page_form_has_a_csrf_token_and_no_inline_code(client):
    body = client.get("/login").get_data(as_text=True)
    assert csrf_from(body)
    assert "<script>" not in body and "style=" not in body


def test_guessing_the_current_password_on_the_change_page_is_limited(app, street, client, auth):
    app.config["LOGIN_ACCOUNT_LIMIT"] = "3 per minute"
    auth.login("vol_a")
    for _ in range(3):
        assert change_password(client, "guess-number-n", "a-quiet-garden-7").status_code == 422
    assert change_password(client, PASSWORD, "a-quiet-garden-7").status_code == 429
    assert people.authenticate("vol_a", PASSWORD) is not None


def test_a_failed_login_is_logged_with_the_username_but_not_the_password(app, street, client, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(app.logger, "disabled", False)  # see test_voucher_refusals
    caplog.set_level(logging.INFO, logger="pointsapp")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "vol_a", "password": "secret-guess-77", "csrf_token": token})
    lines = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert lines and "vol_a" in lines[0] and "secret-guess-77" not in lines[0]
    # A password typed into the username box is not a username: it is not written down either.
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "Mima2026!secret", "password": "x", "csrf_token": token})
    lines = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(lines) == 2 and "Mima2026" not in lines[1] and "(no such user)" in lines[1]
