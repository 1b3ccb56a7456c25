"""Races of the expire command: against itself, against redemptions, and deductions against
redemptions. Each worker runs in its own thread, session and connection (see test_races.py)."""
from __future__ import annotations

import secrets
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from pointsapp.cli import expire_points
from pointsapp.domain import deductions, ledger, rules, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Transfer, User, Voucher
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import balance, person, rule_terms


def grant_due(s, volunteer, points: int, last_day=None) -> None:
    """Give a volunteer a lot whose last day was yesterday (or ``last_day``); commit."""
    ledger.credit(
        ledger.issuance_account(s.street),
        ledger.account_for_volunteer(volunteer),
        points,
        reason="测试",
        cause_key=f"test:{secrets.token_hex(6)}",
        earned_on=local_today() - timedelta(days=400),
        expires_on=last_day or local_today() - timedelta(days=1),
    )
    db.session.commit()


def expiries() -> int:
    return db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.kind == "expiry"))


def test_two_expire_runs_at_once_expire_each_lot_once(app, street, check_ledger):
    crowd = [person(f"exp{i}", street.unit_a, title="resident") for i in range(12)]
    db.session.commit()
    for v in crowd:
        grant_due(street, v, 5)
    today = local_today()

    def run(i):
        return expire_points(today)

    results = race(app, 2, run)
    assert tally(results) == {"ok": 2}, unexpected(results)
    assert sum(r.lots for r in results) == 12 and sum(r.points for r in results) == 60
    assert expiries() == 12
    assert all(balance(v).balance == 0 for v in crowd)
    assert ledger.expired_total(street.street) == 60
    check_ledger()


def expire_or_redeem(i, vol_id, reward_id, today):
    if i == 0:
        return expire_points(today).points
    vouchers.issue_voucher(db.session.get(User, vol_id), reward_id)
    db.session.commit()
    return "redeemed"


def test_expiry_racing_a_redemption_of_the_same_points_lets_exactly_one_have_them(app, street, check_ledger):
    today = local_today()
    outcomes = Counter()
    for n in range(6):
        v = person(f"racer{n}", street.unit_a, title="resident")
        db.session.commit()
        grant_due(street, v, 10)
        expired, redeemed = race(app, 2, expire_or_redeem, v.id, street.rice.id, today)
        b = balance(v)
        if redeemed == "redeemed":
            # The hold came first: the points are reserved for the voucher and do not expire.
            assert expired == 0 and (b.balance, b.held) == (10, 10)
            outcomes["redeemed"] += 1
        else:
            assert type(redeemed).__name__ == "InsufficientPoints", redeemed
            assert expired == 10 and (b.balance, b.held) == (0, 0)
            outcomes["expired"] += 1
    assert sum(outcomes.values()) == 6
    check_ledger()


def expire_or_confirm(i, cashier_id, code, today):
    if i == 0:
        return expire_points(today).points
    vouchers.confirm_redemption(db.session.get(User, cashier_id), code)
    db.session.commit()
    return "confirmed"


def test_expiry_racing_a_till_confirming_a_voucher_on_expiring_points(app, street, check_ledger):
    today = local_today()
    for n in range(5):
        v = person(f"till{n}", street.unit_a, title="resident")
        db.session.commit()
        grant_due(street, v, 25, last_day=today)
        issued = vouchers.issue_voucher(v, street.rice.id)  # holds 10 of the 25 points, on their last day
        db.session.commit()
        # The next day's run expires the other 15 while the till confirms.
        expired, confirmed = race(app, 2, expire_or_confirm, street.cashier.id, issued.code, today + timedelta(days=1))
        assert (expired, confirmed) == (15, "confirmed"), (expired, confirmed)
        assert db.session.get(Voucher, issued.voucher.id).status == "redeemed"
        b = balance(v)
        assert (b.balance, b.held) == (0, 0)
    assert expiries() == 5
    check_ledger()


def deduct_or_redeem(i, staff_id, vol_id, rule_id, reward_id):
    if i == 0:
        d = deductions.apply_deduction(
            db.session.get(User, staff_id), volunteer_id=vol_id, rule_id=rule_id, reason="违规停车",
            submission_key=secrets.token_hex(8),
        )
        db.session.commit()
        return d.deducted
    vouchers.issue_voucher(db.session.get(User, vol_id), reward_id)
    db.session.commit()
    return "redeemed"


def test_a_deduction_racing_a_redemption_never_takes_held_points(app, street, check_ledger):
    rule = rules.create_rule(street.street_admin, street.street, rule_terms(name_zh="扣分", name_en="Deduct", kind="deduct", points=10))
    db.session.commit()
    outcomes = Counter()
    for n in range(6):
        v = person(f"ded{n}", street.unit_a, title="resident")
        db.session.commit()
        ledger.credit(
            ledger.issuance_account(street.street), ledger.account_for_volunteer(v), 10,
            reason="测试", cause_key=f"test:{secrets.token_hex(6)}",
        )
        db.session.commit()
        deducted, redeemed = race(app, 2, deduct_or_redeem, street.staff_a.id, v.id, rule.id, street.rice.id)
        b = balance(v)
        if redeemed == "redeemed":
            assert type(deducted).__name__ == "NothingToDeduct", deducted
            assert (b.balance, b.held, b.earned) == (10, 10, 10)
            outcomes["redeemed"] += 1
        else:
            assert deducted == 10 and type(redeemed).__name__ == "InsufficientPoints", (deducted, redeemed)
            assert (b.balance, b.held, b.earned) == (0, 0, 10)
            outcomes["deducted"] += 1
        assert b.balance >= 0
    assert sum(outcomes.values()) == 6
    check_ledger()
