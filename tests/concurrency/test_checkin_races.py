"""Check-in races: two taps (or two phones) signing in at once, two staff closing at once.

Each worker loads what it needs by id in its own session and commits; the tallies count results
and exceptions exactly, so a stray lock error or IntegrityError shows up as a failure.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from pointsapp.domain import checkin, rules
from pointsapp.domain.clock import now_utc
from pointsapp.extensions import db
from pointsapp.models import Activity, CheckinAttendance, Transfer, User
from tests.concurrency.test_races import race, tally
from tests.factories import balance, rule_terms


def _event(s, start):
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh="社区服务", name_en="Community service", category="helping", unit="hour", points=10,
        needs_approval=False, checkin_hours_cap=Decimal("2")))
    event = checkin.create_event(s.staff_a, title="楼道清洁", rule_id=rule.id, org_unit_id=s.grid_a.id, place="1号楼",
                                 starts_at=start, ends_at=start + timedelta(hours=3), now=start - timedelta(hours=1))
    db.session.commit()
    return event


def test_two_sign_ins_at_once_make_one_row(app, street):
    event = _event(street, now_utc() - timedelta(minutes=5))
    event_id, vol_id = event.id, street.vol_a.id

    def tap(i):
        done = checkin.sign_in(db.session.get(User, vol_id), event_id)
        db.session.commit()
        return done.changed

    results = race(app, 2, tap)
    assert tally(results) == {"ok": 2}, results
    assert sorted(results) == [False, True]
    assert db.session.scalar(select(func.count()).select_from(CheckinAttendance)) == 1


def test_two_closings_at_once_credit_each_attendee_once(app, street, check_ledger):
    event = _event(street, now_utc() - timedelta(hours=4))
    for v in (street.vol_a, street.vol_a2):
        checkin.sign_in(v, event.id, now=event.starts_at)
    db.session.commit()
    event_id, staff_ids = event.id, (street.staff_a.id, street.admin_a.id)

    def close(i):
        done = checkin.close_event(db.session.get(User, staff_ids[i]), event_id)
        db.session.commit()
        return done.changed

    results = race(app, 2, close)
    assert tally(results) == {"ok": 2}, results
    assert sorted(results) == [False, True]
    assert db.session.scalar(select(func.count()).select_from(Activity).where(Activity.source == "checkin")) == 2
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.activity_id.is_not(None))) == 2
    assert balance(street.vol_a).available == 20 and balance(street.vol_a2).available == 20
    check_ledger()


def test_sign_ins_racing_a_closing_are_either_counted_or_refused(app, street, check_ledger):
    event = _event(street, now_utc() - timedelta(hours=1))
    checkin.sign_in(street.vol_a, event.id, now=event.starts_at)
    db.session.commit()
    event_id, vol_id, staff_id = event.id, street.vol_a2.id, street.staff_a.id

    def act(i):
        if i == 0:
            checkin.close_event(db.session.get(User, staff_id), event_id)
        else:
            checkin.sign_in(db.session.get(User, vol_id), event_id, now=now_utc() - timedelta(minutes=40))
        db.session.commit()
        return i

    results = race(app, 2, act)
    assert set(tally(results)) <= {"ok", "EventClosed"}, results
    rows = db.session.scalar(select(func.count()).select_from(CheckinAttendance))
    acts = db.session.scalar(select(func.count()).select_from(Activity).where(Activity.source == "checkin"))
    assert acts == rows  # nobody signed in beside the closing without being counted
    check_ledger()
