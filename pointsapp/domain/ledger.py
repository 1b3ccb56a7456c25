"""The points ledger.

Design overview
===============
Points are money-like: the street reimburses merchants for every point they take. The ledger
is therefore double-entry and append-only.

Accounts
    ``issuance``  one per street: where points come from and where paid-for points return.
                  Its balance is minus the points outstanding (issued, net of reversals, less
                  those the street has paid merchants for), so it is the only account allowed
                  to go below zero.
    ``volunteer`` one per volunteer. ``balance`` is what they own; ``held`` is the part reserved
                  for unredeemed vouchers; ``available = balance - held``; ``earned`` is the
                  lifetime total credited (honours rank on it; spending never lowers it).
    ``merchant``  one per merchant: points taken at the till, owed back by the street.
    ``expiry``    one per street: where points go when they expire. Its balance is the points
                  that expired, owed to no one: the street's outstanding liability is
                  ``-issuance.balance - expiry.balance`` (``expired_total``).

Settlement
    When the street pays a merchant, a ``settlement`` transfer moves the paid points from the
    merchant's account back to the street's ``issuance`` account: paid points are retired, as if
    never issued. We chose this over a separate "paid" account because a point's life then ends
    where it began, the sum-to-zero invariant needs nothing new, and ``-issuance.balance`` is the
    street's outstanding liability (points held by volunteers plus points owed to merchants),
    the figure the street reports upward. Points issued ever are the credit transfers less their
    reversals; points paid are the settlement transfers. A settlement cannot be reversed: each
    one is tied to a ``SettlementPayment`` record (``pointsapp.domain.settlement``), and a payment
    recorded in error is corrected by the merchant's next period, not by rewriting this one.
    Payments retire a merchant's points first in, first out (in the order captures were
    recorded); a capture that payments have reached cannot be reversed either: the street paid
    for it at its value, so that correction too belongs in the merchant's next settlement.
    The conditional debit (``balance >= amount``) is what refuses a payment larger than what is
    owed, under the same lock order as every other transfer.

Transfers and entries
    Every movement is one ``Transfer`` row (amount > 0, a reason a person can read, a link to
    what caused it) and two ``Entry`` rows, one per account, signed, summing to zero, each with
    the account's balance after it. Nothing is ever updated or deleted: the database refuses
    UPDATE and DELETE on both tables (triggers, see the first migration). A mistake is undone by
    a *reversal*, a new transfer in the other direction that names the one it reverses; a
    transfer can be reversed once.

    ``Transfer.cause_key`` is unique (``activity:17``, ``voucher:9:capture``, ``reverse:42``):
    whatever is clicked twice or retried, the same cause cannot move points twice.

Lots and expiry
    Each credit is a *lot* (``PointLot``): its amount, what remains of it, the day it was earned
    (the activity's date) and its last day (``expires_on``: from the rule version's policy -
    never, N months after, or 31 December of the next year). A volunteer's lots always hold
    exactly their balance. Every debit of a volunteer account inside ``_transfer`` (capture,
    deduction, expiry, credit reversal) takes from the lots earliest-expiring first (never
    last, ties by lot id), recording each take as a ``LotUse``; the reversal of a debit gives the
    points back to the lots it took them from, and a credit reversal takes from its own lot
    first. The lot rows are read and changed under the volunteer account's lock, which every
    such transfer already holds: one INSERT per credit, one SELECT of the open lots, one UPDATE
    and one INSERT per debit.

    ``flask points expire`` (daily) moves, one ``expiry`` transfer per lot, what remains of each
    lot past its last day to the street's expiry account. It works one volunteer account at a
    time under its lock; the cause key ``expiry:<lot>:<n>`` (n: the lot's n-th expiry) makes a
    second run, or a concurrent one, find nothing left to do. Expired points are not given back:
    an ``expiry`` cannot be reversed (credit the volunteer again if one was wrong).

    Points past their last day are not spent while they wait for the job: issuing a voucher,
    applying a deduction and reversing a credit first expire them (``expire_due``), under the
    same lock. A credit whose own points are among them is then refused like one whose points
    have expired (a deduction takes back what is left of it).

    Holds and expiry: a voucher was issued against points that were valid then, so its hold
    reserves particular points (``reserve``): the earliest-expiring ones no other open voucher
    reserves, in their lots (``PointLot.reserved``, and one ``VoucherLot`` row per lot). Expiry
    takes only a lot's unreserved points; deductions and reversals take only unreserved points
    (a credit reversal first moves what vouchers reserve in its own lot to other valid points);
    the capture takes exactly the voucher's reserved points, whenever the cashier confirms. If
    the voucher is cancelled or expires instead, its points are free again (``unreserve``), and
    those past their last day expire before anything else can spend them. Likewise points given
    back by a reversal to a lot already past its last day expire at the next run: a correction
    restores what was taken, not a longer life.

Deductions
    A deduction rule (``PointRuleVersion.kind = 'deduct'``) applied by staff moves at most the
    volunteer's available points (never below zero, never held points) to the street's issuance
    account: the points are retired, as if never issued. ``earned`` is *not* lowered: it is the
    lifetime total credited, which honours rank on; rankings that must account for deductions
    subtract the ``deduction`` transfers of the period themselves. An admin reverses a deduction
    like a credit; the points go back to the lots they came from.

Holds
    Redeeming a reward does not move points yet: ``hold()`` raises ``held`` so the points
    cannot be spent twice and ``reserve()`` names the lots they are in, ``capture()`` moves them
    to the merchant when the cashier confirms, ``release()`` and ``unreserve()`` free them again
    on cancellation or expiry. Holds are not transfers; the invariants ``held == sum(points of
    issued vouchers) == sum(reserved of the account's lots)`` tie them to the vouchers instead.

Concurrency
    Balances are never read, checked in Python and written back. Each change is one conditional
    ``UPDATE account ... WHERE balance - held >= :amount RETURNING balance``; when no row comes
    back the check failed and nothing was written. Both rows of a transfer are updated in
    the global lock order below, so two transfers never wait on each other in opposite orders. On
    PostgreSQL the row lock makes the second writer re-check the condition after the first
    commits; on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and so runs alone.
    Rows are locked in one global order (``lock_accounts``): the activity or voucher row first
    (a batch's new activity rows may be written after the accounts' locks: no one else can hold
    rows not yet written), then people's and merchants' accounts by id (with a volunteer's
    lots), then the street's issuance account, then its expiry account, then the budget row the
    points draw on (``pointsapp.domain.budgets``), then the volunteers' yearly totals of
    activities (``pointsapp.domain.activity_totals``, written after the ledger's writes), then
    the reward's stock row, and the audit chain's head last. No path takes them in another
    order, so no two writers deadlock. A volunteer's monthly totals are written with the
    transfer (before the budget row) and only under the volunteer account's lock, so they queue
    behind that lock. A credit from a street updates the credited account first and debits the
    issuance account, which every credit of the street updates, in the statement that writes
    the transfer: the street's credits queue on that row for as few statements as possible.

Monthly totals
    Each leg on a volunteer's account is also added, in the same transaction, to the row of
    ``AccountMonth`` for its account, street-local month and transfer kind (an upsert: one
    statement per transfer; for ``credit_many``, one per 1,000 accounts). Months are in the
    street's ``TIMEZONE`` as it was when each leg was written: after changing it, run ``flask
    points rebuild-month-totals``. A month's reports then read one row per active volunteer and
    kind, not every transfer of the month. The row is only ever written by a transaction that
    already holds the volunteer account's lock, so it adds no waiting of its own
    (``rebuild_month_totals``, which computes every row again from the transfers, locks the whole
    table first). Volunteers' legs only: a transfer has at most one (no transfer goes from a
    volunteer to a volunteer), and the street's and merchants' accounts, on which every credit or
    every capture at a till would meet, are not summed.

Invariants (``check_ledger`` verifies all of them; the CHECK constraints guard the first two)
    * no volunteer or merchant balance below zero; ``0 <= held <= balance``;
    * each account's balance equals the sum of its entries;
    * each settlement goes from a merchant to an issuance account and has one payment record;
    * each closed settlement period's totals equal the sum of the entries it took, and
      periods chain (opening balance = the previous period's closing balance);
    * each transfer has exactly two entries of ``-amount`` and ``+amount``; all balances sum to 0;
    * each account's ``held`` equals the points of its issued vouchers (none but volunteers' hold);
    * each account's ``earned`` equals credits received less credits reversed (0 but volunteers');
    * each redeemed voucher has exactly one capture, each credited activity exactly one credit;
    * an activity is ``reversed`` exactly when its credit has been reversed;
    * each volunteer's lots hold its balance; each lot's ``remaining`` is within 0..amount and
      equals its amount less what transfers took (``LotUse``); each credit made its lot;
    * each lot's ``reserved`` is within 0..remaining and equals what issued vouchers reserve in
      it (``VoucherLot``); each issued voucher reserves its points; an account's lots reserve
      its ``held``;
    * only ``expiry`` transfers, from a volunteer, reach an expiry account.
    * activities ``on_notice`` (public notice) or ``withheld`` have no credit and credit nothing.
    * each volunteer's monthly totals equal the sums of its legs per month and kind;
    * each volunteer's yearly totals (``activity_totals``) equal their approved activities.

The functions here ``flush()`` and never ``commit()``. A raised ``PointsError`` means the
caller must roll back: an earlier statement of the same transaction may already have run.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, and_, bindparam, case, event, func, insert, literal, or_, select, text, true, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from ..database import (
    add_from_arrays, add_to_rows, among, array_params, dialect, expire_loaded, insert_rows, unnest_select,
)
from ..extensions import db
from ..models import Account, AccountMonth, Entry, LotUse, OrgUnit, PointLot, Transfer, User, Voucher, VoucherLot
from ..models.ledger import (
    ACCOUNT_EXPIRY,
    ACCOUNT_ISSUANCE,
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
from ..models.rewards import VOUCHER_ISSUED
from ..models.types import utcnow
from ..models.rules import Activity
from .clock import add_months, local_today, local_zone, utc_start_of
from . import activity_totals, budgets
from .errors import CannotReverse, InsufficientPoints, NotFound

account_t = Account.__table__
lot_t = PointLot.__table__
lot_use_t = LotUse.__table__
voucher_lot_t = VoucherLot.__table__
account_month_t = AccountMonth.__table__


def _expire_loaded(account_id: int) -> None:
    """Drop a stale in-session copy of an account after a Core UPDATE changed its row."""
    expire_loaded(Account, account_id)


def _account(kind: str, **owner) -> Account:
    """Return the account of ``kind`` owned by ``owner`` (one column: ``user_id``, ``merchant_id``
    or, for a street's accounts, ``org_unit_id``), creating it on first use.

    Two first uses at the same moment both try to insert it: the second insert waits for the
    first, fails on the unique constraint inside a savepoint, and reads the winner's row instead.
    """
    (column, owner_id), = owner.items()
    query, params = _account_of(kind, column), {"owner_id": owner_id}
    acc = db.session.scalar(query, params)
    if acc is None:
        try:
            with db.session.begin_nested():
                acc = Account(balance=0, held=0, earned=0, kind=kind, **owner)
                db.session.add(acc)
        except IntegrityError:
            acc = db.session.scalar(query, params)
    return acc


def volunteer_account(user_id: int) -> Account | None:
    """Return the volunteer's account, or None before their first credit (nothing is created)."""
    return db.session.scalar(_account_of(ACCOUNT_VOLUNTEER, "user_id"), {"owner_id": user_id})


def volunteer_account_id_of(user_id):
    """SQL: the id of the volunteer account of ``user_id`` (a value or a bound parameter), as a
    subquery of the statement that reads by it (NULL before the account exists: it is not created)."""
    return select(account_t.c.id).where(
        account_t.c.user_id == user_id, account_t.c.kind == ACCOUNT_VOLUNTEER
    ).scalar_subquery()


def account_for_volunteer(user: User) -> Account:
    """Return the volunteer's account, creating it on first use."""
    return _account(ACCOUNT_VOLUNTEER, user_id=user.id)


# The statements of the money path are built once (lru_cache) and run with parameters: building
# and keying a statement costs about as much Python as running a small one. Never change one in
# place.

def _points(name: str):
    return bindparam(name, type_=account_t.c.balance.type)


@lru_cache(maxsize=None)
def _locked_volunteer_account():
    return (
        select(Account).where(Account.user_id == bindparam("user_id")).with_for_update()
        .execution_options(populate_existing=True)
    )


@lru_cache(maxsize=None)
def _account_of(kind: str, owner_column: str):
    return select(Account).where(Account.kind == kind, account_t.c[owner_column] == bindparam("owner_id"))


@lru_cache(maxsize=None)
def _lock_accounts(dialect_name: str):
    # PostgreSQL sorts first and then locks rows in that order.
    return (
        select(account_t.c.id)
        .where(among(account_t.c.id, "ids", dialect_name))
        .order_by(
            account_t.c.kind.in_((ACCOUNT_ISSUANCE, ACCOUNT_EXPIRY)), account_t.c.kind == ACCOUNT_EXPIRY, account_t.c.id
        )
        .with_for_update()
    )


@lru_cache(maxsize=None)
def _debit_update(from_held: bool, unearn: bool):
    amount = _points("amount")
    values = {"balance": account_t.c.balance - amount}
    if from_held:
        condition = account_t.c.held >= amount
        values["held"] = account_t.c.held - amount
    else:
        condition = or_(account_t.c.kind == ACCOUNT_ISSUANCE, account_t.c.balance - account_t.c.held >= amount)
    if unearn:
        taken_back = _points("unearn")
        values["earned"] = account_t.c.earned - taken_back
        condition = and_(condition, account_t.c.earned >= taken_back)
    return (
        update(account_t)
        .where(account_t.c.id == bindparam("account_id"), condition)
        .values(**values)
        .returning(account_t.c.balance, account_t.c.kind)
    )


@lru_cache(maxsize=None)
def _deposit_update(earn: bool):
    amount = _points("amount")
    values = {"balance": account_t.c.balance + amount}
    if earn:
        values["earned"] = account_t.c.earned + amount
    return (
        update(account_t)
        .where(account_t.c.id == bindparam("account_id"))
        .values(**values)
        .returning(account_t.c.balance, account_t.c.kind)
    )


@lru_cache(maxsize=None)
def _held_update(sign: int):
    amount = _points("amount")
    if sign > 0:
        condition, held = account_t.c.balance - account_t.c.held >= amount, account_t.c.held + amount
    else:
        condition, held = account_t.c.held >= amount, account_t.c.held - amount
    return (
        update(account_t)
        .where(account_t.c.id == bindparam("account_id"), condition)
        .values(held=held)
        .returning(account_t.c.held)
    )


@lru_cache(maxsize=None)
def _lot_insert():
    return insert(lot_t)


@lru_cache(maxsize=None)
def _open_lots(one_lot: bool, preferring: bool, valid_besides: bool = False):
    """The account's lots with points no open voucher reserves, in the order they are spent
    (see _lots_to_take): what is free in each. ``valid_besides``: only lots still valid on
    ``valid_on``, other than lot ``besides``."""
    query = select(lot_t.c.id, lot_t.c.remaining - lot_t.c.reserved).where(
        lot_t.c.account_id == bindparam("account_id"), lot_t.c.remaining > lot_t.c.reserved
    )
    if valid_besides:
        query = query.where(
            lot_t.c.id != bindparam("besides"),
            or_(lot_t.c.expires_on.is_(None), lot_t.c.expires_on >= bindparam("valid_on", type_=lot_t.c.expires_on.type)),
        )
    if one_lot:
        query = query.where(lot_t.c.id == bindparam("lot_id"))
    order = [lot_t.c.expires_on.is_(None), lot_t.c.expires_on, lot_t.c.id]
    if preferring:
        order.insert(0, case((lot_t.c.transfer_id == bindparam("prefer_transfer_id"), 0), else_=1))
    return query.order_by(*order)


@lru_cache(maxsize=None)
def _lot_remaining_update(sign: int, reserved: bool = False):
    """Add ``sign * change`` to lot ``lid``'s remaining points (run with one row per lot);
    ``reserved``: take them from its reserved points too (a capture)."""
    change = bindparam("change", type_=lot_t.c.remaining.type)
    values = {"remaining": lot_t.c.remaining + change if sign > 0 else lot_t.c.remaining - change}
    if reserved:
        values["reserved"] = lot_t.c.reserved - change
    return update(lot_t).where(lot_t.c.id == bindparam("lid")).values(**values)


@lru_cache(maxsize=None)
def _lot_reserved_update(sign: int):
    """Add ``sign * change`` to lot ``lid``'s reserved points (run with one row per lot)."""
    change = bindparam("change", type_=lot_t.c.reserved.type)
    return update(lot_t).where(lot_t.c.id == bindparam("lid")).values(
        reserved=lot_t.c.reserved + change if sign > 0 else lot_t.c.reserved - change
    )


def locked_account_for_volunteer(user: User) -> Account:
    """Return the volunteer's account with its row locked, creating it on first use.

    One statement (``SELECT ... FOR UPDATE``) where ``account_for_volunteer`` and ``lock_accounts``
    take two. It is the first account lock of its transaction in the global order; a credit to it
    may then pass ``to_locked=True`` (the issuance account comes after it in that order)."""
    acc = db.session.scalar(_locked_volunteer_account(), {"user_id": user.id})
    if acc is None:
        acc = account_for_volunteer(user)
        lock_accounts([acc.id])
    return acc


def account_for_merchant(merchant_id: int) -> Account:
    """Return the merchant's receivable account, creating it on first use."""
    return _account(ACCOUNT_MERCHANT, merchant_id=merchant_id)


def expiry_account(street: OrgUnit) -> Account:
    """Return the expiry account of the street (the root) above ``street``, creating it on first use."""
    return _expiry_account_of(street.root_id)


def _expiry_account_of(root_id: int) -> Account:
    return _account(ACCOUNT_EXPIRY, org_unit_id=root_id)


def issuance_account(street: OrgUnit) -> Account:
    """Return the issuance account of the street (the root) above ``street``, creating it on first use."""
    return _account(ACCOUNT_ISSUANCE, org_unit_id=street.root_id)


def lock_accounts(account_ids) -> None:
    """Lock account rows in the one global order: people's and merchants' accounts by id, then
    the streets' issuance accounts, then their expiry accounts. Every writer that touches several accounts goes through here
    (or locks a single volunteer account first), so no two transactions wait on each other in a
    cycle. On SQLite the lock is the write transaction itself (BEGIN IMMEDIATE)."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    db.session.execute(_lock_accounts(dialect()), {"ids": ids}).all()


def _debit(account_id: int, amount: int, *, from_held: bool, unearn: int = 0) -> tuple[int, str]:
    """Take ``amount`` from an account, from its held or its available points; return the new
    balance and the account's kind."""
    params = {"account_id": account_id, "amount": amount}
    if unearn:
        params["unearn"] = unearn
    row = db.session.execute(_debit_update(from_held, bool(unearn)), params).first()
    _expire_loaded(account_id)
    if row is None:
        acc = db.session.get(Account, account_id)
        raise InsufficientPoints(needed=amount, available=acc.held if from_held else acc.available)
    return row[0], row[1]


@lru_cache(maxsize=None)
def _issuance_debit():
    """Take ``debit_amount`` from the issuance account of street ``debit_street`` (which may go
    negative): the account's id, new balance and kind, or no row before the street's first
    credit. On PostgreSQL it is part of the statement that writes the transfer
    (``_transfer_insert_pg``), on SQLite a statement of its own (``_debit_issuance``)."""
    return (
        update(account_t)
        .where(account_t.c.kind == ACCOUNT_ISSUANCE, account_t.c.org_unit_id == bindparam("debit_street"))
        .values(balance=account_t.c.balance - _points("debit_amount"))
        .returning(account_t.c.id, account_t.c.balance, account_t.c.kind)
    )


def _debit_issuance(street_id: int, amount: int) -> tuple[int, int, str]:
    """Take ``amount`` from a street's issuance account, creating the account on the street's
    first credit; return its id, new balance and kind. One statement where finding the account
    and then debiting it take two."""
    row = db.session.execute(_issuance_debit(), {"debit_street": street_id, "debit_amount": amount}).first()
    if row is None:
        account_id = _account(ACCOUNT_ISSUANCE, org_unit_id=street_id).id
        return (account_id, *_debit(account_id, amount, from_held=False))
    _expire_loaded(row[0])
    return row[0], row[1], row[2]


def _deposit(account_id: int, amount: int, *, earn: bool) -> tuple[int, str]:
    row = db.session.execute(_deposit_update(earn), {"account_id": account_id, "amount": amount}).first()
    _expire_loaded(account_id)
    if row is None:
        raise NotFound()
    return row[0], row[1]


def _lots_to_take(
    account_id: int, amount: int, *, prefer_transfer_id: int | None = None, lot_id: int | None = None
) -> list[dict]:
    """Choose the lots a debit of ``amount`` from a volunteer takes from, earliest-expiring first
    (never-expiring last, ties by id), or from the lot made by ``prefer_transfer_id`` first, or
    only from lot ``lot_id``: rows ``{"id": lot id, "remaining": points taken}`` for
    ``_write_transfer``. Only points no open voucher reserves are taken (a capture takes its
    voucher's: ``_reserved_takes``).

    Runs under the account's lock, after the balance was debited: the lots' free points are
    exactly the available balance, so they cover the amount.
    """
    params = {"account_id": account_id, "lot_id": lot_id, "prefer_transfer_id": prefer_transfer_id}
    query = _open_lots(lot_id is not None, prefer_transfer_id is not None)
    takes = []
    left = amount
    for lid, remaining in db.session.execute(query, {k: v for k, v in params.items() if v is not None}):
        take = min(remaining, left)
        takes.append({"id": lid, "remaining": take})
        left -= take
        if not left:
            break
    if left:
        # The lots no longer add up to the balance: stop, never paper over it.
        raise RuntimeError(f"account {account_id}: its lots lack {left} of the {amount} points taken")
    return takes


def _take_from_lots(transfer_id: int, takes: list[dict], reserved: bool = False) -> None:
    """Take ``takes`` (``_lots_to_take``, or ``_reserved_takes`` when ``reserved``) from their lots
    for transfer ``transfer_id``: one UPDATE and one INSERT, each executed for the lots taken
    from (usually one)."""
    db.session.execute(_lot_remaining_update(-1, reserved), [{"lid": t["id"], "change": t["remaining"]} for t in takes])
    db.session.execute(
        insert(lot_use_t), [{"lot_id": t["id"], "transfer_id": transfer_id, "amount": t["remaining"]} for t in takes]
    )


def _give_back_to_lots(account_id: int, transfer_id: int, original_id: int | None, amount: int) -> None:
    """Return ``amount`` points to the lots that transfer ``original_id`` took them from; whatever
    it took from no lot (a transfer from before lots) becomes a new never-expiring lot."""
    gives = []
    left = amount
    if original_id is not None:
        for lid, taken in db.session.execute(
            select(lot_use_t.c.lot_id, func.sum(lot_use_t.c.amount))
            .where(lot_use_t.c.transfer_id == original_id)
            .group_by(lot_use_t.c.lot_id)
            .order_by(lot_use_t.c.lot_id)
        ):
            give = min(taken, left)
            if give > 0:
                gives.append({"lid": lid, "change": give})
                left -= give
    if gives:
        db.session.execute(_lot_remaining_update(1), gives)
        db.session.execute(
            insert(lot_use_t), [{"lot_id": g["lid"], "transfer_id": transfer_id, "amount": -g["change"]} for g in gives]
        )
    if left:
        _new_lot(account_id, transfer_id, left, earned_on=_today(), expires_on=None)


def _new_lot(account_id: int, transfer_id: int | None, amount: int, *, earned_on: date, expires_on: date | None) -> None:
    db.session.execute(
        _lot_insert(),
        {"account_id": account_id, "transfer_id": transfer_id, "amount": amount, "remaining": amount,
         "earned_on": earned_on, "expires_on": expires_on},
    )


def _today() -> date:
    return local_today()


# The columns of a lot that ``_lots_to_take`` gives: the lot's id and the points taken from it.
_TAKE_COLUMNS = ("id", "remaining")

_TRANSFER_COLUMNS = (
    "kind", "amount", "from_account_id", "to_account_id", "reason", "cause_key", "activity_id", "voucher_id",
    "reverses_id", "created_by_id", "created_at",
)


def _typed(table, name: str, column: str | None = None):
    return bindparam(name, type_=table.c[column or name].type)


@lru_cache(maxsize=None)
def _transfer_insert_pg(with_lot: bool, with_months: bool, with_takes: bool, street_debit: bool = False,
                        takes_reserved: bool = False):
    """PostgreSQL: a transfer, its two entries (the debit's first), for a credit to a volunteer
    its new lot, for a debit of a volunteer the points taken from their lots (and the lots'
    uses), and the volunteers' legs added to their monthly totals (``add_to_months``), in one
    statement (data-modifying CTEs): one round trip where separate statements take up to six.
    The key constraints are checked at the statement's end, when the transfer row is there.

    ``street_debit``: the statement also takes the points from the issuance account of street
    ``debit_street`` (its id and balance after feed the transfer and its entry), and writes
    nothing at all when the street has no issuance account yet. ``takes_reserved``: the points
    taken are the ones a voucher reserved (a capture). Returned: each entry's transfer id,
    account and amount."""
    transfer_t, entry_t = Transfer.__table__, Entry.__table__
    debit = None
    if street_debit:
        debit = _issuance_debit().cte("debit")
        values = [_typed(transfer_t, f"t_{c}", c) for c in _TRANSFER_COLUMNS if c != "from_account_id"]
        new = (
            insert(transfer_t)
            .from_select([c for c in _TRANSFER_COLUMNS if c != "from_account_id"] + ["from_account_id"],
                         select(*values, debit.c.id))
            .returning(transfer_t.c.id).cte("new_transfer")
        )
        from_leg = select(new.c.id, debit.c.id, _typed(entry_t, "from_amount", "amount"), debit.c.balance).select_from(
            new.join(debit, true())
        )
    else:
        new = (
            insert(transfer_t).values({c: _typed(transfer_t, f"t_{c}", c) for c in _TRANSFER_COLUMNS})
            .returning(transfer_t.c.id).cte("new_transfer")
        )
        from_leg = select(new.c.id, _typed(entry_t, "from_account", "account_id"), _typed(entry_t, "from_amount", "amount"),
                          _typed(entry_t, "from_after", "balance_after"))
    to_leg = select(new.c.id, _typed(entry_t, "to_account", "account_id"), _typed(entry_t, "to_amount", "amount"),
                    _typed(entry_t, "to_after", "balance_after"))
    stmt = insert(entry_t).from_select(["transfer_id", "account_id", "amount", "balance_after"], union_all(from_leg, to_leg))
    if with_lot:
        lot = insert(lot_t).from_select(
            ["account_id", "transfer_id", "amount", "remaining", "earned_on", "expires_on"],
            select(_typed(lot_t, "to_account", "account_id"), new.c.id, _typed(lot_t, "lot_amount", "amount"),
                   _typed(lot_t, "lot_remaining", "remaining"), _typed(lot_t, "lot_earned_on", "earned_on"),
                   _typed(lot_t, "lot_expires_on", "expires_on")),
        ).cte("new_lot")
        stmt = stmt.add_cte(lot)
    if with_months:
        stmt = stmt.add_cte(add_from_arrays(account_month_t, _MONTH_COLUMNS, _MONTH_KEY, only_with=debit).cte("months"))
    if with_takes:
        taken = unnest_select(lot_t, _TAKE_COLUMNS).subquery("taken")
        values = {"remaining": lot_t.c.remaining - taken.c.remaining}
        if takes_reserved:
            values["reserved"] = lot_t.c.reserved - taken.c.remaining
        stmt = stmt.add_cte(update(lot_t).where(lot_t.c.id == taken.c.id).values(**values).cte("lots_taken"))
        uses = unnest_select(lot_t, _TAKE_COLUMNS).subquery("uses")
        stmt = stmt.add_cte(
            insert(lot_use_t).from_select(
                ["lot_id", "transfer_id", "amount"],
                select(uses.c.id, new.c.id, uses.c.remaining).select_from(uses.join(new, true())),
            )
            .cte("lot_uses")
        )
    return stmt.returning(entry_t.c.transfer_id, entry_t.c.account_id, entry_t.c.amount)


def _transfer_params(row: dict, from_after: int | None, to_after: int, new_lot: dict | None, months: list[dict],
                     takes: list[dict]) -> dict:
    """The parameters of ``_transfer_insert_pg``. None is named as a column of the tables
    written: SQLAlchemy would take such a parameter as a value to set in the statement's UPDATEs."""
    amount = row["amount"]
    params = {
        **{f"t_{name}": value for name, value in row.items()},
        "from_account": row.get("from_account_id"), "from_amount": -amount, "from_after": from_after,
        "to_account": row["to_account_id"], "to_amount": amount, "to_after": to_after,
    }
    if new_lot is not None:
        params.update(lot_amount=amount, lot_remaining=amount,
                      lot_earned_on=new_lot["earned_on"], lot_expires_on=new_lot["expires_on"])
    if months:
        params.update(array_params(months, _MONTH_COLUMNS))
    if takes:
        params.update(array_params(takes, _TAKE_COLUMNS))
    return params


@lru_cache(maxsize=None)
def _transfer_insert():
    return insert(Transfer.__table__).returning(Transfer.__table__.c.id)


def _write_transfer(
    row: dict, from_after: int | None, to_after: int, new_lot: dict | None, months: list[dict], takes: list[dict],
    street_debit: int | None = None, takes_reserved: bool = False,
) -> Transfer:
    """Write the transfer ``row`` with its two entries (and ``new_lot``, the lot of a credit),
    take ``takes`` (``_lots_to_take``) from the debited volunteer's lots, and add ``months``
    (``_month_rows``) to the monthly totals, as plain rows; return the transfer as a loaded
    object: an ORM insert of the transfer and its entries cost more Python than the rest of a
    credit's writes together.

    ``street_debit`` (PostgreSQL): debit the issuance account of that street in the same
    statement (``row`` has no ``from_account_id`` yet, ``from_after`` is None), creating the
    account on the street's first credit."""
    try:
        transfer_id, row = _insert_transfer(row, from_after, to_after, new_lot, months, takes, street_debit,
                                            takes_reserved)
    except IntegrityError:
        # A second transfer for the same cause (``cause_key``), refused by its unique index. The
        # balances were already moved in this transaction: it is rolled back here, so that no
        # caller can go on and commit them without their transfer (PostgreSQL has aborted the
        # transaction anyway; SQLite would let it go on).
        db.session.rollback()
        raise
    t = Transfer(id=transfer_id, **row)
    _hold_as_loaded(t)
    return t


def _insert_transfer(
    row: dict, from_after: int | None, to_after: int, new_lot: dict | None, months: list[dict], takes: list[dict],
    street_debit: int | None, takes_reserved: bool,
) -> tuple[int, dict]:
    """``_write_transfer``'s statements; return the transfer's id and its row."""
    amount = row["amount"]
    if street_debit is not None:
        stmt = _transfer_insert_pg(new_lot is not None, bool(months), False, street_debit=True)
        params = _transfer_params(row, None, to_after, new_lot, months, [])
        params.update(debit_street=street_debit, debit_amount=amount)
        legs = db.session.execute(stmt, params).all()
        if not legs:  # the street's first credit: nothing was written; make its account, then write
            _account(ACCOUNT_ISSUANCE, org_unit_id=street_debit)
            legs = db.session.execute(stmt, params).all()
        [(transfer_id, from_id, _)] = [leg for leg in legs if leg[2] < 0]
        _expire_loaded(from_id)
        row = {**row, "from_account_id": from_id}
    elif dialect() == "postgresql":
        stmt = _transfer_insert_pg(new_lot is not None, bool(months), bool(takes), takes_reserved=takes_reserved)
        transfer_id = db.session.execute(stmt, _transfer_params(row, from_after, to_after, new_lot, months, takes)).scalars().first()
    else:
        transfer_id = db.session.execute(_transfer_insert(), row).scalar_one()
        db.session.execute(
            insert(Entry.__table__),
            [{"transfer_id": transfer_id, "account_id": row["from_account_id"], "amount": -amount, "balance_after": from_after},
             {"transfer_id": transfer_id, "account_id": row["to_account_id"], "amount": amount, "balance_after": to_after}],
        )
        if new_lot is not None:
            _new_lot(row["to_account_id"], transfer_id, amount, **new_lot)
        if takes:
            _take_from_lots(transfer_id, takes, takes_reserved)
        _add_month_rows(months)
    return transfer_id, row


_WRITTEN_ROWS = "ledger_written_rows"


def _hold_as_loaded(obj) -> None:
    """Give the session ``obj``, a row just written by a plain INSERT, as if loaded by a query.

    The session did not insert it, so a rollback would not forget it as it forgets what it
    inserted itself: ``_forget_rolled_back`` does, for the rollback of the transaction (or
    savepoint) that wrote it. Kept, it would stand in the way of a later row given the same
    key (SQLite reuses the key of a row rolled back)."""
    session = db.session()
    make_transient_to_detached(obj)
    # The INSERT has just made this key: an object the session still holds under it is a copy
    # of a row a rollback took away (its copy loaded again after the one given here was gone).
    stale = session.identity_map.get(identity_key(type(obj), obj.id))
    if stale is not None:
        session.expunge(stale)
    session.add(obj)
    writing = session.get_nested_transaction() or session.get_transaction()
    # Weak references: the session keeps a loaded object only while something else refers to
    # it, and a long transaction (a history replayed, a night's expiry) must not keep them all.
    session.info.setdefault(_WRITTEN_ROWS, {}).setdefault(writing, []).append(weakref.ref(obj))


@event.listens_for(OrmSession, "after_soft_rollback")
def _forget_rolled_back(session, previous_transaction) -> None:
    kept = session.info.get(_WRITTEN_ROWS)
    if not kept:
        return

    def undone(tx) -> bool:
        while tx is not None:
            if tx is previous_transaction:
                return True
            tx = tx.parent
        return False

    for tx in [tx for tx in kept if undone(tx)]:
        for ref in kept.pop(tx):
            obj = ref()
            if obj is not None and obj in session:
                session.expunge(obj)


@event.listens_for(OrmSession, "after_commit")
def _forget_committed(session) -> None:
    # Fired by a savepoint's release too, after which the rows are still the transaction's to undo.
    if session.in_nested_transaction():
        return
    session.info.pop(_WRITTEN_ROWS, None)


def _transfer(
    *,
    kind: str,
    from_id: int | None,
    to_id: int,
    amount: int,
    reason: str,
    cause_key: str,
    from_street: int | None = None,
    from_held: bool = False,
    earn: bool = False,
    unearn: int = 0,
    activity_id: int | None = None,
    voucher_id: int | None = None,
    reverses_id: int | None = None,
    created_by_id: int | None = None,
    created_at=None,
    earned_on: date | None = None,
    expires_on: date | None = None,
    lot_id: int | None = None,
    to_locked: bool = False,
) -> Transfer:
    """Move ``amount`` from one account to another: both balances, the transfer and its two
    entries, the volunteer's lots, the budget and the monthly totals. ``to_locked``: the caller
    holds the lock of the account credited, and the account debited (a street's issuance
    account) comes after it in the global order, so its debit's UPDATE takes its lock in order."""
    if amount <= 0:
        raise ValueError("a transfer moves a positive amount")
    db.session.flush()
    street_debit = None
    if from_id is None:
        # A street's issuance account (``from_street``), found by the debit itself; the caller
        # holds the credited account's lock, which comes first in the global order. The
        # credited account is updated first: every credit of the street updates the issuance
        # account, whose lock is then held for as few statements as possible (on PostgreSQL the
        # debit is part of the statement that writes the transfer).
        assert to_locked and from_street is not None
        to_after, to_kind = _deposit(to_id, amount, earn=earn)
        if dialect() == "postgresql":
            street_debit, from_after, from_kind = from_street, None, ACCOUNT_ISSUANCE
        else:
            from_id, from_after, from_kind = _debit_issuance(from_street, amount)
    else:
        if not to_locked:
            lock_accounts([from_id, to_id])
        from_after, from_kind = _debit(from_id, amount, from_held=from_held, unearn=unearn)
        to_after, to_kind = _deposit(to_id, amount, earn=earn)
    row = {
        "kind": kind, "amount": amount, "from_account_id": from_id, "to_account_id": to_id, "reason": reason,
        "cause_key": cause_key, "activity_id": activity_id, "voucher_id": voucher_id, "reverses_id": reverses_id,
        "created_by_id": created_by_id, "created_at": created_at or utcnow(),
    }
    if street_debit is not None:
        del row["from_account_id"]  # known once the statement has debited the account
    # Lots: every debit of a volunteer takes from them, every deposit adds to them.
    takes = []
    if from_kind == ACCOUNT_VOLUNTEER and from_held:
        takes = _reserved_takes(from_id, voucher_id, amount)  # a capture: the lots its voucher reserved
    elif from_kind == ACCOUNT_VOLUNTEER:
        takes = _lots_to_take(
            from_id, amount, prefer_transfer_id=reverses_id if kind == TRANSFER_REVERSAL else None, lot_id=lot_id
        )
    # A credit to a volunteer is one new lot of the points (written with the transfer).
    new_lot = (
        {"earned_on": earned_on or _today(), "expires_on": expires_on}
        if to_kind == ACCOUNT_VOLUNTEER and kind == TRANSFER_CREDIT else None
    )
    # The volunteers' legs in their monthly totals (written with the transfer).
    month = month_of(row["created_at"])
    months = _month_rows(
        [(acc, month, kind, signed) for acc, acc_kind, signed in ((from_id, from_kind, -amount), (to_id, to_kind, amount))
         if acc_kind == ACCOUNT_VOLUNTEER]
    )
    t = _write_transfer(row, from_after, to_after, new_lot, months, takes, street_debit,
                        takes_reserved=from_held and from_kind == ACCOUNT_VOLUNTEER)
    if to_kind == ACCOUNT_VOLUNTEER and new_lot is None:
        _give_back_to_lots(to_id, t.id, reverses_id, amount)
    budgets.on_transfer(t)  # charge or give back the budget behind the points, after the accounts' locks
    return t


def credit(
    issuance: Account,
    volunteer: Account,
    amount: int,
    *,
    reason: str,
    cause_key: str,
    activity_id: int | None = None,
    created_by_id: int | None = None,
    earned_on: date | None = None,
    expires_on: date | None = None,
    volunteer_locked: bool = False,
) -> Transfer:
    """Issue ``amount`` new points from a street's issuance account to a volunteer, as one lot
    earned on ``earned_on`` (default today) that can be spent until ``expires_on`` (None: ever).
    ``volunteer_locked``: the caller took the volunteer's account lock already
    (``locked_account_for_volunteer``), so it is not taken again."""
    return _transfer(
        kind=TRANSFER_CREDIT,
        from_id=issuance.id,
        to_id=volunteer.id,
        amount=amount,
        reason=reason,
        cause_key=cause_key,
        earn=True,
        activity_id=activity_id,
        created_by_id=created_by_id,
        earned_on=earned_on,
        expires_on=expires_on,
        to_locked=volunteer_locked,
    )


def credit_from_street(street_id: int, volunteer: Account, amount: int, *, reason: str, cause_key: str,
                       **details) -> Transfer:
    """``credit`` from the issuance account of street ``street_id`` (the root above the
    volunteer), to a volunteer's account whose lock the caller holds
    (``locked_account_for_volunteer``): the issuance account is found by its debit. ``details``:
    ``credit``'s ``activity_id``, ``created_by_id``, ``earned_on`` and ``expires_on``."""
    return _transfer(kind=TRANSFER_CREDIT, from_id=None, from_street=street_id, to_id=volunteer.id, amount=amount,
                     reason=reason, cause_key=cause_key, earn=True, to_locked=True, **details)


@dataclass(frozen=True)
class Credit:
    """One credit of ``credit_many``: ``amount`` new points to a volunteer's account, as one lot."""

    account_id: int
    amount: int
    reason: str
    cause_key: str
    activity_id: int | None = None
    created_by_id: int | None = None
    earned_on: date | None = None
    expires_on: date | None = None


@lru_cache(maxsize=None)
def _credit_accounts_from_arrays():
    """PostgreSQL: add each amount to its account's balance and earned points, the accounts and
    amounts as two array parameters (built once; see database.unnest_select)."""
    account_t = Account.__table__
    given = unnest_select(account_t, ("id", "balance")).subquery("amounts")
    return (
        update(account_t)
        .where(account_t.c.id == given.c.id)
        .values(balance=account_t.c.balance + given.c.balance, earned=account_t.c.earned + given.c.balance)
    )


def credit_many(issuance_id: int, credits: list[Credit], *, created_at: datetime | None = None) -> list[int]:
    """Issue many credits from one street's issuance account in a few statements; return the
    transfer ids, in the order of ``credits``.

    The rows written are those ``credit`` writes once per credit (a transfer, its two entries, a
    lot, the budget's charge), but set-based: one lock of every account, one INSERT per table for
    the whole batch, one UPDATE of the volunteers' accounts and one of the issuance account, one
    conditional UPDATE per budget (``budgets.charge_credits``). One meeting of 1,000 attendees is
    a handful of statements instead of thousands. Every amount is positive. An account may be
    credited more than once (a verifier's batch of claims): it is updated once by the sum, and
    each entry's balance after counts the credits before it in ``credits``. The transfers are
    stamped ``created_at`` (default: now).
    """
    if not credits:
        return []
    if any(c.amount <= 0 for c in credits):
        raise ValueError("a transfer moves a positive amount")
    sums: dict[int, int] = {}
    for c in credits:
        sums[c.account_id] = sums.get(c.account_id, 0) + c.amount
    ids = sorted(sums)
    db.session.flush()
    lock_accounts(ids + [issuance_id])
    # Under the locks the balances cannot move: each entry's balance after is computed here.
    on = dialect()
    rows = {
        acc_id: (balance, kind)
        for acc_id, balance, kind in db.session.execute(_balances_of(on), {"ids": ids + [issuance_id]})
    }
    if any(rows[i][1] != ACCOUNT_VOLUNTEER for i in ids) or rows[issuance_id][1] != ACCOUNT_ISSUANCE:
        raise ValueError("credit_many credits volunteers' accounts from an issuance account")
    if on == "postgresql":
        # One UPDATE ... FROM unnest(ids, amounts) for every volunteer's account (two array
        # parameters, whatever the number of accounts; see database.insert_rows).
        # (each account's sum travels in the array typed as the ``balance`` column)
        db.session.execute(
            _credit_accounts_from_arrays(),
            array_params([{"id": acc, "balance": sums[acc]} for acc in ids], ("id", "balance")),
        )
    else:  # SQLite runs the statement once per account, in process
        db.session.execute(
            update(account_t)
            .where(account_t.c.id == bindparam("aid"))
            .values(balance=account_t.c.balance + bindparam("amt"), earned=account_t.c.earned + bindparam("amt")),
            [{"aid": acc, "amt": sums[acc]} for acc in ids],
        )
    total = sum(c.amount for c in credits)
    db.session.execute(update(account_t).where(account_t.c.id == issuance_id).values(balance=account_t.c.balance - total))
    for acc_id in ids + [issuance_id]:
        _expire_loaded(acc_id)
    transfer_t = Transfer.__table__
    created_at = created_at or utcnow()
    transfer_ids = insert_rows(
        transfer_t,
        [
            {
                "kind": TRANSFER_CREDIT, "amount": c.amount, "from_account_id": issuance_id,
                "to_account_id": c.account_id, "reason": c.reason, "cause_key": c.cause_key,
                "activity_id": c.activity_id, "voucher_id": None, "reverses_id": None,
                "created_by_id": c.created_by_id, "created_at": created_at,
            }
            for c in credits
        ],
        returning=transfer_t.c.id,
    )
    entries = []
    issuance_after = rows[issuance_id][0]
    after = {acc: rows[acc][0] for acc in ids}
    for tid, c in zip(transfer_ids, credits):
        issuance_after -= c.amount
        after[c.account_id] += c.amount
        entries.append({"transfer_id": tid, "account_id": issuance_id, "amount": -c.amount, "balance_after": issuance_after})
        entries.append({"transfer_id": tid, "account_id": c.account_id, "amount": c.amount,
                        "balance_after": after[c.account_id]})
    insert_rows(Entry.__table__, entries)
    today = _today()
    insert_rows(
        lot_t,
        [
            {"account_id": c.account_id, "transfer_id": tid, "amount": c.amount, "remaining": c.amount,
             "earned_on": c.earned_on or today, "expires_on": c.expires_on}
            for tid, c in zip(transfer_ids, credits)
        ],
    )
    budgets.charge_credits([(tid, c.account_id, c.amount) for tid, c in zip(transfer_ids, credits)])
    month = month_of(created_at)
    add_to_months([(c.account_id, month, TRANSFER_CREDIT, c.amount) for c in credits])
    return transfer_ids


@lru_cache(maxsize=None)
def _balances_of(dialect_name: str):
    return select(account_t.c.id, account_t.c.balance, account_t.c.kind).where(among(account_t.c.id, "ids", dialect_name))


# -- monthly totals ----------------------------------------------------------------------------

MONTH_ROWS_PER_STATEMENT = 1000


def month_of(moment: datetime) -> date:
    """Return the first day of the street-local month of an aware moment."""
    return moment.astimezone(local_zone()).date().replace(day=1)


_MONTH_COLUMNS = ("month", "account_id", "kind", "amount", "transfers")
_MONTH_KEY = ("month", "account_id", "kind")


def _month_rows(legs: list[tuple[int, date, str, int]]) -> list[dict]:
    """The monthly totals' rows to add for volunteers' legs ``(account id, month, transfer kind,
    signed amount)``: one per account, month and kind, in key order (the rows' lock order)."""
    sums: dict[tuple[date, int, str], list[int]] = {}
    for account_id, month, kind, amount in legs:
        row = sums.setdefault((month, account_id, kind), [0, 0])
        row[0] += amount
        row[1] += 1
    return [
        {"month": m, "account_id": a, "kind": k, "amount": amount, "transfers": n}
        for (m, a, k), (amount, n) in sorted(sums.items())
    ]


def _add_month_rows(rows: list[dict]) -> None:
    add_to_rows(account_month_t, rows, key=list(_MONTH_KEY), per_statement=MONTH_ROWS_PER_STATEMENT)


def add_to_months(legs: list[tuple[int, date, str, int]]) -> None:
    """Add volunteers' legs ``(account id, month, transfer kind, signed amount)`` to their monthly
    totals (``AccountMonth``), creating the rows a month's first leg needs: one upsert for up
    to ``MONTH_ROWS_PER_STATEMENT`` rows, in key order."""
    _add_month_rows(_month_rows(legs))


def _month_legs(month: date):
    """SQL: the volunteers' legs of the month's transfers, summed per account and kind:
    ``(account_id, kind, amount, transfers)``, read by the transfers' time index."""
    volunteer = select(account_t.c.id).where(account_t.c.kind == ACCOUNT_VOLUNTEER)
    window = (Transfer.created_at >= utc_start_of(month), Transfer.created_at < utc_start_of(add_months(month)))
    side = lambda account_col, amount: (  # noqa: E731
        select(account_col.label("account_id"), Transfer.kind.label("kind"), amount.label("amount"))
        .where(*window, account_col.in_(volunteer))
    )
    leg = union_all(side(Transfer.to_account_id, Transfer.amount), side(Transfer.from_account_id, -Transfer.amount)).subquery()
    return select(leg.c.account_id, leg.c.kind, func.sum(leg.c.amount), func.count()).group_by(leg.c.account_id, leg.c.kind)


def _transfer_months() -> list[date]:
    """The street-local months from the first transfer to the last, and any with totals."""
    first, last = db.session.execute(select(func.min(Transfer.created_at), func.max(Transfer.created_at))).one()
    months = set(db.session.scalars(select(account_month_t.c.month).distinct()))
    if first is not None:
        m, end = month_of(first), month_of(last)
        while m <= end:
            months.add(m)
            m = add_months(m)
    return sorted(months)


def rebuild_month_totals() -> int:
    """Compute every volunteer's monthly totals again from the transfers; return the rows written.

    For transfers written without them: data loaded in bulk, or written by processes of a version
    before the totals while the migration ran, and after a change of the street's ``TIMEZONE``.
    One INSERT ... SELECT per month. On PostgreSQL the table is locked first (EXCLUSIVE: reads go
    on, upserts wait): a transfer committed before the lock is counted by the statements after
    it, and one still open upserts after this transaction commits, onto the rebuilt rows."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("LOCK TABLE account_month IN EXCLUSIVE MODE"))
    db.session.execute(account_month_t.delete())
    for month in _transfer_months():
        legs = _month_legs(month).subquery()
        db.session.execute(
            insert(account_month_t).from_select(
                ["month", "account_id", "kind", "amount", "transfers"],
                select(literal(month, Date), *legs.c),
            )
        )
    return db.session.scalar(select(func.count()).select_from(account_month_t))


def _check_month_totals() -> list[str]:
    problems = []
    for month in _transfer_months():
        expected = {(a, k): (amount, n) for a, k, amount, n in db.session.execute(_month_legs(month))}
        found = {
            (a, k): (amount, n)
            for a, k, amount, n in db.session.execute(
                select(account_month_t.c.account_id, account_month_t.c.kind, account_month_t.c.amount,
                       account_month_t.c.transfers).where(account_month_t.c.month == month)
            )
        }
        for key in sorted(set(expected) | set(found), key=lambda k: (k[0], k[1])):
            if expected.get(key) != found.get(key):
                problems.append(
                    f"account {key[0]}: {key[1]} in {month:%Y-%m} totals {found.get(key)} but its legs are {expected.get(key)}"
                )
    return problems


def hold(account_id: int, amount: int) -> None:
    """Reserve ``amount`` of a volunteer's available points, or raise ``InsufficientPoints``."""
    held = db.session.execute(_held_update(1), {"account_id": account_id, "amount": amount}).scalar()
    _expire_loaded(account_id)
    if held is None:
        acc = db.session.get(Account, account_id)
        raise InsufficientPoints(needed=amount, available=acc.available)


def release(account_id: int, amount: int) -> None:
    """Give back ``amount`` of held points (voucher cancelled or expired)."""
    held = db.session.execute(_held_update(-1), {"account_id": account_id, "amount": amount}).scalar()
    _expire_loaded(account_id)
    if held is None:
        # A release without its hold means the books are already wrong: stop, never paper over it.
        raise RuntimeError(f"account {account_id} holds less than {amount}")


def reserve(account_id: int, voucher_id: int, amount: int) -> None:
    """Reserve for voucher ``voucher_id`` the ``amount`` points its ``hold`` took, in particular
    lots: the earliest-expiring points no open voucher reserves yet (its capture takes exactly
    these; nothing else spends or expires them while it is open). Run under the account's lock,
    after ``hold`` and after expiring the points past their last day (``expire_due``)."""
    takes = _lots_to_take(account_id, amount)
    db.session.execute(_lot_reserved_update(1), [{"lid": t["id"], "change": t["remaining"]} for t in takes])
    db.session.execute(
        insert(voucher_lot_t), [{"voucher_id": voucher_id, "lot_id": t["id"], "points": t["remaining"]} for t in takes]
    )


@lru_cache(maxsize=None)
def _reservations_of():
    """Each lot's points that the vouchers ``voucher_ids`` reserve (sum of their rows), by lot."""
    return (
        select(voucher_lot_t.c.lot_id, func.sum(voucher_lot_t.c.points))
        .where(voucher_lot_t.c.voucher_id.in_(bindparam("voucher_ids", expanding=True)))
        .group_by(voucher_lot_t.c.lot_id)
        .having(func.sum(voucher_lot_t.c.points) > 0)
        .order_by(voucher_lot_t.c.lot_id)
    )


def unreserve(voucher_ids: list[int]) -> None:
    """Free the lots that the vouchers ``voucher_ids`` reserved (cancelled or expired, after
    ``release``, under their accounts' locks). Points past their last day that come free expire
    before anything else can spend them (``expire_due``, or the nightly run)."""
    if not voucher_ids:
        return
    rows = db.session.execute(_reservations_of(), {"voucher_ids": list(voucher_ids)}).all()
    if rows:
        db.session.execute(_lot_reserved_update(-1), [{"lid": lot_id, "change": points} for lot_id, points in rows])


def _reserved_takes(account_id: int, voucher_id: int | None, amount: int) -> list[dict]:
    """The lots a capture takes from: the ones its voucher reserved (``reserve``)."""
    takes = [{"id": lot_id, "remaining": points}
             for lot_id, points in db.session.execute(_reservations_of(), {"voucher_ids": [voucher_id]})]
    if sum(t["remaining"] for t in takes) != amount:
        # The reservation no longer matches the voucher: stop, never paper over it.
        raise RuntimeError(f"account {account_id}: voucher {voucher_id} reserves {takes}, not {amount} points")
    return takes


def _move_reservations_off(lot_id: int, account_id: int, today: date) -> None:
    """Move what open vouchers reserve in lot ``lot_id`` to other lots of the account, for a
    credit reversal that takes the lot back: the earliest-expiring free points still valid
    ``today``. Refused (``CannotReverse``) when the volunteer has too few such points: the
    voucher must be used or cancelled first. Run under the account's lock."""
    voucher_t = Voucher.__table__
    held = db.session.execute(
        select(voucher_lot_t.c.voucher_id, func.sum(voucher_lot_t.c.points))
        .join(voucher_t, voucher_t.c.id == voucher_lot_t.c.voucher_id)
        .where(voucher_lot_t.c.lot_id == lot_id, voucher_t.c.status == VOUCHER_ISSUED)
        .group_by(voucher_lot_t.c.voucher_id)
        .having(func.sum(voucher_lot_t.c.points) > 0)
        .order_by(voucher_lot_t.c.voucher_id)
    ).all()
    if not held:
        return
    free = [
        [lid, points] for lid, points in db.session.execute(
            _open_lots(False, False, valid_besides=True), {"account_id": account_id, "besides": lot_id, "valid_on": today}
        )
    ]
    if sum(points for _, points in free) < sum(points for _, points in held):
        raise CannotReverse(why=_l(
            "an open voucher of the volunteer holds some of its points and they have no other valid "
            "points to hold instead; the voucher must be used or cancelled first"
        ))
    rows, reserved = [], {lot_id: 0}
    for voucher_id, points in held:
        rows.append({"voucher_id": voucher_id, "lot_id": lot_id, "points": -points})
        reserved[lot_id] -= points
        while points:
            take = min(points, free[0][1])
            rows.append({"voucher_id": voucher_id, "lot_id": free[0][0], "points": take})
            reserved[free[0][0]] = reserved.get(free[0][0], 0) + take
            free[0][1] -= take
            points -= take
            if not free[0][1]:
                free.pop(0)
    db.session.execute(insert(voucher_lot_t), rows)
    db.session.execute(_lot_reserved_update(-1), [{"lid": lot_id, "change": -reserved.pop(lot_id)}])
    db.session.execute(_lot_reserved_update(1), [{"lid": lid, "change": n} for lid, n in reserved.items()])


def capture(
    volunteer_account_id: int,
    merchant_account_id: int,
    amount: int,
    *,
    reason: str,
    cause_key: str,
    voucher_id: int,
    created_by_id: int | None,
    created_at=None,
) -> Transfer:
    """Move held points from a volunteer to a merchant (the cashier confirmed a voucher): the
    points its voucher reserved, from the lots it reserved them in."""
    return _transfer(
        kind="capture",
        from_id=volunteer_account_id,
        to_id=merchant_account_id,
        amount=amount,
        reason=reason,
        cause_key=cause_key,
        from_held=True,
        voucher_id=voucher_id,
        created_by_id=created_by_id,
        created_at=created_at,
    )


def settle(
    merchant_account_id: int,
    issuance_account_id: int,
    amount: int,
    *,
    reason: str,
    cause_key: str,
    created_by_id: int | None,
) -> Transfer:
    """Retire ``amount`` points the street has paid for, from a merchant back to its issuance
    account; ``InsufficientPoints`` when the merchant is owed less."""
    return _transfer(
        kind=TRANSFER_SETTLEMENT,
        from_id=merchant_account_id,
        to_id=issuance_account_id,
        amount=amount,
        reason=reason,
        cause_key=cause_key,
        created_by_id=created_by_id,
    )


def deduct(
    volunteer_account_id: int,
    issuance_account_id: int,
    amount: int,
    *,
    reason: str,
    cause_key: str,
    created_by_id: int | None,
) -> Transfer:
    """Retire ``amount`` of a volunteer's available points to the street's issuance account (a
    deduction rule applied by staff); ``earned`` is left as it was."""
    return _transfer(
        kind=TRANSFER_DEDUCTION,
        from_id=volunteer_account_id,
        to_id=issuance_account_id,
        amount=amount,
        reason=reason,
        cause_key=cause_key,
        created_by_id=created_by_id,
    )


@dataclass(frozen=True)
class Expired:
    lots: int = 0
    points: int = 0

    def __add__(self, other: "Expired") -> "Expired":
        return Expired(self.lots + other.lots, self.points + other.points)


def accounts_with_due_lots(today: date) -> list[int]:
    """Return the volunteer accounts that have points past their last day (``expires_on < today``)
    that no open voucher reserves."""
    return list(
        db.session.scalars(
            select(lot_t.c.account_id)
            .where(lot_t.c.expires_on < today, lot_t.c.remaining > lot_t.c.reserved)
            .group_by(lot_t.c.account_id)
            .order_by(lot_t.c.account_id)
        )
    )


def expire_account(account_id: int, today: date) -> Expired:
    """Move the points of a volunteer's lots past their last day to the street's expiry account,
    one ``expiry`` transfer per lot; points reserved by open vouchers stay (see "Lots and expiry").

    Safe to run twice or at once: everything is read under the volunteer account's lock, and each
    transfer's cause key names the lot and how many times it has expired before.
    """
    lock_accounts([account_id])
    user_path = db.session.execute(
        select(OrgUnit.path)
        .select_from(account_t)
        .join(User, User.id == account_t.c.user_id)
        .outerjoin(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(account_t.c.id == account_id, account_t.c.kind == ACCOUNT_VOLUNTEER)
    ).scalar_one()
    user_street = root_id_of(user_path) if user_path else None
    issuer = Account.__table__.alias("issuer")
    lots = db.session.execute(
        select(
            lot_t.c.id, lot_t.c.remaining - lot_t.c.reserved, lot_t.c.earned_on, lot_t.c.expires_on,
            case((issuer.c.kind == ACCOUNT_ISSUANCE, issuer.c.org_unit_id)),
        )
        .select_from(lot_t)
        .outerjoin(Transfer, Transfer.id == lot_t.c.transfer_id)
        .outerjoin(issuer, issuer.c.id == Transfer.from_account_id)
        .where(lot_t.c.account_id == account_id, lot_t.c.remaining > lot_t.c.reserved, lot_t.c.expires_on < today)
        .order_by(lot_t.c.expires_on, lot_t.c.id)
    ).all()
    done = Expired()
    # The budgets the expiring points give back to, locked now in id order (as every other
    # writer of several budgets locks them), not one by one in the order the lots expire.
    budgets.lock_paying_budgets([lot_id for lot_id, *_ in lots])
    for lot_id, amount, earned_on, expires_on, issuing_street in lots:  # what no open voucher reserves
        street_id = issuing_street or user_street
        if amount <= 0 or street_id is None:
            continue
        before = db.session.scalar(
            select(func.count())
            .select_from(lot_use_t)
            .join(Transfer, Transfer.id == lot_use_t.c.transfer_id)
            .where(lot_use_t.c.lot_id == lot_id, Transfer.kind == TRANSFER_EXPIRY)
        )
        _transfer(
            kind=TRANSFER_EXPIRY,
            from_id=account_id,
            to_id=_expiry_account_of(street_id).id,
            amount=amount,
            reason=f"积分过期：{earned_on.isoformat()} 获得，有效期至 {expires_on.isoformat()}",
            cause_key=f"expiry:{lot_id}:{before + 1}",
            lot_id=lot_id,
        )
        done += Expired(1, amount)
    return done


@lru_cache(maxsize=None)
def _has_due_lots():
    return select(lot_t.c.id).where(
        lot_t.c.account_id == bindparam("account_id"), lot_t.c.remaining > lot_t.c.reserved,
        lot_t.c.expires_on < bindparam("today"),
    ).limit(1)


def expire_due(account_id: int, today: date, *, issuance_of: OrgUnit | None = None) -> Expired:
    """Expire a volunteer's points past their last day before they are spent: what the nightly
    ``flask points expire`` would have done, for points it has not reached yet (it runs after
    midnight, and may have missed a night). A voucher or a deduction then takes only points that
    are still valid. One indexed read when nothing is due. Call under the volunteer account's
    lock: read without it, points a concurrent cancellation frees could be missed here and spent.

    ``issuance_of``: a caller that goes on to debit the issuance account of that unit's street
    (a deduction) has it locked first, before the expiry account and the budgets the expiry
    locks, as the global lock order has it."""
    if db.session.scalar(_has_due_lots(), {"account_id": account_id, "today": today}) is None:
        return Expired()
    if issuance_of is not None:
        lock_accounts([issuance_account(issuance_of).id])
    return expire_account(account_id, today)


def expired_total(street: OrgUnit) -> int:
    """Points that have expired in the street (the balance of its expiry account): no longer
    owed to anyone, so the street's outstanding liability is ``-issuance - expired``."""
    return db.session.scalar(
        select(func.coalesce(func.sum(account_t.c.balance), 0)).where(
            account_t.c.kind == ACCOUNT_EXPIRY, account_t.c.org_unit_id == street.root_id
        )
    )


@dataclass(frozen=True)
class Expiring:
    points: int
    first_date: date | None


EXPIRING_DAYS = 30  # what the volunteer is warned of: points expiring within this many days


def expiring_soon(account_id: int, today: date | None = None, days: int = EXPIRING_DAYS) -> Expiring:
    """Points of a volunteer that expire within ``days`` (past their last day by then) and no open
    voucher reserves, and the earliest such last day."""
    today = today or _today()
    horizon = today + timedelta(days=days)
    total, first = db.session.execute(_expiring_query(), {"account_id": account_id, "horizon": horizon}).one()
    return Expiring(int(total), first if total else None)


@lru_cache(maxsize=None)
def _expiring_query():
    """Built once: the volunteer's home page runs it on every request."""
    return select(func.coalesce(func.sum(lot_t.c.remaining - lot_t.c.reserved), 0), func.min(lot_t.c.expires_on)).where(
        lot_t.c.account_id == bindparam("account_id"), lot_t.c.remaining > lot_t.c.reserved,
        lot_t.c.expires_on < bindparam("horizon", type_=lot_t.c.expires_on.type),
    )


def reverse(original: Transfer, *, reason: str, created_by_id: int | None, today: date | None = None) -> Transfer:
    """Undo ``original`` in full with a new transfer the other way; at most once. A credit
    reversal first expires the volunteer's points past their last day on ``today`` (default:
    the street's today), as a deduction does: it then takes back only points still valid."""
    if original.kind == TRANSFER_REVERSAL:
        raise CannotReverse(why=_l("a reversal cannot itself be reversed"))
    if original.kind == TRANSFER_SETTLEMENT:
        raise CannotReverse(why=_l("a payment to a merchant is settled in the merchant's next period"))
    if original.kind == TRANSFER_EXPIRY:
        raise CannotReverse(
            why=_l("expired points are not restored; if they expired by mistake, credit the volunteer again with a reason")
        )
    # Look for an earlier reversal only under the accounts' locks: a reversal committed by a
    # concurrent caller is then visible, instead of surfacing as a unique-key violation.
    lock_accounts([original.from_account_id, original.to_account_id])
    if db.session.scalar(select(Transfer.id).where(Transfer.reverses_id == original.id)):
        raise CannotReverse(why=_l("it was already reversed"))
    if original.kind == TRANSFER_CAPTURE and _capture_paid_for(original):
        raise _capture_already_paid()
    to_acc = db.session.get(Account, original.to_account_id)
    today = today or _today()
    if original.kind == TRANSFER_CREDIT and to_acc.kind == ACCOUNT_VOLUNTEER:
        # Points past their last day that the nightly run has not reached expire now, under the
        # account's lock: the reversal must not take them back as if they were still valid. The
        # issuance account is locked already, before the expiry account, as the lock order has it.
        expire_due(to_acc.id, today)
    if original.kind == TRANSFER_CREDIT and _credit_expired_from(original):
        # Its expired points are with the street's expiry account, not the volunteer: taking the
        # whole credit back would take them again from points the volunteer rightly holds.
        raise CannotReverse(why=_l(
            "some of its points have already expired; to take back what the volunteer still holds of it, "
            "apply a deduction with the reason"
        ))
    unearn = original.amount if original.kind == TRANSFER_CREDIT else 0
    if original.kind == TRANSFER_CREDIT and to_acc.kind == ACCOUNT_VOLUNTEER:
        # The reversal takes the credit's own lot first, all of it: what open vouchers reserve
        # there moves to the volunteer's other valid points (when they have enough to give back).
        balance, held = db.session.execute(
            select(account_t.c.balance, account_t.c.held).where(account_t.c.id == to_acc.id)
        ).one()
        own = db.session.scalar(select(lot_t.c.id).where(lot_t.c.transfer_id == original.id, lot_t.c.reserved > 0))
        if own is not None and balance - held >= original.amount:
            _move_reservations_off(own, to_acc.id, today)
    try:
        t = _transfer(
            kind=TRANSFER_REVERSAL,
            from_id=original.to_account_id,
            to_id=original.from_account_id,
            amount=original.amount,
            reason=reason,
            cause_key=f"reverse:{original.id}",
            unearn=unearn if to_acc.kind == ACCOUNT_VOLUNTEER else 0,
            activity_id=original.activity_id,
            voucher_id=original.voucher_id,
            reverses_id=original.id,
            created_by_id=created_by_id,
        )
    except InsufficientPoints as exc:
        if original.kind == TRANSFER_CAPTURE:
            raise _capture_already_paid() from exc
        raise CannotReverse(
            _l(
                "This entry cannot be reversed: the account has only %(available)s points available "
                "and %(needed)s are needed (already spent or held)."
            ),
            available=exc.params["available"],
            needed=original.amount,
        ) from exc
    return t


def _credit_expired_from(credit: Transfer) -> bool:
    """Say whether an expiry has taken points from the lot of ``credit``."""
    return db.session.scalar(
        select(lot_use_t.c.id)
        .join(lot_t, lot_t.c.id == lot_use_t.c.lot_id)
        .join(Transfer, Transfer.id == lot_use_t.c.transfer_id)
        .where(lot_t.c.transfer_id == credit.id, Transfer.kind == TRANSFER_EXPIRY)
        .limit(1)
    ) is not None


def _capture_already_paid() -> CannotReverse:
    return CannotReverse(
        _l(
            "This redemption cannot be reversed here: the merchant has already been paid for these "
            "points. Record the correction in the merchant's next settlement."
        )
    )


def _capture_paid_for(capture: Transfer) -> bool:
    """Return whether payments to the merchant have reached any of ``capture``'s points.

    Payments retire a merchant's points first in, first out in the order captures were recorded
    (``pointsapp.domain.settlement``): the capture is paid for once more points were paid than
    its earlier captures, net of their reversals, brought. Taking such points back would undo a
    redemption the street already paid at its value; that correction is settled with the
    merchant instead. Call under the merchant account's lock."""
    merchant_id = capture.to_account_id
    reversed_ids = select(Transfer.reverses_id).where(Transfer.reverses_id.is_not(None))
    earlier = db.session.scalar(
        select(func.coalesce(func.sum(Transfer.amount), 0)).where(
            Transfer.kind == TRANSFER_CAPTURE,
            Transfer.to_account_id == merchant_id,
            Transfer.id < capture.id,
            Transfer.id.not_in(reversed_ids),
        )
    )
    paid = db.session.scalar(
        select(func.coalesce(func.sum(Transfer.amount), 0)).where(
            Transfer.kind == TRANSFER_SETTLEMENT, Transfer.from_account_id == merchant_id
        )
    )
    return paid > earlier


@dataclass(frozen=True)
class Balance:
    balance: int
    held: int
    earned: int

    @property
    def available(self) -> int:
        return self.balance - self.held


def balance_of(account_id: int) -> Balance:
    """Return an account's balance, held and earned points as stored."""
    row = db.session.execute(
        select(account_t.c.balance, account_t.c.held, account_t.c.earned).where(account_t.c.id == account_id)
    ).one()
    return Balance(*row)


def check_ledger() -> list[str]:
    """Verify every invariant of the ledger; return one line per problem (empty when sound)."""
    problems: list[str] = []
    s = db.session

    sums = dict(
        s.execute(select(Entry.account_id, func.coalesce(func.sum(Entry.amount), 0)).group_by(Entry.account_id)).all()
    )
    for acc in s.scalars(select(Account).order_by(Account.id)):
        total = sums.get(acc.id, 0)
        if acc.balance != total:
            problems.append(f"account {acc.id} ({acc.kind}): balance {acc.balance} but entries sum to {total}")
        if acc.kind != ACCOUNT_ISSUANCE and acc.balance < 0:
            problems.append(f"account {acc.id} ({acc.kind}): negative balance {acc.balance}")
        if acc.held < 0 or (acc.kind != ACCOUNT_ISSUANCE and acc.held > acc.balance):
            problems.append(f"account {acc.id}: held {acc.held} outside 0..{acc.balance}")

    grand = s.scalar(select(func.coalesce(func.sum(Account.balance), 0)))
    if grand != 0:
        problems.append(f"balances of all accounts sum to {grand}, not 0")

    bad_transfers = s.execute(
        select(
            Transfer.id,
            func.count(Entry.id),
            func.coalesce(func.sum(Entry.amount), 0),
            func.min(Entry.amount),
            func.max(Entry.amount),
            Transfer.amount,
            Transfer.from_account_id,
            Transfer.to_account_id,
            func.min(case((Entry.amount < 0, Entry.account_id))),
            func.min(case((Entry.amount > 0, Entry.account_id))),
        )
        .outerjoin(Entry, Entry.transfer_id == Transfer.id)
        .group_by(Transfer.id)
    ).all()
    for tid, n, total, lo, hi, amount, from_id, to_id, neg_acc, pos_acc in bad_transfers:
        if n != 2 or total != 0 or lo != -amount or hi != amount or neg_acc != from_id or pos_acc != to_id:
            problems.append(f"transfer {tid}: entries do not match (count {n}, sum {total}, amount {amount})")

    held = dict(
        s.execute(
            select(Voucher.account_id, func.sum(Voucher.points))
            .where(Voucher.status == VOUCHER_ISSUED)
            .group_by(Voucher.account_id)
        ).all()
    )
    for acc_id, acc_held in s.execute(select(Account.id, Account.held)):
        if acc_held != held.get(acc_id, 0):
            problems.append(f"account {acc_id}: held {acc_held} but issued vouchers hold {held.get(acc_id, 0)}")

    credited_in = dict(
        s.execute(
            select(Transfer.to_account_id, func.sum(Transfer.amount))
            .where(Transfer.kind == TRANSFER_CREDIT)
            .group_by(Transfer.to_account_id)
        ).all()
    )
    original = Transfer.__table__.alias("original")
    reversed_out = dict(
        s.execute(
            select(Transfer.from_account_id, func.sum(Transfer.amount))
            .join(original, original.c.id == Transfer.reverses_id)
            .where(Transfer.kind == TRANSFER_REVERSAL, original.c.kind == TRANSFER_CREDIT)
            .group_by(Transfer.from_account_id)
        ).all()
    )
    for acc_id, earned in s.execute(select(Account.id, Account.earned)):
        expected = credited_in.get(acc_id, 0) - reversed_out.get(acc_id, 0)
        if earned != expected:
            problems.append(f"account {acc_id}: earned {earned} but credits less reversals are {expected}")

    captures = dict(
        s.execute(
            select(Transfer.voucher_id, func.count())
            .where(Transfer.kind == "capture")
            .group_by(Transfer.voucher_id)
        ).all()
    )
    for vid, status in s.execute(select(Voucher.id, Voucher.status)):
        n = captures.get(vid, 0)
        if (status == "redeemed") != (n == 1) or n > 1:
            problems.append(f"voucher {vid} ({status}): {n} captures")

    credits = dict(
        s.execute(
            select(Transfer.activity_id, func.sum(Transfer.amount))
            .where(Transfer.kind == TRANSFER_CREDIT)
            .group_by(Transfer.activity_id)
        ).all()
    )
    # An activity's status must agree with the ledger: its credit reversed exactly when it is
    # "reversed" (caps count approved activities, so a stale "approved" would cut later credits).
    credit_t = Transfer.__table__.alias("credit")
    reversed_activities = set(
        s.scalars(
            select(credit_t.c.activity_id)
            .join(Transfer, Transfer.reverses_id == credit_t.c.id)
            .where(credit_t.c.kind == TRANSFER_CREDIT, credit_t.c.activity_id.is_not(None))
        )
    )
    for aid, status, pts in s.execute(
        select(Activity.id, Activity.status, Activity.points_credited).where(
            Activity.status.in_(("approved", "reversed"))
        )
    ):
        if credits.get(aid, 0) != pts:
            problems.append(f"activity {aid} ({status}): credited {pts} but transfers total {credits.get(aid, 0)}")
        if (status == "reversed") != (aid in reversed_activities):
            problems.append(
                f"activity {aid} ({status}): its credit is {'' if aid in reversed_activities else 'not '}reversed"
            )
    # One query for the states of all credited activities (not one per activity: this runs often).
    credited_states = dict(
        s.execute(
            select(Activity.id, Activity.status).where(
                Activity.id.in_(select(Transfer.activity_id).where(Transfer.kind == TRANSFER_CREDIT))
            )
        ).all()
    )
    for aid in set(credits) - {None}:
        st = credited_states.get(aid)
        if st not in ("approved", "reversed"):
            problems.append(f"activity {aid} ({st}): has a credit transfer but is not approved")
    # Activities on public notice are not credited yet; withheld ones never are.
    for aid, status, pts in s.execute(
        select(Activity.id, Activity.status, Activity.points_credited).where(
            Activity.status.in_(("on_notice", "withheld")), Activity.points_credited != 0
        )
    ):
        problems.append(f"activity {aid} ({status}): shows {pts} points credited but is not credited")
    problems.extend(_check_settlement())
    problems.extend(_check_lots())
    problems.extend(_check_month_totals())
    problems.extend(activity_totals.check_year_totals())
    return problems


def _check_lots() -> list[str]:
    """The lot invariants: a volunteer's lots hold their balance, each lot's remaining is its
    amount less what transfers took, each credit made its lot; the expiry account only receives
    expiries, and an expiry only goes from a volunteer to an expiry account."""
    problems: list[str] = []
    s = db.session
    remaining = dict(s.execute(select(lot_t.c.account_id, func.sum(lot_t.c.remaining)).group_by(lot_t.c.account_id)).all())
    for acc_id, kind, bal in s.execute(select(Account.id, Account.kind, Account.balance).order_by(Account.id)):
        in_lots = remaining.get(acc_id, 0)
        if kind == ACCOUNT_VOLUNTEER and in_lots != bal:
            problems.append(f"account {acc_id}: balance {bal} but its lots hold {in_lots}")
        if kind != ACCOUNT_VOLUNTEER and acc_id in remaining:
            problems.append(f"account {acc_id} ({kind}): has lots but is not a volunteer's")
    used = (
        select(lot_use_t.c.lot_id, func.sum(lot_use_t.c.amount).label("used")).group_by(lot_use_t.c.lot_id).subquery()
    )
    for lot_id, amount, rem, taken in s.execute(
        select(lot_t.c.id, lot_t.c.amount, lot_t.c.remaining, func.coalesce(used.c.used, 0)).outerjoin(
            used, used.c.lot_id == lot_t.c.id
        )
    ):
        if not 0 <= rem <= amount:
            problems.append(f"lot {lot_id}: remaining {rem} outside 0..{amount}")
        if rem != amount - taken:
            problems.append(f"lot {lot_id}: remaining {rem} but amount {amount} less uses {taken} is {amount - taken}")
    # Every credit made its lot, except credits from before lots (older than the first transfer
    # that made or used a lot), whose points went into opening lots when the database was upgraded.
    vol = Account.__table__.alias("vol")
    firsts = [s.scalar(select(func.min(lot_t.c.transfer_id))), s.scalar(select(func.min(lot_use_t.c.transfer_id)))]
    lots_since = min((f for f in firsts if f is not None), default=None)
    for tid, acc_id, amount, lot_amount in s.execute(
        select(Transfer.id, vol.c.id, Transfer.amount, lot_t.c.amount)
        .join(vol, vol.c.id == Transfer.to_account_id)
        .outerjoin(lot_t, lot_t.c.transfer_id == Transfer.id)
        .where(Transfer.kind == TRANSFER_CREDIT, vol.c.kind == ACCOUNT_VOLUNTEER)
    ):
        if lot_amount != amount and not (lot_amount is None and (lots_since is None or tid < lots_since)):
            problems.append(f"credit {tid} of {amount} points: its lot holds {lot_amount}")
    src = Account.__table__.alias("src")
    dst = Account.__table__.alias("dst")
    for tid, kind, src_kind, dst_kind in s.execute(
        select(Transfer.id, Transfer.kind, src.c.kind, dst.c.kind)
        .join(src, src.c.id == Transfer.from_account_id)
        .join(dst, dst.c.id == Transfer.to_account_id)
        .where(or_(Transfer.kind == TRANSFER_EXPIRY, src.c.kind == ACCOUNT_EXPIRY, dst.c.kind == ACCOUNT_EXPIRY))
    ):
        if (kind, src_kind, dst_kind) != (TRANSFER_EXPIRY, ACCOUNT_VOLUNTEER, ACCOUNT_EXPIRY):
            problems.append(f"transfer {tid} ({kind}): goes from {src_kind} to {dst_kind}; only expiries reach expiry accounts")
    problems.extend(_check_reservations())
    problems.extend(budgets.check_budgets())
    return problems


def _check_reservations() -> list[str]:
    """What open vouchers reserve: each lot's ``reserved`` is what issued vouchers reserve in it,
    each issued voucher reserves its points, no voucher reserves less than nothing in a lot, and
    an account's lots reserve its ``held``."""
    problems: list[str] = []
    s = db.session
    voucher_t = Voucher.__table__
    per_pair = (
        select(voucher_lot_t.c.voucher_id, voucher_lot_t.c.lot_id, func.sum(voucher_lot_t.c.points).label("points"))
        .group_by(voucher_lot_t.c.voucher_id, voucher_lot_t.c.lot_id)
        .subquery()
    )
    for voucher_id, lot_id, points in s.execute(select(per_pair).where(per_pair.c.points < 0)):
        problems.append(f"voucher {voucher_id}: reserves {points} points in lot {lot_id}")
    open_reserved = (
        select(per_pair.c.lot_id, func.sum(per_pair.c.points).label("points"))
        .join(voucher_t, voucher_t.c.id == per_pair.c.voucher_id)
        .where(voucher_t.c.status == VOUCHER_ISSUED)
        .group_by(per_pair.c.lot_id)
        .subquery()
    )
    for lot_id, reserved, expected in s.execute(
        select(lot_t.c.id, lot_t.c.reserved, func.coalesce(open_reserved.c.points, 0))
        .outerjoin(open_reserved, open_reserved.c.lot_id == lot_t.c.id)
        .where(lot_t.c.reserved != func.coalesce(open_reserved.c.points, 0))
    ):
        problems.append(f"lot {lot_id}: reserved {reserved} but issued vouchers reserve {expected} in it")
    per_voucher = (
        select(voucher_lot_t.c.voucher_id, func.sum(voucher_lot_t.c.points).label("points"))
        .group_by(voucher_lot_t.c.voucher_id)
        .subquery()
    )
    for voucher_id, points, reserved in s.execute(
        select(voucher_t.c.id, voucher_t.c.points, func.coalesce(per_voucher.c.points, 0))
        .outerjoin(per_voucher, per_voucher.c.voucher_id == voucher_t.c.id)
        .where(voucher_t.c.status == VOUCHER_ISSUED, voucher_t.c.points != func.coalesce(per_voucher.c.points, 0))
    ):
        problems.append(f"voucher {voucher_id} of {points} points: reserves {reserved} in lots")
    lots_reserved = (
        select(lot_t.c.account_id, func.sum(lot_t.c.reserved).label("reserved")).group_by(lot_t.c.account_id).subquery()
    )
    for acc_id, held, reserved in s.execute(
        select(account_t.c.id, account_t.c.held, func.coalesce(lots_reserved.c.reserved, 0))
        .outerjoin(lots_reserved, lots_reserved.c.account_id == account_t.c.id)
        .where(account_t.c.held != func.coalesce(lots_reserved.c.reserved, 0))
    ):
        problems.append(f"account {acc_id}: held {held} but its lots reserve {reserved}")
    return problems


def _check_settlement() -> list[str]:
    """The settlement invariants: payments match their transfers, closed periods add up."""
    from ..models import SettlementLine, SettlementPayment, SettlementPeriod

    problems: list[str] = []
    s = db.session
    src = Account.__table__.alias("src")
    dst = Account.__table__.alias("dst")
    rows = s.execute(
        select(Transfer.id, Transfer.amount, src.c.kind, src.c.merchant_id, dst.c.kind,
               SettlementPayment.points, SettlementPayment.merchant_id)
        .join(src, src.c.id == Transfer.from_account_id)
        .join(dst, dst.c.id == Transfer.to_account_id)
        .outerjoin(SettlementPayment, SettlementPayment.transfer_id == Transfer.id)
        .where(Transfer.kind == TRANSFER_SETTLEMENT)
    ).all()
    for tid, amount, src_kind, src_merchant, dst_kind, pay_points, pay_merchant in rows:
        if src_kind != ACCOUNT_MERCHANT or dst_kind != ACCOUNT_ISSUANCE:
            problems.append(f"settlement {tid}: goes from {src_kind} to {dst_kind}, not merchant to issuance")
        if pay_points != amount or pay_merchant != src_merchant:
            problems.append(f"settlement {tid}: no payment record of {amount} points for its merchant")
    orphan = s.scalar(
        select(func.count()).select_from(SettlementPayment)
        .join(Transfer, Transfer.id == SettlementPayment.transfer_id)
        .where(Transfer.kind != TRANSFER_SETTLEMENT)
    )
    if orphan:
        problems.append(f"{orphan} payment records point at transfers that are not settlements")

    line_sums = {
        pid: (red, cor, paid, foreign)
        for pid, red, cor, paid, foreign in s.execute(
            select(
                SettlementLine.period_id,
                func.coalesce(func.sum(case((Transfer.kind == TRANSFER_CAPTURE, Entry.amount))), 0),
                func.coalesce(func.sum(case((Transfer.kind == TRANSFER_REVERSAL, Entry.amount))), 0),
                func.coalesce(func.sum(case((Transfer.kind == TRANSFER_SETTLEMENT, -Entry.amount))), 0),
                func.count(case((or_(Account.merchant_id.is_(None), Account.merchant_id != SettlementPeriod.merchant_id), 1))),
            )
            .join(SettlementPeriod, SettlementPeriod.id == SettlementLine.period_id)
            .join(Entry, Entry.id == SettlementLine.entry_id)
            .join(Transfer, Transfer.id == Entry.transfer_id)
            .join(Account, Account.id == Entry.account_id)
            .group_by(SettlementLine.period_id)
        ).all()
    }
    previous: dict[int, SettlementPeriod] = {}
    for p in s.scalars(select(SettlementPeriod).order_by(SettlementPeriod.merchant_id, SettlementPeriod.period_start)):
        red, cor, paid, foreign = line_sums.get(p.id, (0, 0, 0, 0))
        if (red, cor, paid) != (p.redeemed, p.corrected, p.paid):
            problems.append(
                f"settlement period {p.id}: totals {p.redeemed}/{p.corrected}/{p.paid} "
                f"but its entries sum to {red}/{cor}/{paid}"
            )
        if foreign:
            problems.append(f"settlement period {p.id}: {foreign} entries of another account")
        before = previous.get(p.merchant_id)
        expected_opening = before.closing_balance if before else 0
        if p.opening_balance != expected_opening:
            problems.append(
                f"settlement period {p.id}: opens at {p.opening_balance} but the previous period closed at {expected_opening}"
            )
        if before is not None and before.period_end != p.period_start:
            problems.append(f"settlement period {p.id}: does not start where period {before.id} ended")
        previous[p.merchant_id] = p
    return problems
