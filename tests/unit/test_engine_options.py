"""How the app connects to PostgreSQL: the settings every connection of its pool gets."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from pointsapp import create_app
from pointsapp.extensions import db


@pytest.fixture
def postgresql_url(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL connection settings; SQLite has no JIT")
    return database_url


def _jit_of_app(url: str, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "k", "TESTING": True})
    with app.app_context():
        try:
            return db.session.connection().exec_driver_sql("SHOW jit").scalar()
        finally:
            db.session.remove()
            db.engine.dispose()


def test_the_apps_connections_have_jit_compilation_off(postgresql_url, tmp_path, monkeypatch):
    monkeypatch.delenv("POINTS_DB_JIT", raising=False)
    assert _jit_of_app(postgresql_url, tmp_path, monkeypatch) == "off"


def test_points_db_jit_on_leaves_the_servers_setting(postgresql_url, tmp_path, monkeypatch):
    engine = create_engine(postgresql_url)
    try:
        with engine.connect() as conn:
            server = conn.exec_driver_sql("SHOW jit").scalar()
    finally:
        engine.dispose()
    monkeypatch.setenv("POINTS_DB_JIT", "on")
    assert _jit_of_app(postgresql_url, tmp_path, monkeypatch) == server


def _show(url: str, tmp_path, monkeypatch, *names: str) -> list[str]:
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "k", "TESTING": True})
    with app.app_context():
        try:
            conn = db.session.connection()
            return [conn.exec_driver_sql(f"SHOW {name}").scalar() for name in names]
        finally:
            db.session.remove()
            db.engine.dispose()


def test_the_operators_own_server_options_are_kept_beside_jit_off(postgresql_url, tmp_path, monkeypatch):
    """A statement_timeout given in the URL or in PGOPTIONS still applies."""
    monkeypatch.delenv("POINTS_DB_JIT", raising=False)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    sep = "&" if "?" in postgresql_url else "?"
    in_url = f"{postgresql_url}{sep}options=-c%20statement_timeout%3D1234"
    assert _show(in_url, tmp_path, monkeypatch, "jit", "statement_timeout") == ["off", "1234ms"]
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=4321")
    assert _show(postgresql_url, tmp_path, monkeypatch, "jit", "statement_timeout") == ["off", "4321ms"]
    monkeypatch.setenv("PGOPTIONS", "-c jit=on -c statement_timeout=99")
    assert _show(postgresql_url, tmp_path, monkeypatch, "jit", "statement_timeout") == ["on", "99ms"]


def _prepare_threshold_of_app(url: str, tmp_path, monkeypatch):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "k", "TESTING": True})
    with app.app_context():
        try:
            return db.session.connection().connection.dbapi_connection.prepare_threshold
        finally:
            db.session.remove()
            db.engine.dispose()


def test_statements_are_prepared_unless_points_db_prepare_is_off(postgresql_url, tmp_path, monkeypatch):
    """psycopg's default (prepare on the fifth use) unless turned off, for PgBouncer before 1.21."""
    monkeypatch.delenv("POINTS_DB_PREPARE", raising=False)
    assert _prepare_threshold_of_app(postgresql_url, tmp_path, monkeypatch) == 5
    monkeypatch.setenv("POINTS_DB_PREPARE", "off")
    assert _prepare_threshold_of_app(postgresql_url, tmp_path, monkeypatch) is None
