"""People: accounts, passwords (argon2id), roles and deactivation."""
from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from ..extensions import db
from ..models import Merchant, OrgUnit, RoleGrant, User
from ..models.user import (
    ADMIN_ROLES,
    ROLE_COMMUNITY_ADMIN,
    ROLE_MERCHANT_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
    ROLES,
    TITLES,
)
from .access import in_scope
from .errors import Forbidden, InvalidInput, NotFound
from .ledger import account_for_volunteer

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
MIN_PASSWORD_LENGTH = 8
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
# A hash to verify against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("pointsapp-dummy-password")


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    """Raise ``InvalidInput`` for a password that is too short."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "The password must have at least %(n)s characters.", field="password", n=MIN_PASSWORD_LENGTH
        )


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, or None."""
    user = db.session.scalar(select(User).where(func.lower(User.username) == (username or "").strip().lower()))
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _check_username(username: str) -> str:
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "Usernames are 3 to 64 letters, digits, dots, dashes or underscores.", field="username"
        )
    if db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise InvalidInput("The username %(u)s is taken.", field="username", u=username)
    return username


def can_grant(actor: User | None, role: str, unit: OrgUnit | None, merchant: Merchant | None) -> bool:
    """Say whether ``actor`` may give ``role`` at ``unit`` / ``merchant`` (None: the system itself)."""
    if actor is None:
        return True
    if role == ROLE_MERCHANT_STAFF:
        return merchant is not None and in_scope(actor, merchant.org_unit, ADMIN_ROLES)
    if role == ROLE_STREET_ADMIN:
        return in_scope(actor, unit, (ROLE_STREET_ADMIN,))
    if role == ROLE_COMMUNITY_ADMIN:
        return in_scope(actor, unit, (ROLE_STREET_ADMIN,)) or (
            in_scope(actor, unit, (ROLE_COMMUNITY_ADMIN,))
            and not any(g.org_unit_id == unit.id for g in actor.grants(ROLE_COMMUNITY_ADMIN))
        )
    return in_scope(actor, unit, ADMIN_ROLES)


def grant_role(
    actor: User | None, user: User, role: str, *, unit: OrgUnit | None = None, merchant: Merchant | None = None
) -> RoleGrant:
    """Give ``user`` a role scoped to ``unit`` (staff, admins, volunteers) or ``merchant`` (cashiers)."""
    if role not in ROLES:
        raise InvalidInput("Unknown role %(r)s.", field="role", r=role)
    if role == ROLE_MERCHANT_STAFF:
        if merchant is None:
            raise InvalidInput("Choose the merchant.", field="merchant")
        unit = None
    else:
        merchant = None
        if unit is None:
            raise InvalidInput("Choose where the role applies.", field="org_unit")
    if not can_grant(actor, role, unit, merchant):
        raise Forbidden()
    for g in user.roles:
        if g.role == role and g.org_unit_id == (unit.id if unit else None) and g.merchant_id == (
            merchant.id if merchant else None
        ):
            return g
    g = RoleGrant(user=user, role=role, org_unit=unit, merchant=merchant)
    db.session.add(g)
    db.session.flush()
    if role == ROLE_VOLUNTEER:
        account_for_volunteer(user)
    return g


def revoke_role(actor: User, grant: RoleGrant) -> None:
    """Take a role away; a volunteer's points stay in the ledger."""
    if not can_grant(actor, grant.role, grant.org_unit, grant.merchant):
        raise Forbidden()
    grant.user.roles.remove(grant)
    db.session.flush()


def create_person(
    actor: User | None,
    *,
    username: str,
    full_name: str,
    password: str,
    org_unit: OrgUnit | None,
    phone: str | None = None,
    title: str | None = None,
    roles: tuple[str, ...] = (ROLE_VOLUNTEER,),
    merchant: Merchant | None = None,
) -> User:
    """Create a person with the given roles; volunteers get an account in the ledger."""
    username = _check_username(username)
    full_name = (full_name or "").strip()
    if not full_name:
        raise InvalidInput("A name is required.", field="full_name")
    check_password_strength(password)
    if title is not None and title not in TITLES:
        raise InvalidInput("Unknown title.", field="title")
    if ROLE_VOLUNTEER in roles and org_unit is None:
        raise InvalidInput("A volunteer belongs to a node of the tree.", field="org_unit")
    user = User(
        username=username,
        full_name=full_name,
        password_hash=hash_password(password),
        phone=(phone or "").strip() or None,
        org_unit=org_unit,
        title=title,
        is_active_flag=True,
    )
    db.session.add(user)
    db.session.flush()
    for role in roles:
        grant_role(actor, user, role, unit=None if role == ROLE_MERCHANT_STAFF else org_unit, merchant=merchant)
    return user


def person_in_scope(actor: User, user_id: int) -> User:
    """Return a person the actor administers (by their node or their merchant), else raise."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound()
    if in_scope(actor, user.org_unit, ADMIN_ROLES):
        return user
    for g in user.grants(ROLE_MERCHANT_STAFF):
        if in_scope(actor, g.merchant.org_unit, ADMIN_ROLES):
            return user
    raise NotFound()


def set_active(actor: User, user_id: int, active: bool) -> User:
    """Deactivate or reactivate a person; a deactivated volunteer keeps their points but cannot redeem."""
    user = person_in_scope(actor, user_id)
    if user.id == actor.id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    # Only someone who could give each of the person's roles may switch the person off or on:
    # a community admin cannot lock out a peer or a street admin.
    if not all(can_grant(actor, g.role, g.org_unit, g.merchant) for g in user.roles):
        raise Forbidden()
    user.is_active_flag = active
    db.session.flush()
    return user


def set_password(user: User, password: str) -> None:
    """Replace a person's password after checking its strength."""
    check_password_strength(password)
    user.password_hash = hash_password(password)
    db.session.flush()
