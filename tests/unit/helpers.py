"""Small builders and snapshots shared by the domain unit tests and the race tests."""
from __future__ import annotations

import secrets
from datetime import date, timedelta

from sqlalchemy import func, select

from pointsapp.domain import budgets, claims, rules
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Account, AccountMonth, Activity, Budget, Entry, Reward, Transfer, VolunteerYear, Voucher
from tests.factories import rule_terms


def award(s, volunteer, points: int, *, day: date | None = None) -> Activity:
    """Credit ``points`` to a volunteer through a one-off recorded activity; commit; return it."""
    rule = rules.create_rule(
        s.street_admin, s.street, rule_terms(name_zh=f"奖励{points}", name_en=f"Award {points}", points=points)
    )
    [act] = claims.record_attendance(
        s.street_admin,
        rule_id=rule.id,
        activity_date=day or local_today(),
        volunteer_ids=[volunteer.id],
        batch_key=secrets.token_hex(8),
    )
    db.session.commit()
    return act


def award_many(s, volunteers, points: int) -> list[Activity]:
    """Credit ``points`` to each of ``volunteers`` in one recorded batch; commit."""
    rule = rules.create_rule(
        s.street_admin, s.street, rule_terms(name_zh=f"批量{points}", name_en=f"Batch {points}", points=points)
    )
    acts = claims.record_attendance(
        s.street_admin,
        rule_id=rule.id,
        activity_date=local_today(),
        volunteer_ids=[v.id for v in volunteers],
        batch_key=secrets.token_hex(8),
    )
    db.session.commit()
    return acts


def credit_of(activity: Activity) -> Transfer:
    """Return the credit transfer of an activity."""
    return db.session.scalar(select(Transfer).where(Transfer.activity_id == activity.id, Transfer.kind == "credit"))


def ledger_state() -> dict:
    """Return everything a refused operation must leave untouched, read fresh from the database."""
    db.session.expire_all()

    def rows(stmt):
        return [tuple(r) for r in db.session.execute(stmt)]

    return {
        "accounts": rows(select(Account.id, Account.balance, Account.held, Account.earned).order_by(Account.id)),
        "stock": rows(select(Reward.id, Reward.stock).order_by(Reward.id)),
        "vouchers": rows(select(Voucher.id, Voucher.status, Voucher.redeemed_at).order_by(Voucher.id)),
        "activities": rows(
            select(Activity.id, Activity.status, Activity.points_credited).order_by(Activity.id)
        ),
        "transfers": db.session.scalar(select(func.count()).select_from(Transfer)),
        "entries": db.session.scalar(select(func.count()).select_from(Entry)),
        "month_totals": rows(select(AccountMonth).order_by(AccountMonth.month, AccountMonth.account_id, AccountMonth.kind)
                             .with_only_columns(*AccountMonth.__table__.c)),
        "year_totals": rows(select(*VolunteerYear.__table__.c).order_by(VolunteerYear.volunteer_id, VolunteerYear.year)),
    }


def fund(s, unit, yuan, *, actor=None, note=None, source="street_grant", day=None):
    """Record ``yuan`` for ``unit``'s points (as the street admin unless ``actor``); commit."""
    record = budgets.record_funding(
        actor or s.street_admin, unit, fen=int(yuan * 100), source=source, funded_on=day or local_today(),
        note=note, key=secrets.token_hex(8),
    )
    db.session.commit()
    return record


def state_of(unit) -> budgets.BudgetStatus:
    db.session.expire_all()
    return budgets.status(db.session.scalar(select(Budget).where(Budget.org_unit_id == unit.id)))


def two_rates(s) -> tuple[date, date]:
    """Set the street's point at ¥0.70 from two months back and ¥0.40 from this month (each set
    the day before it starts); commit; return those two first days."""
    from pointsapp.domain import settlement

    this_month = local_today().replace(day=1)
    two_back = settlement.add_months(this_month, -2)
    for start, fen in ((two_back, 70), (this_month, 40)):
        settlement.set_rate(s.street_admin, s.street, start, fen, now=settlement.utc_start_of(start) - timedelta(days=1))
        db.session.commit()
    return two_back, this_month
