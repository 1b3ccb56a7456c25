"""pointsapp: volunteer incentive points and rewards for a city street."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from .config import Config, load_or_create_key, load_or_create_secret_key, normalise_database_url
from .extensions import csrf, db, limiter, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: type | dict | None = None) -> Flask:
    """Build the application; ``config`` is a class or a mapping that overrides the defaults."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("POINTS_INSTANCE_PATH", str(ROOT / "instance")),
        template_folder=str(ROOT / "templates"),
    )
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create_secret_key(app.instance_path)
    if not app.config.get("VOUCHER_KEY"):
        # Kept apart from SECRET_KEY: rotating the session key must not void open vouchers.
        app.config["VOUCHER_KEY"] = load_or_create_key(app.instance_path, "POINTS_VOUCHER_KEY", "voucher_key")
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'pointsapp.db'}"
        app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(url)
    _engine_options(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    if app.config.get("REDIS_URL"):
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
        # Redis away: each process counts on its own (logged) until Redis is back, rather than
        # refusing every login and every typed voucher code.
        app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)

    if app.config.get("PROXY_COUNT"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        # The client address and scheme only: a Host header set by the client is not trusted.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(ROOT / "migrations"),
        compare_type=True,
        render_as_batch=True,
        render_item=_render_migration_item,
    )
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    from .i18n import init_i18n

    init_i18n(app)

    with app.app_context():
        from .database import configure_engine

        configure_engine(db.engine)

    from . import models  # noqa: F401  (register tables with the metadata)
    from .database import sqlite_begin_mode
    from flask import g, request

    write_slots = _write_slots(app)

    @app.before_request
    def _write_turn_and_begin_mode():
        reading = request.method in ("GET", "HEAD", "OPTIONS")
        if write_slots is not None and not reading:
            # Taken before anything touches the database; given back at the request's teardown.
            if not write_slots.acquire(timeout=app.config["WRITE_SLOT_WAIT"]):
                from werkzeug.exceptions import ServiceUnavailable

                raise ServiceUnavailable(retry_after=5)
            g.write_slot = True
        g.begin_mode = sqlite_begin_mode.set("DEFERRED" if reading else "IMMEDIATE")

    @app.teardown_request
    def _end_write_turn_and_begin_mode(exc):
        # Registered before the web's teardown, so it runs after it (Flask runs them in reverse):
        # the request's transaction has ended when the next writer gets the turn, and what runs
        # next in this thread (a command, a test's own set-up) begins its transactions as the
        # default says, writable.
        if g.pop("write_slot", False):
            write_slots.release()
        token = g.pop("begin_mode", None)
        if token is not None:
            sqlite_begin_mode.reset(token)

    from .web.guards import DatabaseIntConverter

    app.url_map.converters["int"] = DatabaseIntConverter
    from .web import register_web

    register_web(app)
    from .api import register_api

    register_api(app)

    from .cli import points_cli

    app.cli.add_command(points_cli)
    return app


def _write_slots(app: Flask):
    """The semaphore of the write requests this process runs at once (``WRITE_SLOTS``), or None."""
    import threading

    slots = int(app.config.get("WRITE_SLOTS") or 0)
    return threading.BoundedSemaphore(slots) if slots > 0 else None


def _render_migration_item(type_, obj, autogen_context):
    """Write our column types into migrations as plain SQLAlchemy types (migrations outlive code)."""
    from .models.types import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def _engine_options(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    opts = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if uri.startswith("postgresql"):
        opts.setdefault("pool_pre_ping", True)
        opts.setdefault("pool_size", int(os.environ.get("POINTS_DB_POOL_SIZE", "10")))
        opts.setdefault("max_overflow", int(os.environ.get("POINTS_DB_MAX_OVERFLOW", "10")))
        # No JIT compilation: the app's queries are short, and a report's join, whose estimated
        # cost passes jit_above_cost, spent 1.6 s compiling for 0.1 s of work (docs/performance-history.md).
        # POINTS_DB_JIT=on leaves the server's setting.
        if os.environ.get("POINTS_DB_PREPARE", "on").strip().lower() in ("off", "0", "false", "no"):
            # Behind PgBouncer in transaction mode older than 1.21 (or without
            # max_prepared_statements), a statement prepared on one server connection is not on
            # the next: psycopg then must not prepare any.
            opts.setdefault("connect_args", {})["prepare_threshold"] = None
        if os.environ.get("POINTS_DB_JIT", "off").strip().lower() in ("off", "0", "false", "no"):
            connect_args = opts.setdefault("connect_args", {})
            connect_args["options"] = _with_jit_off(connect_args.get("options") or _url_options(uri))
    elif uri.startswith("sqlite"):
        from .database import QueuedSQLiteConnection

        connect_args = opts.setdefault("connect_args", {})
        connect_args.setdefault("timeout", 30)
        # Writers of one process queue for the database file instead of polling for it.
        connect_args.setdefault("factory", QueuedSQLiteConnection)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = opts


def _url_options(uri: str) -> str:
    """The server options a PostgreSQL URL (``?options=...``) or ``PGOPTIONS`` already asks for."""
    from sqlalchemy.engine import make_url

    given = make_url(uri).query.get("options")
    if isinstance(given, tuple):
        given = " ".join(given)
    return given or os.environ.get("PGOPTIONS", "")


def _with_jit_off(options: str) -> str:
    """Add ``-c jit=off`` to server options, keeping the operator's own (a connect argument
    replaces both the URL's ``options`` and ``PGOPTIONS``, so they are carried over here)."""
    options = (options or "").strip()
    if "jit=" in options.replace(" ", ""):
        return options  # the operator chose
    return f"{options} -c jit=off".strip()
