"""The volunteers' yearly totals (``VolunteerYear``): each approved activity's points, hours (in
hundredths) and itself added to its volunteer's row for the year of its date, in the transaction
that approves it (a claim, public notice, a recorded meeting, a check-in event's close), taken
away by its reversal; checked by ``check_ledger``, rebuilt from the activities, filled by the
migration, and left as they were by every refused operation."""
from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text

from pointsapp.domain import activity_totals, budgets, checkin, claims, ledger, notice, people, rules, vouchers
from pointsapp.domain.activity_totals import YearTotals
from pointsapp.domain.clock import local_today, now_utc, to_local
from pointsapp.domain.errors import (
    AlreadyDecided,
    AlreadyRecorded,
    BudgetExhausted,
    CannotReverse,
    InvalidInput,
    VolunteerInactive,
)
from pointsapp.extensions import db
from pointsapp.models import Activity, VolunteerYear
from tests.factories import person, rule_terms, yesterday
from tests.unit.helpers import award, award_many, credit_of, ledger_state
from tests.unit.test_approval_notice import brave_rule, notice_on
from tests.unit.test_checkin import hour_rule, make_event


def years() -> dict:
    """{(volunteer id, year): (points, hundredths of hours, activities)}, read fresh."""
    db.session.expire_all()
    return {
        (r.volunteer_id, r.year): (r.points, r.centi_hours, r.activities)
        for r in db.session.scalars(select(VolunteerYear))
    }


def summed(*items) -> dict:
    """The rows expected for ``(volunteer, day, points, hundredths of hours)`` activities, one each
    (summed by the year of ``day``: a test run on 1 or 2 January puts yesterday in last year)."""
    out: dict = {}
    for volunteer, day, points, centi in items:
        p, h, n = out.get((volunteer.id, day.year), (0, 0, 0))
        out[(volunteer.id, day.year)] = (p + points, h + centi, n + 1)
    return out


def claim(volunteer, rule, day=None, **kw) -> Activity:
    act = claims.submit_claim(volunteer, rule_id=rule.id, activity_date=day or yesterday(), **kw)
    db.session.commit()
    return act


def approve(staff, act) -> Activity:
    claims.approve_claim(staff, act.id)
    db.session.commit()
    return db.session.get(Activity, act.id)


def record(actor, rule, volunteers, day=None, hours=None, now=None) -> list[Activity]:
    acts = claims.record_attendance(
        actor, rule_id=rule.id, activity_date=day or yesterday(), volunteer_ids=[v.id for v in volunteers],
        hours=hours, batch_key=secrets.token_hex(8), now=now,
    )
    db.session.commit()
    return acts


def make_rule(s, **terms):
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(**terms))
    db.session.commit()
    return rule


def two_days_ago() -> date:
    return yesterday() - timedelta(days=1)


# --- what each path adds ------------------------------------------------------------------------


def test_an_approved_claim_adds_its_points_hours_and_itself_to_its_volunteers_year(street, check_ledger):
    s = street
    meeting = claim(s.vol_a, s.meeting)
    patrol = claim(s.vol_a, s.patrol, day=two_days_ago(), hours="3")  # 2 points an hour
    assert years() == {}  # pending: nothing yet
    assert approve(s.staff_a, meeting).points_credited == 10
    assert years() == summed((s.vol_a, yesterday(), 10, 0))
    assert approve(s.admin_a, patrol).points_credited == 6
    assert years() == summed((s.vol_a, yesterday(), 10, 0), (s.vol_a, two_days_ago(), 6, 300))
    # A rule that needs no approval: approved, and counted, as it is submitted.
    report = make_rule(s, name_zh="反映情况", name_en="Report", category="reporting", points=3, needs_approval=False)
    assert claim(s.vol_a2, report).status == "approved"
    assert years() == summed(
        (s.vol_a, yesterday(), 10, 0), (s.vol_a, two_days_ago(), 6, 300), (s.vol_a2, yesterday(), 3, 0))
    check_ledger()


def test_a_claim_needing_two_approvals_counts_only_after_the_second(street, check_ledger):
    s = street
    act = claim(s.vol_a, brave_rule(s, 2))
    claims.approve_claim(s.staff_a, act.id)
    db.session.commit()
    assert db.session.get(Activity, act.id).status == "pending"
    assert years() == {}
    claims.approve_claim(s.admin_a, act.id)
    db.session.commit()
    assert db.session.get(Activity, act.id).status == "approved"
    assert years() == {(s.vol_a.id, yesterday().year): (50, 0, 1)}
    assert activity_totals.totals_of(s.vol_a.id, yesterday().year) == YearTotals(0, 50, 0)
    check_ledger()


def test_an_activity_on_notice_counts_once_published_and_never_when_withheld(street, check_ledger):
    s = street
    notice_on(s, 7)
    published = approve(s.staff_a, claim(s.vol_a, s.meeting))
    withheld = approve(s.staff_a, claim(s.vol_a2, s.meeting))
    dismissed = approve(s.staff_a, claim(s.vol_a, s.meeting, day=two_days_ago()))
    assert {published.status, withheld.status, dismissed.status} == {"on_notice"}
    assert years() == {}
    until = published.notice_until
    assert notice.publish_one(published.id, until - timedelta(seconds=1)) is False  # still on notice
    db.session.commit()
    assert years() == {}

    upheld = notice.file_objection(withheld.id, "那天会议他没来")
    objection = notice.file_objection(dismissed.id, "不确定")
    db.session.commit()
    notice.resolve_objection(s.admin_a, upheld.id, uphold=True, note="核实：未参加会议")
    db.session.commit()
    assert db.session.get(Activity, withheld.id).status == "withheld"
    assert years() == {}

    later = max(a.notice_until for a in (published, withheld, dismissed)) + timedelta(minutes=1)
    assert notice.publish_one(published.id, later) is True
    db.session.commit()
    assert notice.publish_one(withheld.id, later) is False
    db.session.commit()
    assert years() == summed((s.vol_a, yesterday(), 10, 0))
    # Dismissing the last objection after the window credits it at once: counted then.
    notice.resolve_objection(s.admin_a, objection.id, uphold=False, note="已核实", now=later)
    db.session.commit()
    assert db.session.get(Activity, dismissed.id).status == "approved"
    assert years() == summed((s.vol_a, yesterday(), 10, 0), (s.vol_a, two_days_ago(), 10, 0))
    check_ledger()


def test_recorded_attendance_on_notice_counts_each_attendee_once_published(street, check_ledger):
    s = street
    notice_on(s, 3)
    acts = record(s.admin_a, s.meeting, [s.vol_a, s.vol_a2])
    assert {a.status for a in acts} == {"on_notice"} and years() == {}
    later = acts[0].notice_until + timedelta(minutes=1)
    assert sorted(notice.due_notice_ids(later)) == sorted(a.id for a in acts)
    for a in acts:
        assert notice.publish_one(a.id, later) is True
        db.session.commit()
    assert years() == summed((s.vol_a, yesterday(), 10, 0), (s.vol_a2, yesterday(), 10, 0))
    check_ledger()


def test_a_recorded_meeting_adds_one_activity_to_each_attendees_year(street, check_ledger):
    s = street
    extra = person("att0", s.unit_a, title="resident")
    db.session.commit()
    record(s.street_admin, s.meeting, [s.vol_a, s.vol_a2, extra, s.vol_b])
    record(s.staff_a, s.meeting, [s.vol_a, extra], day=two_days_ago())
    assert years() == summed(
        (s.vol_a, yesterday(), 10, 0), (s.vol_a2, yesterday(), 10, 0), (extra, yesterday(), 10, 0),
        (s.vol_b, yesterday(), 10, 0), (s.vol_a, two_days_ago(), 10, 0), (extra, two_days_ago(), 10, 0),
    )
    check_ledger()


def test_an_hourly_activity_adds_its_hours_in_hundredths(street, check_ledger):
    s = street
    [recorded] = record(s.staff_a, s.patrol, [s.vol_a], hours="2.5")
    assert (recorded.points_credited, recorded.hours) == (5, Decimal("2.5"))
    claimed = approve(s.staff_a, claim(s.vol_a, s.patrol, day=two_days_ago(), hours="1.5"))
    assert claimed.points_credited == 3
    assert years() == summed((s.vol_a, yesterday(), 5, 250), (s.vol_a, two_days_ago(), 3, 150))
    check_ledger()


def test_an_activity_capped_to_zero_points_still_counts_its_hours_and_itself(street, check_ledger):
    s = street  # patrol: 2 points an hour, 8 a day
    record(s.staff_a, s.patrol, [s.vol_a], hours="4")  # 8: the day's cap
    record(s.staff_a, s.patrol, [s.vol_a2], hours="2")  # 4
    capped = {a.volunteer_id: a.points_credited for a in record(s.staff_a, s.patrol, [s.vol_a, s.vol_a2], hours="1")}
    assert capped == {s.vol_a.id: 0, s.vol_a2.id: 2}
    assert approve(s.staff_a, claim(s.vol_a, s.patrol, hours="3")).points_credited == 0
    assert years() == {
        (s.vol_a.id, yesterday().year): (8, 800, 3),
        (s.vol_a2.id, yesterday().year): (6, 300, 2),
    }
    check_ledger()


def test_closing_a_check_in_event_counts_credited_and_hours_only_attendance(app, street, check_ledger):
    s = street
    event = make_event(s, hour_rule(s, backfill_earns_points=False), start=now_utc() - timedelta(hours=4))
    checkin.sign_in(s.vol_a, event.id, now=event.starts_at)
    checkin.sign_out(s.vol_a, event.id, now=event.starts_at + timedelta(minutes=60))
    checkin.add_attendee(s.staff_a, event.id, s.vol_a2.id, hours="2")  # back-filled: hours only
    db.session.commit()
    assert years() == {}
    acts = {a.volunteer_id: a for a in checkin.close_event(s.staff_a, event.id).activities}
    db.session.commit()
    assert (acts[s.vol_a2.id].status, acts[s.vol_a2.id].points_credited) == ("approved", 0)
    year = to_local(event.starts_at).year
    expected = {(s.vol_a.id, year): (10, 100, 1), (s.vol_a2.id, year): (0, 200, 1)}
    assert years() == expected
    assert not checkin.close_event(s.staff_a, event.id).changed  # closing again adds nothing
    db.session.commit()
    assert years() == expected
    assert activity_totals.totals_of(s.vol_a2.id, year) == YearTotals(200, 0, 200)
    check_ledger()


def test_a_check_in_that_needs_approval_counts_once_approved(app, street, check_ledger):
    s = street
    event = make_event(s, hour_rule(s, needs_approval=True), start=now_utc() - timedelta(hours=4))
    checkin.sign_in(s.vol_a, event.id, now=event.starts_at)
    checkin.sign_out(s.vol_a, event.id, now=event.starts_at + timedelta(minutes=95))  # 1.5 h
    db.session.commit()
    [act] = checkin.close_event(s.staff_a, event.id).activities
    db.session.commit()
    assert act.status == "pending" and years() == {}
    claims.approve_claim(s.admin_a, act.id)
    db.session.commit()
    assert years() == {(s.vol_a.id, to_local(event.starts_at).year): (15, 150, 1)}
    check_ledger()


def test_pending_and_rejected_claims_never_count(street, check_ledger):
    s = street
    claim(s.vol_a, s.meeting)  # left pending
    rejected = claim(s.vol_a2, s.patrol, hours="2")
    claims.reject_claim(s.staff_a, rejected.id, "没有签到记录")
    brave = claim(s.vol_a, brave_rule(s, 2), day=two_days_ago())
    claims.approve_claim(s.staff_a, brave.id)  # one vote of two ...
    claims.reject_claim(s.admin_a, brave.id, "现场无人证实")  # ... then rejected
    db.session.commit()
    statuses = sorted(db.session.scalars(select(Activity.status)))
    assert statuses == ["pending", "rejected", "rejected"]
    assert years() == {}
    assert ledger_state()["year_totals"] == []
    check_ledger()


def test_an_activity_on_the_last_day_of_last_year_counts_in_last_years_row(street, check_ledger):
    s = street
    year = local_today().year
    per_hour = make_rule(s, name_zh="夜巡", name_en="Night patrol", category="patrol", unit="hour", points=3)
    [late] = record(s.street_admin, per_hour, [s.vol_a], day=date(year - 1, 12, 31), hours="1.5",
                    now=datetime(year, 1, 2, 4, tzinfo=timezone.utc))
    assert late.points_credited == 5  # 4.5 rounded half up
    record(s.street_admin, s.meeting, [s.vol_a], day=local_today())
    assert years() == {(s.vol_a.id, year - 1): (5, 150, 1), (s.vol_a.id, year): (10, 0, 1)}
    assert activity_totals.totals_of(s.vol_a.id, year) == YearTotals(150, 10, 0)
    assert activity_totals.totals_of(s.vol_a.id, year - 1) == YearTotals(150, 5, 150)
    check_ledger()


# --- reversal -----------------------------------------------------------------------------------


def test_a_reversal_takes_its_activity_out_and_a_year_reversed_whole_keeps_a_row_of_zeros(street, check_ledger):
    s = street
    year = local_today().year
    award(s, s.vol_a, 40)
    wrong = award(s, s.vol_a, 12)
    [hourly] = record(s.staff_a, s.patrol, [s.vol_a], day=local_today(), hours="1.5")  # 3 points, 150
    per_hour = make_rule(s, name_zh="夜巡", name_en="Night patrol", category="patrol", unit="hour", points=3)
    [last_year] = record(s.street_admin, per_hour, [s.vol_a2], day=date(year - 1, 12, 31), hours="2",
                         now=datetime(year, 1, 2, 4, tzinfo=timezone.utc))
    assert years() == {(s.vol_a.id, year): (55, 150, 3), (s.vol_a2.id, year - 1): (6, 200, 1)}

    claims.reverse_transfer(s.street_admin, credit_of(wrong).id, "重复登记")
    db.session.commit()
    assert years() == {(s.vol_a.id, year): (43, 150, 2), (s.vol_a2.id, year - 1): (6, 200, 1)}
    claims.reverse_transfer(s.street_admin, credit_of(hourly).id, "没有巡逻")
    claims.reverse_transfer(s.street_admin, credit_of(last_year).id, "登记错了")
    db.session.commit()
    assert years() == {(s.vol_a.id, year): (40, 0, 1), (s.vol_a2.id, year - 1): (0, 0, 0)}
    assert db.session.get(Activity, last_year.id).status == "reversed"
    db.session.rollback()
    assert activity_totals.check_year_totals() == []  # the row of zeros is no difference
    check_ledger()


# --- check_ledger -------------------------------------------------------------------------------


def test_rows_changed_lost_or_invented_behind_the_ledgers_back_are_named(street):
    s = street
    year = local_today().year
    award(s, s.vol_a, 40)
    award(s, s.vol_b, 25)
    a, b, a2 = s.vol_a.id, s.vol_b.id, s.vol_a2.id
    db.session.execute(text("UPDATE volunteer_year SET points = 41 WHERE volunteer_id = :a"), {"a": a})
    db.session.execute(text("DELETE FROM volunteer_year WHERE volunteer_id = :b"), {"b": b})
    db.session.execute(
        text("INSERT INTO volunteer_year (volunteer_id, year, points, centi_hours, activities) "
             "VALUES (:a, 2001, 3, 150, 1)"), {"a": a})
    db.session.execute(  # a row of zeros (a year reversed whole): not a difference
        text("INSERT INTO volunteer_year (volunteer_id, year, points, centi_hours, activities) "
             "VALUES (:a2, 2002, 0, 0, 0)"), {"a2": a2})
    db.session.commit()
    problems = activity_totals.check_year_totals()
    assert problems == [
        f"volunteer {a}: 2001 totals (points, hundredths of hours, activities) (3, 150, 1) "
        "but the approved activities give None",
        f"volunteer {a}: {year} totals (points, hundredths of hours, activities) (41, 0, 1) "
        "but the approved activities give (40, 0, 1)",
        f"volunteer {b}: {year} totals (points, hundredths of hours, activities) None "
        "but the approved activities give (25, 0, 1)",
    ]
    assert ledger.check_ledger() == problems


def test_hours_and_counts_changed_behind_the_ledgers_back_are_named_too(street):
    s = street
    year = yesterday().year
    record(s.staff_a, s.patrol, [s.vol_a], hours="2")
    db.session.execute(text("UPDATE volunteer_year SET centi_hours = 201, activities = 2"))
    db.session.commit()
    assert ledger.check_ledger() == [
        f"volunteer {s.vol_a.id}: {year} totals (points, hundredths of hours, activities) (4, 201, 2) "
        "but the approved activities give (4, 200, 1)",
    ]


# --- rebuilding, the migration, the command -----------------------------------------------------


def a_year_of_everything(s) -> dict:
    """Claims, meetings, hours, a cap at zero, hours-only check-in, last year, reversals; committed.
    Return the rows kept, after checking them against what was done."""
    year = local_today().year
    approve(s.staff_a, claim(s.vol_a, s.meeting))
    record(s.staff_a, s.patrol, [s.vol_a, s.vol_a2], hours="4")  # 8 each: the day's cap
    record(s.staff_a, s.patrol, [s.vol_a2], hours="0.5")  # capped to 0
    event = make_event(s, hour_rule(s, backfill_earns_points=False), start=now_utc() - timedelta(hours=4))
    checkin.add_attendee(s.staff_a, event.id, s.vol_a2.id, hours="1")
    checkin.close_event(s.staff_a, event.id)
    db.session.commit()
    per_hour = make_rule(s, name_zh="夜巡", name_en="Night patrol", category="patrol", unit="hour", points=3)
    record(s.street_admin, per_hour, [s.vol_a], day=date(year - 1, 12, 31), hours="1.5",
           now=datetime(year, 1, 2, 4, tzinfo=timezone.utc))
    [gone] = record(s.street_admin, per_hour, [s.vol_b], day=date(year - 1, 12, 30), hours="1",
                    now=datetime(year, 1, 2, 4, tzinfo=timezone.utc))
    claims.reverse_transfer(s.street_admin, credit_of(gone).id, "登记错了")
    db.session.commit()
    kept = years()
    expected = summed(
        (s.vol_a, yesterday(), 10, 0), (s.vol_a, yesterday(), 8, 400), (s.vol_a2, yesterday(), 8, 400),
        (s.vol_a2, yesterday(), 0, 50), (s.vol_a2, to_local(event.starts_at).date(), 0, 100),
        (s.vol_a, date(year - 1, 12, 31), 5, 150),
    )
    expected[(s.vol_b.id, year - 1)] = (0, 0, 0)  # reversed whole
    assert kept == expected
    return kept


def nonzero(rows: dict) -> dict:
    return {k: v for k, v in rows.items() if v != (0, 0, 0)}


def test_rebuilding_from_the_activities_gives_back_exactly_what_was_kept(street, check_ledger):
    s = street
    kept = a_year_of_everything(s)
    db.session.execute(text("UPDATE volunteer_year SET points = 0, centi_hours = 7"))
    db.session.execute(text("DELETE FROM volunteer_year WHERE volunteer_id = :a"), {"a": s.vol_a2.id})
    db.session.execute(text("INSERT INTO volunteer_year (volunteer_id, year, points, centi_hours, activities) "
                            "VALUES (:v, 2001, 9, 9, 9)"), {"v": s.vol_b.id})
    assert activity_totals.rebuild_year_totals() == len(nonzero(kept))
    db.session.commit()
    assert years() == nonzero(kept)  # the year reversed whole has no activity to rebuild a row from
    check_ledger()


def test_the_migration_fills_the_rows_from_the_activities_already_approved(street, check_ledger):
    kept = a_year_of_everything(street)
    db.session.remove()
    downgrade(revision="eaf0a1b2c3d4")
    assert "volunteer_year" not in inspect(db.engine).get_table_names()
    upgrade()
    assert years() == nonzero(kept)
    check_ledger()


def test_the_command_rebuilds_rows_changed_behind_the_ledgers_back(street, runner):
    s = street
    award(s, s.vol_a, 40)
    kept = years()
    assert kept == {(s.vol_a.id, local_today().year): (40, 0, 1)}
    db.session.execute(text("UPDATE volunteer_year SET points = 1"))
    db.session.execute(text("INSERT INTO volunteer_year (volunteer_id, year, points, centi_hours, activities) "
                            "VALUES (:v, 2001, 3, 0, 1)"), {"v": s.vol_a.id})
    db.session.commit()
    assert len(ledger.check_ledger()) == 2
    db.session.rollback()
    assert runner.invoke(args=["points", "check-ledger"]).exit_code != 0
    result = runner.invoke(args=["points", "rebuild-year-totals"])
    assert result.exit_code == 0, result.output
    assert "yearly totals rebuilt: 1 row(s)" in result.output
    assert years() == kept
    result = runner.invoke(args=["points", "check-ledger"])
    assert result.exit_code == 0, result.output


# --- refusals -----------------------------------------------------------------------------------


def refused(error, fn, *args, **kwargs):
    """Run a refused operation; check that it changed neither the yearly totals nor the ledger."""
    before = ledger_state()
    with pytest.raises(error):
        fn(*args, **kwargs)
    db.session.rollback()
    after = ledger_state()
    assert after["year_totals"] == before["year_totals"]
    assert after == before


def test_refused_decisions_leave_the_yearly_totals_as_they_were(street, check_ledger):
    s = street
    decided = approve(s.staff_a, claim(s.vol_a, s.meeting))
    rejected = claim(s.vol_a2, s.meeting)
    claims.reject_claim(s.staff_a, rejected.id, "未签到")
    db.session.commit()
    year = yesterday().year
    assert ledger_state()["year_totals"] == [(s.vol_a.id, year, 10, 0, 1)]
    refused(AlreadyDecided, claims.approve_claim, s.admin_a, decided.id)
    refused(AlreadyDecided, claims.approve_claim, s.admin_a, rejected.id)
    # A claim of a volunteer deactivated before approval.
    pending = claim(s.vol_a2, s.patrol, day=two_days_ago(), hours="2")
    people.set_active(s.admin_a, s.vol_a2.id, False)
    db.session.commit()
    refused(VolunteerInactive, claims.approve_claim, s.staff_a, pending.id)
    assert ledger_state()["year_totals"] == [(s.vol_a.id, year, 10, 0, 1)]
    check_ledger()


def test_refused_attendance_leaves_the_yearly_totals_as_they_were(street, check_ledger):
    s = street
    kw = dict(rule_id=s.meeting.id, activity_date=yesterday(), volunteer_ids=[s.vol_a.id, s.vol_a2.id],
              batch_key="meeting-year")
    claims.record_attendance(s.staff_a, **kw)
    db.session.commit()
    year = yesterday().year
    kept = [(s.vol_a.id, year, 10, 0, 1), (s.vol_a2.id, year, 10, 0, 1)]
    assert ledger_state()["year_totals"] == kept
    refused(AlreadyRecorded, claims.record_attendance, s.staff_a, **kw)
    people.set_active(s.admin_a, s.vol_a2.id, False)
    db.session.commit()
    refused(InvalidInput, claims.record_attendance, s.staff_a, **{**kw, "batch_key": "meeting-inactive"})
    assert ledger_state()["year_totals"] == kept
    check_ledger()


def test_credits_refused_by_the_budget_leave_the_yearly_totals_as_they_were(street, check_ledger):
    s = street
    budgets.record_funding(s.street_admin, s.street, fen=100 * 100, source="street_grant",
                           funded_on=local_today(), note=None, key=secrets.token_hex(8))
    db.session.commit()
    award(s, s.vol_b, 75)
    kept = [(s.vol_b.id, local_today().year, 75, 0, 1)]
    assert ledger_state()["year_totals"] == kept
    refused(BudgetExhausted, award_many, s, [s.vol_a, s.vol_a2, s.vol_b], 10)  # 30 needed, 25 left
    brave = claim(s.vol_a, brave_rule(s, 1))  # 50 points
    refused(BudgetExhausted, claims.approve_claim, s.staff_a, brave.id)
    assert db.session.get(Activity, brave.id).status == "pending"
    assert ledger_state()["year_totals"] == kept
    check_ledger()


def test_refused_reversals_leave_the_yearly_totals_as_they_were(street, check_ledger):
    s = street
    spent = award(s, s.vol_a, 10)
    vouchers.issue_voucher(s.vol_a, s.rice.id)  # holds all 10
    db.session.commit()
    once = award(s, s.vol_a2, 12)
    claims.reverse_transfer(s.street_admin, credit_of(once).id, "重复登记")
    db.session.commit()
    year = local_today().year
    kept = [(s.vol_a.id, year, 10, 0, 1), (s.vol_a2.id, year, 0, 0, 0)]
    assert ledger_state()["year_totals"] == kept
    refused(CannotReverse, claims.reverse_transfer, s.street_admin, credit_of(spent).id, "登记错了")  # spent
    refused(CannotReverse, claims.reverse_transfer, s.street_admin, credit_of(once).id, "再撤一次")
    assert ledger_state()["year_totals"] == kept
    assert db.session.get(Activity, spent.id).status == "approved"
    check_ledger()


def test_hours_become_hundredths_rounded_as_the_column_and_the_rebuild_round_them():
    assert activity_totals.centi(None) == 0
    assert activity_totals.centi(Decimal("2.5")) == 250
    assert activity_totals.centi(Decimal("0.29")) == 29
    assert activity_totals.centi(Decimal("0.295")) == 30  # half up, as numeric(5, 2) stores it
    assert activity_totals.centi(Decimal("0.294")) == 29
