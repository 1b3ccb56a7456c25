"""Point lots: expiry dates, spending order, reversals, the expire command, deductions."""
from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta, timezone

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select

from pointsapp.cli import expire_points
from pointsapp.domain import claims, deductions, ledger, rules, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import (
    AlreadyRecorded,
    CannotReverse,
    InsufficientPoints,
    InvalidInput,
    NothingToDeduct,
    RuleNotApplicable,
)
from pointsapp.extensions import db
from pointsapp.models import Account, LotUse, PointLot, Transfer, User
from pointsapp.models.rules import expiry_date
from tests.factories import balance, build_street, rule_terms
from tests.unit.helpers import award, credit_of


def lots_of(volunteer) -> list[tuple[int, date | None]]:
    """(remaining, expires_on) of a volunteer's lots, by id."""
    acc = ledger.account_for_volunteer(volunteer)
    db.session.expire_all()
    return [
        (r, e) for r, e in db.session.execute(
            select(PointLot.remaining, PointLot.expires_on).where(PointLot.account_id == acc.id).order_by(PointLot.id)
        )
    ]


def grant(s, volunteer, points: int, expires_on: date | None, earned_on: date | None = None) -> Transfer:
    """Credit a lot straight through the ledger (as ``claims._credit`` does); commit."""
    t = ledger.credit(
        ledger.issuance_account(s.street),
        ledger.account_for_volunteer(volunteer),
        points,
        reason="测试",
        cause_key=f"test:{secrets.token_hex(6)}",
        earned_on=earned_on or local_today(),
        expires_on=expires_on,
    )
    db.session.commit()
    return t


def redeem(s, volunteer, price: int):
    reward = vouchers.create_reward(s.street_admin, s.shop.id, vouchers.RewardTerms(name=f"奖品{price}", price=price))
    issued = vouchers.issue_voucher(volunteer, reward.id)
    db.session.commit()
    return issued


def capture(s, volunteer, price: int) -> Transfer:
    issued = redeem(s, volunteer, price)
    vouchers.confirm_redemption(s.cashier, issued.code)
    db.session.commit()
    return db.session.scalar(select(Transfer).where(Transfer.voucher_id == issued.voucher.id, Transfer.kind == "capture"))


# --- expiry dates -----------------------------------------------------------------------------


def test_expiry_dates_of_each_policy():
    assert expiry_date("never", None, date(2026, 3, 5)) is None
    assert expiry_date("next_year_end", None, date(2026, 3, 5)) == date(2027, 12, 31)
    assert expiry_date("next_year_end", None, date(2026, 12, 31)) == date(2027, 12, 31)
    assert expiry_date("next_year_end", None, date(2027, 1, 1)) == date(2028, 12, 31)
    assert expiry_date("months", 12, date(2024, 2, 29)) == date(2025, 2, 28)
    assert expiry_date("months", 48, date(2024, 2, 29)) == date(2028, 2, 29)
    assert expiry_date("months", 1, date(2026, 1, 31)) == date(2026, 2, 28)
    assert expiry_date("months", 1, date(2026, 12, 15)) == date(2027, 1, 15)
    assert expiry_date("months", 120, date(2026, 5, 1)) == date(2036, 5, 1)


def test_a_rule_with_an_expiry_policy_gives_lots_that_expire_after_the_next_year_end(app, check_ledger):
    s = build_street()
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(name_zh="年底", name_en="Year end", expiry_policy="next_year_end"))
    now = datetime(2026, 3, 5, 2, 0, tzinfo=timezone.utc)
    [act] = claims.record_attendance(
        s.street_admin, rule_id=rule.id, activity_date=date(2026, 3, 5), volunteer_ids=[s.vol_a.id], batch_key="y1", now=now
    )
    db.session.commit()
    assert lots_of(s.vol_a) == [(10, date(2027, 12, 31))]
    assert expire_points(date(2027, 12, 31)) == ledger.Expired(0, 0)  # the last day: still spendable
    assert expire_points(date(2028, 1, 1)) == ledger.Expired(1, 10)
    assert lots_of(s.vol_a) == [(0, date(2027, 12, 31))]
    b = balance(s.vol_a)
    assert (b.balance, b.earned) == (0, 10)  # expiry does not lower lifetime points
    assert ledger.expired_total(s.street) == 10
    t = db.session.scalar(select(Transfer).where(Transfer.kind == "expiry"))
    assert t.reason.startswith("积分过期") and "2027-12-31" in t.reason
    check_ledger()


def test_months_policy_from_a_leap_day_expires_after_the_last_day_of_february(app, check_ledger):
    s = build_street()
    rule = rules.create_rule(
        s.street_admin, s.street, rule_terms(name_zh="闰日", name_en="Leap", expiry_policy="months", expiry_months=12)
    )
    claims.record_attendance(
        s.street_admin, rule_id=rule.id, activity_date=date(2024, 2, 29), volunteer_ids=[s.vol_a.id], batch_key="leap",
        now=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc),
    )
    db.session.commit()
    assert lots_of(s.vol_a) == [(10, date(2025, 2, 28))]
    assert expire_points(date(2025, 2, 28)).points == 0
    assert expire_points(date(2025, 3, 1)).points == 10
    check_ledger()


def test_rule_terms_validate_the_expiry_months():
    for months in (None, 0, 121):
        with pytest.raises(InvalidInput):
            rule_terms(expiry_policy="months", expiry_months=months).validate()
    with pytest.raises(InvalidInput):
        rule_terms(expiry_policy="sometimes").validate()
    with pytest.raises(InvalidInput):
        rule_terms(kind="maybe").validate()
    terms = rule_terms(expiry_policy="never", expiry_months=6)
    terms.validate()
    assert terms.expiry_months is None
    rule_terms(expiry_policy="months", expiry_months=120).validate()


# --- spending order ---------------------------------------------------------------------------


def test_spending_takes_the_earliest_expiring_points_first_and_never_expiring_last(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 10, None)
    grant(street, street.vol_a, 10, today + timedelta(days=200))
    grant(street, street.vol_a, 10, today + timedelta(days=20))
    grant(street, street.vol_a, 10, today + timedelta(days=20))  # same day: the older lot first
    capture(street, street.vol_a, 15)
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 10, 0, 5]
    check_ledger()


def test_a_reversed_redemption_gives_the_points_back_to_their_lots_which_are_spent_first_again(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 10, today + timedelta(days=5))
    grant(street, street.vol_a, 10, today + timedelta(days=50))
    grant(street, street.vol_a, 10, None)
    t = capture(street, street.vol_a, 15)
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 5, 10]
    reversal = claims.reverse_transfer(street.street_admin, t.id, "收银错误")
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 10, 10]
    given = dict(db.session.execute(select(LotUse.lot_id, LotUse.amount).where(LotUse.transfer_id == reversal.id)).all())
    assert sorted(given.values()) == [-10, -5]
    capture(street, street.vol_a, 12)
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 8, 10]
    check_ledger()


def test_a_credit_reversal_takes_from_its_own_lot_first_then_the_earliest(app, street, check_ledger):
    today = local_today()
    a = grant(street, street.vol_a, 10, today + timedelta(days=5))
    grant(street, street.vol_a, 10, today + timedelta(days=50))
    c = grant(street, street.vol_a, 10, None)
    capture(street, street.vol_a, 5)  # from the first lot
    ledger.reverse(db.session.get(Transfer, c.id), reason="错发", created_by_id=street.street_admin.id)
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [5, 10, 0]
    # Partly spent: 5 from its own lot, the other 5 from the earliest-expiring lot left.
    ledger.reverse(db.session.get(Transfer, a.id), reason="错发", created_by_id=street.street_admin.id)
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 5, 0]
    b = balance(street.vol_a)
    assert (b.balance, b.earned) == (5, 10)
    check_ledger()


def test_reversing_an_activity_takes_its_own_never_expiring_lot_before_earlier_ones(app, street, check_ledger):
    act = award(street, street.vol_a, 30)  # never expires
    grant(street, street.vol_a, 10, local_today() + timedelta(days=9))
    grant(street, street.vol_a, 10, local_today() + timedelta(days=10))
    capture(street, street.vol_a, 5)
    assert [r for r, _ in lots_of(street.vol_a)] == [30, 5, 10]
    claims.reverse_transfer(street.street_admin, credit_of(act).id, "重复记录")
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 5, 10]
    check_ledger()


# --- the expire command -----------------------------------------------------------------------


def test_expire_is_idempotent_and_one_transfer_per_lot(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 10, today - timedelta(days=1))
    grant(street, street.vol_a, 7, today - timedelta(days=30))
    grant(street, street.vol_b, 4, today - timedelta(days=2))
    grant(street, street.vol_a, 5, today)  # its last day: not yet
    assert expire_points(today) == ledger.Expired(3, 21)
    assert expire_points(today) == ledger.Expired(0, 0)
    keys = sorted(db.session.scalars(select(Transfer.cause_key).where(Transfer.kind == "expiry")))
    assert len(keys) == 3 and all(k.startswith("expiry:") and k.endswith(":1") for k in keys)
    assert balance(street.vol_a).balance == 5 and balance(street.vol_b).balance == 0
    assert ledger.expired_total(street.street) == 21
    expiry_acc = db.session.scalar(select(Account).where(Account.kind == "expiry"))
    assert expiry_acc.org_unit_id == street.street.id and expiry_acc.balance == 21
    check_ledger()


def test_points_held_for_a_voucher_do_not_expire_until_the_voucher_is_cancelled(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 10, today)  # its last day: the voucher is issued while they are valid
    grant(street, street.vol_a, 10, None)
    issued = redeem(street, street.vol_a, 10)
    assert ledger.expiring_soon(ledger.account_for_volunteer(street.vol_a).id).points == 0
    tomorrow = today + timedelta(days=1)
    assert expire_points(tomorrow) == ledger.Expired(0, 0)  # the hold reserves the earliest points
    vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.commit()
    assert expire_points(tomorrow) == ledger.Expired(1, 10)
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_a_held_voucher_captured_after_the_lot_expired_takes_the_reserved_points(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 15, today)
    grant(street, street.vol_a, 10, None)
    issued = redeem(street, street.vol_a, 10)
    assert expire_points(today + timedelta(days=1)) == ledger.Expired(1, 5)
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 10]
    check_ledger()


def _reward(s, price: int):
    return vouchers.create_reward(s.street_admin, s.shop.id, vouchers.RewardTerms(name=f"奖品{price}", price=price))


def _reserved(volunteer) -> list[int]:
    acc = ledger.account_for_volunteer(volunteer)
    db.session.expire_all()
    return list(db.session.scalars(select(PointLot.reserved).where(PointLot.account_id == acc.id).order_by(PointLot.id)))


def _vouchers_either_side_of_a_last_day(s):
    """Voucher A of 10 points issued today, the last day of a lot of 10, and voucher B of 10
    issued tomorrow, when only a never-expiring lot of 10 is valid: (A, B, tomorrow)."""
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    grant(s, s.vol_a, 10, local_today())  # the last day is today
    grant(s, s.vol_a, 10, None)
    reward = _reward(s, 10)
    a = vouchers.issue_voucher(s.vol_a, reward.id)
    db.session.commit()
    b = vouchers.issue_voucher(s.vol_a, reward.id, now=tomorrow)
    db.session.commit()
    return a, b, tomorrow


def test_a_voucher_reserves_its_own_lots_so_an_older_voucher_cancelled_after_the_last_day_frees_points_that_expire(
        app, street, check_ledger):
    """Voucher A holds points on their last day; the next day voucher B holds valid points; A is
    cancelled. B's capture takes B's own points, and A's, now past their last day, expire: they
    are not spent by a voucher issued after they ran out."""
    a, b, tomorrow = _vouchers_either_side_of_a_last_day(street)
    assert _reserved(street.vol_a) == [10, 10]
    vouchers.cancel_voucher(street.vol_a, a.voucher.id, now=tomorrow)
    db.session.commit()
    assert _reserved(street.vol_a) == [0, 10]
    vouchers.confirm_redemption(street.cashier, b.code, now=tomorrow)
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 0]  # B took its own lot, not the one past its day
    assert expire_points(local_today(tomorrow)) == ledger.Expired(1, 10)
    assert balance(street.vol_a).balance == 0 and ledger.expired_total(street.street) == 10
    check_ledger()


def test_a_later_voucher_redeemed_first_takes_its_own_points_not_an_open_older_vouchers(app, street, check_ledger):
    """The same two vouchers, B redeemed while A is still open, then A cancelled: B's capture
    took B's points, so A's points, past their last day, expire instead of staying with the
    volunteer."""
    a, b, tomorrow = _vouchers_either_side_of_a_last_day(street)
    vouchers.confirm_redemption(street.cashier, b.code, now=tomorrow)
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 0] and _reserved(street.vol_a) == [10, 0]
    assert expire_points(local_today(tomorrow)) == ledger.Expired(0, 0)  # A still holds its points
    vouchers.cancel_voucher(street.vol_a, a.voucher.id, now=tomorrow)
    db.session.commit()
    assert expire_points(local_today(tomorrow)) == ledger.Expired(1, 10)
    assert balance(street.vol_a).balance == 0
    check_ledger()


def test_a_credit_reversal_moves_a_vouchers_reservation_to_other_valid_points(app, street, check_ledger):
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today + timedelta(days=5))
    grant(street, street.vol_a, 10, None)
    issued = redeem(street, street.vol_a, 10)
    assert _reserved(street.vol_a) == [10, 0]  # the earliest-expiring points: the wrong credit's
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 10] and _reserved(street.vol_a) == [0, 10]
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (0, 0, 10)
    check_ledger()


def test_a_credit_reversal_is_refused_while_a_voucher_holds_its_points_and_nothing_valid_can_stand_in(
        app, street, check_ledger):
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today)
    issued = redeem(street, street.vol_a, 10)
    grant(street, street.vol_a, 10, today - timedelta(days=1))  # past its last day, not yet expired
    with pytest.raises(CannotReverse) as exc:
        claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    # The points past their last day expire first, so none are free to hold instead.
    assert "only 0 points available and 10 are needed" in exc.value.message
    db.session.rollback()
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 10] and _reserved(street.vol_a) == [10, 0]
    vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.commit()
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")  # nothing holds it now
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 0] and ledger.expired_total(street.street) == 10
    check_ledger()


def test_a_deduction_takes_only_points_no_voucher_reserves(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 10, today + timedelta(days=5))
    grant(street, street.vol_a, 10, None)
    issued = redeem(street, street.vol_a, 10)
    d = deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=deduct_rule(street, points=4).id,
                                   reason="楼道堆物", submission_key="reserved-points")
    db.session.commit()
    assert d.deducted == 4
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 6] and _reserved(street.vol_a) == [10, 0]
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 6]
    check_ledger()


def test_points_past_their_last_day_expire_before_a_voucher_can_take_them(app, street, check_ledger):
    """The nightly job has not run yet (it runs after midnight, or missed a night): the voucher
    expires them first, and does not spend them."""
    today = local_today()
    grant(street, street.vol_a, 10, today - timedelta(days=1))
    grant(street, street.vol_a, 6, None)
    with pytest.raises(InsufficientPoints) as refused:
        redeem(street, street.vol_a, 10)
    assert refused.value.params["available"] == 6
    db.session.rollback()  # as the request does: the refusal changes nothing
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 6]
    redeem(street, street.vol_a, 6)  # still-valid points are spent, and the others expire on the way
    assert ledger.expired_total(street.street) == 10
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 6] and balance(street.vol_a).held == 6
    assert expire_points(today) == ledger.Expired(0, 0)  # nothing left for the job
    check_ledger()


def test_points_past_their_last_day_expire_rather_than_being_deducted(app, street, check_ledger):
    today = local_today()
    grant(street, street.vol_a, 10, today - timedelta(days=1))
    grant(street, street.vol_a, 8, None)
    d = deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=deduct_rule(street, points=5).id,
                                   reason="楼道堆物", submission_key="past-last-day")
    db.session.commit()
    assert d.deducted == 5 and ledger.expired_total(street.street) == 10
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 3]  # the deduction took valid points
    check_ledger()


def test_an_expiry_cannot_be_reversed(app, street, check_ledger):
    grant(street, street.vol_a, 10, local_today() - timedelta(days=1))
    expire_points(local_today())
    t = db.session.scalar(select(Transfer).where(Transfer.kind == "expiry"))
    with pytest.raises(CannotReverse) as exc:
        claims.reverse_transfer(street.street_admin, t.id, "想恢复")
    assert "expired points" in exc.value.message
    db.session.rollback()
    check_ledger()


def test_a_credit_whose_points_partly_expired_is_not_reversed_and_a_deduction_takes_back_the_rest(
        app, street, check_ledger):
    """A wrong credit of 10: 4 spent while valid, 6 expired. Reversing it would take 10 from the
    volunteer's rightly earned points; it is refused, and nothing is taken."""
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today)
    grant(street, street.vol_a, 20, None)  # rightly earned
    capture(street, street.vol_a, 4)  # from the wrong credit's lot, its last day
    assert expire_points(today + timedelta(days=1)) == ledger.Expired(1, 6)
    with pytest.raises(CannotReverse) as exc:
        claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    assert "already expired" in exc.value.message and "deduction" in exc.value.message
    db.session.rollback()
    assert balance(street.vol_a).balance == 20 and [r for r, _ in lots_of(street.vol_a)] == [0, 20]
    # A credit none of whose points expired is reversed as before.
    other = grant(street, street.vol_a, 5, None)
    claims.reverse_transfer(street.street_admin, other.id, "录入错误")
    db.session.commit()
    assert balance(street.vol_a).balance == 20
    check_ledger()


def test_a_credit_reversal_expires_points_past_their_last_day_and_takes_back_only_valid_ones(
        app, street, check_ledger):
    """A wrong credit of 10, 6 of it spent; the nightly job has not yet expired an older lot past
    its last day. The reversal expires that lot first, then takes its own 4 and 6 valid points."""
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today + timedelta(days=5))
    grant(street, street.vol_a, 20, None)
    capture(street, street.vol_a, 6)  # from the wrong credit's lot
    grant(street, street.vol_a, 7, today - timedelta(days=1))  # waits for the job
    assert [r for r, _ in lots_of(street.vol_a)] == [4, 20, 7]
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 14, 0]
    assert ledger.expired_total(street.street) == 7
    b = balance(street.vol_a)
    assert (b.balance, b.earned) == (14, 27)
    kinds = db.session.execute(select(Transfer.kind, Transfer.amount).order_by(Transfer.id.desc()).limit(2)).all()
    assert kinds == [("reversal", 10), ("expiry", 7)]
    assert expire_points(today) == ledger.Expired(0, 0)  # nothing left for the job
    check_ledger()


def test_a_credit_reversal_is_refused_when_its_own_points_are_past_their_last_day(app, street, check_ledger):
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today - timedelta(days=1))
    grant(street, street.vol_a, 20, None)
    transfers_before = db.session.scalar(select(func.count()).select_from(Transfer))
    with pytest.raises(CannotReverse) as exc:
        claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    assert "already expired" in exc.value.message and "deduction" in exc.value.message
    db.session.rollback()  # as the request does: the refusal changes nothing, the job expires them
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == transfers_before
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 20]
    assert expire_points(today) == ledger.Expired(1, 10)
    check_ledger()


def test_a_credit_reversal_takes_its_own_reserved_points_past_their_last_day_once_the_voucher_moves(
        app, street, check_ledger):
    """A voucher holds the credit's points, now past their last day (reserved points wait for the
    voucher): the reversal moves the hold to valid points and takes the credit's own points back."""
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today + timedelta(days=1))
    grant(street, street.vol_a, 20, None)
    issued = redeem(street, street.vol_a, 10)  # reserves the wrong credit's points
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误", now=datetime.now(timezone.utc) + timedelta(days=3))
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [0, 20]
    assert ledger.expired_total(street.street) == 0
    reserved = db.session.scalars(select(PointLot.reserved).order_by(PointLot.id)).all()
    assert reserved == [0, 10] and issued.voucher.status == "issued"
    check_ledger()


def test_the_expire_command_prints_what_it_did(app, street, check_ledger):
    grant(street, street.vol_a, 10, date(2026, 1, 31))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["points", "expire", "--today", "2026-02-01"])
    assert result.exit_code == 0, result.output
    assert "expired 10 point(s) in 1 lot(s)" in result.output
    result = runner.invoke(args=["points", "expire", "--today", "2026-02-01"])
    assert "expired 0 point(s) in 0 lot(s)" in result.output
    assert runner.invoke(args=["points", "expire", "--today", "tomorrow"]).exit_code != 0
    # A day after today would expire points before their last day: refused, nothing expired.
    ahead = runner.invoke(args=["points", "expire", "--today", (local_today() + timedelta(days=1)).isoformat()])
    assert ahead.exit_code == 2 and "after today" in ahead.output
    check_ledger()


def test_expiring_soon_shows_the_next_30_days(app, street):
    today = local_today()
    grant(street, street.vol_a, 10, today + timedelta(days=40))
    grant(street, street.vol_a, 6, today + timedelta(days=29))
    grant(street, street.vol_a, 4, today + timedelta(days=3))
    grant(street, street.vol_a, 9, None)
    soon = ledger.expiring_soon(ledger.account_for_volunteer(street.vol_a).id, today)
    assert (soon.points, soon.first_date) == (10, today + timedelta(days=3))
    none = ledger.expiring_soon(ledger.account_for_volunteer(street.vol_b).id, today)
    assert (none.points, none.first_date) == (0, None)


# --- deductions -------------------------------------------------------------------------------


def deduct_rule(s, points=10, name="乱扔垃圾"):
    rule = rules.create_rule(
        s.street_admin, s.street, rule_terms(name_zh=name, name_en="Littering", points=points, kind="deduct")
    )
    db.session.commit()
    return rule


def test_a_deduction_takes_at_most_the_available_points_and_never_lowers_earned(app, street, check_ledger):
    rule = deduct_rule(street, points=10)
    award(street, street.vol_a, 14)
    redeem(street, street.vol_a, 6)  # 8 available
    d = deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="楼道堆物", submission_key="d1")
    db.session.commit()
    assert (d.requested, d.deducted, d.shortfall) == (10, 8, 2)
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.available, b.earned) == (6, 6, 0, 14)
    assert d.transfer.kind == "deduction" and "乱扔垃圾" in d.transfer.reason and "楼道堆物" in d.transfer.reason
    with pytest.raises(NothingToDeduct):
        deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="再次", submission_key="d2")
    db.session.rollback()
    with pytest.raises(AlreadyRecorded):
        deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="楼道堆物", submission_key="d1")
    db.session.rollback()
    check_ledger()


def test_a_deduction_is_reversed_by_an_admin_back_into_its_lots(app, street, check_ledger):
    from pointsapp.models import AuditRecord

    rule = deduct_rule(street, points=5)
    grant(street, street.vol_a, 10, local_today() + timedelta(days=3))
    grant(street, street.vol_a, 10, None)
    d = deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="违规", submission_key="k")
    db.session.commit()
    assert [r for r, _ in lots_of(street.vol_a)] == [5, 10]
    assert db.session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "deduction.applied")) == 1
    assert deductions.deducted_points() == {street.vol_a.id: 5}
    claims.reverse_transfer(street.street_admin, d.transfer.id, "误扣")
    db.session.commit()
    assert deductions.deducted_points() == {}
    assert [r for r, _ in lots_of(street.vol_a)] == [10, 10]
    b = balance(street.vol_a)
    assert (b.balance, b.earned) == (20, 20)
    check_ledger()


def test_deduction_rules_are_not_for_earning_and_earning_rules_not_for_deducting(app, street):
    rule = deduct_rule(street)
    with pytest.raises(RuleNotApplicable):
        claims.submit_claim(street.vol_a, rule_id=rule.id, activity_date=local_today())
    db.session.rollback()
    assert rule.id not in [v.rule_id for v in rules.rules_for_volunteer(street.vol_a, local_today())]
    assert [v.rule_id for v in deductions.deduction_rules_for(street.vol_a)] == [rule.id]
    award(street, street.vol_a, 10)
    with pytest.raises(InvalidInput):
        deductions.apply_deduction(
            street.staff_a, volunteer_id=street.vol_a.id, rule_id=street.meeting.id, reason="不对", submission_key="x"
        )
    db.session.rollback()
    with pytest.raises(InvalidInput):
        deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="", submission_key="y")
    db.session.rollback()


# --- upgrading a database with balances -------------------------------------------------------


def test_the_migration_gives_existing_balances_an_opening_lot(app, check_ledger):
    s = build_street()
    award(s, s.vol_a, 30)
    award(s, s.vol_b, 5)
    capture(s, s.vol_b, 5)  # a zero balance: no opening lot
    db.session.commit()
    vol_a = ledger.account_for_volunteer(s.vol_a).id
    issued = redeem(s, s.vol_a, 10)
    code, cashier_id = issued.code, s.cashier.id
    db.session.remove()
    downgrade(revision="a4c1e2f3a4b5")
    upgrade()
    rows = db.session.execute(select(PointLot.account_id, PointLot.transfer_id, PointLot.amount, PointLot.remaining, PointLot.expires_on)).all()
    assert rows == [(vol_a, None, 30, 30, None)]
    check_ledger()
    vouchers.confirm_redemption(db.session.get(User, cashier_id), code)
    db.session.commit()
    assert db.session.scalar(select(PointLot.remaining)) == 20
    check_ledger()


def test_the_yearly_statement_counts_expired_and_deducted_points(app, street):
    from pointsapp.domain.statements import volunteer_year

    rule = deduct_rule(street, points=3)
    grant(street, street.vol_a, 10, local_today() - timedelta(days=1))
    grant(street, street.vol_a, 10, None)
    expire_points(local_today())
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="违规", submission_key="s")
    db.session.commit()
    st = volunteer_year(street.vol_a, local_today().year)
    assert (st.earned, st.points_expired, st.deducted, st.closing) == (20, 10, 3, 7)
    assert st.closing == balance(street.vol_a).balance
