"""Races on settlement: two admins paying one merchant at once cannot overpay it."""
from __future__ import annotations

from datetime import timedelta

from pointsapp.domain import settlement, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Merchant, User
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import person
from tests.unit.helpers import award
from pointsapp.models.user import ROLE_STREET_ADMIN


def test_two_admins_paying_at_once_cannot_pay_more_than_is_owed(app, street, check_ledger):
    award(street, street.vol_a, 100)
    for _ in range(3):
        issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
        vouchers.confirm_redemption(street.cashier, issued.code)
    second_admin = person("street_admin2", street.street, roles=(ROLE_STREET_ADMIN,))
    db.session.commit()
    admins = [street.street_admin.id, second_admin.id]
    shop_id = street.shop.id

    def pay(i):
        admin = db.session.get(User, admins[i])
        settlement.record_payment(
            admin, shop_id, points=20, paid_on=local_today(), reference=f"转账{i}", key=f"race-{i}"
        )
        db.session.commit()

    results = race(app, 2, pay)
    assert tally(results) == {"ok": 1, "PaymentExceedsOwed": 1}, unexpected(results, "PaymentExceedsOwed")
    assert settlement.owed(shop_id) == 10
    check_ledger()


def test_closing_a_period_twice_at_once_closes_it_once(app, street, check_ledger):
    award(street, street.vol_a, 100)
    when = settlement.utc_start_of(settlement.add_months(local_today().replace(day=1), -1)) + timedelta(days=2)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id, now=when)
    vouchers.confirm_redemption(street.cashier, issued.code, now=when)
    db.session.commit()
    admin_id, shop_id = street.street_admin.id, street.shop.id

    def close(i):
        settlement.close_period(db.session.get(User, admin_id), shop_id)
        db.session.commit()

    results = race(app, 2, close)
    # The second waits for the first, then finds this month's period still running.
    assert tally(results) == {"ok": 1, "PeriodNotEnded": 1}, unexpected(results, "PeriodNotEnded")
    periods = settlement.closed_periods(shop_id)
    assert [(p.redeemed, p.closing_balance) for p in periods] == [(10, 10)]
    assert db.session.get(Merchant, shop_id) is not None
    check_ledger()


def test_two_payments_at_once_value_different_points(app, street, check_ledger):
    """30 points at ¥1, then 10 at ¥0.50: paid at once, 20 + 20 points are worth ¥35 together,
    never ¥40 (both valuing the oldest points)."""
    award(street, street.vol_a, 100)
    today = local_today()
    when = settlement.utc_start_of(settlement.add_months(today.replace(day=1), -2)) + timedelta(days=2)
    for i in range(3):
        issued = vouchers.issue_voucher(street.vol_a, street.rice.id, now=when + timedelta(hours=i))
        vouchers.confirm_redemption(street.cashier, issued.code, now=when + timedelta(hours=i))
    settlement.set_rate(street.street_admin, street.street, today, 50,
                        now=settlement.utc_start_of(today) - timedelta(hours=6))
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, issued.code)
    second_admin = person("street_admin2", street.street, roles=(ROLE_STREET_ADMIN,))
    db.session.commit()
    admins = [street.street_admin.id, second_admin.id]
    shop_id = street.shop.id

    def pay(i):
        admin = db.session.get(User, admins[i])
        payment = settlement.record_payment(
            admin, shop_id, points=20, paid_on=local_today(), reference=f"转账{i}", key=f"value-{i}"
        )
        db.session.commit()
        return payment.fen

    results = race(app, 2, pay)
    assert tally(results) == {"ok": 2}, unexpected(results)
    assert sorted(results) == [1500, 2000]  # the oldest 20 at ¥1; then 10 at ¥1 and 10 at ¥0.50
    assert settlement.owed(shop_id) == 0 and settlement.owed_fen(shop_id) == 0
    check_ledger()
