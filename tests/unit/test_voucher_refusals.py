"""Every way a voucher can be refused at the till: the right reason, nothing changes, and one
structured log line (reason, cashier, merchant) that never contains the code or the token."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from pointsapp.domain import vouchers
from pointsapp.domain.clock import now_utc
from pointsapp.domain.errors import (
    PointsError,
    VoucherAlreadyRedeemed,
    VoucherCancelled,
    VoucherExpired,
    VoucherJustRedeemed,
    VoucherNotFound,
    WrongMerchant,
)
from pointsapp.extensions import db
from tests.factories import give_points
from tests.unit.helpers import ledger_state


@pytest.fixture
def voucher(street):
    give_points(street, street.vol_a, 50)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    return issued


def tamper(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


@pytest.fixture(autouse=True)
def app_logger_enabled(app, monkeypatch):
    """Re-enable the app's logger: Alembic's ``fileConfig`` (the migration tests run it in this
    process) disables loggers that exist already; a served app never runs migrations in-process."""
    monkeypatch.setattr(app.logger, "disabled", False)


def refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "voucher_refused"]


CASES = {
    "tampered token": (lambda s, v: tamper(v.token), VoucherNotFound),
    "truncated token": (lambda s, v: v.token[:-6], VoucherNotFound),
    "tampered code": (lambda s, v: tamper(v.code), VoucherNotFound),
    "truncated code": (lambda s, v: v.code[:6], VoucherNotFound),
    "expired": (lambda s, v: v.token, VoucherExpired),
    "cancelled": (lambda s, v: v.code, VoucherCancelled),
    "replayed": (lambda s, v: v.token, VoucherAlreadyRedeemed),
    "replayed by its cashier at once": (lambda s, v: v.code, VoucherJustRedeemed),
    "other merchant": (lambda s, v: v.token, WrongMerchant),
}


def prepare(case: str, street, voucher):
    """Put the voucher in the state the case needs; return (cashier, moment of the attempt)."""
    now = now_utc()
    if case == "expired":
        return street.cashier, voucher.voucher.expires_at + timedelta(seconds=1)
    if case == "cancelled":
        vouchers.cancel_voucher(street.vol_a, voucher.voucher.id)
        db.session.commit()
    if case.startswith("replayed"):
        vouchers.confirm_redemption(street.cashier, voucher.token)
        db.session.commit()
    if case == "replayed":  # later than a lost answer's retry: a plain refusal
        return street.cashier, now + vouchers.JUST_REDEEMED + timedelta(seconds=1)
    if case == "other merchant":
        return street.other_cashier, now
    return street.cashier, now


@pytest.mark.parametrize("step", ["lookup", "confirm"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_voucher_is_refused_with_its_reason_and_logged_without_the_code(
    street, voucher, caplog, check_ledger, case, step
):
    make_text, error = CASES[case]
    cashier, moment = prepare(case, street, voucher)
    text = make_text(street, voucher)
    before = ledger_state()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="pointsapp")
    call = vouchers.look_up_for_redemption if step == "lookup" else vouchers.confirm_redemption
    with pytest.raises(PointsError) as exc:
        call(cashier, text, None, moment)
    db.session.rollback()
    assert type(exc.value) is error
    assert ledger_state() == before

    [line] = refusals(caplog)
    assert line.levelno == logging.WARNING
    assert line.reason == error.code and line.step == step
    assert line.staff_id == cashier.id
    assert line.merchant_id == str(cashier.grants("merchant_staff")[0].merchant_id)
    if error is not VoucherNotFound:
        assert line.voucher_id == voucher.voucher.id
    message = line.getMessage()
    assert f"reason={error.code}" in message and f"staff_id={cashier.id}" in message
    for secret in (voucher.token, voucher.code, text, voucher.token[4:20]):
        assert secret not in message and secret not in str(line.__dict__)
    check_ledger()


def test_a_cashier_naming_another_merchant_is_logged_with_the_merchant_named(street, voucher, caplog):
    caplog.set_level(logging.INFO, logger="pointsapp")
    with pytest.raises(PointsError):
        vouchers.look_up_for_redemption(street.cashier, voucher.code, street.other_shop.id)
    db.session.rollback()
    [line] = refusals(caplog)
    assert line.reason == "forbidden" and line.merchant_id == street.other_shop.id


def test_a_right_voucher_logs_no_refusal(street, voucher, caplog):
    caplog.set_level(logging.INFO, logger="pointsapp")
    vouchers.confirm_redemption(street.cashier, voucher.code)
    db.session.commit()
    assert refusals(caplog) == []
