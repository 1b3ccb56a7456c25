"""The API's plumbing: who is acting, reading bodies, answering, idempotency keys, pages."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache, wraps

from flask import Response, g, has_app_context, request
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError
import sqlalchemy as sa
from sqlalchemy import and_, bindparam, delete, event, or_, select, update
from sqlalchemy.orm import Session as OrmSession

from ..database import insert_unless_taken
from ..domain.clock import local_zone, now_utc
from ..domain.errors import PointsError
from ..extensions import db
from ..models import IdempotencyKey
from ..models.api import IDEMPOTENCY_DONE, IDEMPOTENCY_RUNNING


class ApiError(PointsError):
    """A refusal of the API layer itself (a header, a cursor, an idempotency key)."""

    def __init__(self, message, code: str, status: int):
        self.code, self.status = code, status
        super().__init__(message)


# --- documentation registry ----------------------------------------------------------------


def doc(summary: str, *, tag: str, response=None, status: int = 200, body: type[Schema] | None = None,
        args: type[Schema] | None = None, roles: tuple[str, ...] = (), idempotent: bool = False,
        form: type[Schema] | None = None, content: str = "application/json"):
    """Describe a view for the OpenAPI document (read by ``pointsapp.api.spec``).

    ``form`` documents a multipart/form-data body (besides or instead of the JSON ``body``);
    ``content`` is the media type of a successful answer (a binary one for photos).
    """

    def decorator(view):
        view._api_doc = dict(summary=summary, tag=tag, response=response, status=status, body=body,
                             args=args, roles=roles, idempotent=idempotent, description=view.__doc__ or "",
                             form=form, content=content)
        return view

    return decorator


# --- the acting user ----------------------------------------------------------------------


def actor():
    """Return the acting user (a ``ScopedActor``) set by the blueprint's authentication."""
    return g.api_actor


def require_role(*roles: str) -> None:
    """Refuse (403) unless the actor, as the token narrows them, holds one of ``roles``."""
    if not actor().has_role(*roles):
        raise ApiError(_("You are not allowed to do this here."), "forbidden", 403)


# --- reading requests ------------------------------------------------------------------------


def load_body(schema_cls: type[Schema]) -> dict:
    """Validate the JSON body with ``schema_cls``; raise ``ValidationError`` (422) with field messages."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # nested past Python's limit too
            raise ApiError(_("The body is not valid JSON."), "invalid_json", 400)
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["The body must be a JSON object."]})
    return schema_cls().load(data)


def is_multipart() -> bool:
    """Say whether the request's body is multipart/form-data (a claim with its photo)."""
    return request.mimetype == "multipart/form-data"


def load_form(schema_cls: type[Schema]) -> dict:
    """Validate a multipart/form-data body (fields and files, each name once) with ``schema_cls``."""
    data = {}
    for source in (request.form, request.files):
        for key, values in source.lists():
            if len(values) > 1 or key in data:
                raise ValidationError({key: ["Give this field once."]})
            data[key] = values[0]
    return schema_cls().load(data)


def load_args(schema_cls: type[Schema]) -> dict:
    """Validate the query string with ``schema_cls`` (each name once)."""
    data = {}
    for key, values in request.args.lists():
        if len(values) > 1:
            raise ValidationError({key: ["Give this parameter once."]})
        data[key] = values[0]
    return schema_cls().load(data)


# --- answering ----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _key_done():
    """Mark an idempotency key's row done with its answer (built once; the values are parameters)."""
    t = IdempotencyKey.__table__
    return update(t).where(t.c.id == bindparam("row_id"))


def respond(payload, status: int = 200) -> Response:
    """Commit the request's work (with its idempotency record, if any) and answer ``payload``."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    row_id = g.get("idempotency_row_id")
    if row_id is not None:
        marked = db.session.execute(
            _key_done(), {"row_id": row_id, "state": IDEMPOTENCY_DONE, "status_code": status, "response_body": text}
        ).rowcount
        if marked == 0:
            # The view rolled the request's transaction back (and the key row with it) and then
            # did its work again: take the key now, with the answer. Should another request have
            # taken it meanwhile, this insert fails and the work is not committed (at most once).
            user_id, key, method_path, body_hash = g.idempotency_request
            row = IdempotencyKey(user_id=user_id, key=key, method_path=method_path, body_hash=body_hash,
                                 state=IDEMPOTENCY_DONE, status_code=status, response_body=text, created_at=now_utc())
            db.session.add(row)
            db.session.flush()
            g.idempotency_row_id = row.id
    db.session.commit()
    return Response(text, status, mimetype="application/json")


# --- idempotency keys ---------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# A key still 'running' after this long belongs to a request that died before committing (the
# work and the 'done' mark are committed together), so another request may take it over.
ABANDONED_AFTER = timedelta(minutes=10)


def _body_hash() -> str:
    if is_multipart():
        # The boundary differs between retries: hash the fields and the files' contents instead.
        parts = sorted([("f", k, v) for k, v in request.form.items(multi=True)]
                       + [("b", k, hashlib.sha256(f.read()).hexdigest()) for k, f in request.files.items(multi=True)])
        for f in request.files.values():
            f.seek(0)
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
    raw = request.get_data(cache=True)
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):  # refused as invalid JSON after this
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def _claim_key(user_id: int, key: str, method_path: str, body_hash: str) -> Response | None:
    """Take the key for this request in the request's own transaction; or answer for the earlier one.

    The key row is inserted as 'running' first thing in the transaction that does the work and is
    marked 'done' (with the response) in the same commit, so a key is spent exactly when the work
    is. A second request with the same key meanwhile waits on the first's uncommitted row (its
    unique index on PostgreSQL, the write lock on SQLite) and then replays the committed answer, or
    runs itself if the first changed nothing. A key can only be seen 'running' when a view
    committed part of its work before it failed, or its process died in between.
    """
    t = IdempotencyKey.__table__
    # The first write of the request's transaction, before any lock of the work (lock order).
    row_id = insert_unless_taken(
        t, {"user_id": user_id, "key": key, "method_path": method_path, "body_hash": body_hash,
            "state": IDEMPOTENCY_RUNNING, "created_at": now_utc()},
        key=["user_id", "key"], returning=t.c.id,
    )
    if row_id is not None:
        g.idempotency_row_id = row_id
        return None
    db.session.rollback()  # the key is taken: nothing of this request's transaction is kept
    row = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
    if row is None:  # purged between our insert and this read: extremely unlikely; ask for a retry
        raise ApiError(_("A request with this Idempotency-Key is still running. Retry in a moment."), "idempotency_in_flight", 409)
    if row.method_path != method_path or row.body_hash != body_hash:
        raise ApiError(_("This Idempotency-Key was already used for a different request. Use a new key."), "idempotency_key_reused", 422)
    if row.state == IDEMPOTENCY_DONE:
        resp = Response(row.response_body, row.status_code, mimetype="application/json")
        resp.headers["Idempotent-Replayed"] = "true"
        db.session.rollback()
        return resp
    now = now_utc()
    taken = db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row.id, IdempotencyKey.state == IDEMPOTENCY_RUNNING,
               IdempotencyKey.created_at < now - ABANDONED_AFTER)
        .values(created_at=now)
    ).rowcount
    if taken == 1:
        # Taken over in this transaction: it is ours once the work commits (or the view's first commit).
        g.idempotency_row_id = row.id
        g.idempotency_committed = True
        return None
    db.session.rollback()
    raise ApiError(_("A request with this Idempotency-Key is still running. Retry in a moment."), "idempotency_in_flight", 409)


@event.listens_for(OrmSession, "after_commit")
def _note_commit(session) -> None:
    """Remember that the key row of this request was committed (by a view that commits in steps)."""
    if has_app_context() and g.get("idempotency_row_id") is not None:
        g.idempotency_committed = True


def _release_key() -> None:
    """Forget the key of a request that changed nothing, so that it can be retried."""
    row_id = g.pop("idempotency_row_id", None)
    db.session.rollback()  # an uncommitted key row goes with the rest of the work
    if row_id is not None and g.pop("idempotency_committed", False):
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id, IdempotencyKey.state == IDEMPOTENCY_RUNNING))
        db.session.commit()


def idempotent(view):
    """Require an ``Idempotency-Key``; run the view at most once per key (see docs/api.md)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not KEY_RE.match(key):
            raise ApiError(_("Send an Idempotency-Key header (1 to 255 visible ASCII characters) with this request."), "idempotency_key_required", 400)
        method_path = f"{request.method} {request.path}"[:300]
        body_hash = _body_hash()
        g.idempotency_request = (actor().id, key, method_path, body_hash)
        replay = _claim_key(actor().id, key, method_path, body_hash)
        if replay is not None:
            return replay
        g.idempotency_key = key
        try:
            resp = view(*args, **kwargs)
        except BaseException:
            _release_key()
            raise
        if g.get("idempotency_row_id") is not None and resp.status_code >= 300:
            _release_key()
        return resp

    wrapped._idempotent = True
    return wrapped


def derived_key(prefix: str) -> str:
    """Return a stable 64-character domain key for this request's idempotency key and user."""
    digest = hashlib.sha256(f"{actor().id}:{g.idempotency_key}".encode()).hexdigest()[: 63 - len(prefix)]
    return f"{prefix}:{digest}"


# --- pages ----------------------------------------------------------------------------------


def _encode_cursor(value, row_id: int) -> str:
    if isinstance(value, datetime):
        parts = ["t", value.astimezone(timezone.utc).isoformat(), row_id]
    elif isinstance(value, date):
        parts = ["d", value.isoformat(), row_id]
    else:
        parts = ["i", int(value), row_id]
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def _cursor_kind(sort_col) -> str:
    """The kind of cursor a list sorted by ``sort_col`` makes: a moment, a day or a number."""
    column_type = getattr(sort_col.type, "impl_instance", sort_col.type)  # under a TypeDecorator
    if isinstance(column_type, sa.DateTime):
        return "t"
    return "d" if isinstance(column_type, sa.Date) else "i"


def _decode_cursor(cursor: str, kind_wanted: str):
    """Return (value, id) of a cursor this list made; one of another list, or made up, is refused."""
    try:
        kind, value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if kind != kind_wanted or not isinstance(row_id, int) or not 0 < row_id < 2**31:
            raise ValueError
        if kind == "t":
            value = datetime.fromisoformat(value)
            if value.tzinfo is None or not 2000 <= value.astimezone(timezone.utc).year <= 2999:
                raise ValueError
        elif kind == "d":
            value = date.fromisoformat(value)
            if not 2000 <= value.year <= 2999:
                raise ValueError
        elif not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**31:
            raise ValueError
        return value, row_id
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise ApiError(_("This cursor is not valid. Start again from the first page."), "invalid_cursor", 422)


def local_day_bounds(date_from: date | None, date_to: date | None):
    """Return the UTC instants at the start of ``date_from`` and the end of ``date_to`` (local days)."""
    zone = local_zone()
    start = datetime.combine(date_from, time.min, zone).astimezone(timezone.utc) if date_from else None
    end = datetime.combine(date_to + timedelta(days=1), time.min, zone).astimezone(timezone.utc) if date_to else None
    return start, end


def paginate(query, sort_col, id_col, args: dict, dump, key=None, plain: bool = False) -> Response:
    """Answer one page of ``query``, newest first by (``sort_col``, ``id_col``), with a cursor.

    ``query`` selects one entity, or with ``plain`` columns (rows, with ``sort_col`` among them)."""
    if args.get("cursor"):
        value, row_id = _decode_cursor(args["cursor"], _cursor_kind(sort_col))
        query = query.where(or_(sort_col < value, and_(sort_col == value, id_col < row_id)))
    limit = args.get("limit") or 50
    query = query.order_by(sort_col.desc(), id_col.desc()).limit(limit + 1)
    rows = list(db.session.execute(query) if plain else db.session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        value, row_id = key(last) if key else (getattr(last, sort_col.key), last.id)
        next_cursor = _encode_cursor(value, row_id)
    return respond({"items": dump(rows), "next_cursor": next_cursor})
