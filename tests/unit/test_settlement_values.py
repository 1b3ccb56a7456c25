"""What points are worth in yuan: per-street rates from tomorrow on, payments valued first in,
first out at the rates of the redemptions they pay for, corrections at their redemption's rate,
and who sees volunteers' names on a statement."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from pointsapp.domain import ledger, settlement, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.domain.errors import CannotReverse, Forbidden, InvalidInput
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import PointsRate
from pointsapp.models.user import ROLE_MERCHANT_STAFF, ROLE_STREET_ADMIN
from tests.factories import person
from tests.unit.helpers import award, ledger_state
from tests.unit.test_settlement import months_ago, redeem_at, this_month


def this_morning():
    """A moment early today, where the street is."""
    return settlement.utc_start_of(local_today()) + timedelta(minutes=1)


def yesterday_noon():
    return settlement.utc_start_of(local_today() - timedelta(days=1)) + timedelta(hours=12)


@pytest.fixture
def thirty_then_ten(street):
    """30 points redeemed at the shop two months ago, 10 this morning."""
    award(street, street.vol_a, 100)
    when = settlement.utc_start_of(months_ago(2)) + timedelta(days=3, hours=2)
    old = [redeem_at(street, street.vol_a, street.rice, when + timedelta(hours=i)) for i in range(3)]
    return old


def pay(street, points, key):
    payment = settlement.record_payment(
        street.street_admin, street.shop.id, points=points, paid_on=local_today(), reference=key, key=key
    )
    db.session.commit()
    return payment


def test_worked_example_a_new_rate_starts_tomorrow_so_this_mornings_redemption_keeps_its_value(
    street, thirty_then_ten, check_ledger
):
    # 30 points two months ago at ¥1, 10 this morning at ¥1; the rate is lowered to ¥0.50.
    redeem_at(street, street.vol_a, street.rice, this_morning())
    with pytest.raises(InvalidInput) as exc:
        settlement.set_rate(street.street_admin, street.street, local_today(), 50)
    assert exc.value.field == "effective_from"
    db.session.rollback()
    settlement.set_rate(street.street_admin, street.street, local_today() + timedelta(days=1), 50)
    db.session.commit()

    today = settlement.statement(street.street_admin, street.shop.id, this_month())
    assert [(line.points, line.fen) for line in today.redemptions] == [(10, 1000)]
    payment = pay(street, 40, "转账 40")
    assert payment.fen == 4000  # 30 × ¥1 + 10 × ¥1, not 40 × ¥0.50
    assert settlement.owed_fen(street.shop.id) == 0
    check_ledger()


def test_worked_example_a_payment_is_worth_the_redemptions_it_pays_for_oldest_first(
    street, thirty_then_ten, check_ledger
):
    # Yesterday the street admin lowered the rate to ¥0.50 from today on.
    settlement.set_rate(street.street_admin, street.street, local_today(), 50, now=yesterday_noon())
    db.session.commit()
    redeem_at(street, street.vol_a, street.rice, this_morning())
    assert settlement.owed(street.shop.id) == 40
    assert settlement.owed_fen(street.shop.id) == 3500

    first = pay(street, 35, "转账 35")
    assert first.fen == 3000 + 250  # the 30 old points at ¥1, then 5 of this morning's at ¥0.50
    st = settlement.statement(street.street_admin, street.shop.id, this_month())
    assert (st.closing, st.closing_fen) == (5, 250)
    assert settlement.owed_fen(street.shop.id) == 250

    second = pay(street, 5, "转账 5")
    assert second.fen == 250
    assert first.fen + second.fen == 3500
    st = settlement.statement(street.street_admin, street.shop.id, this_month())
    assert (st.closing, st.closing_fen, st.paid_fen) == (0, 0, 3500)
    check_ledger()


def test_paying_the_whole_balance_at_once_values_it_like_paying_in_parts(street, thirty_then_ten):
    settlement.set_rate(street.street_admin, street.street, local_today(), 50, now=yesterday_noon())
    db.session.commit()
    redeem_at(street, street.vol_a, street.rice, this_morning())
    assert pay(street, 40, "转账 40").fen == 3500


def test_a_correction_takes_back_points_at_the_rate_of_the_redemption_it_corrects(street, thirty_then_ten):
    old = thirty_then_ten
    settlement.set_rate(street.street_admin, street.street, local_today(), 50, now=yesterday_noon())
    db.session.commit()
    redeem_at(street, street.vol_a, street.rice, this_morning())
    ledger.reverse(old[0], reason="退货", created_by_id=street.street_admin.id)
    db.session.commit()

    st = settlement.statement(street.street_admin, street.shop.id, this_month())
    correction = [line for line in st.redemptions if line.kind == "reversal"]
    assert [(line.points, line.fen) for line in correction] == [(-10, -1000)]  # ¥1, its redemption's rate
    # Left unpaid: 20 old points at ¥1 and 10 of this morning at ¥0.50.
    assert (st.closing, st.closing_fen) == (30, 2500)
    assert pay(street, 25, "转账 25").fen == 2000 + 250
    assert settlement.owed_fen(street.shop.id) == 250


def test_redeemed_value_always_equals_paid_plus_owed(street, thirty_then_ten):
    settlement.set_rate(street.street_admin, street.street, local_today(), 30, now=yesterday_noon())
    db.session.commit()
    redeem_at(street, street.vol_a, street.rice, this_morning())
    paid = 0
    for step, points in enumerate([7, 13, 4]):
        paid += pay(street, points, f"R{step}").fen
        ledger_value = sum(
            line.fen
            for month in (months_ago(2), months_ago(1), this_month())
            for line in settlement.statement(street.street_admin, street.shop.id, month).redemptions
        )
        assert ledger_value == paid + settlement.owed_fen(street.shop.id)
    assert paid == 2400  # 24 of the old points at ¥1


def test_reversing_a_redemption_already_paid_for_says_it_belongs_in_the_next_settlement(street):
    award(street, street.vol_a, 100)
    capture = redeem_at(street, street.vol_a, street.rice, now_utc() - timedelta(hours=1))
    pay(street, 10, "转账 10")
    state = ledger_state()
    with pytest.raises(CannotReverse) as exc:
        ledger.reverse(capture, reason="退货", created_by_id=street.street_admin.id)
    assert "already been paid" in exc.value.message
    assert "next settlement" in exc.value.message
    assert "spent or held" not in exc.value.message
    db.session.rollback()
    assert ledger_state() == state


def test_a_redemption_paid_for_cannot_be_reversed_even_while_later_ones_are_still_owed(street):
    award(street, street.vol_a, 100)
    first = redeem_at(street, street.vol_a, street.rice, now_utc() - timedelta(hours=2))
    second = redeem_at(street, street.vol_a, street.rice, now_utc() - timedelta(hours=1))
    pay(street, 5, "转账 5")  # half of the first redemption
    state = ledger_state()
    with pytest.raises(CannotReverse) as exc:
        ledger.reverse(first, reason="退货", created_by_id=street.street_admin.id)
    assert "already been paid" in exc.value.message
    db.session.rollback()
    assert ledger_state() == state
    # The second, not reached by the payment, can still be corrected.
    ledger.reverse(second, reason="退货", created_by_id=street.street_admin.id)
    db.session.commit()
    assert settlement.owed(street.shop.id) == 5 and settlement.owed_fen(street.shop.id) == 500


# -- rates per street ---------------------------------------------------------------------------

@pytest.fixture
def second_street(street):
    """Another street with its own admin, shop, cashier and volunteer."""
    s = SimpleNamespace()
    s.street = add_unit("青年街道", "street")
    s.community = add_unit("花园社区", "community", s.street)
    s.street_admin = person("street_admin_2", s.street, roles=(ROLE_STREET_ADMIN,), full_name="周街道")
    s.volunteer = person("vol_2", s.community, title="resident", full_name="马小红")
    s.shop = vouchers.create_merchant(s.street_admin, s.street, name="青年超市", kind="shop")
    s.cashier = person("cashier_2s", None, roles=(ROLE_MERCHANT_STAFF,), merchant=s.shop)
    s.rice = vouchers.create_reward(s.street_admin, s.shop.id, vouchers.RewardTerms(name="面粉", price=10, stock=10))
    db.session.commit()
    award(s, s.volunteer, 50)
    return s


def test_each_street_values_its_merchants_points_at_its_own_rate(street, second_street):
    other = second_street
    settlement.set_rate(street.street_admin, street.street, local_today(), 50, now=yesterday_noon())
    settlement.set_rate(other.street_admin, other.street, local_today(), 20, now=yesterday_noon())
    db.session.commit()
    award(street, street.vol_a, 50)
    redeem_at(street, street.vol_a, street.rice, this_morning())
    redeem_at(other, other.volunteer, other.rice, this_morning(), cashier=other.cashier)

    mine = settlement.statement(street.street_admin, street.shop.id, this_month())
    theirs = settlement.statement(other.street_admin, other.shop.id, this_month())
    assert [line.fen for line in mine.redemptions] == [500]
    assert [line.fen for line in theirs.redemptions] == [200]
    assert settlement.rate_table(street.street.id) == [(local_today(), 50)]
    assert settlement.rate_table(other.street.id) == [(local_today(), 20)]


def test_only_a_street_admin_of_that_street_sets_its_rate(street, second_street):
    tomorrow = local_today() + timedelta(days=1)
    for actor, unit in (
        (street.street_admin, second_street.street),  # another street
        (street.admin_a, street.street),  # a community admin
        (street.street_admin, street.community_a),  # not a street
    ):
        with pytest.raises(Forbidden):
            settlement.set_rate(actor, unit, tomorrow, 50)
        db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(PointsRate)) == 0
    # The same date in two streets is two rates.
    settlement.set_rate(street.street_admin, street.street, tomorrow, 50)
    settlement.set_rate(second_street.street_admin, second_street.street, tomorrow, 60)
    db.session.commit()
    with pytest.raises(InvalidInput):
        settlement.set_rate(street.street_admin, street.street, tomorrow, 70)
    db.session.rollback()


# -- parsing yuan -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fen", [("1", 100), ("0.50", 50), (" 0.5 ", 50), ("0.01", 1), ("1000", 100000),
                                       ("０．５", 50)])  # full-width, as a Chinese input method types it
def test_yuan_per_point_is_read_as_fen(text, fen):
    assert settlement.fen_from_yuan(text) == fen


@pytest.mark.parametrize(
    "text", ["Infinity", "-Infinity", "NaN", "sNaN", "1e9", "1000.01", "0", "-1", "0.001", "abc", "", None,
             "1_0", "٣", "1e1", "+1"]
)
def test_a_bad_yuan_per_point_is_refused_for_its_field(text):
    with pytest.raises(InvalidInput) as exc:
        settlement.fen_from_yuan(text)
    assert exc.value.field == "yuan_per_point"


def test_set_rate_refuses_a_value_the_column_cannot_hold(street):
    for fen in (0, -5, 100001, 10**12):
        with pytest.raises(InvalidInput):
            settlement.set_rate(street.street_admin, street.street, local_today() + timedelta(days=1), fen)
        db.session.rollback()


# -- names ----------------------------------------------------------------------------------------

def test_merchant_staff_see_masked_names_and_admins_see_full_names(street, thirty_then_ten):
    as_cashier = settlement.statement(street.cashier, street.shop.id, months_ago(2))
    as_admin = settlement.statement(street.street_admin, street.shop.id, months_ago(2))
    assert {line.volunteer for line in as_cashier.redemptions} == {"张*华"}
    assert {line.volunteer for line in as_admin.redemptions} == {"张秀华"}
