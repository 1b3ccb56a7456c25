"""Health checks for a load balancer or a process supervisor.

``/healthz`` answers while the process can serve requests at all; it never touches the database,
so a database outage does not make every worker look dead and get restarted. ``/readyz`` answers
200 only when the database is reachable and its schema is at the migrations' head, so a load
balancer sends no traffic to a worker that would fail every request (a new release started before
``flask db upgrade`` ran, or the database down). Both are for machines: plain JSON, no session,
no login, no translation.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, current_app, jsonify
from sqlalchemy import inspect, text

from ..extensions import csrf, db

bp = Blueprint("health", __name__)


@lru_cache(maxsize=4)
def migration_heads(directory: str) -> tuple[str, ...]:
    """Return the head revision(s) of the migration scripts in ``directory``.

    Read from each script's ``revision`` and ``down_revision`` (what Alembic reads too) without
    importing Alembic, which a web worker otherwise never needs: the revisions that no other
    script names as its ``down_revision``.
    """
    revisions, parents = set(), set()
    for script in sorted(Path(directory, "versions").glob("*.py")):
        found = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value is not None:
                found[target.id] = ast.literal_eval(node.value)
        if "revision" not in found:
            continue
        revisions.add(found["revision"])
        down = found.get("down_revision")
        parents.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    return tuple(sorted(revisions - parents))


def readiness() -> tuple[bool, dict]:
    """Return whether the app can serve requests, and why not."""
    heads = migration_heads(current_app.extensions["migrate"].directory)
    try:
        with db.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                conn.commit()
                return False, {"reason": "database never migrated: run flask db upgrade", "database_revision": [],
                               "head_revision": list(heads)}
            current = tuple(sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))))
            conn.commit()  # not a ROLLBACK, which would make psycopg drop its prepared statements
    except Exception as exc:  # any failure to reach or read the database means "not ready"
        current_app.logger.warning("readyz: database not reachable: %s", exc)
        return False, {"reason": "database unreachable", "error": type(exc).__name__}
    if current != heads:
        return False, {
            "reason": "database schema is not at the migrations' head",
            "database_revision": list(current),
            "head_revision": list(heads),
        }
    from ..domain import vouchers

    try:
        stored = vouchers.stored_key_fingerprint()
    finally:
        db.session.rollback()
    if stored is not None and stored != vouchers.key_fingerprint():
        return False, {"reason": "voucher key differs from the one the database's vouchers were made with: "
                                 "set the same POINTS_VOUCHER_KEY on every machine"}
    ready = {"revision": list(current)}
    if current_app.config.get("REDIS_URL"):
        # Not a reason to stop serving (each process then limits on its own), but worth a look.
        ready["rate_limits"] = "shared (Redis)" if _redis_answers() else "per process: Redis unreachable"
    return True, ready


def _redis_answers() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError as exc:
        current_app.logger.warning("readyz: Redis not reachable: %s", exc)
        return False


@bp.route("/healthz")
def healthz():
    """Answer 200 while the process is alive (no database access)."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Answer 200 when the database is reachable and migrated to head, else 503 with the reason."""
    ok, detail = readiness()
    resp = jsonify(status="ready" if ok else "not ready", **detail)
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


csrf.exempt(bp)
