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

Holds
    Redeeming a reward does not move points yet: ``hold()`` raises ``held`` so the points
    cannot be spent twice, ``capture()`` moves them to the merchant when the cashier confirms,
    ``release()`` lowers ``held`` again on cancellation or expiry. Holds are not transfers; the
    invariant ``held == sum(points of issued vouchers)`` ties them to the vouchers instead.

Concurrency
    Balances are never read, checked in Python and written back. Each change is one conditional
    ``UPDATE account ... WHERE balance - held >= :amount RETURNING balance``; when no row comes
    back the check failed and nothing was written. Both rows of a transfer are updated in
    the global lock order below, so two transfers never wait on each other in opposite orders. On
    PostgreSQL the row lock makes the second writer re-check the condition after the first
    commits; on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and so runs alone.
    Rows are locked in one global order (``lock_accounts``): the activity or voucher row first,
    then people's and merchants' accounts by id, then the street's issuance account, then the
    reward's stock row. No path takes them in another order, so no two writers deadlock.

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
    * activities ``on_notice`` (public notice) or ``withheld`` have no credit and credit nothing.

The functions here ``flush()`` and never ``commit()``. A raised ``PointsError`` means the
caller must roll back: an earlier statement of the same transaction may already have run.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.util import identity_key

from ..extensions import db
from ..models import Account, Entry, OrgUnit, Transfer, User, Voucher
from ..models.ledger import (
    ACCOUNT_ISSUANCE,
    ACCOUNT_MERCHANT,
    ACCOUNT_VOLUNTEER,
    TRANSFER_CAPTURE,
    TRANSFER_CREDIT,
    TRANSFER_REVERSAL,
    TRANSFER_SETTLEMENT,
)
from ..models.rewards import VOUCHER_ISSUED
from ..models.rules import Activity
from .errors import CannotReverse, InsufficientPoints, NotFound

account_t = Account.__table__


def _expire_loaded(account_id: int) -> None:
    """Drop a stale in-session copy of an account after a Core UPDATE changed its row."""
    obj = db.session.identity_map.get(identity_key(Account, account_id))
    if obj is not None:
        db.session.expire(obj)


def _account(condition, **owner) -> Account:
    """Return the account matching ``condition``, creating it (with ``owner``) on first use.

    Two first uses at the same moment both try to insert it: the second insert waits for the
    first, fails on the unique constraint inside a savepoint, and reads the winner's row instead.
    """
    acc = db.session.scalar(select(Account).where(condition))
    if acc is None:
        try:
            with db.session.begin_nested():
                acc = Account(balance=0, held=0, earned=0, **owner)
                db.session.add(acc)
        except IntegrityError:
            acc = db.session.scalar(select(Account).where(condition))
    return acc


def account_for_volunteer(user: User) -> Account:
    """Return the volunteer's account, creating it on first use."""
    return _account(Account.user_id == user.id, kind=ACCOUNT_VOLUNTEER, user_id=user.id)


def account_for_merchant(merchant_id: int) -> Account:
    """Return the merchant's receivable account, creating it on first use."""
    return _account(Account.merchant_id == merchant_id, kind=ACCOUNT_MERCHANT, merchant_id=merchant_id)


def issuance_account(street: OrgUnit) -> Account:
    """Return the issuance account of the street (the root) above ``street``, creating it on first use."""
    root_id = street.root_id
    return _account(
        and_(Account.kind == ACCOUNT_ISSUANCE, Account.org_unit_id == root_id),
        kind=ACCOUNT_ISSUANCE,
        org_unit_id=root_id,
    )


def lock_accounts(account_ids) -> None:
    """Lock account rows in the one global order: people's and merchants' accounts by id, then
    the streets' issuance accounts. Every writer that touches several accounts goes through here
    (or locks a single volunteer account first), so no two transactions wait on each other in a
    cycle. On SQLite the lock is the write transaction itself (BEGIN IMMEDIATE)."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    # PostgreSQL sorts first and then locks rows in that order.
    db.session.execute(
        select(account_t.c.id)
        .where(account_t.c.id.in_(ids))
        .order_by(account_t.c.kind == ACCOUNT_ISSUANCE, account_t.c.id)
        .with_for_update()
    ).all()


def _debit(account_id: int, amount: int, *, from_held: bool, unearn: int = 0) -> int:
    """Take ``amount`` from an account, from its held or its available points; return the new balance."""
    values = {"balance": account_t.c.balance - amount}
    if from_held:
        condition = account_t.c.held >= amount
        values["held"] = account_t.c.held - amount
    else:
        condition = or_(
            account_t.c.kind == ACCOUNT_ISSUANCE,
            account_t.c.balance - account_t.c.held >= amount,
        )
    if unearn:
        values["earned"] = account_t.c.earned - unearn
        condition = and_(condition, account_t.c.earned >= unearn)
    new_balance = db.session.execute(
        update(account_t)
        .where(account_t.c.id == account_id, condition)
        .values(**values)
        .returning(account_t.c.balance)
    ).scalar()
    _expire_loaded(account_id)
    if new_balance is None:
        acc = db.session.get(Account, account_id)
        raise InsufficientPoints(needed=amount, available=acc.held if from_held else acc.available)
    return new_balance


def _deposit(account_id: int, amount: int, *, earn: bool) -> int:
    values = {"balance": account_t.c.balance + amount}
    if earn:
        values["earned"] = account_t.c.earned + amount
    new_balance = db.session.execute(
        update(account_t).where(account_t.c.id == account_id).values(**values).returning(account_t.c.balance)
    ).scalar()
    _expire_loaded(account_id)
    if new_balance is None:
        raise NotFound()
    return new_balance


def _transfer(
    *,
    kind: str,
    from_id: int,
    to_id: int,
    amount: int,
    reason: str,
    cause_key: str,
    from_held: bool = False,
    earn: bool = False,
    unearn: int = 0,
    activity_id: int | None = None,
    voucher_id: int | None = None,
    reverses_id: int | None = None,
    created_by_id: int | None = None,
    created_at=None,
) -> Transfer:
    if amount <= 0:
        raise ValueError("a transfer moves a positive amount")
    db.session.flush()
    lock_accounts([from_id, to_id])
    from_after = _debit(from_id, amount, from_held=from_held, unearn=unearn)
    to_after = _deposit(to_id, amount, earn=earn)
    t = Transfer(
        kind=kind,
        amount=amount,
        from_account_id=from_id,
        to_account_id=to_id,
        reason=reason,
        cause_key=cause_key,
        activity_id=activity_id,
        voucher_id=voucher_id,
        reverses_id=reverses_id,
        created_by_id=created_by_id,
    )
    if created_at is not None:
        t.created_at = created_at
    db.session.add(t)
    db.session.flush()
    db.session.add_all(
        [
            Entry(transfer_id=t.id, account_id=from_id, amount=-amount, balance_after=from_after),
            Entry(transfer_id=t.id, account_id=to_id, amount=amount, balance_after=to_after),
        ]
    )
    db.session.flush()
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
) -> Transfer:
    """Issue ``amount`` new points from a street's issuance account to a volunteer."""
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
    )


def hold(account_id: int, amount: int) -> None:
    """Reserve ``amount`` of a volunteer's available points, or raise ``InsufficientPoints``."""
    held = db.session.execute(
        update(account_t)
        .where(account_t.c.id == account_id, account_t.c.balance - account_t.c.held >= amount)
        .values(held=account_t.c.held + amount)
        .returning(account_t.c.held)
    ).scalar()
    _expire_loaded(account_id)
    if held is None:
        acc = db.session.get(Account, account_id)
        raise InsufficientPoints(needed=amount, available=acc.available)


def release(account_id: int, amount: int) -> None:
    """Give back ``amount`` of held points (voucher cancelled or expired)."""
    held = db.session.execute(
        update(account_t)
        .where(account_t.c.id == account_id, account_t.c.held >= amount)
        .values(held=account_t.c.held - amount)
        .returning(account_t.c.held)
    ).scalar()
    _expire_loaded(account_id)
    if held is None:
        # A release without its hold means the books are already wrong: stop, never paper over it.
        raise RuntimeError(f"account {account_id} holds less than {amount}")


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
    """Move held points from a volunteer to a merchant (the cashier confirmed a voucher)."""
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


def reverse(original: Transfer, *, reason: str, created_by_id: int | None) -> Transfer:
    """Undo ``original`` in full with a new transfer the other way; at most once."""
    if original.kind == TRANSFER_REVERSAL:
        raise CannotReverse(why=_l("a reversal cannot itself be reversed"))
    if original.kind == TRANSFER_SETTLEMENT:
        raise CannotReverse(why=_l("a payment to a merchant is settled in the merchant's next period"))
    # Look for an earlier reversal only under the accounts' locks: a reversal committed by a
    # concurrent caller is then visible, instead of surfacing as a unique-key violation.
    lock_accounts([original.from_account_id, original.to_account_id])
    if db.session.scalar(select(Transfer.id).where(Transfer.reverses_id == original.id)):
        raise CannotReverse(why=_l("it was already reversed"))
    if original.kind == TRANSFER_CAPTURE and _capture_paid_for(original):
        raise _capture_already_paid()
    to_acc = db.session.get(Account, original.to_account_id)
    unearn = original.amount if original.kind == TRANSFER_CREDIT else 0
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
