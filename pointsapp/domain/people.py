"""People: accounts, passwords (argon2id), roles, deactivation, password change and reset.

Passwords follow OWASP ASVS level 2 (V2.1): at least 10 characters, up to 256, any characters;
refused when they are among the 20,000 most common passwords, or contain the username; no rules
about mixing character classes. Changing or resetting a password, and deactivation, end every
session of the person and revoke their API tokens (``lock_out``).
"""
from __future__ import annotations

import gzip
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Callable

from argon2 import PasswordHasher
from flask import current_app
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..database import insert_rows
from ..extensions import db
from ..models import Account, Merchant, OrgUnit, RoleGrant, User
from ..models.ledger import ACCOUNT_VOLUNTEER
from ..models.user import (
    ADMIN_ROLES,
    ROLE_COMMUNITY_ADMIN,
    ROLE_MERCHANT_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
    ROLES,
    TITLES,
)
from . import audit, ledger, tokens
from .access import in_scope, require_merchant_admin
from .clock import now_utc
from .errors import Forbidden, InvalidInput, NotFound
from .ledger import account_for_volunteer
from .org import NAME_MAX, path_label

PHONE_MAX = 32  # the longest phone number the database holds

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
# The 20,000 most common passwords, lowercased, one a line: Royce Williams' list (2017, compiled
# from public breach corpora), as shipped by Django (django/contrib/auth/common-passwords.txt.gz,
# BSD licence) for its CommonPasswordValidator; copied unchanged from the Django 5.2.8 wheel.
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"
# Alphabet of generated temporary passwords: no 0/o, 1/l/i, so they can be read out and typed.
TEMP_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
# A hash to verify against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("pointsapp-dummy-password")
# The stored "password" of a person who has none yet (imported: they activate with a code). It is
# no argon2 hash, so no password matches it.
NO_PASSWORD = "!no-password"
# An activation code: 4 groups of 4 (about 79 bits), read out or printed like a temporary
# password, valid this long and only until the person sets a password of their own.
ACTIVATION_VALID = timedelta(days=14)

user_t = User.__table__
grant_t = RoleGrant.__table__
account_t = Account.__table__


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Return the common-password list (lowercased)."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip().lower() for line in fh if line.strip())


def check_password_strength(password: str, username: str | None = None, field: str = "password") -> None:
    """Raise ``InvalidInput`` for a password that is too short, too long, common or the username."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("The password must have at least %(n)s characters.", field=field, n=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("The password can have at most %(n)s characters.", field=field, n=MAX_PASSWORD_LENGTH)
    lowered = password.strip().lower()
    if lowered in common_passwords() or len(set(lowered)) <= 2:
        raise InvalidInput("This password is one of the most common passwords. Choose another.", field=field)
    if username and len(username) >= 3 and username.strip().lower() in lowered:
        raise InvalidInput("The password must not contain the username.", field=field)


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, or None."""
    user = db.session.scalar(select(User).where(func.lower(User.username) == (username or "").strip().lower()))
    if user is not None and activation_matches(user, password):
        # First login of an imported person: every page leads to setting a password, where the
        # code is asked again as the current password (and then forgotten).
        if not user.is_active:
            return None
        user.must_change_password = True
        return user
    ok = _verify_password(user, password)
    if not ok or user is None or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _verify_password(user: User | None, password: str) -> bool:
    """Check ``password`` against the person's argon2id hash (a dummy one, as slow, when there is none)."""
    stored = user.password_hash if user is not None and user.password_hash != NO_PASSWORD else _DUMMY_HASH
    try:
        ok = _hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and stored is not _DUMMY_HASH


def activation_hash(code: str) -> str:
    """Return the stored form of an activation code: SHA-256 keyed with the app's secret key.

    The code has about 79 bits of entropy, so a fast hash is enough (as for API tokens); the key
    means a copy of the database alone does not even allow checking guesses.
    """
    return _keyed_activation_hash(_activation_letters(code))


def _activation_letters(code: str | None) -> str:
    """The letters and digits of a typed code, in lower case: the dashes of the printed slip,
    spaces read aloud between groups and any other separator are left out."""
    return "".join(c for c in (code or "").lower() if c.isascii() and c.isalnum())


def _keyed_activation_hash(text: str) -> str:
    key = hashlib.sha256(b"pointsapp-activation:" + current_app.config["SECRET_KEY"].encode()).digest()
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _random_groups(groups: int) -> str:
    """Return ``groups`` groups of 4 characters of ``TEMP_PASSWORD_ALPHABET``, joined by "-": one
    uniform draw for the whole code, not one a character (1,000 codes: 6 ms instead of 25 ms)."""
    n = len(TEMP_PASSWORD_ALPHABET)
    value = secrets.randbelow(n ** (4 * groups))
    chars = []
    for _ in range(4 * groups):
        value, digit = divmod(value, n)
        chars.append(TEMP_PASSWORD_ALPHABET[digit])
    return "-".join("".join(chars[i:i + 4]) for i in range(0, 4 * groups, 4))


def new_activation_code(now: datetime | None = None) -> tuple[str, dict]:
    """Return a new one-time activation code and the fields of the person that store it."""
    code = _random_groups(4)
    return code, {
        "activation_hash": activation_hash(code),
        "activation_expires_at": (now or now_utc()) + ACTIVATION_VALID,
        "must_change_password": True,
    }


def activation_matches(user: User, code: str, now: datetime | None = None) -> bool:
    """Say whether ``code`` is the person's pending activation code, not yet expired."""
    if user.activation_hash is None or not code or len(code) > 64:
        return False
    if user.activation_expires_at is None or user.activation_expires_at <= (now or now_utc()):
        return False
    letters = _activation_letters(code)
    # Codes given out before separators were left out were stored with their dashes.
    dashed = "-".join(letters[i:i + 4] for i in range(0, len(letters), 4))
    return (hmac.compare_digest(user.activation_hash, _keyed_activation_hash(letters))
            or hmac.compare_digest(user.activation_hash, _keyed_activation_hash(dashed)))


def username_exists(username: str | None) -> bool:
    """Say whether someone has this username (in any case)."""
    name = (username or "").strip()
    return bool(name) and _username_taken(name)


def _username_taken(username: str) -> bool:
    return db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None


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


def _require_may_change(actor: User, user: User) -> None:
    """Refuse unless ``actor`` could give each of ``user``'s roles: who may switch a person off or
    on, correct, move or reset them (a community admin cannot touch a peer or a street admin)."""
    if not all(can_grant(actor, g.role, g.org_unit, g.merchant) for g in user.roles):
        raise Forbidden()


def grant_role(
    actor: User | None, user: User, role: str, *, unit: OrgUnit | None = None, merchant: Merchant | None = None
) -> RoleGrant:
    """Give ``user`` a role scoped to ``unit`` (staff, admins, volunteers) or ``merchant`` (cashiers)."""
    if actor is not None and actor.id == user.id:
        # No one widens their own powers, nor makes themselves a volunteer to credit themselves.
        raise Forbidden("You cannot give yourself a role; ask another admin.")
    had = {g.id for g in user.roles}
    g = _grant(actor, user, role, unit=unit, merchant=merchant)
    if g.id not in had:
        audit.record(
            actor, audit.ROLE_GRANTED, "user", user.id,
            {"role": role, "org_unit_id": g.org_unit_id, "merchant_id": g.merchant_id},
            org_path=g.org_unit.path if g.org_unit is not None else g.merchant.org_unit.path,
        )
    return g


def _grant(
    actor: User | None, user: User, role: str, *, unit: OrgUnit | None = None, merchant: Merchant | None = None
) -> RoleGrant:
    unit, merchant = _check_grant(actor, role, unit, merchant)
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


def _check_grant(
    actor: User | None, role: str, unit: OrgUnit | None, merchant: Merchant | None
) -> tuple[OrgUnit | None, Merchant | None]:
    """Check that ``actor`` may give ``role`` there; return the grant's (unit, merchant)."""
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
    return unit, merchant


def revoke_role(actor: User, user_id: int, grant_id: int) -> RoleGrant:
    """Take a role away from a person; a volunteer's points stay in the ledger."""
    user = person_in_scope(actor, user_id)
    grant = next((g for g in user.roles if g.id == grant_id), None)
    if grant is None:
        raise NotFound()
    if not can_grant(actor, grant.role, grant.org_unit, grant.merchant):
        raise Forbidden()
    if user.id == actor.id:
        raise Forbidden("You cannot take away your own role; ask another admin.")
    summary = {"role": grant.role, "org_unit_id": grant.org_unit_id, "merchant_id": grant.merchant_id}
    path = grant.org_unit.path if grant.org_unit is not None else grant.merchant.org_unit.path
    user.roles.remove(grant)
    db.session.flush()
    audit.record(actor, audit.ROLE_REVOKED, "user", user.id, summary, org_path=path)
    return grant


def create_person(
    actor: User | None,
    *,
    username: str,
    full_name: str,
    password: str | None,
    org_unit: OrgUnit | None,
    phone: str | None = None,
    title: str | None = None,
    roles: tuple[str, ...] = (ROLE_VOLUNTEER,),
    merchant: Merchant | None = None,
) -> User:
    """Create a person with the given roles; volunteers get an account in the ledger.

    ``password=None`` creates a person without a password: the import gives each such person an
    activation code (``new_activation_code``) and writes them with ``create_people``.
    """
    person = new_person(
        actor, username=username, full_name=full_name, password=password, org_unit=org_unit, phone=phone,
        title=title, roles=roles, merchant=merchant, taken=_username_taken,
    )
    try:
        with db.session.begin_nested():
            (user_id,) = create_people(actor, [person])
    except IntegrityError:
        # Someone added the same username (in any case) at the same moment.
        raise InvalidInput("The username %(u)s is taken.", field="username", u=person.username) from None
    return db.session.get(User, user_id)


@dataclass(eq=False)
class NewPerson:
    """A person checked by ``new_person`` and not written yet.

    ``org_unit`` (and a grant's unit) need only an ``id`` and a ``path`` by the time
    ``create_people`` writes the person: an import passes nodes it creates in the same run.
    """

    username: str
    full_name: str
    password_hash: str
    phone: str | None
    title: str | None
    org_unit: object | None
    roles: tuple[str, ...]
    # (role, unit, merchant) of each role, as ``_check_grant`` returned them.
    grants: list[tuple[str, object | None, Merchant | None]]
    merchant: Merchant | None = None
    # The stored activation code (``new_activation_code``'s fields), or none.
    activation: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "password_hash": self.password_hash,
            "phone": self.phone,
            "org_unit_id": self.org_unit.id if self.org_unit is not None else None,
            "title": self.title,
            "is_active": True,
            "must_change_password": self.activation.get("must_change_password", False),
            "activation_hash": self.activation.get("activation_hash"),
            "activation_expires_at": self.activation.get("activation_expires_at"),
        }

    def path(self) -> str | None:
        """Where in the tree the person is administered: their node, or their merchant's node."""
        if self.org_unit is not None:
            return self.org_unit.path
        if ROLE_MERCHANT_STAFF in self.roles and self.merchant is not None:
            return self.merchant.org_unit.path
        return None


def _checked_details(full_name: str | None, phone: str | None, title: str | None) -> tuple[str, str | None, str | None]:
    """Return a person's full name, phone and title tidied, or raise ``InvalidInput`` naming the field."""
    full_name = (full_name or "").strip()
    if not full_name:
        raise InvalidInput("Enter the person's full name.", field="full_name")
    if len(full_name) > NAME_MAX:
        raise InvalidInput("Keep the full name to %(n)s characters.", field="full_name", n=NAME_MAX)
    phone = (phone or "").strip() or None
    if phone is not None and len(phone) > PHONE_MAX:
        raise InvalidInput("Keep the phone number to %(n)s characters.", field="phone", n=PHONE_MAX)
    title = title or None
    if title is not None and title not in TITLES:
        raise InvalidInput("Unknown title.", field="title")
    return full_name, phone, title


def new_person(
    actor: User | None,
    *,
    username: str,
    full_name: str,
    password: str | None,
    org_unit,
    phone: str | None = None,
    title: str | None = None,
    roles: tuple[str, ...] = (ROLE_VOLUNTEER,),
    merchant: Merchant | None = None,
    taken: Callable[[str], bool] | None = None,
) -> NewPerson:
    """Check a new person's details as ``create_person`` does, and return them ready to write.

    ``taken(username)`` says whether the username already exists (case-insensitively); an
    import, which has looked up all its usernames at once, passes none.
    """
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "Usernames are 3 to 64 letters, digits, dots, dashes or underscores.", field="username"
        )
    if taken is not None and taken(username):
        raise InvalidInput("The username %(u)s is taken.", field="username", u=username)
    full_name, phone, title = _checked_details(full_name, phone, title)
    if password is not None:
        check_password_strength(password, username)
    if ROLE_VOLUNTEER in roles and org_unit is None:
        raise InvalidInput("A volunteer belongs to a node of the tree.", field="org_unit")
    grants = []
    for role in roles:
        unit, shop = _check_grant(actor, role, None if role == ROLE_MERCHANT_STAFF else org_unit, merchant)
        if (role, unit, shop) not in grants:
            grants.append((role, unit, shop))
    return NewPerson(
        username=username,
        full_name=full_name,
        password_hash=hash_password(password) if password is not None else NO_PASSWORD,
        phone=phone,
        title=title,
        org_unit=org_unit,
        roles=tuple(roles),
        grants=grants,
        merchant=merchant,
    )


def create_people(actor: User | None, people: list[NewPerson]) -> list[int]:
    """Write people checked by ``new_person``, in their order; return their ids.

    Each gets what ``create_person`` gives one person: the person, their role grants, a ledger
    account for a volunteer, and a ``person.created`` audit record; a few statements in all,
    however many people.
    """
    if not people:
        return []
    db.session.flush()  # the nodes they belong to, added by the caller, come first
    user_ids = insert_rows(user_t, [p.row() for p in people], returning=user_t.c.id)
    grants = [
        {"user_id": user_id, "role": role, "org_unit_id": unit.id if unit is not None else None,
         "merchant_id": shop.id if shop is not None else None}
        for user_id, p in zip(user_ids, people) for role, unit, shop in p.grants
    ]
    insert_rows(grant_t, grants)
    accounts = [
        {"kind": ACCOUNT_VOLUNTEER, "user_id": user_id, "balance": 0, "held": 0, "earned": 0}
        for user_id, p in zip(user_ids, people) if any(role == ROLE_VOLUNTEER for role, _, _ in p.grants)
    ]
    insert_rows(account_t, accounts)
    audit.record_many(actor, [
        audit.Entry(
            audit.PERSON_CREATED, "user", user_id,
            {"username": p.username, "full_name": p.full_name, "title": p.title, "roles": sorted(p.roles),
             "org_unit_id": p.org_unit.id if p.org_unit is not None else None,
             "merchant_id": p.merchant.id if p.merchant is not None else None},
            org_path=p.path(),
        )
        for user_id, p in zip(user_ids, people)
    ])
    return user_ids


def _person_path(user: User) -> str | None:
    """Return where in the tree a person is administered: their node, or their merchant's node."""
    if user.org_unit is not None:
        return user.org_unit.path
    for g in user.grants(ROLE_MERCHANT_STAFF):
        return g.merchant.org_unit.path
    return None


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
    _require_may_change(actor, user)
    if bool(user.is_active_flag) == active:
        return user
    if not active:
        # Sessions and tokens first: an API request locks its token's row before the account
        # (``touch_token_in_session``), so this takes them in the same order.
        lock_out(user)
        if user.has_role(ROLE_VOLUNTEER):
            # A voucher being issued holds the volunteer's account row: the two take turns, so
            # none is issued after the deactivation (``vouchers.issue_voucher`` reads the flag under it).
            ledger.locked_account_for_volunteer(user)
    user.is_active_flag = active
    db.session.flush()
    audit.record(
        actor, audit.PERSON_REACTIVATED if active else audit.PERSON_DEACTIVATED, "user", user.id,
        {"username": user.username}, org_path=_person_path(user),
    )
    return user


def update_details(actor: User, user_id: int, *, full_name: str, phone: str | None, title: str | None) -> User:
    """Correct a person's full name, phone and title (a wrong number, a new title); the username,
    the node and the roles stay. Checked as a new person's are; the audit record keeps what was
    there before."""
    user = person_in_scope(actor, user_id)
    _require_may_change(actor, user)
    full_name, phone, title = _checked_details(full_name, phone, title)
    before = {"full_name": user.full_name, "phone": user.phone, "title": user.title}
    after = {"full_name": full_name, "phone": phone, "title": title}
    if before == after:
        return user
    user.full_name, user.phone, user.title = full_name, phone, title
    db.session.flush()
    changed = [k for k in after if before[k] != after[k]]
    audit.record(
        actor, audit.PERSON_CHANGED, "user", user.id,
        {"username": user.username, "before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed}},
        org_path=_person_path(user),
    )
    return user


def move_person(actor: User, user_id: int, unit: OrgUnit | None) -> User:
    """Move a person to another node of their street (they moved house, or were filed under the
    wrong building): their node and their volunteer role go there. Their points and history go
    with them; work already recorded keeps the node it was done at, and budgets already charged
    stay charged (new credits draw on the new node's budget). The actor must administer both
    nodes; nobody moves themselves."""
    user = person_in_scope(actor, user_id)
    if user.id == actor.id:
        raise Forbidden("You cannot move yourself; ask another admin.")
    _require_may_change(actor, user)
    old = user.org_unit
    if old is None:
        raise InvalidInput("Only a person who belongs to a node of the tree can move; a cashier belongs to "
                           "their merchant.", field="org_unit_id")
    if unit is None or not in_scope(actor, unit, ADMIN_ROLES):
        raise NotFound()
    if not in_scope(actor, old, ADMIN_ROLES):
        raise Forbidden()
    if unit.root_id != old.root_id:
        raise InvalidInput("A person moves only within their street: their points were issued by it.",
                           field="org_unit_id")
    if unit.id == old.id:
        raise InvalidInput("%(name)s already belongs to %(node)s: choose another node.", field="org_unit_id",
                           name=user.full_name, node=path_label(old))
    before_label, after_label = path_label(old), path_label(unit)
    user.org_unit = unit
    at_new = {g.role for g in user.roles if g.org_unit_id == unit.id}
    for g in list(user.roles):
        if g.role == ROLE_VOLUNTEER and g.org_unit_id == old.id:
            if g.role in at_new:
                user.roles.remove(g)
            else:
                g.org_unit = unit
    db.session.flush()
    audit.record(
        actor, audit.PERSON_MOVED, "user", user.id,
        {"username": user.username, "full_name": user.full_name,
         "before": {"org_unit_id": old.id, "name": before_label},
         "after": {"org_unit_id": unit.id, "name": after_label}},
        # Where both nodes' admins above them read it: the lowest node over both.
        org_path=_common_path(old.path, unit.path),
    )
    return user


def _common_path(a: str, b: str) -> str:
    """The path of the lowest node above (or at) both paths: "/1/5/7/" and "/1/5/9/" give "/1/5/"."""
    common = []
    for x, y in zip(a.strip("/").split("/"), b.strip("/").split("/")):
        if x != y:
            break
        common.append(x)
    return "/" + "/".join(common) + "/"


def end_sessions(user: User) -> None:
    """End every session of ``user``: each session's version no longer matches (see ``web.sessions``)."""
    db.session.flush()
    db.session.execute(
        update(User.__table__)
        .where(User.__table__.c.id == user.id)
        .values(session_version=User.__table__.c.session_version + 1)
    )
    db.session.refresh(user, ["session_version"])


def lock_out(user: User) -> None:
    """End every session of ``user`` and revoke their API tokens: what a password change or
    reset, or deactivation, must end (a token made with a stolen session included)."""
    end_sessions(user)
    tokens.revoke_all(user.id)


def set_password(user: User, password: str) -> None:
    """Replace a person's password after checking its strength; end their other sessions and
    revoke their API tokens."""
    check_password_strength(password, user.username)
    user.password_hash = hash_password(password)
    user.must_change_password = False
    user.password_changed_at = now_utc()
    user.activation_hash = user.activation_expires_at = None
    lock_out(user)


def change_password(user: User, current: str, new: str) -> None:
    """Change one's own password: the current one is asked again; every session ends."""
    # A person who activated with a code gives the code as their current password.
    if not (activation_matches(user, current) or _verify_password(user, current)):
        if user.activation_hash is not None:
            raise InvalidInput("The activation code is wrong: type it as it is on your slip.", field="current_password")
        raise InvalidInput("The current password is wrong.", field="current_password")
    if new == current:
        raise InvalidInput("Choose a password different from the current one.", field="new_password")
    check_password_strength(new, user.username, field="new_password")
    set_password(user, new)


def generate_temporary_password() -> str:
    """Return a random password to read out: 3 groups of 4 letters and digits (about 59 bits)."""
    return _random_groups(3)


def reset_password(actor: User, user_id: int) -> tuple[User, str]:
    """Give a person a new temporary password they must change at their next login; return it.

    Only an admin who could give each of the person's roles may reset it (as for deactivation);
    the person's sessions end at once. The password itself is never written to the audit log.
    """
    user = person_in_scope(actor, user_id)
    if user.id == actor.id:
        raise InvalidInput("Change your own password from the change-password page.")
    _require_may_change(actor, user)
    temporary = generate_temporary_password()
    user.password_hash = hash_password(temporary)
    user.activation_hash = user.activation_expires_at = None
    user.must_change_password = True
    user.password_changed_at = now_utc()
    lock_out(user)
    audit.record(actor, audit.PASSWORD_RESET, "user", user.id, {"username": user.username}, org_path=_person_path(user))
    return user, temporary


def merchant_cashiers(actor: User, merchant_id: int) -> list[User]:
    """Return the cashiers of a merchant ``actor`` administers, oldest first; else ``NotFound``."""
    merchant = require_merchant_admin(actor, merchant_id)
    return list(db.session.scalars(
        select(User).join(RoleGrant, RoleGrant.user_id == User.id)
        .where(RoleGrant.role == ROLE_MERCHANT_STAFF, RoleGrant.merchant_id == merchant.id)
        .order_by(User.id)
    ))
