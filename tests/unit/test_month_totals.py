"""The volunteers' monthly totals (``AccountMonth``): kept with every leg, by the street's month,
checked by ``check_ledger``, rebuilt from the transfers, and what the reports read."""
from datetime import date, datetime, timezone

from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from pointsapp.domain import claims, deductions, ledger, reports, rules, vouchers
from pointsapp.extensions import db
from pointsapp.models import AccountMonth, User
from tests.factories import rule_terms
from tests.unit.helpers import award, credit_of


def totals() -> dict:
    """{(month, account id, kind): (amount, transfers)}, read fresh."""
    db.session.expire_all()
    return {
        (r.month, r.account_id, r.kind): (r.amount, r.transfers) for r in db.session.scalars(select(AccountMonth))
    }


def earn_and_spend(s, other) -> None:
    """vol_a earns 40 and spends 10 at the shop; ``other`` earns 25; committed."""
    award(s, s.vol_a, 40)
    award(s, other, 25)
    voucher = vouchers.issue_voucher(s.vol_a, s.rice.id)
    vouchers.confirm_redemption(s.cashier, voucher.code)
    db.session.commit()


def test_each_leg_on_a_volunteer_is_added_to_its_month_and_kind_and_no_other_account_is(street):
    s = street
    month = ledger.month_of(datetime.now(timezone.utc))
    award(s, s.vol_a, 40)
    wrong = award(s, s.vol_a, 12)
    claims.reverse_transfer(s.street_admin, credit_of(wrong).id, "重复登记")
    award(s, s.vol_b, 25)
    voucher = vouchers.issue_voucher(s.vol_a, s.rice.id)
    vouchers.confirm_redemption(s.cashier, voucher.code)
    db.session.commit()
    a, b = ledger.account_for_volunteer(s.vol_a).id, ledger.account_for_volunteer(s.vol_b).id
    assert totals() == {
        (month, a, "credit"): (52, 2),
        (month, a, "reversal"): (-12, 1),
        (month, a, "capture"): (-10, 1),
        (month, b, "credit"): (25, 1),
    }
    assert ledger.check_ledger() == []


def test_a_credit_just_after_midnight_in_the_street_counts_in_the_streets_new_month(street):
    """16:30 UTC on 31 March is 00:30 on 1 April in Shanghai: April's total, April's report."""
    s = street
    a = ledger.account_for_volunteer(s.vol_a).id
    issuance = ledger.issuance_account(s.street).id
    ledger.credit_many(issuance, [ledger.Credit(a, 7, "三月底", "test:march")],
                       created_at=datetime(2026, 3, 31, 15, 59, tzinfo=timezone.utc))
    ledger.credit_many(issuance, [ledger.Credit(a, 5, "四月初", "test:april")],
                       created_at=datetime(2026, 3, 31, 16, 30, tzinfo=timezone.utc))
    db.session.commit()
    assert totals() == {(date(2026, 3, 1), a, "credit"): (7, 1), (date(2026, 4, 1), a, "credit"): (5, 1)}
    assert ledger.check_ledger() == []
    r = reports.make_range(s.street_admin, s.street, date(2026, 3, 1), date(2026, 4, 1))
    assert reports.points_by_month(r).rows == [["2026-03", 7, 0, 0], ["2026-04", 5, 0, 0]]


def test_totals_changed_lost_or_invented_behind_the_ledgers_back_are_named(street):
    s = street
    award(s, s.vol_a, 40)
    award(s, s.vol_b, 25)
    a, b = ledger.account_for_volunteer(s.vol_a).id, ledger.account_for_volunteer(s.vol_b).id
    month = ledger.month_of(datetime.now(timezone.utc))
    db.session.execute(text("UPDATE account_month SET amount = 41 WHERE account_id = :a"), {"a": a})
    db.session.execute(text("DELETE FROM account_month WHERE account_id = :b"), {"b": b})
    db.session.execute(
        text("INSERT INTO account_month (month, account_id, kind, amount, transfers) VALUES (:m, :a, 'capture', -3, 1)"),
        {"m": date(2025, 1, 1), "a": a},
    )
    db.session.commit()
    problems = ledger.check_ledger()
    assert f"account {a}: credit in {month:%Y-%m} totals (41, 1) but its legs are (40, 1)" in problems
    assert f"account {b}: credit in {month:%Y-%m} totals None but its legs are (25, 1)" in problems
    assert f"account {a}: capture in 2025-01 totals (-3, 1) but its legs are None" in problems
    assert len(problems) == 3


def test_rebuilding_from_the_transfers_gives_back_exactly_what_the_ledger_kept(street):
    s = street
    earn_and_spend(s, s.vol_a2)
    kept = totals()
    assert len(kept) == 3
    db.session.execute(text("UPDATE account_month SET amount = 0"))
    assert ledger.rebuild_month_totals() == 3
    db.session.commit()
    assert totals() == kept


def test_the_migration_fills_the_totals_from_the_transfers_already_made(street):
    """Including the last microsecond of a month and the first of the next, in the street's zone."""
    s = street
    earn_and_spend(s, s.vol_b)
    a = ledger.account_for_volunteer(s.vol_a).id
    issuance = ledger.issuance_account(s.street).id
    ledger.credit_many(issuance, [ledger.Credit(a, 3, "月末", "test:last")],
                       created_at=datetime(2026, 4, 30, 15, 59, 59, 999999, tzinfo=timezone.utc))
    ledger.credit_many(issuance, [ledger.Credit(a, 4, "月初", "test:first")],
                       created_at=datetime(2026, 4, 30, 16, 0, tzinfo=timezone.utc))
    db.session.commit()
    kept = totals()
    assert kept[(date(2026, 4, 1), a, "credit")] == (3, 1) and kept[(date(2026, 5, 1), a, "credit")] == (4, 1)
    db.session.remove()
    downgrade(revision="e9f0a1b2c3d4")
    upgrade()
    assert totals() == kept
    assert ledger.check_ledger() == []


def test_the_reports_count_a_volunteers_months_where_they_belong_now(street):
    """Moving a volunteer moves their points in the per-community report, as before the totals."""
    s = street
    award(s, s.vol_a, 40)
    r = reports.make_range(s.street_admin, s.street, reports.add_months(ledger.month_of(datetime.now(timezone.utc)), -1),
                           ledger.month_of(datetime.now(timezone.utc)))
    assert reports.points_by_community(r).rows == [["青山社区", 40, 0]]
    db.session.get(User, s.vol_a.id).org_unit_id = s.building_b.id
    db.session.commit()
    assert reports.points_by_community(r).rows == [["友谊社区", 40, 0]]


def test_deductions_and_expiries_are_counted_as_the_volunteers_legs(street):
    s = street
    award(s, s.vol_a, 40)
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh="扣分", name_en="Deduction", category="other", kind="deduct", points=5))
    deductions.apply_deduction(s.street_admin, volunteer_id=s.vol_a.id, rule_id=rule.id, reason="未履职",
                               submission_key="deduct-1")
    db.session.commit()
    a = ledger.account_for_volunteer(s.vol_a).id
    month = ledger.month_of(datetime.now(timezone.utc))
    assert totals()[(month, a, "deduction")] == (-5, 1)
    assert ledger.check_ledger() == []


def test_the_command_rebuilds_totals_changed_behind_the_ledgers_back(street, runner):
    s = street
    award(s, s.vol_a, 40)
    kept = totals()
    db.session.execute(text("UPDATE account_month SET amount = 1"))
    db.session.execute(text("INSERT INTO account_month (month, account_id, kind, amount, transfers) "
                            "VALUES (:m, :a, 'capture', -3, 1)"),
                       {"m": date(2025, 1, 1), "a": ledger.account_for_volunteer(s.vol_a).id})
    db.session.commit()
    assert ledger.check_ledger() != []
    db.session.rollback()
    result = runner.invoke(args=["points", "rebuild-month-totals"])
    assert result.exit_code == 0, result.output
    assert "monthly totals rebuilt: 1 row(s)" in result.output
    assert totals() == kept
    assert runner.invoke(args=["points", "check-ledger"]).exit_code == 0
