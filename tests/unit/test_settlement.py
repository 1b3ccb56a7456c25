"""Merchant settlement: statements, closing a period, payments, rates, who sees what."""
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from pointsapp.domain import ledger, settlement, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.domain.errors import (
    AlreadyRecorded,
    CannotReverse,
    Forbidden,
    InvalidInput,
    NotFound,
    PaymentExceedsOwed,
    PeriodNotEnded,
)
from pointsapp.extensions import db
from pointsapp.models import Transfer
from tests.unit.helpers import award, ledger_state


def this_month() -> date:
    return local_today().replace(day=1)


def months_ago(n: int) -> date:
    return settlement.add_months(this_month(), -n)


def redeem_at(s, volunteer, reward, when, cashier=None):
    """Issue and confirm a voucher at ``when``; commit; return the capture transfer."""
    issued = vouchers.issue_voucher(volunteer, reward.id, now=when)
    voucher = vouchers.confirm_redemption(cashier or s.cashier, issued.code, now=when + timedelta(minutes=5))
    db.session.commit()
    return db.session.scalar(select(Transfer).where(Transfer.voucher_id == voucher.id, Transfer.kind == "capture"))


@pytest.fixture
def two_months_ago_redemptions(street):
    """vol_a (青山社区) redeems rice twice and vol_b (友谊社区) once, two months ago: 30 points."""
    award(street, street.vol_a, 100)
    award(street, street.vol_b, 100)
    when = settlement.utc_start_of(months_ago(2)) + timedelta(days=3, hours=2)
    return [
        redeem_at(street, street.vol_a, street.rice, when),
        redeem_at(street, street.vol_a, street.rice, when + timedelta(hours=1)),
        redeem_at(street, street.vol_b, street.rice, when + timedelta(hours=2)),
    ]


def test_a_statement_lists_each_redemption_valued_in_yuan_and_attributed_to_its_community(
    street, two_months_ago_redemptions
):
    st = settlement.statement(street.street_admin, street.shop.id, months_ago(2))
    assert st.period is None and st.closable
    assert st.opening == 0
    assert [line.points for line in st.redemptions] == [10, 10, 10]
    assert [line.volunteer for line in st.redemptions] == ["张秀华", "张秀华", "孙丽"]
    assert st.redeemed == 30 and st.closing == 30
    assert st.redeemed_fen == 3000  # 1 point = ¥1 by default
    assert st.by_community == [("青山社区", 20, 2000), ("友谊社区", 10, 1000)]
    # The month before has nothing; this month has nothing yet.
    assert settlement.statement(street.street_admin, street.shop.id, this_month()).lines == []


def test_closing_a_period_freezes_it_and_a_later_correction_lands_in_the_open_period(
    street, two_months_ago_redemptions, check_ledger
):
    period = settlement.close_period(street.street_admin, street.shop.id)
    db.session.commit()
    assert (period.period_start, period.redeemed, period.closing_balance) == (months_ago(2), 30, 30)

    # A capture of the closed month is reversed today.
    ledger.reverse(two_months_ago_redemptions[2], reason="退货", created_by_id=street.street_admin.id)
    db.session.commit()

    closed = settlement.statement(street.street_admin, street.shop.id, months_ago(2))
    assert closed.period is not None and not closed.closable
    assert (closed.redeemed, closed.corrected, closed.closing) == (30, 0, 30)
    assert len(closed.lines) == 3

    now = settlement.statement(street.street_admin, street.shop.id, this_month())
    assert now.opening == 30
    assert [(line.kind, line.points) for line in now.lines] == [("reversal", -10)]
    assert now.corrected == -10 and now.closing == 20
    assert settlement.owed(street.shop.id) == 20

    # Periods close in order: last month (empty) can be closed, this month not before it ends.
    last_month = settlement.close_period(street.street_admin, street.shop.id)
    db.session.commit()
    assert (last_month.period_start, last_month.opening_balance, last_month.closing_balance) == (months_ago(1), 30, 30)
    with pytest.raises(PeriodNotEnded):
        settlement.close_period(street.street_admin, street.shop.id)
    db.session.rollback()
    check_ledger()


def test_the_database_refuses_to_change_a_closed_period(street, two_months_ago_redemptions):
    settlement.close_period(street.street_admin, street.shop.id)
    db.session.commit()
    for sql in ("UPDATE settlement_period SET redeemed = 0", "DELETE FROM settlement_line"):
        with pytest.raises(DBAPIError) as exc:
            db.session.execute(text(sql))
        assert "append-only" in str(exc.value)
        db.session.rollback()


def test_a_payment_retires_the_points_and_more_than_is_owed_is_refused(
    street, two_months_ago_redemptions, check_ledger
):
    issuance = ledger.issuance_account(street.street)
    before = ledger.balance_of(issuance.id).balance
    payment = settlement.record_payment(
        street.street_admin, street.shop.id, points=20, paid_on=local_today(), reference="转账 0001", key="k1"
    )
    db.session.commit()
    assert payment.fen == 2000
    assert settlement.owed(street.shop.id) == 10
    assert ledger.balance_of(issuance.id).balance == before + 20
    assert payment.transfer.kind == "settlement"

    state = ledger_state()
    with pytest.raises(PaymentExceedsOwed) as exc:
        settlement.record_payment(
            street.street_admin, street.shop.id, points=11, paid_on=local_today(), reference="转账 0002", key="k2"
        )
    assert exc.value.params == {"points": 11, "owed": 10}
    db.session.rollback()
    assert ledger_state() == state

    with pytest.raises(AlreadyRecorded):
        settlement.record_payment(
            street.street_admin, street.shop.id, points=5, paid_on=local_today(), reference="转账 0001", key="k1"
        )
    db.session.rollback()

    st = settlement.statement(street.street_admin, street.shop.id, this_month())
    assert [(p.reference, p.points, p.fen) for p in st.payments] == [("转账 0001", -20, -2000)]
    assert st.paid == 20 and st.paid_fen == 2000
    check_ledger()


def test_a_payment_cannot_be_reversed_as_a_ledger_entry(street, two_months_ago_redemptions):
    payment = settlement.record_payment(
        street.street_admin, street.shop.id, points=5, paid_on=local_today(), reference="R1", key="k1"
    )
    db.session.commit()
    with pytest.raises(CannotReverse):
        ledger.reverse(payment.transfer, reason="x", created_by_id=street.street_admin.id)


@pytest.mark.parametrize(
    "terms",
    [
        dict(points=0),
        dict(points=-5),
        dict(reference="  "),
        dict(reference="x" * 101),
        dict(paid_on=date.today() + timedelta(days=3)),
    ],
)
def test_a_bad_payment_is_refused_and_changes_nothing(street, two_months_ago_redemptions, terms):
    state = ledger_state()
    args = dict(points=5, paid_on=local_today(), reference="R", key="k9", **{})
    args.update(terms)
    with pytest.raises(InvalidInput):
        settlement.record_payment(street.street_admin, street.shop.id, **args)
    db.session.rollback()
    assert ledger_state() == state


def test_each_redemption_is_valued_at_the_rate_in_force_on_its_day(street, two_months_ago_redemptions):
    today = local_today()
    with pytest.raises(InvalidInput):
        settlement.set_rate(street.street_admin, street.street, today - timedelta(days=1), 50)
    db.session.rollback()
    with pytest.raises(Forbidden):
        settlement.set_rate(street.admin_a, street.street, today + timedelta(days=1), 50)
    db.session.rollback()
    # Set yesterday: 1 point = ¥0.50 from today.
    yesterday = settlement.utc_start_of(today - timedelta(days=1)) + timedelta(hours=12)
    settlement.set_rate(street.street_admin, street.street, today, 50, now=yesterday)
    db.session.commit()
    redeem_at(street, street.vol_a, street.rice, now_utc())
    assert settlement.statement(street.street_admin, street.shop.id, months_ago(2)).redeemed_fen == 3000
    st = settlement.statement(street.street_admin, street.shop.id, this_month())
    assert [(line.points, line.fen) for line in st.redemptions] == [(10, 500)]


def test_merchant_staff_see_only_their_own_statements_and_cannot_close(street, two_months_ago_redemptions):
    mine = settlement.statement(street.cashier, street.shop.id, months_ago(2))
    assert mine.redeemed == 30
    with pytest.raises(NotFound):
        settlement.statement(street.cashier, street.other_shop.id)
    with pytest.raises(NotFound):
        settlement.close_period(street.cashier, street.shop.id)
    db.session.rollback()
    # The shop belongs to the street: a community admin does not administer it.
    with pytest.raises(NotFound):
        settlement.statement(street.admin_b, street.shop.id)
    with pytest.raises(NotFound):
        settlement.record_payment(street.admin_b, street.shop.id, points=1, paid_on=local_today(), reference="R", key="k")


def test_check_ledger_names_a_payment_record_that_is_not_a_settlement(street, two_months_ago_redemptions):
    capture = two_months_ago_redemptions[0]
    db.session.execute(
        text(
            "INSERT INTO settlement_payment (merchant_id, points, fen, paid_on, reference, transfer_id, created_at) "
            "VALUES (:m, 10, 1000, :d, 'forged', :t, :c)"
        ),
        {"m": street.shop.id, "d": local_today(), "t": capture.id, "c": now_utc().replace(tzinfo=None)},
    )
    db.session.commit()
    assert "1 payment records point at transfers that are not settlements" in ledger.check_ledger()


def test_closing_paying_and_setting_a_rate_each_leave_an_audit_record_in_the_chain(
    street, two_months_ago_redemptions
):
    from pointsapp.domain import audit
    from pointsapp.models import AuditRecord

    def newest():
        return db.session.scalar(select(AuditRecord).order_by(AuditRecord.seq.desc()))

    period = settlement.close_period(street.street_admin, street.shop.id)
    db.session.commit()
    rec = newest()
    assert (rec.action, rec.target_id, rec.actor_id) == (audit.PERIOD_CLOSED, period.id, street.street_admin.id)
    assert '"redeemed":30' in rec.summary and rec.org_path == street.street.path

    payment = settlement.record_payment(
        street.street_admin, street.shop.id, points=20, paid_on=local_today(), reference="转账 0002", key="k-audit"
    )
    db.session.commit()
    rec = newest()
    assert (rec.action, rec.target_id) == (audit.PAYMENT_RECORDED, payment.id)
    assert '"points":20' in rec.summary and '"reference":"转账 0002"' in rec.summary

    rate = settlement.set_rate(street.street_admin, street.street, local_today() + timedelta(days=1), 80)
    db.session.commit()
    rec = newest()
    assert (rec.action, rec.target_id, rec.org_path) == (audit.RATE_SET, rate.id, street.street.path)
    assert audit.verify_chain().problem is None


def test_a_refused_payment_leaves_no_audit_record(street, two_months_ago_redemptions):
    from pointsapp.models import AuditRecord

    before = db.session.scalar(select(func.count()).select_from(AuditRecord))
    with pytest.raises(PaymentExceedsOwed):
        settlement.record_payment(
            street.street_admin, street.shop.id, points=31, paid_on=local_today(), reference="多付", key="k-over"
        )
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditRecord)) == before
