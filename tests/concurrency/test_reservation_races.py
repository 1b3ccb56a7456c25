"""Races around the points a voucher reserves (``point_lot.reserved``, ``voucher_lot``): a credit
reversal against the cancellation or the capture of a voucher reserving points in the reversed
credit's lot, vouchers of one volunteer issued at once (and a double-tapped one), the nightly
expiry against a cancellation, and a redemption against a cancellation that frees points past
their last day.

Each worker runs in its own thread, session and connection (see test_races.py). Where the end
state depends on who goes first, the test forces each order in turn (``Turns``): the first
worker pauses while it holds the volunteer account's lock until the second is waiting for it
(PostgreSQL: seen in ``pg_stat_activity``); on SQLite the second's ``BEGIN IMMEDIATE`` queues
behind the first's transaction, which is the same order.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from pointsapp.domain import budgets, claims, ledger, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.extensions import db
from pointsapp.models import Activity, PointLot, Transfer, User, Voucher, VoucherLot
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import balance
from tests.unit.helpers import award, credit_of
from tests.unit.test_lots import grant

LOCK_WAIT_SECONDS = 20


def _others_waiting_for_a_lock() -> int:
    with db.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )).scalar()


class Turns:
    """One forced order: ``first`` pauses (once) while it holds the account's lock, until the
    other worker waits for that lock; the other starts once ``first`` holds it."""

    def __init__(self, first: str):
        self.first = first
        self.has_lock = threading.Event()
        self._paused = False

    def pause(self, who: str) -> None:
        if who != self.first or self._paused:
            return
        self._paused = True
        self.has_lock.set()
        if db.session.get_bind().dialect.name != "postgresql":
            return  # SQLite: the other worker's transaction cannot begin before this one ends
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not _others_waiting_for_a_lock():
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker after {who} never waited for the account's lock")
            time.sleep(0.005)

    def wait_turn(self, who: str) -> None:
        if who != self.first:
            assert self.has_lock.wait(LOCK_WAIT_SECONDS), f"{self.first} never took the account's lock"


def lot(lot_id: int) -> tuple[int, int]:
    """A lot's (remaining, reserved), read fresh."""
    row = db.session.execute(select(PointLot.remaining, PointLot.reserved).where(PointLot.id == lot_id)).one()
    return tuple(row)


def lot_of(transfer: Transfer) -> int:
    return db.session.scalar(select(PointLot.id).where(PointLot.transfer_id == transfer.id))


def reservations(voucher_id: int) -> dict[int, int]:
    """What a voucher reserves, by lot (lots where its rows sum to zero left out)."""
    rows = db.session.execute(
        select(VoucherLot.lot_id, func.sum(VoucherLot.points))
        .where(VoucherLot.voucher_id == voucher_id)
        .group_by(VoucherLot.lot_id)
    ).all()
    return {lot_id: int(points) for lot_id, points in rows if points}


def merchant_balance(s) -> int:
    return ledger.balance_of(ledger.account_for_merchant(s.shop.id).id).balance


def voucher_status(voucher_id: int) -> str:
    return db.session.scalar(select(Voucher.status).where(Voucher.id == voucher_id))


def activity_status(activity_id: int) -> str:
    return db.session.scalar(select(Activity.status).where(Activity.id == activity_id))


def expiry_keys() -> list[str]:
    return list(db.session.scalars(select(Transfer.cause_key).where(Transfer.kind == "expiry").order_by(Transfer.id)))


# --- 1 and 2: a credit reversal against the cancellation or the capture of a voucher on its lot ----


def reversal_setup(s, other_points: int):
    """vol_a: the credit to be reversed (lot L1), then ``other_points`` in a later lot (L2, never
    expiring; none when 0); a rice voucher (10) reserving 10 points of L1."""
    act = award(s, s.vol_a, 10 if other_points else 20)
    credit = credit_of(act)
    l1 = lot_of(credit)
    l2 = lot_of(grant(s, s.vol_a, other_points, None)) if other_points else None
    issued = vouchers.issue_voucher(s.vol_a, s.rice.id)
    db.session.commit()
    assert reservations(issued.voucher.id) == {l1: 10}
    return act.id, credit.id, l1, l2, issued


def patch_turns(monkeypatch, turns: Turns) -> None:
    """Pause points, each under the volunteer account's lock: a reversal just before it moves
    the points (its reservations already moved), a cancellation once it has freed the voucher's
    lots, a capture once its transfer is written, the expiry once it has read the lots."""
    real_transfer, real_unreserve, real_lock_budgets = ledger._transfer, ledger.unreserve, budgets.lock_paying_budgets

    def _transfer(**kw):
        if kw["kind"] == "reversal":
            turns.pause("reverse")
        t = real_transfer(**kw)
        if kw["kind"] == "capture":
            turns.pause("capture")
        return t

    def unreserve(voucher_ids):
        real_unreserve(voucher_ids)
        turns.pause("cancel")

    def lock_paying_budgets(lot_ids):
        real_lock_budgets(lot_ids)
        turns.pause("expire")

    monkeypatch.setattr(ledger, "_transfer", _transfer)
    monkeypatch.setattr(ledger, "unreserve", unreserve)
    monkeypatch.setattr(budgets, "lock_paying_budgets", lock_paying_budgets)


def race_reversal_against(app, s, monkeypatch, other: str, first: str, other_points: int):
    """Set up ``reversal_setup``, then race the credit's reversal against ``other`` (cancel or
    capture) of the voucher, ``first`` going first: (results, activity, credit, L1, L2, voucher)."""
    act_id, credit_id, l1, l2, issued = reversal_setup(s, other_points)
    turns = Turns(first)
    patch_turns(monkeypatch, turns)
    results = race(app, 2, reverse_or(other), turns, s.street_admin.id, credit_id, s.vol_a.id, issued.voucher.id,
                   s.cashier.id, issued.code)
    return results, act_id, credit_id, l1, l2, issued.voucher.id


def reverse_or(other: str):
    def work(i, turns, admin_id, credit_id, vol_id, voucher_id, cashier_id, code):
        who = "reverse" if i == 0 else other
        turns.wait_turn(who)
        if who == "reverse":
            claims.reverse_transfer(db.session.get(User, admin_id), credit_id, "录入错误")
        elif who == "cancel":
            vouchers.cancel_voucher(db.session.get(User, vol_id), voucher_id)
        else:
            vouchers.confirm_redemption(db.session.get(User, cashier_id), code)
        db.session.commit()
        return who
    return work


@pytest.mark.parametrize("other_points", [20, 0], ids=["other-points", "no-other-points"])
@pytest.mark.parametrize("first", ["reverse", "cancel"])
def test_credit_reversal_racing_the_cancellation_of_a_voucher_on_its_lot(app, street, check_ledger, monkeypatch,
                                                                         first, other_points):
    s = street
    results, act_id, credit_id, l1, l2, voucher_id = race_reversal_against(app, s, monkeypatch, "cancel", first,
                                                                          other_points)

    assert voucher_status(voucher_id) == "cancelled"
    b = balance(s.vol_a)
    if other_points:
        # Both win: first the reversal moved the reservation to L2 and the cancellation freed it
        # there, or the cancellation freed L1 and the reversal took it back.
        assert results == ["reverse", "cancel"], unexpected(results)
        assert (b.balance, b.held, b.earned) == (20, 0, 20)
        assert lot(l1) == (0, 0) and lot(l2) == (20, 0)
        assert activity_status(act_id) == "reversed"
        history = db.session.execute(
            select(VoucherLot.lot_id, VoucherLot.points).where(VoucherLot.voucher_id == voucher_id).order_by(VoucherLot.id)
        ).all()
        if first == "reverse":
            assert [tuple(r) for r in history] == [(l1, 10), (l1, -10), (l2, 10)]
        else:
            assert [tuple(r) for r in history] == [(l1, 10)]
    elif first == "reverse":
        # The voucher still held half of the credit and nothing else could hold it: refused.
        assert results[1] == "cancel" and type(results[0]).__name__ == "CannotReverse", unexpected(results)
        assert (b.balance, b.held, b.earned) == (20, 0, 20)
        assert lot(l1) == (20, 0)
        assert activity_status(act_id) == "approved"
    else:
        assert results == ["reverse", "cancel"], unexpected(results)
        assert (b.balance, b.held, b.earned) == (0, 0, 0)
        assert lot(l1) == (0, 0)
        assert activity_status(act_id) == "reversed"
    check_ledger()


@pytest.mark.parametrize("other_points", [20, 0], ids=["other-points", "no-other-points"])
@pytest.mark.parametrize("first", ["reverse", "capture"])
def test_credit_reversal_racing_the_capture_of_a_voucher_on_its_lot(app, street, check_ledger, monkeypatch,
                                                                    first, other_points):
    s = street
    results, act_id, credit_id, l1, l2, voucher_id = race_reversal_against(app, s, monkeypatch, "capture", first,
                                                                          other_points)

    assert voucher_status(voucher_id) == "redeemed"
    assert merchant_balance(s) == 10
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture", Transfer.voucher_id == voucher_id))
    takes = dict(db.session.execute(
        text("SELECT lot_id, amount FROM lot_use WHERE transfer_id = :t"), {"t": capture.id}
    ).all())
    b = balance(s.vol_a)
    if other_points:
        assert results == ["reverse", "capture"], unexpected(results)
        assert (b.balance, b.held, b.earned) == (10, 0, 20)
        assert lot(l1) == (0, 0) and lot(l2) == (10, 0)
        assert activity_status(act_id) == "reversed"
        # The capture took the points its voucher reserved when it ran: moved to L2, or still in L1.
        assert takes == ({l2: 10} if first == "reverse" else {l1: 10})
    else:
        # L1 is all the volunteer has: while the voucher holds half of it, or once it took that
        # half, the credit cannot be taken back whole.
        assert results[1] == "capture" and type(results[0]).__name__ == "CannotReverse", unexpected(results)
        assert (b.balance, b.held, b.earned) == (10, 0, 20)
        assert lot(l1) == (10, 0)
        assert activity_status(act_id) == "approved"
        assert takes == {l1: 10}
    check_ledger()


# --- 3: vouchers of one volunteer issued at once ------------------------------------------------


def test_vouchers_of_one_volunteer_issued_at_once_reserve_no_more_than_each_lot_holds(app, street, check_ledger):
    s = street
    today = local_today()
    l1 = lot_of(grant(s, s.vol_a, 10, today + timedelta(days=30)))  # spent first
    l2 = lot_of(grant(s, s.vol_a, 15, None))
    vol_id, rice_id = s.vol_a.id, s.rice.id

    def redeem(i):
        issued = vouchers.issue_voucher(db.session.get(User, vol_id), rice_id)
        db.session.commit()
        return issued.voucher.id

    results = race(app, 3, redeem)
    assert tally(results) == {"ok": 2, "InsufficientPoints": 1}, unexpected(results, "InsufficientPoints")
    ids = sorted(r for r in results if isinstance(r, int))
    # The first to take the account's lock got the earliest-expiring lot, the second the next.
    assert [reservations(v) for v in ids] == [{l1: 10}, {l2: 10}]
    assert lot(l1) == (10, 10) and lot(l2) == (15, 10)
    b = balance(s.vol_a)
    assert (b.balance, b.held) == (25, 20)
    check_ledger()

    # One captured at the till while the other is cancelled, at once.
    on_l1, on_l2 = ids
    code = db.session.get(Voucher, on_l2)
    cashier_id = s.cashier.id

    def capture_or_cancel(i, code_text):
        if i == 0:
            vouchers.confirm_redemption(db.session.get(User, cashier_id), code_text)
        else:
            vouchers.cancel_voucher(db.session.get(User, vol_id), on_l1)
        db.session.commit()
        return i

    token = vouchers.token_for(code.nonce)
    results = race(app, 2, capture_or_cancel, token)
    assert results == [0, 1], unexpected(results)
    assert (voucher_status(on_l1), voucher_status(on_l2)) == ("cancelled", "redeemed")
    assert lot(l1) == (10, 0) and lot(l2) == (5, 0)
    b = balance(s.vol_a)
    assert (b.balance, b.held) == (15, 0)
    assert merchant_balance(s) == 10
    check_ledger()


def test_two_cashiers_confirming_one_voucher_take_its_reserved_points_once(app, street, check_ledger):
    """(A double tap of the redeem button reserving once: ``test_races``, ten copies of one tap.)"""
    s = street
    l1 = lot_of(grant(s, s.vol_a, 10, local_today() + timedelta(days=30)))
    l2 = lot_of(grant(s, s.vol_a, 15, None))
    voucher_id = vouchers.issue_voucher(s.vol_a, s.rice.id, key="tap-1").voucher.id
    db.session.commit()
    assert reservations(voucher_id) == {l1: 10}
    assert lot(l1) == (10, 10) and lot(l2) == (15, 0)
    b = balance(s.vol_a)
    assert (b.balance, b.held) == (25, 10)

    token = vouchers.token_for(db.session.get(Voucher, voucher_id).nonce)
    cashier_id = s.cashier.id

    def confirm(i):
        vouchers.confirm_redemption(db.session.get(User, cashier_id), token)
        db.session.commit()

    results = race(app, 2, confirm)
    assert tally(results) == {"ok": 1, "VoucherJustRedeemed": 1}, unexpected(results, "VoucherJustRedeemed")
    assert lot(l1) == (0, 0) and lot(l2) == (15, 0)
    b = balance(s.vol_a)
    assert (b.balance, b.held) == (15, 0)
    assert merchant_balance(s) == 10
    check_ledger()


# --- 4: the nightly expiry against a cancellation ----------------------------------------------


@pytest.mark.parametrize("first", ["expire", "cancel"])
def test_nightly_expiry_racing_the_cancellation_of_a_voucher_on_a_lot_past_its_last_day(
        app, street, check_ledger, monkeypatch, first):
    s = street
    today = local_today()
    l1 = lot_of(grant(s, s.vol_a, 25, today))  # its last day is today
    l2 = lot_of(grant(s, s.vol_a, 5, None))
    issued = vouchers.issue_voucher(s.vol_a, s.rice.id)  # reserves 10 of L1 while it is valid
    db.session.commit()
    assert reservations(issued.voucher.id) == {l1: 10}
    acc_id, vol_id, voucher_id = ledger.account_for_volunteer(s.vol_a).id, s.vol_a.id, issued.voucher.id
    tomorrow = today + timedelta(days=1)
    turns = Turns(first)
    patch_turns(monkeypatch, turns)

    def work(i):
        who = "expire" if i == 0 else "cancel"
        turns.wait_turn(who)
        if who == "expire":
            done = ledger.expire_account(acc_id, tomorrow)
        else:
            done = vouchers.cancel_voucher(db.session.get(User, vol_id), voucher_id).status
        db.session.commit()
        return done

    expired, cancelled = race(app, 2, work)
    assert cancelled == "cancelled", unexpected([expired, cancelled])
    b = balance(s.vol_a)
    if first == "cancel":
        # The run found the whole lot free.
        assert expired == ledger.Expired(1, 25)
        assert lot(l1) == (0, 0) and (b.balance, b.held) == (5, 0)
        assert expiry_keys() == [f"expiry:{l1}:1"]
    else:
        # The run left the reserved 10; the cancellation freed them, past their last day: the
        # next run expires them, and nothing spends them meanwhile.
        assert expired == ledger.Expired(1, 15)
        assert lot(l1) == (10, 0) and (b.balance, b.held) == (15, 0)
        assert ledger.accounts_with_due_lots(tomorrow) == [acc_id]
        assert ledger.expire_account(acc_id, tomorrow) == ledger.Expired(1, 10)
        db.session.commit()
        assert expiry_keys() == [f"expiry:{l1}:1", f"expiry:{l1}:2"]
        assert lot(l1) == (0, 0)
        b = balance(s.vol_a)
    assert (b.balance, b.held) == (5, 0) and lot(l2) == (5, 0)
    assert ledger.expired_total(s.street) == 25
    check_ledger()


def test_a_redemption_racing_the_cancellation_that_frees_points_past_their_last_day_never_reserves_them(
        app, street, check_ledger, monkeypatch):
    """The cancellation frees points past their last day while a redemption (no form key) is
    under way: the redemption must not reserve them. Forced order: the redemption has begun
    (and looked for points past their last day) before the cancellation; on PostgreSQL it then
    waits until the cancellation is done or waits for the account's lock."""
    s = street
    today = local_today()
    l1 = lot_of(grant(s, s.vol_a, 10, today))  # its last day is today
    l2 = lot_of(grant(s, s.vol_a, 10, None))
    first = vouchers.issue_voucher(s.vol_a, s.rice.id)  # reserves all of L1 while it is valid
    db.session.commit()
    assert reservations(first.voucher.id) == {l1: 10}
    vol_id, first_id, rice_id = s.vol_a.id, first.voucher.id, s.rice.id
    tomorrow_noon = now_utc() + timedelta(days=1)
    tomorrow = local_today(tomorrow_noon)
    assert tomorrow > today

    began, cancel_done = threading.Event(), threading.Event()
    real_hold = ledger.hold

    def hold(account_id, amount):
        began.set()
        if db.session.get_bind().dialect.name == "postgresql":
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while not cancel_done.is_set() and not _others_waiting_for_a_lock():
                assert time.monotonic() < deadline, "the cancellation neither finished nor waited"
                time.sleep(0.005)
        return real_hold(account_id, amount)

    monkeypatch.setattr(ledger, "hold", hold)

    def work(i):
        if i == 0:
            issued = vouchers.issue_voucher(db.session.get(User, vol_id), rice_id, now=tomorrow_noon)
            db.session.commit()
            return issued.voucher.id
        assert began.wait(LOCK_WAIT_SECONDS)
        try:
            vouchers.cancel_voucher(db.session.get(User, vol_id), first_id)
            db.session.commit()
        finally:
            cancel_done.set()
        return "cancelled"

    second_id, cancelled = race(app, 2, work)
    assert cancelled == "cancelled" and isinstance(second_id, int), unexpected([second_id, cancelled])
    assert voucher_status(first_id) == "cancelled"
    # The new voucher holds valid points only; L1's points, free again, wait for the nightly run.
    assert reservations(second_id) == {l2: 10}
    assert lot(l1) == (10, 0) and lot(l2) == (10, 10)
    b = balance(s.vol_a)
    assert (b.balance, b.held) == (20, 10)
    assert ledger.expire_account(ledger.account_for_volunteer(s.vol_a).id, tomorrow) == ledger.Expired(1, 10)
    db.session.commit()
    assert lot(l1) == (0, 0)
    check_ledger()
