"""Merchant settlement: periods, statements, payments, and the points-to-yuan rate.

A merchant's receivable account (``merchant`` kind in ``pointsapp.domain.ledger``) collects the
points of every voucher its cashiers confirm. The street pays the merchant back in money; each
payment is recorded here and retires the paid points with a ``settlement`` transfer.

Periods
    Settlement runs by calendar month in the street's time zone. Period rows exist only once an
    admin closes them, in order: the next period to close starts where the last closed one ended
    (or, for a merchant with no closed period yet, in the month of its first entry). Closing
    takes, under the merchant account's row lock, every entry of that account recorded before the
    period's end that no period has taken yet (``SettlementLine``, unique per entry), and freezes
    the totals. The database refuses UPDATE and DELETE on closed periods and their lines, so a
    closed statement never changes: a correction recorded later (say the reversal of a capture
    made in a closed month) is a new entry, dated when it is recorded, and lands in the open period.

Values in yuan
    Points are the ledger's unit. Each street (a root of the org tree) has its own rates
    (``PointsRate``, fen per point, effective from a date; 1 point = ¥1 until one is set); a
    merchant's points are valued by its street's rates. A redemption (capture) is worth its
    points at the rate of its local day; a correction (reversal of a capture) takes back points
    at the rate of the capture it reverses. A new rate takes effect from tomorrow at the
    earliest, so no redemption already made, and no closed period, ever changes value.

    A payment is worth the points it retires, first in, first out: the merchant's captures,
    less their reversals, form lots in the order the ledger recorded them (entry ids, which
    follow the merchant account's row lock, so a redemption recorded late with an earlier date
    queues behind points already paid); all earlier payments consumed the oldest
    points, and this payment's yuan is the value of the next ``points`` points. It is computed
    under the merchant account's lock, so two payments at once value different points. Hence
    value redeemed (captures less corrections) = yuan paid + yuan still owed, where yuan owed is
    the value of the unpaid (newest) lots: a statement's ``closing_fen``.

Who sees names
    Admins over a merchant's part of the tree see volunteers' full names on its statements; the
    merchant's own staff see them masked (张*华), as at the till.

Community attribution
    A merchant may serve several communities. Each redemption is attributed to the community
    (the tree's level of rank 1) above the volunteer's node, so each community's spending is
    known; volunteers placed at the street itself count as "street level".
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import exists, false, func, insert, literal, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import (
    Account,
    Entry,
    Merchant,
    OrgLevel,
    OrgUnit,
    PointsRate,
    Reward,
    SettlementLine,
    SettlementPayment,
    SettlementPeriod,
    Transfer,
    User,
    Voucher,
)
from ..models.ledger import TRANSFER_CAPTURE, TRANSFER_REVERSAL, TRANSFER_SETTLEMENT
from ..models.settlement import DEFAULT_FEN_PER_POINT, MAX_FEN_PER_POINT
from ..models.user import ROLE_STREET_ADMIN, mask_name
from . import audit, ledger
from .budgets import money_text
from .access import managed_merchants_query, merchant_ids_for_staff, require_merchant_admin
from .clock import add_months, local_today, now_utc, to_local, utc_start_of
from .errors import (
    AlreadyRecorded,
    Forbidden,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    PaymentExceedsOwed,
    PeriodClosed,
    PeriodNotEnded,
)


# -- months -----------------------------------------------------------------------------------

def month_end(start: date) -> date:
    """Return the last day of ``start``'s month."""
    return date(start.year, start.month, calendar.monthrange(start.year, start.month)[1])


# -- rates ------------------------------------------------------------------------------------

def street_of_merchant(merchant: Merchant) -> int:
    """Return the id of the street (the root of the org tree) the merchant belongs to."""
    return merchant.org_unit.root_id


def rate_table(street_id: int) -> list[tuple[date, int]]:
    """Return every rate of the street as (effective from, fen per point), oldest first."""
    return [tuple(r) for r in db.session.execute(
        select(PointsRate.effective_from, PointsRate.fen_per_point)
        .where(PointsRate.org_unit_id == street_id)
        .order_by(PointsRate.effective_from)
    )]


def rate_on(day: date, table: list[tuple[date, int]]) -> int:
    """Return the fen one point is worth on ``day`` by a street's ``rate_table``."""
    fen = DEFAULT_FEN_PER_POINT
    for start, value in table:
        if start > day:
            break
        fen = value
    return fen


def fen_from_yuan(text: str | None) -> int:
    """Parse the yuan value of one point ("1", "0.50") into fen, or raise ``InvalidInput``.

    Finite, above zero, at most two decimals and at most ¥1000 a point."""
    refusal = InvalidInput(
        "Enter the value of one point in yuan: above 0, at most 1000, with at most two decimals "
        "(such as 1 or 0.50).",
        field="yuan_per_point",
    )
    typed = money_text(text)
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", typed):
        raise refusal
    try:
        value = Decimal(typed)
    except (InvalidOperation, ValueError):
        raise refusal from None
    if not value.is_finite() or value <= 0 or value > Decimal(MAX_FEN_PER_POINT) / 100:
        raise refusal
    fen = value * 100
    if fen != fen.to_integral_value():
        raise refusal
    return int(fen)


def set_rate(
    actor: User, street: OrgUnit, effective_from: date, fen_per_point: int, *, now: datetime | None = None
) -> PointsRate:
    """Set the value of a point in ``street`` from a date on: tomorrow at the earliest, so no
    redemption already made, and no closed period, changes value."""
    if street.parent_id is not None or not any(g.org_unit_id == street.id for g in actor.grants(ROLE_STREET_ADMIN)):
        raise Forbidden()
    if not isinstance(fen_per_point, int) or not 0 < fen_per_point <= MAX_FEN_PER_POINT:
        raise InvalidInput(
            "The value of a point must be between 0.01 and 1000 yuan.", field="yuan_per_point"
        )
    if effective_from <= local_today(now):
        raise InvalidInput(
            "A rate can only take effect from tomorrow on: redemptions already made keep their value.",
            field="effective_from",
        )
    rate = PointsRate(
        org_unit_id=street.id, effective_from=effective_from, fen_per_point=fen_per_point, created_by_id=actor.id
    )
    try:
        with db.session.begin_nested():
            db.session.add(rate)
    except IntegrityError:
        raise InvalidInput("A rate already takes effect on that date.", field="effective_from") from None
    audit.record(
        actor, audit.RATE_SET, "points_rate", rate.id,
        {"street_id": street.id, "effective_from": effective_from.isoformat(), "fen_per_point": fen_per_point},
        org_path=street.path,
    )
    return rate


# -- access -----------------------------------------------------------------------------------

def require_statement_reader(actor: User, merchant_id: int) -> Merchant:
    """Return the merchant when ``actor`` is one of its staff or administers it, else ``NotFound``."""
    if merchant_id in merchant_ids_for_staff(actor):
        merchant = db.session.get(Merchant, merchant_id)
        if merchant is not None:
            return merchant
    return require_merchant_admin(actor, merchant_id)


def administers(actor: User, merchant_id: int) -> bool:
    """Return whether ``actor`` is an admin over the merchant's part of the tree."""
    return db.session.scalar(
        managed_merchants_query(actor).where(Merchant.id == merchant_id).with_only_columns(Merchant.id)
    ) is not None


# -- periods ----------------------------------------------------------------------------------

def closed_periods(merchant_id: int) -> list[SettlementPeriod]:
    """Return the merchant's closed periods, newest first."""
    return list(db.session.scalars(
        select(SettlementPeriod).where(SettlementPeriod.merchant_id == merchant_id)
        .order_by(SettlementPeriod.period_start.desc())
    ))


def _last_closed(merchant_id: int) -> SettlementPeriod | None:
    return db.session.scalar(
        select(SettlementPeriod).where(SettlementPeriod.merchant_id == merchant_id)
        .order_by(SettlementPeriod.period_start.desc()).limit(1)
    )


def _account_id(merchant_id: int) -> int:
    """Return the id of the merchant's account without creating it (0 matches no entry)."""
    return db.session.scalar(select(Account.id).where(Account.merchant_id == merchant_id)) or 0


def _taken():
    return exists().where(SettlementLine.entry_id == Entry.id)


def next_period(merchant_id: int) -> tuple[date, date]:
    """Return (start, end) of the merchant's next period to close; ``end`` is exclusive."""
    last = _last_closed(merchant_id)
    if last is not None:
        return last.period_end, add_months(last.period_end)
    first = db.session.scalar(
        select(func.min(Transfer.created_at)).join(Entry, Entry.transfer_id == Transfer.id)
        .where(Entry.account_id == _account_id(merchant_id))
    )
    day = to_local(first).date() if first is not None else local_today()
    start = day.replace(day=1)
    return start, add_months(start)


def _totals(condition) -> tuple[int, int, int]:
    """Return (redeemed, corrected, paid) over the merchant-account entries matching ``condition``."""
    rows = dict(db.session.execute(
        select(Transfer.kind, func.coalesce(func.sum(Entry.amount), 0))
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .where(condition)
        .group_by(Transfer.kind)
    ).all())
    return (
        int(rows.get(TRANSFER_CAPTURE, 0)),
        int(rows.get(TRANSFER_REVERSAL, 0)),
        -int(rows.get(TRANSFER_SETTLEMENT, 0)),
    )


def close_period(actor: User, merchant_id: int, now: datetime | None = None) -> SettlementPeriod:
    """Close the merchant's next period: take its entries and freeze its totals, once."""
    now = now or now_utc()
    require_merchant_admin(actor, merchant_id)
    acc = ledger.account_for_merchant(merchant_id)
    db.session.flush()
    # Under the account's lock no capture, reversal or payment of this merchant runs; a second
    # close waits here and then sees this one's period (and moves on to the next month).
    ledger.lock_accounts([acc.id])
    start, end = next_period(merchant_id)
    cutoff = utc_start_of(end)
    if cutoff > now:
        raise PeriodNotEnded(end=month_end(start).isoformat())
    last = _last_closed(merchant_id)
    opening = last.closing_balance if last else 0
    condition = (Entry.account_id == acc.id) & (Transfer.created_at < cutoff) & ~_taken()
    redeemed, corrected, paid = _totals(condition)
    period = SettlementPeriod(
        merchant_id=merchant_id,
        period_start=start,
        period_end=end,
        opening_balance=opening,
        redeemed=redeemed,
        corrected=corrected,
        paid=paid,
        closing_balance=opening + redeemed + corrected - paid,
        closed_at=now,
        closed_by_id=actor.id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(period)
    except IntegrityError:
        raise PeriodClosed() from None
    db.session.execute(
        insert(SettlementLine).from_select(
            ["period_id", "entry_id"],
            select(literal(period.id), Entry.id).join(Transfer, Transfer.id == Entry.transfer_id).where(condition),
        )
    )
    db.session.flush()
    merchant = db.session.get(Merchant, merchant_id)
    audit.record(
        actor, audit.PERIOD_CLOSED, "settlement_period", period.id,
        {"merchant_id": merchant_id, "period_start": start.isoformat(), "redeemed": redeemed,
         "corrected": corrected, "paid": paid, "closing_balance": period.closing_balance},
        org_path=audit.path_of(merchant.org_unit), now=now,
    )
    return period


# -- lots: what the unpaid points are worth ---------------------------------------------------

@dataclass
class Lot:
    """The points one capture brought the merchant, less those reversed, at that day's rate."""
    capture_id: int
    when: datetime
    points: int
    fen_per_point: int


def _lots(account_id: int, table: list[tuple[date, int]], condition=None) -> tuple[list[Lot], int]:
    """Return the merchant account's lots, oldest first, and the points paid so far.

    A capture opens a lot valued at the rate of its local day; a reversal of a capture takes its
    points out of that capture's lot (at the same rate); payments are counted, not placed: they
    always consume the oldest points (first in, first out, in the order the ledger recorded them). ``condition`` limits the entries
    (a statement's "as of")."""
    original = aliased(Transfer)
    rows = db.session.execute(
        select(Transfer.kind, Entry.amount, Transfer.id, Transfer.created_at, original.id, original.created_at)
        .select_from(Entry)
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .outerjoin(original, original.id == Transfer.reverses_id)
        .where(Entry.account_id == account_id, condition if condition is not None else true())
        .order_by(Entry.id)
    ).all()
    lots: dict[int, Lot] = {}
    paid = 0
    for kind, amount, transfer_id, when, original_id, original_when in rows:
        if kind == TRANSFER_CAPTURE:
            lots[transfer_id] = Lot(transfer_id, when, amount, rate_on(to_local(when).date(), table))
        elif kind == TRANSFER_REVERSAL and original_id is not None:
            lot = lots.setdefault(
                original_id, Lot(original_id, original_when, 0, rate_on(to_local(original_when).date(), table))
            )
            lot.points += amount  # negative
        elif kind == TRANSFER_SETTLEMENT:
            paid -= amount
    # Recording order, not the date shown: each entry of this account is written under its row
    # lock, so ids follow that lock. A redemption recorded late with an earlier date then joins
    # the queue behind the points already paid for, and what was paid never changes.
    return sorted(lots.values(), key=lambda lot: lot.capture_id), paid


def value_of_points(lots: list[Lot], skip: int, points: int) -> int:
    """Return the fen value of ``points`` points after the oldest ``skip`` across ``lots``."""
    fen = 0
    for lot in lots:
        n = max(lot.points, 0)
        take_skip = min(skip, n)
        skip -= take_skip
        n -= take_skip
        take = min(points, n)
        fen += take * lot.fen_per_point
        points -= take
        if points == 0:
            break
    return fen


def unpaid_fen(lots: list[Lot], paid: int) -> int:
    """Return the fen value of the points not yet paid (the newest ones)."""
    return value_of_points(lots, paid, sum(max(lot.points, 0) for lot in lots))


def owed_fen(merchant_id: int) -> int:
    """Return what the street owes the merchant now, in fen: the value of its unpaid lots."""
    merchant = db.session.get(Merchant, merchant_id)
    lots, paid = _lots(_account_id(merchant_id), rate_table(street_of_merchant(merchant)))
    return unpaid_fen(lots, paid)


# -- payments ---------------------------------------------------------------------------------

def record_payment(
    actor: User, merchant_id: int, *, points: int, paid_on: date, reference: str, key: str
) -> SettlementPayment:
    """Record money paid to a merchant and retire that many of its points; refuse overpaying.

    The payment is worth the oldest unpaid points (first in, first out), each at the rate of the
    day it was redeemed: the yuan paid is what those redemptions were worth, whatever ``paid_on``.

    ``key`` is the form's one-time key: a double click or a retry records nothing twice.
    """
    merchant = require_merchant_admin(actor, merchant_id)
    if not isinstance(points, int) or points <= 0:
        raise InvalidInput("Enter a whole number of points above zero.", field="points")
    reference = (reference or "").strip()
    if not reference or len(reference) > 100:
        raise InvalidInput("Enter the payment's reference (up to 100 characters).", field="reference")
    if paid_on > local_today():
        raise InvalidInput("A payment cannot be dated in the future.", field="paid_on")
    key = (key or "").strip()
    if not key or len(key) > 48:
        raise InvalidInput("The form has expired; open it again.")
    cause_key = f"payment:{key}"
    if db.session.scalar(select(Transfer.id).where(Transfer.cause_key == cause_key)):
        raise AlreadyRecorded()
    merchant_acc = ledger.account_for_merchant(merchant_id)
    issuance = ledger.issuance_account(merchant.org_unit)
    db.session.flush()
    # Value the payment under the merchant account's lock: a concurrent payment waits here and
    # then sees this one's settlement, so the two retire (and value) different points.
    ledger.lock_accounts([merchant_acc.id])
    lots, paid_before = _lots(merchant_acc.id, rate_table(street_of_merchant(merchant)))
    fen = value_of_points(lots, paid_before, points)
    try:
        transfer = ledger.settle(
            merchant_acc.id,
            issuance.id,
            points,
            reason=f"{merchant.name} {reference}",
            cause_key=cause_key,
            created_by_id=actor.id,
        )
    except InsufficientPoints as exc:
        raise PaymentExceedsOwed(points=points, owed=exc.params["available"]) from exc
    except IntegrityError:
        # The same form was submitted twice at once; the other submission recorded it.
        raise AlreadyRecorded() from None
    payment = SettlementPayment(
        merchant_id=merchant_id,
        points=points,
        fen=fen,
        paid_on=paid_on,
        reference=reference,
        transfer_id=transfer.id,
        created_by_id=actor.id,
    )
    db.session.add(payment)
    db.session.flush()
    audit.record(
        actor, audit.PAYMENT_RECORDED, "settlement_payment", payment.id,
        {"merchant_id": merchant_id, "points": points, "fen": payment.fen, "paid_on": paid_on.isoformat(),
         "reference": reference, "transfer_id": transfer.id},
        org_path=audit.path_of(merchant.org_unit),
    )
    return payment


# -- statements -------------------------------------------------------------------------------

@dataclass
class StatementLine:
    when: datetime
    kind: str
    points: int  # signed, as the merchant's account moved
    fen: int  # value in fen, signed like ``points``
    voucher_id: int | None
    reward: str | None
    volunteer: str | None
    community: str | None
    reference: str | None
    paid_on: date | None


@dataclass
class Statement:
    merchant: Merchant
    start: date
    end: date  # exclusive
    period: SettlementPeriod | None  # set when closed
    closable: bool
    opening: int
    lines: list[StatementLine] = field(default_factory=list)
    closing_fen: int = 0  # the value of the points still unpaid at the end, oldest paid first

    @property
    def last_day(self) -> date:
        return month_end(self.start)

    def _sum(self, kind: str, attr: str) -> int:
        return sum(getattr(line, attr) for line in self.lines if line.kind == kind)

    @property
    def redeemed(self) -> int:
        return self._sum(TRANSFER_CAPTURE, "points")

    @property
    def corrected(self) -> int:
        return self._sum(TRANSFER_REVERSAL, "points")

    @property
    def paid(self) -> int:
        return -self._sum(TRANSFER_SETTLEMENT, "points")

    @property
    def closing(self) -> int:
        return self.opening + self.redeemed + self.corrected - self.paid

    @property
    def redeemed_fen(self) -> int:
        return self._sum(TRANSFER_CAPTURE, "fen") + self._sum(TRANSFER_REVERSAL, "fen")

    @property
    def paid_fen(self) -> int:
        return -self._sum(TRANSFER_SETTLEMENT, "fen")

    @property
    def redemptions(self) -> list[StatementLine]:
        return [line for line in self.lines if line.kind in (TRANSFER_CAPTURE, TRANSFER_REVERSAL)]

    @property
    def payments(self) -> list[StatementLine]:
        return [line for line in self.lines if line.kind == TRANSFER_SETTLEMENT]

    @property
    def by_community(self) -> list[tuple[str | None, int, int]]:
        """Return (community, points, fen) of the redemptions net of corrections, largest first."""
        totals: dict[str | None, list[int]] = {}
        for line in self.redemptions:
            t = totals.setdefault(line.community, [0, 0])
            t[0] += line.points
            t[1] += line.fen
        return sorted(((k, p, f) for k, (p, f) in totals.items()), key=lambda r: (-r[1], r[0] or ""))


def statement(actor: User, merchant_id: int, start: date | None = None) -> Statement:
    """Return the merchant's statement for the month starting ``start`` (default: the next to close)."""
    merchant = require_statement_reader(actor, merchant_id)
    acc_id = _account_id(merchant_id)
    next_start, _ = next_period(merchant_id)
    start = (start or next_start).replace(day=1)
    end = add_months(start)
    period = db.session.scalar(
        select(SettlementPeriod).where(
            SettlementPeriod.merchant_id == merchant_id, SettlementPeriod.period_start == start
        )
    )
    if period is not None:
        membership = Entry.id.in_(select(SettlementLine.entry_id).where(SettlementLine.period_id == period.id))
        opening = period.opening_balance
    elif start < next_start:
        raise NotFound()
    else:
        cutoff_start, cutoff_end = utc_start_of(start), utc_start_of(end)
        open_entries = (Entry.account_id == acc_id) & ~_taken()
        if start == next_start:
            # The next period to close also takes anything earlier that no period took.
            membership = open_entries & (Transfer.created_at < cutoff_end)
            earlier = false()
        else:
            membership = open_entries & (Transfer.created_at >= cutoff_start) & (Transfer.created_at < cutoff_end)
            earlier = open_entries & (Transfer.created_at < cutoff_start)
        last = _last_closed(merchant_id)
        r, c, p = _totals(earlier)
        opening = (last.closing_balance if last else 0) + r + c - p
    table = rate_table(street_of_merchant(merchant))
    # Merchant staff see volunteers' names masked, as at the till; admins over the merchant see them.
    lines = _lines(acc_id, membership, table, full_names=administers(actor, merchant_id))
    # The entries up to this statement's end, as its closing balance counts them.
    earlier_periods = select(SettlementLine.entry_id).join(
        SettlementPeriod, SettlementPeriod.id == SettlementLine.period_id
    ).where(SettlementPeriod.merchant_id == merchant_id, SettlementPeriod.period_start <= start)
    if period is not None:
        as_of = Entry.id.in_(earlier_periods)
    else:
        as_of = _taken() | (Transfer.created_at < utc_start_of(end))
    lots, paid = _lots(acc_id, table, as_of)
    closable = period is None and start == next_start and utc_start_of(end) <= now_utc()
    return Statement(merchant=merchant, start=start, end=end, period=period, closable=closable,
                     opening=opening, lines=lines, closing_fen=unpaid_fen(lots, paid))


def _community_unit():
    """Return (alias of the volunteer's node, alias of its community, the join condition)."""
    node = aliased(OrgUnit)
    community = aliased(OrgUnit)
    rank1 = select(OrgLevel.id).where(OrgLevel.rank == 1).scalar_subquery()
    return node, community, (community.level_id == rank1) & node.path.startswith(community.path)


def _lines(account_id: int, membership, table: list[tuple[date, int]], *, full_names: bool) -> list[StatementLine]:
    node, community, in_community = _community_unit()
    volunteer = aliased(User)
    original = aliased(Transfer)
    rows = db.session.execute(
        select(
            Transfer.created_at, Transfer.kind, Entry.amount, Transfer.voucher_id, Reward.name,
            volunteer.full_name, community.name, SettlementPayment.reference, SettlementPayment.paid_on,
            SettlementPayment.fen, original.created_at,
        )
        .select_from(Entry)
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .outerjoin(original, original.id == Transfer.reverses_id)
        .outerjoin(Voucher, Voucher.id == Transfer.voucher_id)
        .outerjoin(Reward, Reward.id == Voucher.reward_id)
        .outerjoin(volunteer, volunteer.id == Voucher.volunteer_id)
        .outerjoin(node, node.id == volunteer.org_unit_id)
        .outerjoin(community, in_community)
        .outerjoin(SettlementPayment, SettlementPayment.transfer_id == Transfer.id)
        .where(Entry.account_id == account_id, membership)
        .order_by(Transfer.created_at, Entry.id)
    ).all()
    out = []
    for when, kind, amount, voucher_id, reward, vol, comm, ref, paid_on, pay_fen, original_when in rows:
        if kind == TRANSFER_SETTLEMENT:
            fen = -pay_fen
        else:
            # A correction takes back points at the rate of the redemption it corrects.
            fen = amount * rate_on(to_local(original_when or when).date(), table)
        if vol is not None and not full_names:
            vol = mask_name(vol)
        out.append(StatementLine(to_local(when), kind, amount, fen, voucher_id, reward, vol, comm, ref, paid_on))
    return out


def statement_months(actor: User, merchant_id: int) -> list[date]:
    """Return the months the merchant has statements for, newest first: open ones, then closed."""
    require_statement_reader(actor, merchant_id)
    next_start, _ = next_period(merchant_id)
    this_month = local_today().replace(day=1)
    months = []
    m = max(next_start, this_month)
    while m >= next_start:
        months.append(m)
        m = add_months(m, -1)
    months.extend(p.period_start for p in closed_periods(merchant_id))
    return months


def owed(merchant_id: int) -> int:
    """Return the points the street owes the merchant now."""
    return db.session.scalar(select(Account.balance).where(Account.merchant_id == merchant_id)) or 0


def administered_street(actor: User) -> OrgUnit | None:
    """Return the street (a root of the tree) ``actor`` is street admin of (the lowest id, when several)."""
    for grant in sorted(actor.grants(ROLE_STREET_ADMIN), key=lambda g: g.org_unit_id or 0):
        if grant.org_unit is not None and grant.org_unit.parent_id is None:
            return grant.org_unit
    return None


def visible_merchants(actor: User) -> list[Merchant]:
    """Return the merchants whose statements ``actor`` may read: their own as cashier, those they administer."""
    ids = set(merchant_ids_for_staff(actor))
    ids |= set(db.session.scalars(managed_merchants_query(actor).with_only_columns(Merchant.id)))
    return list(db.session.scalars(select(Merchant).where(Merchant.id.in_(ids)).order_by(Merchant.id)))
