"""Personal API tokens and the acting user they stand for.

A token's secret (``pts_`` + 256 random bits) is shown once; the database keeps only its SHA-256,
which is enough for a secret of that entropy (no salt or slow hash is needed: nobody can guess
it). A token acts with its owner's *current* role grants, so a role taken away from the owner is
taken away from every token at once. It can be narrowed further to one role, to one subtree of
the org tree, or to one merchant; the narrowing is applied by ``ScopedActor``, which the domain
functions receive in place of the user.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from flask import g, has_request_context
from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import ApiToken, IdempotencyKey, Merchant, OrgUnit, User
from ..models.user import ROLE_MERCHANT_STAFF, ROLES
from .clock import now_utc
from .errors import Forbidden, InvalidInput, NotFound

TOKEN_PREFIX = "pts_"
MAX_TOKENS_PER_USER = 20
# last_used_at is written at most this often per token, so that reads stay reads.
LAST_USED_PRECISION = timedelta(minutes=1)
# Idempotency keys are kept at least this long (the guide promises 24 hours).
IDEMPOTENCY_KEEP = timedelta(hours=24)


def hash_secret(secret: str) -> str:
    """Return the stored form of a token secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ScopedGrant:
    """A role grant as a token sees it (possibly moved down to the token's subtree)."""

    role: str
    org_unit: OrgUnit | None
    merchant: Merchant | None

    @property
    def org_unit_id(self):
        return self.org_unit.id if self.org_unit is not None else None

    @property
    def merchant_id(self):
        return self.merchant.id if self.merchant is not None else None


class ScopedActor:
    """The owner of a token, seen through the token's narrowing; the domain takes it as a user."""

    def __init__(self, user: User, token: ApiToken | None = None):
        self._user = user
        self.token = token
        self.roles = _narrow(user, token)

    def __getattr__(self, name):
        return getattr(self._user, name)

    @property
    def user(self) -> User:
        return self._user

    @property
    def is_active(self) -> bool:
        return self._user.is_active

    def has_role(self, *names: str) -> bool:
        return any(r.role in names for r in self.roles)

    def grants(self, *names: str):
        return [r for r in self.roles if r.role in names]


def _narrow(user: User, token: ApiToken | None) -> list:
    grants = list(user.roles)
    if token is None:
        return grants
    if token.role:
        grants = [grant for grant in grants if grant.role == token.role]
    if token.merchant_id is not None:
        grants = [grant for grant in grants if grant.role == ROLE_MERCHANT_STAFF and grant.merchant_id == token.merchant_id]
    if token.org_unit_id is not None:
        node = token.org_unit
        narrowed = []
        for grant in grants:
            if grant.org_unit is None:
                continue
            if node.path.startswith(grant.org_unit.path):  # the grant covers the token's node: move it down
                narrowed.append(ScopedGrant(grant.role, node, None))
            elif grant.org_unit.path.startswith(node.path):  # a grant inside the node stays as it is
                narrowed.append(grant)
        grants = narrowed
    return grants


def create_token(
    owner: User,
    *,
    name: str,
    role: str | None = None,
    org_unit_id: int | None = None,
    merchant_id: int | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``owner``; return it and its secret (shown once, never stored)."""
    if not owner.is_active:
        raise Forbidden()
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("Give the token a name of 1 to 100 characters.", field="name")
    if role is not None and (role not in ROLES or not owner.has_role(role)):
        raise InvalidInput("You do not hold this role.", field="role")
    if org_unit_id is not None and merchant_id is not None:
        raise InvalidInput("Narrow a token to a part of the tree or to a merchant, not both.", field="merchant_id")
    if org_unit_id is not None:
        unit = db.session.get(OrgUnit, org_unit_id)
        if unit is None or not any(
            g.org_unit is not None and unit.path.startswith(g.org_unit.path) for g in _role_grants(owner, role)
        ):
            raise InvalidInput("None of your roles covers this part of the tree.", field="org_unit_id")
    if merchant_id is not None and not any(
        g.merchant_id == merchant_id for g in owner.grants(ROLE_MERCHANT_STAFF) if role in (None, ROLE_MERCHANT_STAFF)
    ):
        raise InvalidInput("You are not a cashier of this merchant.", field="merchant_id")
    live = db.session.scalar(
        select(db.func.count()).select_from(ApiToken).where(ApiToken.user_id == owner.id, ApiToken.revoked_at.is_(None))
    )
    if live >= MAX_TOKENS_PER_USER:
        raise InvalidInput("You have too many tokens; revoke one you no longer use.", field="name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=owner.id,
        name=name,
        token_hash=hash_secret(secret),
        prefix=secret[:10],
        role=role,
        org_unit_id=org_unit_id,
        merchant_id=merchant_id,
        created_at=now or now_utc(),
    )
    db.session.add(token)
    db.session.flush()
    return token, secret


def _role_grants(owner: User, role: str | None):
    return owner.grants(role) if role else list(owner.roles)


def owned_token(owner: User, token_id: int) -> ApiToken:
    """Return one of ``owner``'s tokens, else raise ``NotFound``."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != owner.id:
        raise NotFound()
    return token


def revoke_token(owner: User, token_id: int, now: datetime | None = None) -> ApiToken:
    """Revoke one of ``owner``'s tokens; revoking twice changes nothing."""
    token = owned_token(owner, token_id)
    db.session.execute(
        update(ApiToken).where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None)).values(revoked_at=now or now_utc())
    )
    db.session.refresh(token)
    return token


def tokens_of(owner: User) -> list[ApiToken]:
    """Return ``owner``'s tokens, live ones first, newest first."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == owner.id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())
        )
    )


@lru_cache(maxsize=None)
def _token_by_hash():
    return (
        select(ApiToken)
        .where(ApiToken.token_hash == bindparam("token_hash"))
        .options(joinedload(ApiToken.user).joinedload(User.roles))
    )


def actor_for_secret(secret: str) -> ScopedActor | None:
    """Return the acting user of a live token of an active owner, or None.

    One statement: the token with its owner and the owner's role grants (and their nodes and
    merchants). Within a request the answer is kept, so a rate limit that needs the actor before
    the API's authentication does not look the token up twice.
    """
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    cache_key = hash_secret(secret)
    cached = g.get("_actor_for_secret") if has_request_context() else None
    if cached is not None and cached[0] == cache_key:
        return cached[1]
    token = db.session.scalars(_token_by_hash(), {"token_hash": cache_key}).unique().first()
    if token is None or token.is_revoked or not token.user.is_active or token.user.must_change_password:
        found = None
    else:
        found = ScopedActor(token.user, token)
    if has_request_context():
        g._actor_for_secret = (cache_key, found)
    return found


def revoke_all(user_id: int, now: datetime | None = None) -> int:
    """Revoke every live token of a person (their password changed or was reset, or they were
    deactivated): a token made with a stolen session dies with it. Return how many."""
    t = ApiToken.__table__
    return db.session.execute(
        update(t).where(t.c.user_id == user_id, t.c.revoked_at.is_(None)).values(revoked_at=now or now_utc())
    ).rowcount


def token_use_due(last_used_at: datetime | None, now: datetime | None = None) -> bool:
    """Say whether a token's ``last_used_at`` is older than its precision (a minute) and so is written."""
    return last_used_at is None or (now or now_utc()) - last_used_at >= LAST_USED_PRECISION


def touch_token_in_session(token: ApiToken, now: datetime | None = None) -> bool:
    """Record in the caller's (write) transaction that ``token`` was used now, at most once a minute.

    A conditional UPDATE, so that concurrent requests with one token write it once; it commits or
    rolls back with the request's work. Say whether it was due.
    """
    now = now or now_utc()
    if not token_use_due(token.last_used_at, now):
        return False
    t = ApiToken.__table__
    db.session.execute(
        update(t)
        .where(t.c.id == token.id, or_(t.c.last_used_at.is_(None), t.c.last_used_at < now - LAST_USED_PRECISION))
        .values(last_used_at=now)
    )
    return True


def touch_token(token_id: int, last_used_at: datetime | None, now: datetime | None = None) -> bool:
    """Record that a token was used now, at most once a minute; say whether it wrote.

    The write is best effort and runs in its own short transaction on its own connection, so a
    read-only request stays read-only for its session (on SQLite a read transaction that later
    writes can fail when another writer committed in between). The caller's session must not
    hold a write transaction meanwhile.
    """
    from sqlalchemy.exc import OperationalError

    from ..database import sqlite_begin_mode

    now = now or now_utc()
    if not token_use_due(last_used_at, now):
        return False
    mode = sqlite_begin_mode.set("IMMEDIATE")
    try:
        with db.engine.begin() as conn:
            conn.execute(update(ApiToken.__table__).where(ApiToken.__table__.c.id == token_id).values(last_used_at=now))
    except OperationalError:
        return False
    finally:
        sqlite_begin_mode.reset(mode)
    return True


def purge_idempotency_keys(older_than: timedelta = IDEMPOTENCY_KEEP, now: datetime | None = None) -> int:
    """Delete finished idempotency keys older than ``older_than`` (at least 24 hours); return how many."""
    if older_than < IDEMPOTENCY_KEEP:
        raise InvalidInput("Idempotency keys are kept at least 24 hours.")
    cutoff = (now or now_utc()) - older_than
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return result.rowcount or 0
