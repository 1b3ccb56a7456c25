"""check_ledger and ``flask points check-ledger`` notice books that were changed behind the ledger's back."""
from sqlalchemy import select, text

from pointsapp.domain import ledger, vouchers
from pointsapp.extensions import db
from pointsapp.models import Transfer
from tests.unit.helpers import award


def tamper(sql: str, **params) -> None:
    db.session.execute(text(sql), params)
    db.session.commit()


def test_sound_books_pass_the_check_and_the_command_exits_0(street, runner):
    award(street, street.vol_a, 50)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    assert ledger.check_ledger() == []
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 0, result.output
    assert "ledger check passed" in result.output


def test_a_tampered_balance_is_named_and_the_command_exits_1(street, runner):
    award(street, street.vol_a, 50)
    acc = ledger.account_for_volunteer(street.vol_a)
    tamper("UPDATE account SET balance = balance + 5, earned = earned WHERE id = :id", id=acc.id)
    problems = ledger.check_ledger()
    db.session.rollback()
    assert f"account {acc.id} (volunteer): balance 55 but entries sum to 50" in problems
    assert "balances of all accounts sum to 5, not 0" in problems
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 1
    assert f"PROBLEM: account {acc.id} (volunteer): balance 55 but entries sum to 50" in result.output
    assert "ledger check failed" in result.output


def test_a_hold_without_an_open_voucher_is_named(street, runner):
    award(street, street.vol_a, 50)
    acc = ledger.account_for_volunteer(street.vol_a)
    tamper("UPDATE account SET held = 10 WHERE id = :id", id=acc.id)
    assert f"account {acc.id}: held 10 but issued vouchers hold 0" in ledger.check_ledger()
    db.session.rollback()
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 1
    assert "held 10 but issued vouchers hold 0" in result.output


def test_an_open_voucher_whose_hold_vanished_is_named(street, runner):
    award(street, street.vol_a, 50)
    vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    acc = ledger.account_for_volunteer(street.vol_a)
    tamper("UPDATE account SET held = 0 WHERE id = :id", id=acc.id)
    assert f"account {acc.id}: held 0 but issued vouchers hold 10" in ledger.check_ledger()
    db.session.rollback()
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 1
    assert "held 0 but issued vouchers hold 10" in result.output


def test_an_earned_total_that_does_not_match_the_credits_is_named(street, runner):
    award(street, street.vol_a, 50)
    acc = ledger.account_for_volunteer(street.vol_a)
    tamper("UPDATE account SET earned = 57 WHERE id = :id", id=acc.id)
    assert ledger.check_ledger() == [f"account {acc.id}: earned 57 but credits less reversals are 50"]
    db.session.rollback()
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 1
    assert "earned 57 but credits less reversals are 50" in result.output


def test_an_activity_whose_credited_points_disagree_with_the_ledger_is_named(street):
    act = award(street, street.vol_a, 50)
    tamper("UPDATE activity SET points_credited = 60 WHERE id = :id", id=act.id)
    assert f"activity {act.id} (approved): credited 60 but transfers total 50" in ledger.check_ledger()
    db.session.rollback()


def test_a_credit_reversed_behind_the_activitys_back_is_named(street):
    act = award(street, street.vol_a, 50)
    credit = db.session.scalar(select(Transfer).where(Transfer.activity_id == act.id, Transfer.kind == "credit"))
    ledger.reverse(credit, reason="直接冲正", created_by_id=street.street_admin.id)  # the activity stays approved
    db.session.commit()
    assert f"activity {act.id} (approved): its credit is reversed" in ledger.check_ledger()
    db.session.rollback()


def test_an_activity_marked_reversed_whose_credit_stands_is_named(street):
    act = award(street, street.vol_a, 50)
    tamper("UPDATE activity SET status = 'reversed' WHERE id = :id", id=act.id)
    assert f"activity {act.id} (reversed): its credit is not reversed" in ledger.check_ledger()
    db.session.rollback()


def test_a_redeemed_voucher_without_its_capture_is_named(street):
    award(street, street.vol_a, 50)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    acc = ledger.account_for_volunteer(street.vol_a)
    # Mark it redeemed and drop the hold, but move no points: the merchant was never paid.
    tamper(
        "UPDATE voucher SET status = 'redeemed', redeemed_at = issued_at WHERE id = :id", id=v.voucher.id
    )
    tamper("UPDATE account SET held = 0 WHERE id = :id", id=acc.id)
    assert f"voucher {v.voucher.id} (redeemed): 0 captures" in ledger.check_ledger()
    db.session.rollback()


def test_held_or_earned_points_on_a_merchant_or_issuance_account_are_named(street):
    award(street, street.vol_a, 50)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    merchant = ledger.account_for_merchant(street.shop.id)
    issuance = ledger.issuance_account(street.street)
    tamper("UPDATE account SET held = 5 WHERE id = :id", id=merchant.id)
    tamper("UPDATE account SET earned = 3 WHERE id = :id", id=issuance.id)
    problems = ledger.check_ledger()
    db.session.rollback()
    assert f"account {merchant.id}: held 5 but issued vouchers hold 0" in problems
    assert f"account {issuance.id}: earned 3 but credits less reversals are 0" in problems


def test_a_credit_whose_activity_was_set_back_to_pending_is_named(street):
    act = award(street, street.vol_a, 20)
    tamper("UPDATE activity SET status = 'pending' WHERE id = :id", id=act.id)
    problems = ledger.check_ledger()
    db.session.rollback()
    assert f"activity {act.id} (pending): has a credit transfer but is not approved" in problems


def test_the_command_checks_one_snapshot_on_postgresql(street, runner, monkeypatch):
    """Every read of the check sees the same committed state, whatever commits meanwhile."""
    if db.engine.dialect.name != "postgresql":
        import pytest

        pytest.skip("a SQLite transaction is one snapshot already")
    seen = []
    monkeypatch.setattr(ledger, "check_ledger", lambda: seen.append(
        db.session.scalar(text("SHOW transaction_isolation"))) or [])
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 0, result.output
    assert seen == ["repeatable read"]
