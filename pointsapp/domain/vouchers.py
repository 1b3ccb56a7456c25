"""Rewards and vouchers: issue (hold points, reserve stock), confirm at the till, cancel, expire.

A voucher's state machine: ``issued`` → ``redeemed`` | ``cancelled`` | ``expired``. Each
transition is one conditional UPDATE ``... WHERE status = 'issued'``; the loser of a race
updates no row and gets a named error saying why.

Tokens. The QR code carries only an opaque token, and the till accepts an 8-character Crockford
base32 fallback code. Both are derived from the voucher's random 128-bit ``nonce`` with an HMAC
keyed by the server's voucher key (``VOUCHER_KEY``, kept apart from ``SECRET_KEY`` so that
rotating the session key does not void open vouchers), so the volunteer's page can show them
again, while the database stores only hashes: the token's SHA-256 (160 bits: out of reach of a
search), and the fallback code's HMAC under the voucher key (``code_digest``), since its 40 bits
could be searched through in minutes from a plain hash. A copy of the database alone cannot
forge or read a code; the database together with the voucher key can, so keep the key out of
database backups. (Vouchers issued before codes were keyed keep a plain SHA-256, which look-ups
still accept; they expire within the voucher lifetime.)
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, exists, func, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..database import insert_unless_taken
from ..extensions import db
from ..models import AppSetting, Merchant, OrgUnit, Reward, Transfer, User, Voucher
from ..models.ledger import TRANSFER_REVERSAL
from ..models.rewards import VOUCHER_CANCELLED, VOUCHER_EXPIRED, VOUCHER_ISSUED, VOUCHER_REDEEMED
from ..models.user import ROLE_VOLUNTEER
from . import audit, ledger, uploads
from .access import ancestor_paths, merchant_ids_for_staff, require_merchant_admin
from .clock import local_today, now_utc, to_local
from .errors import (
    AccountInactive,
    Forbidden,
    InvalidInput,
    LimitReached,
    NotFound,
    OutOfStock,
    PointsError,
    RewardUnavailable,
    VoucherAlreadyRedeemed,
    VoucherCancelled,
    VoucherExpired,
    VoucherJustRedeemed,
    VoucherKeyMismatch,
    VoucherNotFound,
    WrongMerchant,
)

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_MAP = {c: c for c in CROCKFORD} | {"O": "0", "I": "1", "L": "1"}
TOKEN_PREFIX = "PV1-"
MAX_STOCK = 1_000_000
voucher_t = Voucher.__table__
reward_t = Reward.__table__


def _key() -> bytes:
    return hashlib.sha256(b"pointsapp-voucher:" + current_app.config["VOUCHER_KEY"].encode()).digest()


KEY_FINGERPRINT = "voucher_key_fingerprint"
_key_agreed: set[str] = set()  # fingerprints this process found to be the database's


def key_fingerprint() -> str:
    """A fingerprint of this server's voucher key: says which key it is, reveals nothing of it."""
    return hashlib.sha256(b"pointsapp-voucher-key-fingerprint:" + _key()).hexdigest()[:32]


def stored_key_fingerprint() -> str | None:
    return db.session.scalar(select(AppSetting.value).where(AppSetting.name == KEY_FINGERPRINT))


def require_agreed_key() -> None:
    """Refuse (``VoucherKeyMismatch``) unless this server's voucher key is the one the database's
    vouchers were made with; the first voucher records it. Machines, or a redeployed one, with
    different keys would each show codes the others cannot find: this says so instead. Checked
    once per process."""
    mine = key_fingerprint()
    if mine in _key_agreed:
        return
    stored = stored_key_fingerprint()
    recorded_now = stored is None
    if recorded_now:
        insert_unless_taken(AppSetting.__table__, {"name": KEY_FINGERPRINT, "value": mine}, key=["name"],
                            returning=AppSetting.__table__.c.name)
        stored = stored_key_fingerprint()
    if stored != mine:
        current_app.logger.error("voucher key differs from the one the database's vouchers were made with; "
                                 "set the same POINTS_VOUCHER_KEY on every machine")
        raise VoucherKeyMismatch()
    if not recorded_now:  # found committed; one recorded by this transaction may yet be rolled back
        _key_agreed.add(mine)


def _b32(data: bytes, length: int) -> str:
    n = int.from_bytes(data, "big")
    out = []
    for _ in range(length):
        out.append(CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(out))


def token_for(nonce: str) -> str:
    """Return the QR token of a voucher (160 bits, Crockford base32)."""
    mac = hmac.new(_key(), b"token:" + nonce.encode(), hashlib.sha256).digest()
    return TOKEN_PREFIX + _b32(mac[:20], 32)


def code_for(nonce: str) -> str:
    """Return the 8-character fallback code of a voucher (40 bits, Crockford base32)."""
    mac = hmac.new(_key(), b"code:" + nonce.encode(), hashlib.sha256).digest()
    return _b32(mac[:5], 8)


def format_code(code: str) -> str:
    """Group a fallback code for reading aloud: ``ABCD-EFGH``."""
    return f"{code[:4]}-{code[4:]}"


def normalise_code(text: str) -> str | None:
    """Return the canonical fallback code typed by a cashier, or None if it cannot be one."""
    cleaned = "".join(ch for ch in (text or "").upper() if ch not in " -_")
    try:
        code = "".join(_CROCKFORD_MAP[ch] for ch in cleaned)
    except KeyError:
        return None
    return code if len(code) == 8 else None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def code_digest(code: str) -> str:
    """What the database keeps of a fallback code: its HMAC under the voucher key."""
    return hmac.new(_key(), b"code-digest:" + code.encode(), hashlib.sha256).hexdigest()


def visible_rewards_query(volunteer: User, on=None):
    """Return a select of the rewards a volunteer can redeem: merchants at or above their node."""
    on = on or local_today()
    paths = ancestor_paths(volunteer.org_unit) if volunteer.org_unit else []
    return (
        select(Reward)
        .join(Merchant, Merchant.id == Reward.merchant_id)
        .join(OrgUnit, OrgUnit.id == Merchant.org_unit_id)
        .where(
            OrgUnit.path.in_(paths),
            Reward.is_active.is_(True),
            Merchant.is_active.is_(True),
            (Reward.active_from.is_(None)) | (Reward.active_from <= on),
            (Reward.active_to.is_(None)) | (Reward.active_to >= on),
        )
        .order_by(Reward.price, Reward.id)
    )


@dataclass
class IssuedVoucher:
    voucher: Voucher
    token: str
    code: str


def issue_voucher(volunteer: User, reward_id: int, now: datetime | None = None,
                  key: str | None = None) -> IssuedVoucher:
    """Redeem a reward: hold its points, reserve one unit of stock, issue a voucher.

    ``key``: the redeem form's one-time key. The same key sent again (the answer to the first
    was lost, and the volunteer tapped again) returns the voucher it issued, and holds nothing
    more. Two at once take turns on the volunteer's account."""
    now = now or now_utc()
    if not volunteer.is_active:
        raise AccountInactive()
    if not volunteer.has_role(ROLE_VOLUNTEER):
        raise Forbidden()
    if key is not None:
        key = key.strip()
        if not key or len(key) > 64:
            raise InvalidInput("The form has expired; open the rewards page again.")
    # Two redemptions of one volunteer take turns on their account, locked once, first: the form's
    # key is read under it, and so are the lots (a cancellation committed meanwhile could
    # otherwise free points past their last day after expire_due looked, and the reservation
    # below would take them). Lock order: the volunteer's account, then the reward.
    acc = ledger.locked_account_for_volunteer(volunteer)
    if key is not None:
        done = db.session.scalar(select(Voucher).where(Voucher.volunteer_id == volunteer.id, Voucher.issue_key == key))
        if done is not None:
            return IssuedVoucher(done, token_for(done.nonce), code_for(done.nonce))
    reward = db.session.get(Reward, reward_id)
    if reward is None or volunteer.org_unit is None:
        raise NotFound()
    if reward.merchant.org_unit.path not in ancestor_paths(volunteer.org_unit):
        raise NotFound()
    if not reward.available_on(local_today(now)):
        raise RewardUnavailable()
    require_agreed_key()
    # The terms are read once: the hold, the stock reservation and the voucher all use this price,
    # and the reservation below refuses if an admin has changed it meanwhile.
    price, limit, merchant_id = reward.price, reward.per_volunteer_limit, reward.merchant_id
    # Points past their last day are not spent: expired first (under the account's lock).
    ledger.expire_due(acc.id, local_today(now))
    ledger.hold(acc.id, price)
    # Deactivation takes the same lock: read again under it, a person deactivated while this
    # request ran gets no voucher.
    if not db.session.scalar(select(User.is_active_flag).where(User.id == volunteer.id)):
        raise AccountInactive()
    if limit:
        taken = db.session.scalar(
            select(func.count())
            .select_from(Voucher)
            .where(
                Voucher.volunteer_id == volunteer.id,
                Voucher.reward_id == reward.id,
                Voucher.status.in_((VOUCHER_ISSUED, VOUCHER_REDEEMED)),
                ~redemption_reversed(),  # its points came back: it does not count
            )
        )
        if taken >= limit:
            raise LimitReached(limit=limit)
    reserved = db.session.execute(
        update(reward_t)
        .where(
            reward_t.c.id == reward_id,
            reward_t.c.price == price,
            (reward_t.c.stock.is_(None)) | (reward_t.c.stock >= 1),
        )
        .values(stock=case((reward_t.c.stock.is_(None), None), else_=reward_t.c.stock - 1))
        .returning(reward_t.c.id)
    ).scalar()
    db.session.expire(reward)
    if reserved is None:
        if db.session.scalar(select(Reward.price).where(Reward.id == reward_id)) != price:
            raise RewardUnavailable(_l("The price of this reward has just changed. Look at it again, then redeem."))
        raise OutOfStock()
    while True:
        nonce = secrets.token_hex(16)
        token, code = token_for(nonce), code_for(nonce)
        # 40-bit codes collide rarely; a collision is retried with a fresh nonce.
        if not db.session.scalar(select(Voucher.id).where(Voucher.code_hash.in_((code_digest(code), _sha(code))))):
            break
    voucher = Voucher(
        nonce=nonce,
        token_hash=_sha(token),
        code_hash=code_digest(code),
        reward_id=reward_id,
        merchant_id=merchant_id,
        volunteer_id=volunteer.id,
        account_id=acc.id,
        points=price,
        status=VOUCHER_ISSUED,
        issued_at=now,
        expires_at=now + current_app.config["VOUCHER_TTL"],
        issue_key=key,
    )
    db.session.add(voucher)
    db.session.flush()
    ledger.reserve(acc.id, voucher.id, price)  # the lots its points are in (the account is still locked)
    return IssuedVoucher(voucher, token, code)


def find_voucher(text: str) -> Voucher:
    """Find a voucher by its QR token or its fallback code, or raise ``VoucherNotFound``."""
    text = (text or "").strip()
    if text.upper().startswith(TOKEN_PREFIX):
        matches = Voucher.token_hash == _sha(TOKEN_PREFIX + text[len(TOKEN_PREFIX):].upper())
    else:
        code = normalise_code(text)
        if not code:
            raise VoucherNotFound()
        matches = Voucher.code_hash.in_((code_digest(code), _sha(code)))  # the plain hash: issued before
    # With the reward and the volunteer (whether their account is active) in the same statement;
    # the volunteer's role grants are not needed at the till.
    voucher = db.session.scalar(
        select(Voucher).where(matches)
        .options(joinedload(Voucher.reward), joinedload(Voucher.volunteer).lazyload(User.roles))
    )
    if voucher is None:
        raise VoucherNotFound()
    return voucher


# A voucher the same cashier redeemed this recently is told apart at the till: their confirm's
# answer was most likely lost, and the goods may still be on the counter.
JUST_REDEEMED = timedelta(minutes=15)


def _refuse_for_state(voucher: Voucher, now: datetime, staff: User | None = None) -> None:
    """Raise the error that explains why ``voucher`` cannot be redeemed now; return if it can."""
    if voucher.status == VOUCHER_REDEEMED:
        if reversed_voucher_ids([voucher.id]):
            raise VoucherAlreadyRedeemed(_l(
                "An admin reversed this voucher's redemption: its points went back to the volunteer. "
                "Do not hand over goods for it."))
        if staff is not None and voucher.redeemed_by_id == staff.id and now - voucher.redeemed_at <= JUST_REDEEMED:
            raise VoucherJustRedeemed(
                when=to_local(voucher.redeemed_at).strftime("%H:%M"), reward=voucher.reward.name,
                name=voucher.volunteer.masked_name, points=voucher.points,
            )
        raise VoucherAlreadyRedeemed(
            when=to_local(voucher.redeemed_at).strftime("%Y-%m-%d %H:%M"), merchant=voucher.merchant.name,
            cashier=voucher.redeemed_by.full_name if voucher.redeemed_by else "—",
        )
    if voucher.status == VOUCHER_CANCELLED:
        raise VoucherCancelled()
    if voucher.status == VOUCHER_EXPIRED or voucher.expires_at <= now:
        raise VoucherExpired(when=to_local(voucher.expires_at).strftime("%Y-%m-%d %H:%M"))


def _check_cashier(staff: User, voucher: Voucher, merchant_id: int | None) -> None:
    mine = merchant_ids_for_staff(staff)
    if not mine:
        raise Forbidden()
    if merchant_id is not None and merchant_id not in mine:
        raise Forbidden()
    here = merchant_id if merchant_id is not None else (voucher.merchant_id if voucher.merchant_id in mine else mine[0])
    if voucher.merchant_id != here:
        raise WrongMerchant(merchant=voucher.merchant.name)
    if not voucher.merchant.is_active:
        raise Forbidden(_l("This merchant is no longer active; vouchers cannot be redeemed here."))
    if voucher.volunteer_id == staff.id:
        raise Forbidden(_l("You cannot redeem your own voucher; another cashier must."))


def _fingerprint(text: str) -> str:
    """Return a short hash of a presented code: refusals can be correlated, the code is not logged."""
    return hashlib.sha256((text or "").strip().upper().encode()).hexdigest()[:12]


def log_refusal(exc: PointsError, staff: User, text: str, merchant_id: int | None, step: str, voucher=None) -> None:
    """Write one structured log line for a refused voucher: reason, cashier, merchant; never the code."""
    fields = {
        "event": "voucher_refused",
        "reason": exc.code,
        "step": step,
        "staff_id": staff.id,
        "merchant_id": merchant_id if merchant_id is not None else ",".join(map(str, merchant_ids_for_staff(staff))),
        "voucher_id": voucher.id if voucher is not None else None,
        "voucher_merchant_id": voucher.merchant_id if voucher is not None else None,
        "presented": "token" if (text or "").strip().upper().startswith(TOKEN_PREFIX) else "code",
        "presented_length": len((text or "").strip()),
        "fingerprint": _fingerprint(text),
    }
    current_app.logger.warning(
        "voucher refused " + " ".join(f"{k}={v}" for k, v in fields.items() if k != "event"), extra=fields
    )


def look_up_for_redemption(staff: User, text: str, merchant_id: int | None = None, now=None, *, step="lookup") -> Voucher:
    """Return a voucher the cashier may confirm now, or raise (and log) the reason they may not."""
    now = now or now_utc()
    voucher = None
    try:
        voucher = find_voucher(text)
        _check_cashier(staff, voucher, merchant_id)
        _refuse_for_state(voucher, now, staff)
        if not voucher.volunteer.is_active:
            raise AccountInactive(_l("This volunteer's account is deactivated, so the voucher cannot be used. "
                                     "Do not hand over goods; the volunteer can ask their community office."))
    except PointsError as exc:
        log_refusal(exc, staff, text, merchant_id, step, voucher)
        raise
    return voucher


def confirm_redemption(staff: User, text: str, merchant_id: int | None = None, now=None) -> Voucher:
    """Redeem a voucher once: mark it redeemed and capture its held points for the merchant."""
    now = now or now_utc()
    voucher = look_up_for_redemption(staff, text, merchant_id, now, step="confirm")
    db.session.flush()
    result = db.session.execute(
        update(voucher_t)
        .where(voucher_t.c.id == voucher.id, voucher_t.c.status == VOUCHER_ISSUED, voucher_t.c.expires_at > now)
        .values(status=VOUCHER_REDEEMED, redeemed_at=now, redeemed_by_id=staff.id)
    )
    if result.rowcount == 1:
        # What the UPDATE wrote; the rest of a voucher does not change once it is issued.
        for key, value in (("status", VOUCHER_REDEEMED), ("redeemed_at", now), ("redeemed_by_id", staff.id)):
            set_committed_value(voucher, key, value)
    else:  # another till won the race, or the voucher closed meanwhile: see how it stands now
        db.session.refresh(voucher)
        try:
            _refuse_for_state(voucher, now, staff)
            raise VoucherExpired(when=to_local(voucher.expires_at).strftime("%Y-%m-%d %H:%M"))
        except PointsError as exc:
            log_refusal(exc, staff, text, merchant_id, "confirm", voucher)
            raise
    merchant_acc = ledger.account_for_merchant(voucher.merchant_id)
    ledger.capture(
        voucher.account_id,
        merchant_acc.id,
        voucher.points,
        reason=f"{voucher.reward.name} @ {voucher.merchant.name}",
        cause_key=f"voucher:{voucher.id}:capture",
        voucher_id=voucher.id,
        created_by_id=staff.id,
        created_at=now,
    )
    return voucher


def _close(voucher_ids: list[int], status: str, now: datetime) -> int:
    """Move issued vouchers to cancelled/expired and give back their points and stock; return how many.

    Locks follow the global order of ``pointsapp.domain.ledger``: every voucher row first, then
    the accounts by id, then the rewards by id. Closing a batch one voucher at a time would hold
    a reward row while waiting for the next volunteer's account, the reverse of ``issue_voucher``
    (account, then reward), and the two would deadlock.
    """
    if not voucher_ids:
        return 0
    rows = db.session.execute(
        update(voucher_t)
        .where(voucher_t.c.id.in_(voucher_ids), voucher_t.c.status == VOUCHER_ISSUED)
        .values(status=status, closed_at=now)
        .returning(voucher_t.c.id, voucher_t.c.account_id, voucher_t.c.points, voucher_t.c.reward_id)
    ).all()
    held: dict[int, int] = defaultdict(int)
    units: dict[int, int] = defaultdict(int)
    for _, account_id, points, reward_id in rows:
        held[account_id] += points
        units[reward_id] += 1
    for account_id in sorted(held):
        ledger.release(account_id, held[account_id])
    ledger.unreserve([voucher_id for voucher_id, *_ in rows])
    for reward_id in sorted(units):
        db.session.execute(
            update(reward_t)
            .where(reward_t.c.id == reward_id, reward_t.c.stock.is_not(None))
            .values(stock=reward_t.c.stock + units[reward_id])
        )
    for voucher_id, *_ in rows:
        obj = db.session.identity_map.get(identity_key(Voucher, voucher_id))
        if obj is not None:
            db.session.expire(obj)
    return len(rows)


def cancel_voucher(volunteer: User, voucher_id: int, now: datetime | None = None) -> Voucher:
    """Cancel one's own unredeemed voucher: the points and the stock come back.

    A voucher already past its time is closed as ``expired`` instead (with the same release),
    so the caller can tell the volunteer which of the two happened from ``voucher.status``.
    """
    now = now or now_utc()
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or voucher.volunteer_id != volunteer.id:
        raise NotFound()
    db.session.flush()
    status = VOUCHER_EXPIRED if voucher.expires_at <= now else VOUCHER_CANCELLED
    if not _close([voucher.id], status, now):
        db.session.refresh(voucher)
        if voucher.status == VOUCHER_REDEEMED:  # told to the volunteer, not to a cashier
            raise VoucherAlreadyRedeemed(
                _l("This voucher was already redeemed at %(when)s at %(merchant)s, so it cannot be cancelled."),
                when=to_local(voucher.redeemed_at).strftime("%Y-%m-%d %H:%M"), merchant=voucher.merchant.name,
            )
        _refuse_for_state(voucher, now)
    db.session.refresh(voucher)
    return voucher


def expire_vouchers(now: datetime | None = None, batch: int = 500) -> int:
    """Expire every issued voucher past its time; safe to run twice or at once. Return how many."""
    now = now or now_utc()
    ids = list(
        db.session.scalars(
            select(Voucher.id)
            .where(Voucher.status == VOUCHER_ISSUED, Voucher.expires_at <= now)
            .order_by(Voucher.id)
            .limit(batch)
        )
    )
    return _close(ids, VOUCHER_EXPIRED, now)


def todays_redemptions(staff: User, merchant_id: int, now=None) -> list[Voucher]:
    """Return the vouchers redeemed today (local time) at a merchant the cashier works for."""
    if merchant_id not in merchant_ids_for_staff(staff):
        raise NotFound()
    now = now or now_utc()
    local_midnight = to_local(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return list(
        db.session.scalars(
            select(Voucher)
            .where(Voucher.merchant_id == merchant_id, Voucher.redeemed_at >= local_midnight)
            .order_by(Voucher.redeemed_at.desc())
        )
    )


def redemption_reversed(before: datetime | None = None):
    """SQL, of a ``Voucher`` row: an admin reversed its redemption (the goods were not handed over;
    its points went back), or did so ``before`` a moment. The reversal carries the voucher's id."""
    found = exists().where(Transfer.voucher_id == Voucher.id, Transfer.kind == TRANSFER_REVERSAL)
    return found.where(Transfer.created_at < before) if before is not None else found


def reversed_voucher_ids(voucher_ids: list[int]) -> set[int]:
    """Of ``voucher_ids``, those whose redemption an admin has reversed (``redemption_reversed``)."""
    if not voucher_ids:
        return set()
    return set(db.session.scalars(select(Voucher.id).where(Voucher.id.in_(voucher_ids), redemption_reversed())))


@dataclass
class DayRedemptions:
    """A merchant's redemptions of one day, newest first, and those an admin has reversed since:
    listed, but not in the day's takings."""
    vouchers: list[Voucher]
    reversed_ids: set[int]

    @property
    def counted(self) -> list[Voucher]:
        return [v for v in self.vouchers if v.id not in self.reversed_ids]

    @property
    def points(self) -> int:
        return sum(v.points for v in self.counted)


def todays_takings(staff: User, merchant_id: int, now=None) -> DayRedemptions:
    """``todays_redemptions``, with the reversed ones marked."""
    rows = todays_redemptions(staff, merchant_id, now)
    return DayRedemptions(rows, reversed_voucher_ids([v.id for v in rows]))


@dataclass
class RewardTerms:
    name: str
    price: int
    description: str = ""
    stock: int | None = None
    per_volunteer_limit: int | None = None
    active_from: object = None
    active_to: object = None
    is_active: bool = True

    def validate(self) -> None:
        if not (self.name or "").strip():
            raise InvalidInput("A name is required.", field="name")
        if not isinstance(self.price, int) or not 1 <= self.price <= 1_000_000:
            raise InvalidInput("The price must be a whole number of points from 1.", field="price")
        if self.stock is not None and not 0 <= self.stock <= MAX_STOCK:
            raise InvalidInput("Stock must be between 0 and 1,000,000; leave it empty for unlimited.", field="stock")
        if self.per_volunteer_limit is not None and not 1 <= self.per_volunteer_limit <= MAX_STOCK:
            raise InvalidInput("The limit must be at least 1, or empty for none.", field="per_volunteer_limit")
        if self.active_from and self.active_to and self.active_to < self.active_from:
            raise InvalidInput("The end date is before the start date.", field="active_to")


def create_reward(actor: User, merchant_id: int, terms: RewardTerms) -> Reward:
    """List a reward at a merchant the actor administers."""
    merchant = require_merchant_admin(actor, merchant_id)
    terms.validate()
    reward = Reward(
        merchant=merchant,
        name=terms.name.strip(),
        description=(terms.description or "").strip(),
        price=terms.price,
        stock=terms.stock,
        per_volunteer_limit=terms.per_volunteer_limit,
        active_from=terms.active_from,
        active_to=terms.active_to,
        is_active=terms.is_active,
    )
    db.session.add(reward)
    db.session.flush()
    audit.record(
        actor, audit.REWARD_CREATED, "reward", reward.id,
        {"merchant_id": merchant.id, **_terms_summary(terms)},
        org_path=merchant.org_unit.path,
    )
    return reward


def _terms_summary(terms: RewardTerms) -> dict:
    return {
        "name": (terms.name or "").strip(),
        "price": terms.price,
        "stock": terms.stock,
        "per_volunteer_limit": terms.per_volunteer_limit,
        "active_from": terms.active_from.isoformat() if terms.active_from else None,
        "active_to": terms.active_to.isoformat() if terms.active_to else None,
        "is_active": terms.is_active,
    }


def update_reward(actor: User, reward_id: int, terms: RewardTerms, stock_change: int = 0, unlimited: bool | None = None) -> Reward:
    """Change a reward's terms. Stock changes by a delta so that reservations made meanwhile stay."""
    reward = db.session.get(Reward, reward_id)
    if reward is None:
        raise NotFound()
    merchant = require_merchant_admin(actor, reward.merchant_id)
    terms.validate()
    before = {
        "name": reward.name, "price": reward.price, "stock": reward.stock,
        "per_volunteer_limit": reward.per_volunteer_limit,
        "active_from": reward.active_from.isoformat() if reward.active_from else None,
        "active_to": reward.active_to.isoformat() if reward.active_to else None,
        "is_active": reward.is_active,
    }
    reward.name = terms.name.strip()
    reward.description = (terms.description or "").strip()
    reward.price = terms.price  # vouchers already issued keep the price they hold
    reward.per_volunteer_limit = terms.per_volunteer_limit
    reward.active_from, reward.active_to, reward.is_active = terms.active_from, terms.active_to, terms.is_active
    db.session.flush()
    if unlimited is True:
        db.session.execute(update(reward_t).where(reward_t.c.id == reward.id).values(stock=None))
    elif unlimited is False and reward.stock is None:
        db.session.execute(
            update(reward_t).where(reward_t.c.id == reward.id).values(stock=min(MAX_STOCK, max(0, stock_change)))
        )
    elif stock_change:
        done = db.session.execute(
            update(reward_t)
            .where(
                reward_t.c.id == reward.id,
                reward_t.c.stock.is_not(None),
                reward_t.c.stock + stock_change >= 0,
                reward_t.c.stock + stock_change <= MAX_STOCK,
            )
            .values(stock=reward_t.c.stock + stock_change)
            .returning(reward_t.c.id)
        ).scalar()
        if done is None:
            raise InvalidInput("Stock must stay between 0 and 1,000,000.", field="stock_change")
    db.session.expire(reward)
    after = {**_terms_summary(terms), "stock": reward.stock}
    audit.record(
        actor, audit.REWARD_CHANGED, "reward", reward.id,
        {"merchant_id": merchant.id, "stock_change": stock_change, "unlimited": unlimited,
         "changes": {k: [before[k], v] for k, v in after.items() if before[k] != v}},
        org_path=merchant.org_unit.path,
    )
    return reward


def create_merchant(actor: User, unit: OrgUnit, *, name: str, kind: str, address: str = "", phone: str | None = None) -> Merchant:
    """Register a merchant (a redemption outlet) under ``unit``."""
    from .access import require_admin_of
    from ..models.rewards import MERCHANT_KINDS

    require_admin_of(actor, unit)
    if not (name or "").strip():
        raise InvalidInput("A name is required.", field="name")
    if kind not in MERCHANT_KINDS:
        raise InvalidInput("Unknown kind of merchant.", field="kind")
    merchant = Merchant(name=name.strip(), kind=kind, address=(address or "").strip(), phone=phone, org_unit=unit)
    db.session.add(merchant)
    db.session.flush()
    ledger.account_for_merchant(merchant.id)
    audit.record(
        actor, audit.MERCHANT_CREATED, "merchant", merchant.id,
        {"name": merchant.name, "kind": kind, "address": merchant.address, "phone": phone, "org_unit_id": unit.id},
        org_path=unit.path,
    )
    return merchant


def set_reward_picture(actor: User, reward_id: int, data: bytes) -> Reward:
    """Store the picture of a reward at a merchant ``actor`` administers (replacing the one it had)."""
    reward = db.session.get(Reward, reward_id)
    if reward is None:
        raise NotFound()
    require_merchant_admin(actor, reward.merchant_id)
    uploads.store_reward_picture(reward.id, data)
    return reward
