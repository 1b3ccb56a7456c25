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
from pointsapp.models import Activity, AuditRecord, CheckinAttendance, CheckinEvent, Transfer, User
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


def test_an_edit_racing_a_closing_either_comes_first_or_is_refused(app, street, check_ledger):
    for _round in range(3):
        event = _event(street, now_utc() - timedelta(hours=1))  # ends in two hours: still editable
        checkin.sign_in(street.vol_a, event.id, now=event.starts_at)
        db.session.commit()
        event_id, staff_id, admin_id = event.id, street.staff_a.id, street.admin_a.id
        start, new_end = event.starts_at, event.starts_at + timedelta(minutes=70)  # shortened, still to come

        def act(i):
            if i == 0:
                checkin.close_event(db.session.get(User, staff_id), event_id)
            else:
                checkin.update_event(db.session.get(User, admin_id), event_id, title="楼道大扫除", place="2号楼",
                                     starts_at=start, ends_at=new_end)
            db.session.commit()
            return i

        results = race(app, 2, act)
        assert set(tally(results)) <= {"ok", "EventNotEditable"}, results
        assert not isinstance(results[0], BaseException), results  # the closing always goes through
        event = db.session.get(CheckinEvent, event_id)
        act = db.session.scalar(select(Activity).where(Activity.batch_key == f"checkin:{event_id}"))
        edits = db.session.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.action == "checkin.event_updated", AuditRecord.target_id == event_id))
        assert event.status == "closed" and act is not None
        # Signed in at the start and never out: counted to the end the closing saw.
        if isinstance(results[1], BaseException):  # the edit came second: nothing of it is there
            assert (event.title, event.ends_at, edits) == ("楼道清洁", start + timedelta(hours=3), 0)
            assert act.hours == Decimal("2")  # three hours, capped at two
        else:  # the edit came first: the closing counted its window
            assert (event.title, event.place, event.ends_at, edits) == ("楼道大扫除", "2号楼", new_end, 1)
            assert act.hours == Decimal("1")  # 70 minutes, rounded down to the half hour
        assert act.note.startswith(event.title)  # credited under the title the event was closed with
        assert act.status == "approved" and act.points_credited == 10 * act.hours
    check_ledger()


def test_an_approval_and_an_event_closing_at_once_do_not_deadlock(app, street, monkeypatch):
    """Closing an event writes the yearly totals of an hours-only attendee without their account
    lock, after the street's issuance account. An approval for that attendee at the same moment
    must take the issuance account before their yearly totals too, or each waits for the other
    (PostgreSQL then aborts one). The approval is held just before its credit while the event
    closes."""
    import threading
    import time

    import pytest

    from pointsapp.domain import claims, ledger
    from pointsapp.domain.clock import local_today
    from tests.unit.test_checkin import _signed, hour_rule, make_event

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    event = make_event(street, hour_rule(street, backfill_earns_points=False), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 60)  # earns points: the close locks the issuance account
    checkin.add_attendee(street.staff_a, event.id, street.vol_a2.id, hours="2")  # hours only: no account lock
    act = claims.submit_claim(street.vol_a2, rule_id=street.meeting.id, activity_date=local_today(), note="会议")
    db.session.commit()
    act_id, event_id, staff_id = act.id, event.id, street.staff_a.id
    approving = threading.Event()
    credit = ledger.credit_from_street

    def held_credit(*args, **kwargs):
        approving.set()
        time.sleep(1.5)  # the event closes meanwhile
        return credit(*args, **kwargs)

    monkeypatch.setattr(ledger, "credit_from_street", held_credit)

    def run(i):
        if i == 0:
            claims.approve_claim(db.session.get(User, staff_id), act_id)
        else:
            assert approving.wait(30)
            time.sleep(0.2)
            checkin.close_event(db.session.get(User, staff_id), event_id)
        db.session.commit()
        return "ok"

    results = race(app, 2, run)
    assert results == ["ok", "ok"], results
    assert db.session.get(Activity, act_id).status == "approved"
    assert db.session.get(CheckinEvent, event_id).closed_at is not None
