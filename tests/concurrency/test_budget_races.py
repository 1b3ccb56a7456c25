"""Races for the last points of a budget, and for a unit's first funding record.

On PostgreSQL the credits run at once and the budget row's conditional UPDATE decides; on SQLite
the write lock (BEGIN IMMEDIATE) runs them one at a time, which must give the same outcome.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from pointsapp.domain import budgets, claims, rules
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Budget, BudgetCharge, BudgetFunding, OrgUnit, Transfer, User
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import person, rule_terms


@pytest.mark.parametrize(
    "funded_unit, grid, points, racers, expected",
    [
        # 6 x 15 = 90 fit in a community's 100; a seventh would need 105.
        ("community_a", "grid_a", 15, 20, {"ok": 6, "BudgetExhausted": 14}),
        # 10 x 10 fit the street's 100 exactly: all of it is used, nothing more.
        ("street", "grid_b", 10, 16, {"ok": 10, "BudgetExhausted": 6}),
    ],
    ids=["last points of a community budget", "a street budget used exactly"],
)
def test_credits_racing_for_a_budget_use_exactly_what_fits(app, street, check_ledger, funded_unit, grid, points,
                                                           racers, expected):
    unit = getattr(street, funded_unit)
    budgets.record_funding(street.street_admin, unit, fen=10_000, source="partner",
                           funded_on=local_today(), note=None, key="race-fund")  # 100 points
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh=f"奖励{points}", name_en=f"Award {points}", points=points))
    volunteers = [person(f"racer{i}", getattr(street, grid)) for i in range(racers)]
    db.session.commit()
    ids, rule_id, staff_id = [v.id for v in volunteers], rule.id, street.street_admin.id

    def credit(i):
        claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=local_today(),
                                 volunteer_ids=[ids[i]], batch_key=f"race-{i}")
        db.session.commit()

    results = race(app, racers, credit)
    assert tally(results) == expected, unexpected(results, "BudgetExhausted")
    used = expected["ok"] * points
    budget = db.session.scalar(select(Budget).where(Budget.org_unit_id == unit.id))
    state = budgets.status(budget)
    assert (state.used, state.capacity, state.remaining) == (used, 100, 100 - used)
    assert db.session.scalar(select(func.sum(Transfer.amount)).where(Transfer.kind == "credit")) == used
    assert db.session.scalar(select(func.sum(BudgetCharge.points))) == used
    check_ledger()


def test_approvals_racing_for_a_budget_use_exactly_what_fits(app, street, check_ledger):
    """Claims approved at once, each credited on its own (on PostgreSQL the budget is found,
    drawn on and charged in one statement): 6 credits of 15 fit in the community's 100."""
    budgets.record_funding(street.street_admin, street.community_a, fen=10_000, source="partner",
                           funded_on=local_today(), note=None, key="race-fund")  # 100 points
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="巡逻15", name_en="Patrol 15", points=15))
    acts = [
        claims.submit_claim(person(f"racer{i}", street.grid_a), rule_id=rule.id, activity_date=local_today(), note="巡逻")
        for i in range(12)
    ]
    db.session.commit()
    ids, staff_id = [a.id for a in acts], street.street_admin.id

    def approve(i):
        claims.approve_claim(db.session.get(User, staff_id), ids[i])
        db.session.commit()

    results = race(app, len(ids), approve)
    assert tally(results) == {"ok": 6, "BudgetExhausted": 6}, unexpected(results, "BudgetExhausted")
    budget = db.session.scalar(select(Budget).where(Budget.org_unit_id == street.community_a.id))
    assert (budgets.status(budget).used, budgets.status(budget).remaining) == (90, 10)
    assert db.session.scalar(select(func.sum(Transfer.amount)).where(Transfer.kind == "credit")) == 90
    assert db.session.scalar(select(func.count()).select_from(BudgetCharge)) == 6
    assert db.session.scalar(select(func.sum(BudgetCharge.points))) == 90
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
