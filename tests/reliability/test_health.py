"""/healthz says the process is alive; /readyz says a load balancer may send it traffic."""
from __future__ import annotations

from pointsapp import create_app
from pointsapp.config import TestConfig
from pointsapp.extensions import db
from pointsapp.web.health import migration_heads
from tests.reliability.support import alembic_version_set_to


def test_healthz_answers_without_a_login_or_the_database(app, client):
    db.engine.dispose()
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz_is_ready_when_the_database_is_at_the_migrations_head(app, client):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "ready"
    assert body["revision"] == list(migration_heads(app.extensions["migrate"].directory))
    assert resp.headers["Cache-Control"] == "no-store"


def test_readyz_refuses_traffic_while_the_database_is_behind_the_head(app, client):
    with alembic_version_set_to("older_revision"):
        resp = client.get("/readyz")
        assert resp.status_code == 503
        body = resp.get_json()
        assert body["status"] == "not ready"
        assert body["reason"] == "database schema is not at the migrations' head"
        assert body["database_revision"] == ["older_revision"]
        # /healthz is unaffected: the process itself is fine and must not be restarted.
        assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_readyz_refuses_traffic_when_the_schema_was_never_migrated(app, client):
    with alembic_version_set_to():
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.get_json()["database_revision"] == []


def test_readyz_refuses_traffic_when_the_database_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    # A PostgreSQL server that is not there: nothing listens on port 1.
    settings.update(
        SECRET_KEY="x",
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none",
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}},
    )
    down = create_app(settings)
    resp = down.test_client().get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body == {"status": "not ready", "reason": "database unreachable", "error": "OperationalError"}
    assert down.test_client().get("/healthz").status_code == 200


def test_with_redis_unreachable_logins_still_work_limits_hold_per_process_and_readyz_says_so(
        app, street, tmp_path, monkeypatch):
    from pointsapp.extensions import limiter
    from tests.conftest import AuthActions

    # The limiter is one object per process: the state "storage dead" this app leads it into is
    # put back after the test, for the apps of the tests that follow in this process.
    monkeypatch.setattr(limiter, "_storage_dead", limiter._storage_dead)
    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    settings.update(SECRET_KEY="test-secret-key", SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                    REDIS_URL="redis://127.0.0.1:6390/0", LOGIN_LIMIT="3 per minute")  # nothing listens there
    away = create_app(settings)
    client = away.test_client()  # each request in its own context, as a server's
    auth = AuthActions(client)
    assert auth.login("vol_a").status_code == 302  # logged in: no 500
    assert auth.logout().status_code == 302
    answers = [auth.login("vol_a", "wrong-password").status_code for _ in range(4)]
    # Still limited, in this process: 3 failed logins a minute from this address (the good one
    # before them does not count).
    assert answers == [422, 422, 422, 429]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["rate_limits"] == "per process: Redis unreachable"


def test_a_machine_with_another_voucher_key_issues_nothing_and_is_not_ready(app, street, check_ledger):
    from pointsapp.domain import vouchers
    from pointsapp.domain.errors import VoucherKeyMismatch
    from pointsapp.models import Voucher
    from tests.factories import give_points

    give_points(street, street.vol_a, 50)
    first = vouchers.issue_voucher(street.vol_a, street.rice.id)  # records this key's fingerprint
    db.session.commit()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    # Another machine (or a redeploy that lost instance/voucher_key) with a key of its own.
    app.config["VOUCHER_KEY"], kept = "another-machines-key", app.config["VOUCHER_KEY"]
    try:
        try:
            vouchers.issue_voucher(street.vol_a, street.rice.id)
            raise AssertionError("issued with another key")
        except VoucherKeyMismatch as exc:
            assert exc.status == 503 and "POINTS_VOUCHER_KEY" in exc.message
        db.session.rollback()
        assert db.session.query(Voucher).count() == 1
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "POINTS_VOUCHER_KEY" in ready.get_json()["reason"]
    finally:
        app.config["VOUCHER_KEY"] = kept
    # Back to the key the vouchers were made with: the first voucher's code is found again.
    assert vouchers.confirm_redemption(street.cashier, first.code).status == "redeemed"
    db.session.commit()
    check_ledger()


def test_with_the_database_down_a_logged_in_person_gets_a_page_that_says_so_and_health_still_answers(
        app, street, client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from tests.conftest import AuthActions

    AuthActions(client).login("vol_a")

    def refuse(*args, **kwargs):  # as a database server that went away answers
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(db.session, "scalars", refuse)
    page = client.get("/volunteer/")
    assert page.status_code == 503
    assert "服务器繁忙" in page.get_data(as_text=True)  # a page in words, not a bare "Internal Server Error"
    assert client.get("/healthz").status_code == 200  # with the session cookie, no database needed


def test_readyz_says_a_database_that_was_never_migrated_needs_flask_db_upgrade(tmp_path, monkeypatch, database_url):
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    if database_url.startswith("sqlite"):
        empty_url = f"sqlite:///{tmp_path / 'empty.db'}"
        cleanup = None
    else:  # a fresh PostgreSQL database beside the test one
        admin = create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = f"never_migrated_{tmp_path.name[-12:].lower().replace('-', '_')}"
        with admin.connect() as conn:
            conn.execute(sql(f'CREATE DATABASE "{name}"'))
        empty_url = database_url.rsplit("/", 1)[0] + "/" + name

        def cleanup():
            with admin.connect() as conn:
                conn.execute(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    settings.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=empty_url)
    fresh = create_app(settings)
    try:
        resp = fresh.test_client().get("/readyz")
        assert resp.status_code == 503
        assert resp.get_json()["reason"] == "database never migrated: run flask db upgrade"
    finally:
        with fresh.app_context():
            db.engine.dispose()
        if cleanup:
            cleanup()
