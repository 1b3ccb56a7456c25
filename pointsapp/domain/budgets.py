"""Budgets: the money behind the points, and the liability the points are.

Funding
    The money set aside for the points of a street or a community is recorded by the level above
    it (``BudgetFunding``: yuan stored as fen, a source, a date, a note): a street admin funds
    the street's communities, and the street itself, the top of the tree. No admin funds the
    budget they spend from (a community admin cannot fund their own community): separate duties,
    as an auditor expects. Records are never edited: a correction is a negative record with a
    reason. The first record of a unit creates its ``Budget`` row.

Capacity
    A budget's capacity in points is ``funded_fen // fen_per_point`` at the street's current
    rate (``PointsRate``, the rate the settlement pages set), so a rate change changes it.

Which budget a credit draws on
    The nearest unit at or above the volunteer's unit that has a budget (any funding record);
    none: crediting is unlimited (budgets are optional). A community's budget running out does
    not fall back to the street's.

Charging (the hook in ``ledger._transfer``: ``on_transfer``)
    * a credit charges its volunteer's budget with one conditional UPDATE of the budget row,
      ``used + n <= funded_fen // rate`` computed in SQL, and a ``BudgetCharge`` row records
      which budget paid; when no row comes back, ``BudgetExhausted`` is raised (the caller rolls
      back: nothing is written);
    * points leaving a volunteer for good (``FREEING_KINDS``: expiry, deductions) give back to
      the budget that paid for each lot they are taken from (the lot's credit's charge), one
      ``BudgetCharge`` row per budget: a volunteer moved to another community frees the budget
      that paid for their points, not their new one, and points no budget paid for (credited
      before it existed) free nothing;
    * a credit's reversal gives back to the budget that paid for the credit what it still pays
      for it (the charge, less what deductions from its lot gave back); what the reversal takes
      from other lots (for points of the credit already spent) stays charged;
    * a deduction's reversal draws again on the budgets it gave back to (its points go back to
      the same lots); a capture (and its reversal) charges nothing: spent points stay paid for.
    Budget given back is never more than the budget has used (a guard for books written before
    points were given back lot by lot).
    The budget row is locked after the accounts of the transfer (people's, then the street's
    issuance account), as the global lock order of ``pointsapp.domain.ledger`` says for
    street-level rows. Invariants (``check_budgets``, part of ``check_ledger``): a budget's
    ``funded_fen`` is the sum of its funding records and ``used`` the sum of its charges.

Liability
    ``liability(unit)`` gives, for the volunteers of a subtree: points issued (credits less their
    reversals), redeemed (captures less theirs), expired, deducted, held by volunteers, owed to
    merchants for their redemptions (each merchant's payments retire its oldest unreversed
    captures first, as in settlement) and paid; in points and in yuan. Redeemed, owed and paid
    are in yuan as settlement values them (each redemption at the rate of its local day); the
    rest, not yet redeemed, at the current rate.
    issued = redeemed + held + expired + deducted, and redeemed = paid + owed, per subtree.
    Volunteers count where they belong now (their whole history moves with them).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from sqlalchemy import Date, Integer, String, and_, bindparam, case, cast, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ..database import among, dialect, expire_loaded, insert_rows
from ..extensions import db
from ..models import (
    Account,
    Budget,
    BudgetCharge,
    BudgetFunding,
    Entry,
    LotUse,
    OrgLevel,
    OrgUnit,
    PointLot,
    PointsRate,
    Transfer,
    User,
)
from ..models.budgets import FUNDING_SOURCES, MAX_FUNDING_FEN
from ..models.ledger import (
    ACCOUNT_MERCHANT,
    ACCOUNT_VOLUNTEER,
    TRANSFER_CAPTURE,
    TRANSFER_CREDIT,
    TRANSFER_DEDUCTION,
    TRANSFER_EXPIRY,
    TRANSFER_REVERSAL,
    TRANSFER_SETTLEMENT,
)
from ..models.org import root_id_of
from ..models.settlement import DEFAULT_FEN_PER_POINT
from ..models.user import ADMIN_ROLES
from . import audit
from .access import ancestor_paths, require_in_scope, scope_paths
from .clock import local_today, utc_start_of
from .errors import AlreadyRecorded, BudgetExhausted, Forbidden, FundingFromAbove, InvalidInput, NotFound

budget_t = Budget.__table__

# Transfer kinds that take points from a volunteer for good and so give budget back.
FREEING_KINDS: tuple[str, ...] = (TRANSFER_EXPIRY, TRANSFER_DEDUCTION)
FIRST_FUNDING_DAY = date(2000, 1, 1)


# -- which budget ---------------------------------------------------------------------------------

def budget_of_unit(unit: OrgUnit) -> Budget | None:
    """Return the budget a volunteer placed at ``unit`` draws on: the nearest funded unit at or above."""
    return budgets_of_units([unit])[unit.id]


def budgets_of_units(units) -> dict[int, Budget | None]:
    """``budget_of_unit`` for many units in one query: unit id -> its budget (or None)."""
    chains = {u.id: [int(p.strip("/").split("/")[-1]) for p in reversed(ancestor_paths(u))] for u in units}
    above = {i for chain in chains.values() for i in chain}
    found = {b.org_unit_id: b for b in db.session.scalars(_budgets_at(dialect()), {"ids": sorted(above)})} if above else {}
    return {uid: next((found[i] for i in chain if i in found), None) for uid, chain in chains.items()}


def current_rate(street_id: int, today: date | None = None) -> int:
    """Return the fen one point is worth today in the street."""
    return db.session.scalar(_rate_select(street_id, today or local_today())) or DEFAULT_FEN_PER_POINT


def _rate_select(street_id: int, today: date):
    return (
        select(PointsRate.fen_per_point)
        .where(PointsRate.org_unit_id == street_id, PointsRate.effective_from <= today)
        .order_by(PointsRate.effective_from.desc())
        .limit(1)
    )


def _capacity_sql(street_id: int, today: date):
    """SQL: the budget row's capacity in points at the street's rate of ``today``."""
    return budget_t.c.funded_fen // func.coalesce(_rate_select(street_id, today).scalar_subquery(), DEFAULT_FEN_PER_POINT)


# -- the hook in the ledger -------------------------------------------------------------------------

def on_transfer(t: Transfer) -> None:
    """Charge or give back budget for a transfer just written (called by ``ledger._transfer``).

    Raise ``BudgetExhausted`` when a credit does not fit; the caller must roll back."""
    if t.kind == TRANSFER_CREDIT:
        if dialect() == "postgresql":
            row = db.session.execute(
                _charge_credit_pg(),
                {"account_id": t.to_account_id, "points": t.amount, "transfer_id": t.id, "today": local_today()},
            ).first()
            if row is None:
                return  # no budget above the volunteer
            if row.charged is not None:
                expire_loaded(Budget, row.id, "used")
                return
            # It does not fit: the statements below find the budget again and say by how much.
        found = db.session.execute(_budget_of_account(), {"account_id": t.to_account_id}).first()
        if found is not None:
            _charge(found[0], t.amount, t.id, street_id=root_id_of(found[1]))
    elif t.kind in FREEING_KINDS:
        # Points leaving a volunteer for good: each lot they came from gives back to the budget
        # that paid for it.
        for budget_id, points in db.session.execute(_paid_for_by(), {"transfer_id": t.id}).all():
            _give_back(db.session.get(Budget, budget_id), int(points), t.id)
    elif t.kind == TRANSFER_REVERSAL and _reverses_kind(t) == TRANSFER_CREDIT:
        # A credit undone: the budget that paid for it gets back what it still pays for it (its
        # charge, less what points deducted from its lot gave back already). Points the reversal
        # takes from other lots, in place of this credit's points spent at a shop or deducted,
        # stay charged to their budgets: spent points stay paid for, and a budget never gets back
        # more than it certainly paid.
        for budget_id, points in db.session.execute(_credit_still_charged(), {"credit_id": t.reverses_id}).all():
            if points > 0:
                _give_back(db.session.get(Budget, budget_id), int(points), t.id)
    elif t.kind == TRANSFER_REVERSAL:
        # Undoing a deduction draws again on the budgets it gave back to (its points go back to
        # the same lots); a capture's reversal charged and gave back nothing.
        for charged in db.session.scalars(select(BudgetCharge).where(BudgetCharge.transfer_id == t.reverses_id)
                                          .order_by(BudgetCharge.budget_id)).all():
            budget = db.session.get(Budget, charged.budget_id)
            if charged.points < 0:
                _charge(budget, -charged.points, t.id)


@lru_cache(maxsize=None)
def _credit_still_charged():
    """The budget that paid for credit ``credit_id`` and what it still pays for it: the charge
    less the points deductions and expiries took from the credit's lot (net of reversed
    deductions, which gave them back)."""
    lot_t, use_t, charge_t = PointLot.__table__, LotUse.__table__, BudgetCharge.__table__
    taken_by, reversed_ = aliased(Transfer), aliased(Transfer)
    freed = (
        select(func.coalesce(func.sum(use_t.c.amount), 0))
        .select_from(use_t)
        .join(lot_t, lot_t.c.id == use_t.c.lot_id)
        .join(taken_by, taken_by.id == use_t.c.transfer_id)
        .outerjoin(reversed_, reversed_.id == taken_by.reverses_id)
        .where(lot_t.c.transfer_id == bindparam("credit_id"),
               or_(taken_by.kind.in_(FREEING_KINDS),
                   and_(taken_by.kind == TRANSFER_REVERSAL, reversed_.kind.in_(FREEING_KINDS))))
        .scalar_subquery()
    )
    return select(charge_t.c.budget_id, charge_t.c.points - freed).where(
        charge_t.c.transfer_id == bindparam("credit_id"), charge_t.c.points > 0)


def lock_paying_budgets(lot_ids: list[int]) -> None:
    """Lock, in id order, the budget rows that paid for the lots ``lot_ids`` (PostgreSQL; on
    SQLite the write transaction is the lock)."""
    if not lot_ids or dialect() != "postgresql":
        return
    db.session.execute(_paying_budgets_lock(), {"ids": sorted(lot_ids)}).all()


@lru_cache(maxsize=None)
def _paying_budgets_lock():
    lot_t, charge_t = PointLot.__table__, BudgetCharge.__table__
    paying = (
        select(charge_t.c.budget_id)
        .join(lot_t, and_(lot_t.c.transfer_id == charge_t.c.transfer_id, charge_t.c.points > 0))
        .where(among(lot_t.c.id, "ids", "postgresql"))
    )
    return select(budget_t.c.id).where(budget_t.c.id.in_(paying)).order_by(budget_t.c.id).with_for_update()


def _reverses_kind(t: Transfer) -> str | None:
    return db.session.scalar(select(Transfer.kind).where(Transfer.id == t.reverses_id))


@lru_cache(maxsize=None)
def _paid_for_by():
    """The budgets that paid for the points transfer ``transfer_id`` took from a volunteer's
    lots, with how many of them each: a lot was paid for by its credit's charge (or by the
    charge of the reversal that made it). Points of lots no budget paid for are left out.
    Budgets in id order (the order their rows are locked in)."""
    lot_t, use_t, charge_t = PointLot.__table__, LotUse.__table__, BudgetCharge.__table__
    return (
        select(charge_t.c.budget_id, func.sum(use_t.c.amount))
        .select_from(use_t)
        .join(lot_t, lot_t.c.id == use_t.c.lot_id)
        .join(charge_t, and_(charge_t.c.transfer_id == lot_t.c.transfer_id, charge_t.c.points > 0))
        .where(use_t.c.transfer_id == bindparam("transfer_id"), use_t.c.amount > 0)
        .group_by(charge_t.c.budget_id)
        .order_by(charge_t.c.budget_id)
    )


@lru_cache(maxsize=None)
def _budget_of_account():
    """The budget a volunteer's account draws on (``budget_of_unit`` of the volunteer's unit) and
    the volunteer's node path, in one statement: of the budgets at the volunteer's unit or above
    it, the deepest. It reads budget rows (one per funded unit), never the org tree."""
    volunteer_path = (
        select(OrgUnit.path)
        .join(User, User.org_unit_id == OrgUnit.id)
        .join(Account, Account.user_id == User.id)
        .where(Account.id == bindparam("account_id"), Account.kind == ACCOUNT_VOLUNTEER)
        .scalar_subquery()
    )
    depth = select(func.length(OrgUnit.path)).where(OrgUnit.id == Budget.org_unit_id).scalar_subquery()
    return (
        select(Budget, volunteer_path.label("volunteer_path"))
        # A unit is above the volunteer (or is theirs) when its id is a step of their path
        # ("/1/5/7/"): a condition on the budget row alone.
        .where(volunteer_path.contains("/" + cast(Budget.org_unit_id, String) + "/"))
        .order_by(depth.desc())
        .limit(1)
    )


@lru_cache(maxsize=None)
def _charge_credit_pg():
    """PostgreSQL: charge a credit to the budget its volunteer draws on, in one statement: find
    the budget (``_budget_of_account``), raise its ``used`` if the points fit (as ``_draw_update``,
    at the rate of the volunteer's street) and record the charge. One row (the budget's id, and
    the budget charged or NULL when the points do not fit), or none when no budget applies."""
    found = _budget_of_account().cte("found")
    points = bindparam("points", type_=budget_t.c.used.type)
    street = cast(func.split_part(found.c.volunteer_path, "/", 2), Integer)  # models.org.root_id_of
    drawn = (
        update(budget_t)
        .where(budget_t.c.id == found.c.id,
               budget_t.c.used + points <= _capacity_sql(street, bindparam("today", type_=Date)))
        .values(used=budget_t.c.used + points)
        .returning(budget_t.c.id)
        .cte("drawn")
    )
    charge_t = BudgetCharge.__table__
    charged = (
        insert(charge_t)
        .from_select(["transfer_id", "budget_id", "points"],
                     select(bindparam("transfer_id", type_=charge_t.c.transfer_id.type), drawn.c.id, points))
        .returning(charge_t.c.budget_id)
        .cte("charged")
    )
    return select(found.c.id, select(charged.c.budget_id).scalar_subquery().label("charged"))


@lru_cache(maxsize=None)
def _budget_charge_insert():
    return insert(BudgetCharge.__table__)


@lru_cache(maxsize=None)
def _draw_update():
    """Raise a budget's ``used`` by ``points`` if it stays within its capacity at the rate of ``today``."""
    points = bindparam("points", type_=budget_t.c.used.type)
    return (
        update(budget_t)
        .where(budget_t.c.id == bindparam("budget_id"),
               budget_t.c.used + points <= _capacity_sql(bindparam("root_id"), bindparam("today", type_=Date)))
        .values(used=budget_t.c.used + points)
        .returning(budget_t.c.used)
    )


def _expire(budget: Budget) -> None:
    """Forget the loaded ``used`` after a Core UPDATE changed it (only that column changed)."""
    db.session.expire(budget, ["used"])


def _charge(budget: Budget, points: int, transfer_id: int, street_id: int | None = None) -> None:
    budget_id = budget.id  # read before _draw expires the object (reading it after would reload it)
    _draw(budget, points, local_today(), street_id)
    db.session.execute(_budget_charge_insert(), {"transfer_id": transfer_id, "budget_id": budget_id, "points": points})


def _draw(budget: Budget, points: int, today: date, street_id: int | None = None) -> None:
    """Raise the budget's ``used`` by ``points`` in one conditional UPDATE, or raise ``BudgetExhausted``.

    ``street_id``: the street the budget's unit is in (its rate applies), when the caller knows it."""
    if street_id is None:
        street_id = budget.org_unit.root_id
    used = db.session.execute(
        _draw_update(), {"budget_id": budget.id, "points": points, "root_id": street_id, "today": today}
    ).scalar()
    _expire(budget)
    if used is None:
        unit = budget.org_unit
        state = status(budget, today)
        raise BudgetExhausted(unit=unit.name, used=state.used, capacity=state.capacity, needed=points,
                              left=max(0, state.remaining), budget_id=budget.id)


def charge_credits(charges: list[tuple[int, int, int]]) -> None:
    """Charge the budgets behind many credits just written by ``ledger.credit_many``, given as
    (transfer id, volunteer account id, points): one conditional UPDATE per budget for its whole
    share, budgets in id order (after the accounts' locks, as ``on_transfer``). ``BudgetExhausted``
    names the first budget that cannot cover its share, with that share as ``needed``; the caller
    rolls back, so nothing is charged."""
    if not charges:
        return
    unit_of = dict(db.session.execute(_units_of_accounts(dialect()), {"ids": sorted({acc for _, acc, _ in charges})}).all())
    units = db.session.scalars(_units_among(dialect()), {"ids": sorted({u for u in unit_of.values() if u is not None})})
    budget_at = budgets_of_units(units)
    shares: dict[int, list[tuple[int, int]]] = {}
    by_id: dict[int, Budget] = {}
    for tid, acc, points in charges:
        budget = budget_at.get(unit_of.get(acc))
        if budget is not None:
            by_id[budget.id] = budget
            shares.setdefault(budget.id, []).append((tid, points))
    today = local_today()
    for budget_id in sorted(shares):
        _draw(by_id[budget_id], sum(points for _, points in shares[budget_id]), today)
    rows = [{"transfer_id": tid, "budget_id": bid, "points": p} for bid in sorted(shares) for tid, p in shares[bid]]
    insert_rows(BudgetCharge.__table__, rows)


@lru_cache(maxsize=None)
def _budgets_at(dialect_name: str):
    return select(Budget).where(among(Budget.org_unit_id, "ids", dialect_name))


@lru_cache(maxsize=None)
def _units_among(dialect_name: str):
    return select(OrgUnit).where(among(OrgUnit.id, "ids", dialect_name))


@lru_cache(maxsize=None)
def _units_of_accounts(dialect_name: str):
    """The org unit of the volunteer owning each of the accounts ``ids``."""
    return select(Account.id, User.org_unit_id).join(User, User.id == Account.user_id).where(
        among(Account.id, "ids", dialect_name)
    )


def _give_back(budget: Budget, points: int, transfer_id: int) -> None:
    """Lower ``used`` by ``points``, or by as much of it as is used."""
    # Under the row's lock: never free more than is used. Points are given back to the budget
    # that paid for their lot, so this only bites on books from before that was so (points
    # never charged gave back to the volunteer's budget of the day).
    used = db.session.execute(
        select(budget_t.c.used).where(budget_t.c.id == budget.id).with_for_update()
    ).scalar()
    points = min(points, used)
    if points <= 0:
        return
    left = db.session.execute(
        update(budget_t)
        .where(budget_t.c.id == budget.id, budget_t.c.used >= points)
        .values(used=budget_t.c.used - points)
        .returning(budget_t.c.used)
    ).scalar()
    _expire(budget)
    if left is None:
        # A charge to give back that the budget does not hold means the books are already wrong.
        raise RuntimeError(f"budget {budget.id} has used less than {points}")
    db.session.add(BudgetCharge(transfer_id=transfer_id, budget_id=budget.id, points=-points))
    db.session.flush()


# -- state ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BudgetStatus:
    budget_id: int
    funded_fen: int
    fen_per_point: int
    used: int

    @property
    def capacity(self) -> int:
        return self.funded_fen // self.fen_per_point

    @property
    def remaining(self) -> int:
        """Points still creditable; below zero when a correction or a rate change overtook ``used``."""
        return self.capacity - self.used


def status(budget: Budget, today: date | None = None) -> BudgetStatus:
    """Return the budget's funding, capacity and use, read fresh from the database."""
    funded, used = db.session.execute(
        select(budget_t.c.funded_fen, budget_t.c.used).where(budget_t.c.id == budget.id)
    ).one()
    return BudgetStatus(budget.id, int(funded), current_rate(budget.org_unit.root_id, today), int(used))


def fundings(budget: Budget) -> list[BudgetFunding]:
    """Return the budget's funding records, newest first."""
    return list(db.session.scalars(
        select(BudgetFunding).where(BudgetFunding.budget_id == budget.id).order_by(BudgetFunding.id.desc())
    ))


# -- recording funding ------------------------------------------------------------------------------

def money_text(text) -> str:
    """An amount as typed, in plain ASCII: full-width digits and point (１２．５, typed with a
    Chinese input method) become 12.5; anything else stays as it is, for the caller to refuse
    (Python's Decimal would also take "1_000", "1e3" or other scripts' digits)."""
    return unicodedata.normalize("NFKC", str(text if text is not None else "")).strip()


def fen_from_yuan(text) -> int:
    """Parse an amount in yuan ("350000", "-1200.50") into fen, or raise ``InvalidInput``."""
    refusal = InvalidInput(
        "Enter the amount in yuan, not zero, with at most two decimals and at most 10,000,000 either way "
        "(a correction is negative, such as -500).",
        field="amount",
    )
    typed = money_text(text)
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", typed):
        raise refusal
    try:
        value = Decimal(typed)
    except (InvalidOperation, ValueError):
        raise refusal from None
    # Range first: a huge exponent must not reach the arithmetic.
    if not value.is_finite() or value == 0 or value.copy_abs() > Decimal(MAX_FUNDING_FEN) / 100:
        raise refusal
    if value != value.quantize(Decimal("0.01")):
        raise refusal
    return int(value * 100)


def _budget_units(actor: User) -> list[OrgUnit]:
    """Return the streets and communities in the actor's admin subtrees, in tree order."""
    paths = scope_paths(actor, ADMIN_ROLES)
    if not paths:
        return []
    units = db.session.scalars(
        select(OrgUnit).join(OrgLevel, OrgLevel.id == OrgUnit.level_id)
        .where(OrgLevel.rank <= 1, or_(*[_subtree(OrgUnit.path, p) for p in paths]))
    ).all()
    return sorted(units, key=lambda u: [int(p) for p in u.path.strip("/").split("/")])


def funds_from_above(actor: User, unit: OrgUnit) -> bool:
    """Say whether the actor is an admin of a level above ``unit`` (or of the street, the top)."""
    # A grant at the unit itself is the unit's own admin: they spend the budget, so they do not
    # fund it. The street has no level above it: its own admins fund it.
    return any(unit.path.startswith(p) and (unit.path != p or unit.depth == 0)
               for p in scope_paths(actor, ADMIN_ROLES))


def fundable_units(actor: User) -> list[OrgUnit]:
    """Return the streets and communities the actor may record funding for, in tree order: those
    below the nodes they administer, and their street when they administer the street."""
    return [u for u in _budget_units(actor) if funds_from_above(actor, u)]


def record_funding(
    actor: User,
    unit: OrgUnit | None,
    *,
    fen: int,
    source: str,
    funded_on: date,
    note: str | None,
    key: str,
    now: datetime | None = None,
) -> BudgetFunding:
    """Record money for the points of a street or community (negative: a correction, with a reason).

    Only an admin of a level above the unit may (a street admin, for the street too); the unit
    must be a street or a community. ``key`` is the form's one-time key: a double click or a
    retry records nothing twice."""
    if not actor.has_role(*ADMIN_ROLES):
        raise Forbidden()
    if unit is None:
        raise NotFound()
    require_in_scope(actor, unit, ADMIN_ROLES)
    if unit.depth > 1:
        raise InvalidInput("Funding is recorded for a street or a community.", field="org_unit_id")
    if not funds_from_above(actor, unit):
        raise FundingFromAbove(unit=unit.name)
    if not isinstance(fen, int) or isinstance(fen, bool) or fen == 0 or abs(fen) > MAX_FUNDING_FEN:
        raise InvalidInput("Enter an amount other than zero, at most 10,000,000 yuan either way.", field="amount")
    if source not in FUNDING_SOURCES:
        raise InvalidInput("Choose where the money came from.", field="source")
    if not isinstance(funded_on, date) or funded_on > local_today(now) or funded_on < FIRST_FUNDING_DAY:
        raise InvalidInput("Enter the date the money was provided: not in the future, not before 2000.",
                           field="funded_on")
    note = (note or "").strip() or None
    if note is not None and len(note) > 500:
        raise InvalidInput("Keep the note to 500 characters.", field="note")
    if fen < 0 and (note is None or len(note) < 2):
        raise InvalidInput("A correction needs a reason in the note.", field="note")
    key = (key or "").strip()
    if not key or len(key) > 64:
        raise InvalidInput("The form has expired; open it again.")
    if db.session.scalar(select(BudgetFunding.id).where(BudgetFunding.key == key)):
        raise AlreadyRecorded()
    budget = _budget_for_funding(unit)
    funded = db.session.execute(
        update(budget_t)
        .where(budget_t.c.id == budget.id, budget_t.c.funded_fen + fen >= 0)
        .values(funded_fen=budget_t.c.funded_fen + fen)
        .returning(budget_t.c.funded_fen)
    ).scalar()
    _expire(budget)
    if funded is None:
        raise InvalidInput(
            "A correction cannot take away more than was funded (%(yuan)s yuan).", field="amount",
            yuan=_yuan(db.session.get(Budget, budget.id).funded_fen),
        )
    record = BudgetFunding(
        budget_id=budget.id, fen=fen, source=source, funded_on=funded_on, note=note, key=key,
        created_by_id=actor.id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        raise AlreadyRecorded() from None
    audit.record(
        actor, audit.BUDGET_FUNDED, "budget_funding", record.id,
        {"org_unit_id": unit.id, "fen": fen, "source": source, "funded_on": funded_on.isoformat(),
         "note": note, "funded_fen_after": int(funded)},
        org_path=unit.path, now=now,
    )
    return record


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _budget_for_funding(unit: OrgUnit) -> Budget:
    """Return the unit's budget row, creating it on the first funding (two at once: one wins)."""
    budget = db.session.scalar(select(Budget).where(Budget.org_unit_id == unit.id))
    if budget is None:
        try:
            with db.session.begin_nested():
                budget = Budget(org_unit_id=unit.id, funded_fen=0, used=0)
                db.session.add(budget)
        except IntegrityError:
            budget = db.session.scalar(select(Budget).where(Budget.org_unit_id == unit.id))
    return budget


# -- the liability view -----------------------------------------------------------------------------

@dataclass
class Liability:
    unit: OrgUnit
    fen_per_point: int
    issued: int  # credits less their reversals
    redeemed: int  # captures less their reversals
    expired: int
    deducted: int
    held: int  # volunteers' balances
    owed: int  # redeemed, not yet paid to merchants
    budget: BudgetStatus | None
    # Redemptions in fen as settlement values them: each at the rate of its own day.
    redeemed_fen: int = 0
    owed_fen: int = 0

    @property
    def paid(self) -> int:
        return self.redeemed - self.owed

    @property
    def paid_fen(self) -> int:
        return self.redeemed_fen - self.owed_fen

    @property
    def outstanding(self) -> int:
        return self.held + self.owed

    @property
    def outstanding_fen(self) -> int:
        return self.fen(self.held) + self.owed_fen

    def fen(self, points: int) -> int:
        """``points`` in fen at today's rate (points not yet redeemed have no other value)."""
        return points * self.fen_per_point

    def figures(self) -> list[tuple[str, int, int | None]]:
        """Each figure as (name, points, fen): redemptions and what was paid and is owed for them
        at their own days' rates, the points volunteers hold at today's (what they would cost if
        redeemed now), and outstanding as the two together. Points issued, expired and deducted
        have no yuan: valued at one rate they would not add up with the parts valued at others."""
        return [
            ("issued", self.issued, None),
            ("redeemed", self.redeemed, self.redeemed_fen),
            ("expired", self.expired, None),
            ("deducted", self.deducted, None),
            ("held", self.held, self.fen(self.held)),
            ("owed", self.owed, self.owed_fen),
            ("outstanding", self.outstanding, self.outstanding_fen),
            ("paid", self.paid, self.paid_fen),
        ]


def _subtree(path_col, unit_or_path):
    path = unit_or_path if isinstance(unit_or_path, str) else unit_or_path.path
    return path_col.startswith(path, autoescape=True)


def liability(unit: OrgUnit, today: date | None = None) -> Liability:
    """Return the figures of the volunteers of ``unit``'s subtree (see the module's docstring)."""
    s = db.session
    original = aliased(Transfer)
    kind = func.coalesce(original.kind, Transfer.kind)
    by_kind = {
        k: int(v)
        for k, v in s.execute(
            select(kind, func.coalesce(func.sum(Entry.amount), 0))
            .select_from(Entry)
            .join(Transfer, Transfer.id == Entry.transfer_id)
            .outerjoin(original, original.id == Transfer.reverses_id)
            .join(Account, Account.id == Entry.account_id)
            .join(User, User.id == Account.user_id)
            .join(OrgUnit, OrgUnit.id == User.org_unit_id)
            .where(Account.kind == ACCOUNT_VOLUNTEER, _subtree(OrgUnit.path, unit))
            .group_by(kind)
        )
    }
    held = s.scalar(
        select(func.coalesce(func.sum(Account.balance), 0))
        .join(User, User.id == Account.user_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(Account.kind == ACCOUNT_VOLUNTEER, _subtree(OrgUnit.path, unit))
    )
    budget = s.scalar(select(Budget).where(Budget.org_unit_id == unit.id))
    rate = _rate_at(unit.root_id)
    owed, owed_fen, redeemed_fen = _owed_for(unit, rate)
    return Liability(
        unit=unit,
        fen_per_point=current_rate(unit.root_id, today),
        issued=by_kind.get(TRANSFER_CREDIT, 0),
        redeemed=-by_kind.get(TRANSFER_CAPTURE, 0),
        expired=-by_kind.get(TRANSFER_EXPIRY, 0),
        deducted=-by_kind.get(TRANSFER_DEDUCTION, 0),
        held=int(held),
        owed=owed,
        budget=status(budget, today) if budget is not None else None,
        redeemed_fen=redeemed_fen,
        owed_fen=owed_fen,
    )


def _rate_at(street_id: int):
    """Return a function giving, for a column of moments, SQL for the fen a point was worth at
    each: the street's rate of that local day (``settlement.rate_on``), as settlement values a
    redemption. Each rate takes effect at its day's local midnight."""
    from .settlement import rate_table

    table = rate_table(street_id)

    def at(moment_col):
        if not table:
            return literal(DEFAULT_FEN_PER_POINT)
        whens = [(moment_col < utc_start_of(table[0][0]), DEFAULT_FEN_PER_POINT)]
        whens += [(moment_col < utc_start_of(nxt[0]), fen) for (_, fen), nxt in zip(table, table[1:])]
        return case(*whens, else_=table[-1][1])

    return at


def _owed_for(unit: OrgUnit, rate_at) -> tuple[int, int, int]:
    """The points the subtree's volunteers redeemed that the street has not yet paid merchants
    for, the same in fen, and all their redemptions in fen (each at its day's rate).

    Each merchant's payments retire its oldest unreversed captures first (ledger order), as in
    ``pointsapp.domain.settlement``; a capture's unpaid part is what its merchant's payments have
    not reached. A reversed capture counts for nothing (its reversal takes back the same points
    at the same rate)."""
    reversed_ids = select(Transfer.reverses_id).where(Transfer.reverses_id.is_not(None))
    captures = (
        select(
            Transfer.amount.label("amount"),
            Transfer.from_account_id.label("from_id"),
            Transfer.to_account_id.label("to_id"),
            rate_at(Transfer.created_at).label("fen_per_point"),
            func.sum(Transfer.amount).over(partition_by=Transfer.to_account_id, order_by=Transfer.id).label("upto"),
        )
        .where(Transfer.kind == TRANSFER_CAPTURE, Transfer.id.not_in(reversed_ids))
        .subquery()
    )
    paid = (
        select(Transfer.from_account_id.label("acc"), func.sum(Transfer.amount).label("points"))
        .where(Transfer.kind == TRANSFER_SETTLEMENT)
        .group_by(Transfer.from_account_id)
        .subquery()
    )
    p = func.coalesce(paid.c.points, 0)
    unpaid = case(
        (captures.c.upto <= p, 0),
        (captures.c.upto - captures.c.amount >= p, captures.c.amount),
        else_=captures.c.upto - p,
    )
    owed, owed_fen, redeemed_fen = db.session.execute(
        select(func.coalesce(func.sum(unpaid), 0), func.coalesce(func.sum(unpaid * captures.c.fen_per_point), 0),
               func.coalesce(func.sum(captures.c.amount * captures.c.fen_per_point), 0))
        .select_from(captures)
        .outerjoin(paid, paid.c.acc == captures.c.to_id)
        .join(Account, Account.id == captures.c.from_id)
        .join(User, User.id == Account.user_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(_subtree(OrgUnit.path, unit))
    ).one()
    return int(owed), int(owed_fen), int(redeemed_fen)


def liability_units(actor: User) -> list[OrgUnit]:
    """Return the units of the liability view: the actor's streets and communities, and every
    funded unit in the actor's subtrees, in tree order."""
    paths = scope_paths(actor, ADMIN_ROLES)
    if not paths:
        return []
    funded = set(db.session.scalars(select(Budget.org_unit_id)))
    return [u for u in _budget_units(actor)
            if u.id in funded or any(u.path == p for p in paths) or u.depth == 0]


def liabilities(actor: User, today: date | None = None) -> list[Liability]:
    """Return the liability view's rows for the actor (an admin)."""
    if not actor.has_role(*ADMIN_ROLES):
        raise Forbidden()
    return [liability(u, today) for u in liability_units(actor)]


def merchant_balances(street: OrgUnit) -> int:
    """Return the points the street's merchants are owed, from their accounts (a cross-check)."""
    from ..models import Merchant

    return int(db.session.scalar(
        select(func.coalesce(func.sum(Account.balance), 0))
        .join(Merchant, Merchant.id == Account.merchant_id)
        .join(OrgUnit, OrgUnit.id == Merchant.org_unit_id)
        .where(Account.kind == ACCOUNT_MERCHANT, _subtree(OrgUnit.path, street))
    ))


# -- invariants -------------------------------------------------------------------------------------

def check_budgets() -> list[str]:
    """Each budget's funding equals its records and its use its charges; one charge per transfer
    at most, credits charge, reversals undo their original's charge on the same budget."""
    problems: list[str] = []
    s = db.session
    funded = dict(s.execute(
        select(BudgetFunding.budget_id, func.sum(BudgetFunding.fen)).group_by(BudgetFunding.budget_id)
    ).all())
    charged = dict(s.execute(
        select(BudgetCharge.budget_id, func.sum(BudgetCharge.points)).group_by(BudgetCharge.budget_id)
    ).all())
    for b in s.scalars(select(Budget).order_by(Budget.id)):
        if b.funded_fen != int(funded.get(b.id, 0)):
            problems.append(f"budget {b.id}: funded {b.funded_fen} fen but its records sum to {funded.get(b.id, 0)}")
        if b.used != int(charged.get(b.id, 0)):
            problems.append(f"budget {b.id}: used {b.used} but its charges sum to {charged.get(b.id, 0)}")
    original = aliased(BudgetCharge)
    reversed_t = aliased(Transfer)
    given_back: dict[int, int] = {}
    for tid, kind, amount, points, budget_id, reversed_kind, orig_points in s.execute(
        select(Transfer.id, Transfer.kind, Transfer.amount, BudgetCharge.points, BudgetCharge.budget_id,
               reversed_t.kind, original.points)
        .join(BudgetCharge, BudgetCharge.transfer_id == Transfer.id)
        .outerjoin(reversed_t, reversed_t.id == Transfer.reverses_id)
        .outerjoin(original, and_(original.transfer_id == Transfer.reverses_id, original.budget_id == BudgetCharge.budget_id))
    ):
        freeing = kind in FREEING_KINDS or (kind == TRANSFER_REVERSAL and reversed_kind == TRANSFER_CREDIT)
        if kind == TRANSFER_CREDIT and points != amount:
            problems.append(f"transfer {tid}: a credit charged {points}, not its amount")
        elif freeing:
            # Given back to the budgets that paid for the lots taken: never a charge, never more
            # than the points that left.
            given_back[tid] = given_back.get(tid, 0) - points
            if points > 0 or given_back[tid] > amount:
                problems.append(f"transfer {tid}: a {kind} gave back {given_back[tid]} for {amount} points")
        elif kind == TRANSFER_REVERSAL and reversed_kind == TRANSFER_DEDUCTION and orig_points != -points:
            problems.append(f"transfer {tid}: a reversal's charge {points} does not undo its original's")
        elif kind not in (TRANSFER_CREDIT, TRANSFER_REVERSAL, *FREEING_KINDS) or (
                kind == TRANSFER_REVERSAL and reversed_kind not in (TRANSFER_CREDIT, TRANSFER_DEDUCTION)):
            problems.append(f"transfer {tid}: a {kind} transfer charged a budget")
    return problems
