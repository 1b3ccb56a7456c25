"""Login throttles (per address and per account) and the wrong-code throttle at the till, in
memory and in Redis (several worker processes share the counts there)."""
from __future__ import annotations

import os
import secrets

import pytest

from pointsapp import create_app
from pointsapp.config import TestConfig
from pointsapp.extensions import db
from tests.conftest import csrf_from
from tests.factories import PASSWORD
from tests.web.conftest import errors_at, page_text

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def attempt(client, username: str, password: str, address: str = "10.0.0.1"):
    env = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=env).get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, environ_base=env
    )


def test_failed_logins_are_limited_per_account_whatever_the_address(app, street, client):
    app.config["LOGIN_ACCOUNT_LIMIT"] = "3 per minute"
    for i in range(3):
        assert attempt(client, "vol_a", "wrong-password", address=f"10.0.1.{i}").status_code == 422
    # Even the right password from a fresh address waits now: guesses spread over a botnet stop.
    blocked = attempt(client, "VOL_A ", PASSWORD, address="10.0.9.9")
    assert blocked.status_code == 429
    # The login form again, the username kept, and what to do beside the password.
    assert errors_at(blocked, "password") == [
        "尝试次数太多。请等一分钟后再登录。如果忘记了密码，请联系所在社区办公室重置。"]
    assert 'value="VOL_A"' in blocked.get_data(as_text=True)
    # Other accounts are not affected.
    assert attempt(client, "vol_a2", PASSWORD, address="10.0.9.9").status_code == 302


def test_successful_logins_do_not_use_up_the_account_limit(app, street):
    app.config["LOGIN_ACCOUNT_LIMIT"] = "2 per minute"
    for i in range(4):
        client = app.test_client()
        assert attempt(client, "vol_a", PASSWORD, address=f"10.0.2.{i}").status_code == 302


def test_successful_logins_from_one_address_are_not_held_back(app, street):
    """People behind one Wi-Fi (a training at the community office) all log in."""
    app.config["LOGIN_LIMIT"] = "2 per minute"
    for name in ("vol_a", "vol_a2", "vol_b", "staff_a", "admin_a"):
        assert attempt(app.test_client(), name, PASSWORD, address="10.0.4.1").status_code == 302, name


def test_logins_are_limited_per_address_across_accounts(app, street, client):
    app.config["LOGIN_LIMIT"] = "4 per minute"
    for name in ("vol_a", "vol_a2", "vol_b", "staff_a"):
        assert attempt(client, name, "wrong-password", address="10.0.3.1").status_code == 422
    assert attempt(client, "admin_a", PASSWORD, address="10.0.3.1").status_code == 429
    assert attempt(client, "admin_a", PASSWORD, address="10.0.3.2").status_code == 302


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client):
    """A key prefix of this test alone (Redis is shared); its keys are deleted afterwards."""
    prefix = f"pointsapp-test-{secrets.token_hex(6)}"
    yield prefix
    for key in redis_client.scan_iter(match=f"*{prefix}*"):
        redis_client.delete(key)


def redis_app(database_url, tmp_path, prefix: str, **overrides):
    """Build an app like one worker process of production: limits counted in Redis."""
    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    settings.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="test-secret-key",
        REDIS_URL=REDIS_URL,
        RATELIMIT_KEY_PREFIX=prefix,
        **overrides,
    )
    return create_app(settings)


@pytest.fixture
def street_in(app):
    """The test street, built through the default app (the Redis apps share its database)."""
    from tests.factories import build_street

    street = build_street()
    ids = {"rice": street.rice.id}
    db.session.remove()
    return ids


def test_login_limits_are_counted_in_redis_and_shared_by_every_worker(
    database_url, tmp_path, monkeypatch, street_in, redis_client, redis_prefix
):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "inst"))
    limits = {"LOGIN_ACCOUNT_LIMIT": "3 per minute", "LOGIN_LIMIT": "100 per minute"}
    worker_1 = redis_app(database_url, tmp_path, redis_prefix, **limits)
    worker_2 = redis_app(database_url, tmp_path, redis_prefix, **limits)
    assert worker_1.config["RATELIMIT_STORAGE_URI"] == REDIS_URL
    client = worker_1.test_client()
    for i in range(3):
        assert attempt(client, "vol_a", "wrong-password", address=f"10.1.0.{i}").status_code == 422
    assert any(redis_client.scan_iter(match=f"*{redis_prefix}*")), "no counter was written to Redis"
    client = worker_2.test_client()  # another process: it sees the same counts
    assert attempt(client, "vol_a", PASSWORD, address="10.1.1.1").status_code == 429
    assert attempt(client, "vol_a2", PASSWORD, address="10.1.1.1").status_code == 302
    for app in (worker_1, worker_2):
        with app.app_context():
            db.engine.dispose()


def test_wrong_fallback_codes_are_limited_per_cashier_account_in_redis(
    database_url, tmp_path, monkeypatch, street_in, redis_client, redis_prefix
):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "inst"))
    limits = {"FALLBACK_CODE_LIMIT": "3 per minute"}
    worker_1 = redis_app(database_url, tmp_path, redis_prefix, **limits)
    worker_2 = redis_app(database_url, tmp_path, redis_prefix, **limits)

    def guess(app, who: str, code: str, address: str):
        # Each request pushes its own app context of ``app``, as in a served worker.
        client = app.test_client()
        assert attempt(client, who, PASSWORD, address=address).status_code == 302
        token = csrf_from(client.get("/merchant/", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True))
        resp = client.post(
            "/merchant/lookup", data={"code": code, "csrf_token": token}, environ_base={"REMOTE_ADDR": address}
        )
        return resp.status_code, page_text(resp)

    assert guess(worker_1, "cashier", "ZZZZ-ZZZ1", "10.2.0.1")[0] == 404
    assert guess(worker_2, "cashier", "ZZZZ-ZZZ2", "10.2.0.2")[0] == 404
    assert guess(worker_1, "cashier", "ZZZZ-ZZZ3", "10.2.0.3")[0] == 404
    # The fourth guess, in another worker and from another address: the account is the key.
    status, _text = guess(worker_2, "cashier", "ZZZZ-ZZZ4", "10.2.0.4")
    assert status == 429
    # Another cashier, same address as the last guess: not affected.
    assert guess(worker_2, "cashier2", "ZZZZ-ZZZ5", "10.2.0.4")[0] == 404
    for app in (worker_1, worker_2):
        with app.app_context():
            db.engine.dispose()
