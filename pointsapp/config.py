"""Configuration read from the environment.

Every setting has a safe default for a single-machine SQLite install; production sets
``DATABASE_URL`` (PostgreSQL via psycopg 3), ``REDIS_URL`` and ``SECRET_KEY``.
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_or_create_key(instance_path: str, env_name: str, file_name: str) -> str:
    """Return a key from the environment, or from ``instance/<file_name>`` (created once).

    The key file is written whole to a temporary name and then linked into place, so a worker
    starting at the same moment reads either nothing (and creates its own attempt) or the whole
    key, never a half-written file; exactly one attempt wins the link.
    """
    env = os.environ.get(env_name)
    if env:
        return env
    path = Path(instance_path) / file_name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def load_or_create_secret_key(instance_path: str) -> str:
    """Return SECRET_KEY from the environment, or from instance/secret_key (created once)."""
    return load_or_create_key(instance_path, "SECRET_KEY", "secret_key")


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the libpq style."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    """Defaults; ``create_app`` fills in what depends on the instance folder."""

    DATABASE_URL = os.environ.get("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    REDIS_URL = os.environ.get("REDIS_URL")
    TIMEZONE = os.environ.get("POINTS_TIMEZONE", "Asia/Shanghai")
    VOUCHER_TTL = timedelta(days=int(os.environ.get("POINTS_VOUCHER_TTL_DAYS", "7")))
    # Roster files to import (an XLSX is read whole into memory, several times its size).
    UPLOAD_MAX_BYTES = int(os.environ.get("POINTS_UPLOAD_MAX_BYTES", str(5 * 1024 * 1024)))
    # Photos (evidence, rewards) as a phone camera saves them; stored re-encoded at 1600 px.
    PHOTO_MAX_BYTES = int(os.environ.get("POINTS_PHOTO_MAX_BYTES", str(15 * 1024 * 1024)))
    # The largest request: past it the server answers 413 before any form is read, so each
    # view checks its own file's limit and keeps what else was typed.
    # Twice the largest file: a photo somewhat over its limit still reaches the form, which says
    # so beside the field and keeps what else was typed (app.js says it before sending, too).
    MAX_CONTENT_LENGTH = 2 * max(UPLOAD_MAX_BYTES, PHOTO_MAX_BYTES) + 64 * 1024
    FALLBACK_CODE_LIMIT = os.environ.get("POINTS_FALLBACK_CODE_LIMIT", "10 per minute")
    LOGIN_LIMIT = os.environ.get("POINTS_LOGIN_LIMIT", "10 per minute")
    # Failed logins per account (any address): slows password guessing spread over many addresses.
    LOGIN_ACCOUNT_LIMIT = os.environ.get("POINTS_LOGIN_ACCOUNT_LIMIT", "5 per minute")
    # Objections filed on the public notice page, per address (no login there).
    OBJECTION_LIMIT = os.environ.get("POINTS_OBJECTION_LIMIT", "5 per minute;30 per day")
    # A logged-in session with no request for this long is ended.
    IDLE_TIMEOUT = timedelta(minutes=int(os.environ.get("POINTS_IDLE_MINUTES", "30")))
    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = TIMEZONE
    LANGUAGES = ("zh_CN", "en")
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = timedelta(hours=int(os.environ.get("POINTS_SESSION_HOURS", "12")))
    # The session cookie is written when the session changes, not on every response: the idle
    # timeout's last-seen time changes it at least once a minute while the person is active,
    # which also moves the cookie's expiry on. Re-signing it on every page cost CPU for nothing.
    SESSION_REFRESH_EACH_REQUEST = False
    WTF_CSRF_TIME_LIMIT = None
    # Number of reverse proxies in front of the app (nginx: 1). Their X-Forwarded-For/-Proto
    # headers are then trusted, so rate limits count per real client and URLs use https.
    PROXY_COUNT = int(os.environ.get("POINTS_PROXY_COUNT", "0"))
    # Write requests (any method but GET, HEAD and OPTIONS) one process runs at once; the others
    # wait their turn, at most WRITE_SLOT_WAIT seconds, then get 503. Every credit of a street
    # updates its one issuance account row and every audited action the one audit chain head, so
    # more writers at once only queue on those rows inside PostgreSQL, which spent 6-26 % more
    # CPU per approval with four writers a process than with one (docs/PERFORMANCE.md). Reads are
    # not limited. 0: no limit.
    WRITE_SLOTS = int(os.environ.get("POINTS_WRITE_SLOTS", "1"))
    WRITE_SLOT_WAIT = float(os.environ.get("POINTS_WRITE_SLOT_WAIT", "30"))
    TESTING = False


class TestConfig(Config):
    """Settings for the test suite: CSRF stays on; tests fetch and post real tokens."""

    TESTING = True
    # The race tests send many writes into one process at once: let them meet in the database.
    WRITE_SLOTS = 0
    LOGIN_LIMIT = "1000 per minute"
    LOGIN_ACCOUNT_LIMIT = "1000 per minute"
