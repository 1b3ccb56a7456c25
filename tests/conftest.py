"""Test set-up: every test gets an empty, migrated database of the kind chosen by TEST_DATABASE.

``TEST_DATABASE=sqlite`` (default): the migrations run once into a template file; each test gets
a copy. ``TEST_DATABASE=postgresql``: a fresh database is created for the run (dropped at the
end), migrated once; each test starts from empty tables with their identities restarted (see
``empty_postgresql``).
"""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import g, request_tearing_down

from pointsapp import create_app
from pointsapp.config import TestConfig
from pointsapp.extensions import db

BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


TRANSLATIONS = Path(__file__).resolve().parent.parent / "pointsapp" / "translations"


def pytest_report_header(config):
    return f"pointsapp database backend: {BACKEND}"


def pytest_collection_modifyitems(config, items):
    """Run the slow tests first: with two workers (pytest-xdist), one long test started last
    would leave the other worker idle at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Longer than nearly every test takes on a loaded machine (the race and Hypothesis tests included).
MIDNIGHT_MARGIN_SECONDS = 300


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Start no test in the last minutes of the street's day: wait for the new day instead.

    The tests and the app each read "today" where the street is (Asia/Shanghai) when they need
    it: a test that computes a date, and the app that computes its own a moment later, would see
    two different days (or months, or years) if midnight fell in between, and fail by chance.
    A run that passes midnight there waits here at most this margin, once per worker.
    """
    zone = ZoneInfo(TestConfig.TIMEZONE)
    now = datetime.now(zone)
    midnight = datetime.combine(now.date() + timedelta(days=1), dt_time(), tzinfo=zone)
    left = (midnight - now).total_seconds()
    if left < MIDNIGHT_MARGIN_SECONDS:
        time.sleep(left + 1)


def compile_translations() -> None:
    """Compile each catalogue (.po) whose .mo is missing or older, as `make translations` does.

    The .mo files are git-ignored build products; compiling here lets a plain ``pytest`` see the
    pages in Chinese, as a served app does.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in TRANSLATIONS.glob("*/LC_MESSAGES/*.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        partial = mo.with_name(f"{mo.name}.{os.getpid()}.tmp")
        with partial.open("wb") as f:
            write_mo(f, catalog)
        os.replace(partial, mo)  # atomic: a parallel run never reads half a file


@pytest.fixture(scope="session", autouse=True)
def compiled_translations():
    compile_translations()


def _migrate(url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "migrate"})
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    """Create and migrate the run's database; yield how to reset and where to connect."""
    instance = tmp_path_factory.mktemp("instance")
    os.environ["POINTS_INSTANCE_PATH"] = str(instance)
    if BACKEND == "sqlite":
        template = tmp_path_factory.mktemp("db") / "template.db"
        _migrate(f"sqlite:///{template}", instance)
        yield {"kind": "sqlite", "template": template}
        return
    if BACKEND != "postgresql":
        raise pytest.UsageError(f"unknown TEST_DATABASE {BACKEND!r}")
    name = f"pointsapp_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    _migrate(url, instance)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        superuser = conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar()
    try:
        yield {"kind": "postgresql", "url": url, "engine": engine, "tables": tables, "superuser": bool(superuser)}
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@pytest.fixture
def database_url(database_template, tmp_path):
    """Return the URL of an empty, migrated database for this test."""
    if database_template["kind"] == "sqlite":
        target = tmp_path / "test.db"
        shutil.copyfile(database_template["template"], target)
        return f"sqlite:///{target}"
    with database_template["engine"].begin() as conn:
        empty_postgresql(conn, database_template)
    return database_template["url"]


def empty_postgresql(conn, database_template: dict) -> None:
    """Delete every row of the test database and restart its identities, in ``conn``'s transaction.

    A DELETE of a few rows per table takes milliseconds where a TRUNCATE of all tables takes about
    100 ms. The ledger's append-only triggers refuse DELETE, so a superuser (the test role here)
    deletes in replica mode, where neither they nor the foreign-key checks fire: every table is
    emptied, so nothing is left pointing anywhere. Any other role falls back to TRUNCATE.
    """
    tables = database_template["tables"]
    if not database_template.get("superuser"):
        conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        return
    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    for table in tables:
        conn.exec_driver_sql(f'DELETE FROM "{table}"')
    conn.exec_driver_sql(
        "SELECT setval(c.oid::regclass, 1, false) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = 'public'"
    )


@pytest.fixture
def app(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    settings.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="test-secret-key",
        # Enough connections that the race tests' threads really run at once.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 20, "max_overflow": 40, "pool_timeout": 60},
    )
    app = create_app(settings)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Hash passwords with argon2id at its lowest cost: the request tests log in a lot."""
    from argon2 import PasswordHasher

    from pointsapp.domain import people

    monkeypatch.setattr(people, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(autouse=True)
def fresh_g_per_request(app):
    """Give every test request a fresh ``g``, as a server does.

    The ``app`` fixture keeps an app context pushed for the whole test, and Flask reuses it for
    each test request, so ``g`` would outlive requests: Flask-WTF's cached CSRF token (stale after
    login clears the session), Flask-Login's cached user, Flask-Babel's cached locale.
    """

    def clear(sender, **extra):
        g.__dict__.clear()

    request_tearing_down.connect(clear, app)
    yield
    request_tearing_down.disconnect(clear, app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Log in and out through the real login form (with its CSRF token)."""

    def __init__(self, client):
        self._client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self._client.get(path).get_data(as_text=True))

    def login(self, username: str, password: str = "correct-horse-1"):
        return self._client.post(
            "/login", data={"username": username, "password": password, "csrf_token": self.csrf()}
        )

    def logout(self):
        return self._client.post("/logout", data={"csrf_token": self.csrf()})

    def post(self, path: str, data: dict | None = None, **kwargs):
        """POST a form with a valid CSRF token taken from ``path`` itself (or the login page)."""
        token_page = kwargs.pop("token_from", None) or "/login"
        payload = {"csrf_token": self.csrf(token_page), **(data or {})}
        return self._client.post(path, data=payload, **kwargs)


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def street(app):
    """A small street with two communities, people in every role, rules, a merchant and rewards."""
    from tests.factories import build_street

    return build_street()


@pytest.fixture
def check_ledger(app):
    """Return a function that asserts every ledger invariant holds."""
    from pointsapp.domain.ledger import check_ledger as _check

    def run():
        db.session.rollback()
        problems = _check()
        db.session.rollback()
        assert problems == [], problems

    return run


@contextmanager
def connection_burst():
    """Let one test process at a time open a burst of database connections.

    A race test opens about fifty at once (its threads, or a threaded server's requests). Two
    pytest-xdist workers doing so at the same moment would pass PostgreSQL's default
    ``max_connections`` of 100, so the workers of one run take turns through a file lock."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing to take turns with
        yield
        return
    with open(os.path.join(tempfile.gettempdir(), f"pointsapp-tests-{run}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_in_parallel(app, n: int, fn, *args):
    """Run ``fn(i, *args)`` in ``n`` threads, each with its own app context and DB session,
    released together by a barrier. Return the list of results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i):
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[i] = fn(i, *args)
            except Exception as exc:  # collected, asserted by the caller
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    with connection_burst():
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    return results
