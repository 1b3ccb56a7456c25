"""Fault injection: a failure between any two writes of an operation leaves no trace.

For each money-moving operation, a dry run first counts the write statements it sends (INSERT,
UPDATE, DELETE). Then the operation is run again once per write, with a SQLAlchemy
``before_cursor_execute`` listener that raises before that write (so after all the earlier ones),
and once more with a failure after its last write, before the commit. After each failure and the
rollback that every request and command performs, every table must equal the snapshot taken
before the operation, and ``check_ledger()`` must find nothing. Finally the operation runs without
a fault and its effect is committed, so the test proves the writes it cut really change the books.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from pointsapp.domain import claims, ledger, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.extensions import db
from pointsapp.models import Account, Transfer, User
from tests.factories import give_points, person, rule_terms
from tests.reliability.support import snapshot

WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


class InjectedFault(Exception):
    """The failure the test injects (a crash, a lost connection, a bug) between two writes."""


@contextmanager
def writes(fail_at: int | None = None):
    """Record the write statements sent; raise ``InjectedFault`` before the ``fail_at``-th one."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if WRITE.match(statement):
            seen.append(" ".join(statement.split()[:3]))
            if fail_at is not None and len(seen) == fail_at:
                raise InjectedFault(f"before write {fail_at}: {seen[-1]}")

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _user(user_id: int) -> User:
    return db.session.get(User, user_id)


# Each scenario prepares the books (committed) and returns the operation to cut into pieces.


def _credit_transfer(s):
    vol_id, street_id = s.vol_a.id, s.street.id

    def op():
        from pointsapp.models import OrgUnit

        issuance = ledger.issuance_account(db.session.get(OrgUnit, street_id))
        ledger.credit(issuance, ledger.account_for_volunteer(_user(vol_id)), 25, reason="补录", cause_key="fault:credit")

    return op


def _record_attendance(s):
    ids = sorted([s.vol_a.id, s.vol_a2.id])
    staff_id, rule_id = s.staff_a.id, s.meeting.id

    def op():
        claims.record_attendance(
            _user(staff_id), rule_id=rule_id, activity_date=local_today(), volunteer_ids=ids, batch_key="fault-batch"
        )

    return op


def _approve_claim(s):
    act = claims.submit_claim(s.vol_a, rule_id=s.patrol.id, activity_date=local_today(), hours="3")
    db.session.commit()
    staff_id, act_id = s.staff_a.id, act.id
    return lambda: claims.approve_claim(_user(staff_id), act_id)


def _issue_voucher(s):
    give_points(s, s.vol_a, 50)
    vol_id, reward_id = s.vol_a.id, s.rice.id
    return lambda: vouchers.issue_voucher(_user(vol_id), reward_id)


def _confirm(s):
    give_points(s, s.vol_a, 50)
    issued = vouchers.issue_voucher(s.vol_a, s.rice.id)
    db.session.commit()
    cashier_id, code = s.cashier.id, issued.code
    return lambda: vouchers.confirm_redemption(_user(cashier_id), code)


def _cancel(s):
    give_points(s, s.vol_a, 50)
    issued = vouchers.issue_voucher(s.vol_a, s.rice.id)
    db.session.commit()
    vol_id, voucher_id = s.vol_a.id, issued.voucher.id
    return lambda: vouchers.cancel_voucher(_user(vol_id), voucher_id)


def _expire(s):
    # Two volunteers' vouchers for two rewards, both overdue: one sweep closes them all.
    give_points(s, s.vol_a, 50)
    give_points(s, s.vol_b, 50)
    issued_at = now_utc() - timedelta(days=30)
    vouchers.issue_voucher(s.vol_a, s.rice.id, now=issued_at)
    vouchers.issue_voucher(s.vol_a, s.rice.id, now=issued_at)
    vouchers.issue_voucher(s.vol_b, s.oil.id, now=issued_at)
    db.session.commit()
    return lambda: vouchers.expire_vouchers()


def _reverse_credit(s):
    give_points(s, s.vol_a, 30)
    tid = db.session.scalar(
        select(Transfer.id).where(Transfer.kind == "credit", Transfer.to_account_id == ledger.account_for_volunteer(s.vol_a).id)
    )
    admin_id = s.street_admin.id
    return lambda: claims.reverse_transfer(_user(admin_id), tid, "重复录入")


def _reverse_capture(s):
    give_points(s, s.vol_a, 30)
    issued = vouchers.issue_voucher(s.vol_a, s.rice.id)
    db.session.commit()
    vouchers.confirm_redemption(s.cashier, issued.code)
    db.session.commit()
    tid = db.session.scalar(select(Transfer.id).where(Transfer.kind == "capture"))
    admin_id = s.street_admin.id
    return lambda: claims.reverse_transfer(_user(admin_id), tid, "收银员误操作")


SCENARIOS = {
    "credit transfer": _credit_transfer,
    "recorded attendance of two volunteers": _record_attendance,
    "claim approval": _approve_claim,
    "voucher issue": _issue_voucher,
    "voucher confirm": _confirm,
    "voucher cancel": _cancel,
    "voucher expiry sweep": _expire,
    "credit reversal": _reverse_credit,
    "redemption reversal": _reverse_capture,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_failure_between_any_two_writes_leaves_no_partial_state(name, street, check_ledger):
    op = SCENARIOS[name](street)
    db.session.commit()
    check_ledger()
    before = snapshot()
    db.session.rollback()

    with writes() as dry:
        op()
    db.session.rollback()
    assert len(dry) >= 2, f"{name} sends {dry}: nothing to cut between"
    print(f"\n{name}: {len(dry)} writes, {len(dry) + 1} failure points: {'; '.join(dry)}")
    assert snapshot() == before
    db.session.rollback()

    for fail_at in [*range(1, len(dry) + 1), None]:
        with pytest.raises(InjectedFault), writes(fail_at) as seen:
            op()
            if fail_at is None:  # after the last write, before the commit
                raise InjectedFault("after the last write")
        assert seen == (dry[:fail_at] if fail_at else dry), "the operation took another path"
        db.session.rollback()
        assert snapshot() == before, f"{name}: partial state left by a failure before write {fail_at} of {dry}"
        check_ledger()

    op()
    db.session.commit()
    after = snapshot()
    assert after != before
    check_ledger()


def test_the_fault_injector_really_cuts_a_transfer_in_half(street):
    """Guard against a test that cannot fail: before the rollback, the first half is there."""
    give_points(street, street.vol_a, 10)
    issuance_id = ledger.issuance_account(street.street).id
    issued = db.session.scalar(select(Account.balance).where(Account.id == issuance_id))
    db.session.commit()
    op = _credit_transfer(street)
    with pytest.raises(InjectedFault), writes(fail_at=2) as seen:
        op()
    # The debit of the street's issuance account ran; the deposit to the volunteer did not.
    assert seen[0].startswith("UPDATE account")
    assert db.session.scalar(select(Account.balance).where(Account.id == issuance_id)) == issued - 25
    db.session.rollback()
    assert db.session.scalar(select(Account.balance).where(Account.id == issuance_id)) == issued
