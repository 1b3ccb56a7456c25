"""The JSON API, mounted at /api/v1: every action of the pages, for programs.

Views are thin, as on the pages: validate with a marshmallow load schema, call one domain
function, commit, dump with a marshmallow dump schema. Programs authenticate with a personal
token (``Authorization: Bearer pts_...``); a browser session works too, but then every write must
carry the session's CSRF token in ``X-CSRFToken``.
"""
from __future__ import annotations

from flask import Blueprint, Flask, g, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError

from ..domain.errors import InvalidInput, PointsError
from ..domain.tokens import ScopedActor, actor_for_secret, token_use_due, touch_token, touch_token_in_session
from ..extensions import csrf, db
from .field_messages import translate

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC_ENDPOINTS = {"api.openapi", "api.docs"}


def _unauthorised():
    resp = jsonify(code="unauthorized", message=_("Send a valid API token: Authorization: Bearer <token>."))
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = 'Bearer realm="pointsapp"'
    return resp


@bp.before_request
def _authenticate():
    g.api_actor = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _sep, secret = header.partition(" ")
        if scheme.lower() != "bearer":
            return _unauthorised()
        found = actor_for_secret(secret.strip())
        if found is None:
            return _unauthorised()
        if request.method in ("GET", "HEAD", "OPTIONS"):
            # A read stays a read: the (at most once a minute) write goes on its own connection.
            token_id, last_used_at = found.token.id, found.token.last_used_at
            if token_use_due(last_used_at):
                db.session.rollback()
                touch_token(token_id, last_used_at)
        else:
            # A write request's transaction records it with its work (no commit of its own).
            touch_token_in_session(found.token)
        g.api_actor = found
        return None
    if current_user.is_authenticated and current_user.is_active:
        # A browser session: the cookie alone is not enough to write (cross-site requests).
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()
        g.api_actor = ScopedActor(current_user._get_current_object())
        return None
    return _unauthorised()


@bp.errorhandler(ValidationError)
def _validation_error(exc: ValidationError):
    db.session.rollback()
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    fields = {name: [translate(m) for m in said] for name, said in _flatten(messages).items()}
    return jsonify(code="validation_error", message=_("Some fields are not valid."), fields=fields), 422


@bp.errorhandler(PointsError)
def _points_error(exc: PointsError):
    db.session.rollback()
    body = {"code": exc.code, "message": exc.message}
    if isinstance(exc, InvalidInput) and exc.field:
        body["fields"] = {exc.field: [exc.message]}
    return jsonify(body), exc.status


@bp.errorhandler(CSRFError)
def _csrf_error(exc):
    db.session.rollback()
    return jsonify(code="csrf", message=_("A browser session must send its CSRF token in the X-CSRFToken header; programs use a token.")), 400


def _flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """Return marshmallow's nested messages as ``{"field.sub": [messages]}``."""
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = [str(v) for v in value if not isinstance(v, (dict, list))]
            for v in value:
                if isinstance(v, dict):
                    flat.update(_flatten(v, name + "."))
        else:
            flat[name] = [str(value)]
    return flat


def register_api(app: Flask) -> None:
    """Mount the API and its documentation at /api/v1."""
    from . import docs, views  # noqa: F401  (routes)

    csrf.exempt(bp)  # checked in _authenticate: only for cookie sessions
    app.register_blueprint(bp)
