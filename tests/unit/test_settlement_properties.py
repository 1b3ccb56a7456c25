"""Property: any story of redemptions (some dated in months already closed), corrections,
payments and closings keeps the books sound, never changes a closed period, and accounts for
every point the merchant is owed exactly once."""
from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pointsapp.domain import ledger, settlement, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import CannotReverse, PaymentExceedsOwed, PeriodNotEnded
from pointsapp.extensions import db
from pointsapp.models import Entry, SettlementPeriod, Transfer
from pointsapp.models.user import ROLE_MERCHANT_STAFF
from tests.factories import person
from tests.unit.helpers import award

_serial = itertools.count()

operations = st.lists(
    st.one_of(
        st.tuples(st.just("redeem"), st.integers(0, 3)),  # months back
        st.tuples(st.just("reverse"), st.integers(0, 20)),
        st.tuples(st.just("pay"), st.integers(1, 40)),
        st.tuples(st.just("close"), st.just(0)),
    ),
    max_size=14,
)


def frozen(merchant_id):
    return {
        p.id: (p.period_start, p.opening_balance, p.redeemed, p.corrected, p.paid, p.closing_balance)
        for p in db.session.scalars(select(SettlementPeriod).where(SettlementPeriod.merchant_id == merchant_id))
    }


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_random_settlement_stories_keep_every_point_accounted_for_once(street, ops):
    n = next(_serial)
    shop = vouchers.create_merchant(street.street_admin, street.street, name=f"商户{n}", kind="shop")
    reward = vouchers.create_reward(street.street_admin, shop.id, vouchers.RewardTerms(name=f"商品{n}", price=10))
    cashier = person(f"cashier_p{n}", None, roles=(ROLE_MERCHANT_STAFF,), merchant=shop)
    volunteer = person(f"vol_p{n}", street.unit_a, title="resident")
    db.session.commit()
    award(street, volunteer, 10 * len(ops) + 10)
    this_month = local_today().replace(day=1)
    # Rates that change between the months of the story (set before those months began).
    for months_back, fen in ((2, 70), (0, 40)):
        start = settlement.add_months(this_month, -months_back)
        if start not in dict(settlement.rate_table(street.street.id)):
            settlement.set_rate(street.street_admin, street.street, start, fen,
                                now=settlement.utc_start_of(start) - timedelta(days=1))
            db.session.commit()
    table = settlement.rate_table(street.street.id)
    value_redeemed, value_paid, paid_points = 0, 0, 0
    owed, captures, reversed_ids, seen = 0, [], set(), {}
    for step, (op, arg) in enumerate(ops):
        if op == "redeem":
            when = settlement.utc_start_of(settlement.add_months(this_month, -arg)) + timedelta(hours=1, minutes=step)
            issued = vouchers.issue_voucher(volunteer, reward.id, now=when)
            v = vouchers.confirm_redemption(cashier, issued.code, now=when)
            captures.append(db.session.scalar(select(Transfer).where(Transfer.voucher_id == v.id, Transfer.kind == "capture")))
            owed += 10
            value_redeemed += 10 * settlement.rate_on(settlement.to_local(when).date(), table)
        elif op == "reverse" and captures:
            t = captures[arg % len(captures)]
            # Payments retire the oldest recorded points first: a capture they reached is paid for.
            before = sum(10 for c in captures if c.id < t.id and c.id not in reversed_ids)
            refusable = t.id in reversed_ids or paid_points > before
            try:
                ledger.reverse(t, reason="更正", created_by_id=street.street_admin.id)
            except CannotReverse as exc:
                assert refusable
                # ... and for the right reason: reversed before, or already paid for.
                assert ("why" in exc.params) == (t.id in reversed_ids)
                db.session.rollback()
                continue
            assert not refusable and owed >= 10
            reversed_ids.add(t.id)
            owed -= 10
            value_redeemed -= 10 * settlement.rate_on(settlement.to_local(t.created_at).date(), table)
        elif op == "pay":
            try:
                payment = settlement.record_payment(street.street_admin, shop.id, points=arg, paid_on=local_today(),
                                                    reference=f"R{step}", key=f"p{n}-{step}")
            except PaymentExceedsOwed:
                assert arg > owed
                db.session.rollback()
                continue
            assert arg <= owed
            assert 40 * arg <= payment.fen <= 100 * arg  # each point at one of the story's rates
            owed -= arg
            value_paid += payment.fen
            paid_points += arg
        elif op == "close":
            try:
                settlement.close_period(street.street_admin, shop.id)
            except PeriodNotEnded:
                db.session.rollback()
                continue
            event("a period was closed")
        db.session.commit()
        now_frozen = frozen(shop.id)
        # A closed period never changes, whatever happens after it.
        assert {k: v for k, v in now_frozen.items() if k in seen} == seen
        seen = now_frozen
        # Value is conserved: what was redeemed (net of corrections) is paid or still owed.
        assert value_redeemed == value_paid + settlement.owed_fen(shop.id)

    assert settlement.owed(shop.id) == owed
    assert ledger.check_ledger() == []
    last = max(seen.values(), default=None, key=lambda p: p[0])
    acc = ledger.account_for_merchant(shop.id)
    r, c, p = settlement._totals((Entry.account_id == acc.id) & ~settlement._taken())
    assert (last[5] if last else 0) + r + c - p == owed
    for start, opening, red, cor, paid, closing in seen.values():
        st_ = settlement.statement(street.street_admin, shop.id, start)
        assert (st_.opening, st_.redeemed, st_.corrected, st_.paid, st_.closing) == (opening, red, cor, paid, closing)
    st_ = settlement.statement(street.street_admin, shop.id, max(this_month, settlement.next_period(shop.id)[0]))
    assert (st_.closing, st_.closing_fen) == (owed, settlement.owed_fen(shop.id))
    db.session.rollback()
