"""Races for the last points of a budget, and for a unit's first funding record.

On PostgreSQL the credits run at once and the budget row's conditional UPDATE decides; on SQLite
the write lock (BEGIN IMMEDIATE) runs them one at a time, which must give the same outcome.
"""
from __future__ import annotations

from sqlalchemy import func, select

from pointsapp.domain import budgets, claims, rules
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Budget, BudgetCharge, BudgetFunding, OrgUnit, Transfer, User
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import person, rule_terms


def test_twenty_credits_racing_for_the_last_budget_points_use_exactly_the_budget(app, street, check_ledger):
    budgets.record_funding(street.street_admin, street.community_a, fen=10_000, source="partner",
                           funded_on=local_today(), note=None, key="race-fund")  # 100 points
    rule = rules.create_rule(street.street_admin, street.street, rule_terms(name_zh="奖励15", name_en="Award 15", points=15))
    volunteers = [person(f"racer{i}", street.grid_a) for i in range(20)]
    db.session.commit()
    ids, rule_id, staff_id = [v.id for v in volunteers], rule.id, street.street_admin.id

    def credit(i):
        claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=local_today(),
                                 volunteer_ids=[ids[i]], batch_key=f"race-{i}")
        db.session.commit()

    results = race(app, 20, credit)
    # 6 x 15 = 90 fit in 100; a seventh would need 105.
    assert tally(results) == {"ok": 6, "BudgetExhausted": 14}, unexpected(results, "BudgetExhausted")
    budget = db.session.scalar(select(Budget).where(Budget.org_unit_id == street.community_a.id))
    assert budgets.status(budget).used == 90
    assert db.session.scalar(select(func.sum(Transfer.amount)).where(Transfer.kind == "credit")) == 90
    check_ledger()


def test_credits_racing_for_a_budget_that_fits_them_exactly_use_all_of_it(app, street, check_ledger):
    budgets.record_funding(street.street_admin, street.street, fen=10_000, source="street_grant",
                           funded_on=local_today(), note=None, key="race-fund")  # 100 points
    rule = rules.create_rule(street.street_admin, street.street, rule_terms(name_zh="奖励10", name_en="Award 10", points=10))
    volunteers = [person(f"racer{i}", street.grid_b) for i in range(16)]
    db.session.commit()
    ids, rule_id, staff_id = [v.id for v in volunteers], rule.id, street.street_admin.id

    def credit(i):
        claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=local_today(),
                                 volunteer_ids=[ids[i]], batch_key=f"race-{i}")
        db.session.commit()

    results = race(app, 16, credit)
    assert tally(results) == {"ok": 10, "BudgetExhausted": 6}, unexpected(results, "BudgetExhausted")
    budget = db.session.scalar(select(Budget).where(Budget.org_unit_id == street.street.id))
    state = budgets.status(budget)
    assert (state.used, state.capacity, state.remaining) == (100, 100, 0)
    assert db.session.scalar(select(func.sum(BudgetCharge.points))) == 100
    check_ledger()


def test_first_funding_records_at_once_make_one_budget(app, street, check_ledger):
    admin_id, unit_id = street.street_admin.id, street.community_b.id

    def fund(i):
        budgets.record_funding(db.session.get(User, admin_id), db.session.get(OrgUnit, unit_id), fen=1000,
                               source="donation", funded_on=local_today(), note=None, key=f"first-{i}")
        db.session.commit()

    results = race(app, 10, fund)
    assert tally(results) == {"ok": 10}, unexpected(results)
    assert db.session.scalar(select(func.count()).select_from(Budget)) == 1
    assert db.session.scalar(select(Budget.funded_fen)) == 10_000
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 10
    check_ledger()
