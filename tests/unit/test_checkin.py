"""Check-in events: the rotating code, the window, sign in and out, hours, closing, back-filling."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from pointsapp.domain import checkin, claims, rules
from pointsapp.domain.clock import now_utc
from pointsapp.domain.errors import (
    AlreadyRecorded,
    CheckinCodeExpired,
    CheckinNotForYou,
    CheckinNotOpen,
    EventClosed,
    Forbidden,
    InvalidInput,
    NotFound,
)
from pointsapp.extensions import db
from pointsapp.models import Activity, AuditRecord, CheckinAttendance, Transfer
from tests.factories import balance, rule_terms

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc)  # 14:00 in Shanghai


def hour_rule(s, **terms):
    """A per-hour rule without approval: 10 points an hour, rounded to 30 min, capped at 2 h."""
    base = dict(name_zh="社区服务", name_en="Community service", category="helping", unit="hour", points=10,
                needs_approval=False, checkin_hours_cap=Decimal("2"), hours_rounding_minutes=30)
    base.update(terms)
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(**base))
    db.session.commit()
    return rule


def make_event(s, rule, start=None, hours=3, unit=None, actor=None):
    start = start or now_utc() - timedelta(minutes=10)
    event = checkin.create_event(
        actor or s.staff_a, title="楼道清洁", rule_id=rule.id, org_unit_id=(unit or s.grid_a).id,
        place="1号楼下", starts_at=start, ends_at=start + timedelta(hours=hours), now=start - timedelta(hours=1),
    )
    db.session.commit()
    return event


# --- the rotating code ----------------------------------------------------------------------


def test_the_token_of_this_slot_and_the_last_are_accepted_and_older_ones_refused(app):
    now = T0 + timedelta(seconds=95)
    slot = checkin.slot_of(now)
    assert checkin.token_is_valid(7, checkin.token_for(7, slot), now)
    assert checkin.token_is_valid(7, checkin.token_for(7, slot - 1), now)
    assert not checkin.token_is_valid(7, checkin.token_for(7, slot - 2), now)
    assert not checkin.token_is_valid(7, checkin.token_for(7, slot + 5), now)
    # A photo of the code taken now stops working within a minute.
    shown = checkin.current_token(7, now)
    assert checkin.token_is_valid(7, shown, now + timedelta(seconds=29))
    assert not checkin.token_is_valid(7, shown, now + timedelta(seconds=60))
    with pytest.raises(CheckinCodeExpired):
        checkin.require_fresh(7, shown, None, now + timedelta(seconds=61))


def test_a_tampered_token_or_another_events_token_is_refused(app):
    token = checkin.current_token(7, T0)
    assert len(token) == checkin.TOKEN_CHARS
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    assert not checkin.token_is_valid(7, tampered, T0)
    assert not checkin.token_is_valid(8, token, T0)
    assert not checkin.token_is_valid(7, "", T0)
    assert not checkin.token_is_valid(7, token + "x", T0)
    assert not checkin.token_is_valid(7, "二维码" + token, T0)


def test_a_scan_pass_is_for_its_event_only(app):
    good = checkin.pass_for(7)
    assert checkin.pass_is_valid(7, good)
    assert not checkin.pass_is_valid(8, good)
    # Change a character inside the signature: its last character carries two unused bits, so
    # changing only those can decode to the same signature.
    signature_start = good.rindex(".") + 1
    other = "A" if good[signature_start] != "A" else "B"
    assert not checkin.pass_is_valid(7, good[:signature_start] + other + good[signature_start + 1:])
    checkin.require_fresh(7, "stale", good)  # an expired code with a fresh pass: accepted


# --- creating events ------------------------------------------------------------------------


def test_staff_create_events_only_in_their_subtree_with_a_rule_that_applies(app, street):
    rule = hour_rule(street)
    start = now_utc() + timedelta(hours=1)
    with pytest.raises(NotFound):
        checkin.create_event(street.staff_a, title="x", rule_id=rule.id, org_unit_id=street.community_b.id,
                             place="p", starts_at=start, ends_at=start + timedelta(hours=1))
    with pytest.raises(Forbidden):
        checkin.create_event(street.vol_a, title="x", rule_id=rule.id, org_unit_id=street.grid_a.id,
                             place="p", starts_at=start, ends_at=start + timedelta(hours=1))
    with pytest.raises(InvalidInput) as exc:
        checkin.create_event(street.staff_a, title="x", rule_id=rule.id, org_unit_id=street.grid_a.id,
                             place="p", starts_at=start, ends_at=start)
    assert exc.value.field == "ends_at"
    with pytest.raises(InvalidInput):
        checkin.create_event(street.staff_a, title="x", rule_id=rule.id, org_unit_id=street.grid_a.id,
                             place="p", starts_at=start, ends_at=start + timedelta(hours=25))
    with pytest.raises(InvalidInput) as exc:
        checkin.create_event(street.staff_a, title=" ", rule_id=rule.id, org_unit_id=street.grid_a.id,
                             place="p", starts_at=start, ends_at=start + timedelta(hours=1))
    assert exc.value.field == "title"
    event = checkin.create_event(street.staff_a, title="巡逻", rule_id=rule.id, org_unit_id=street.grid_a.id,
                                 place="北门", starts_at=start, ends_at=start + timedelta(hours=1))
    db.session.commit()
    assert event.status == "open"
    assert db.session.scalar(select(AuditRecord.action).order_by(AuditRecord.id.desc())) == "checkin.event_created"
    assert [e.id for e in db.session.scalars(checkin.events_query(street.staff_a))] == [event.id]
    assert list(db.session.scalars(checkin.events_query(street.staff_b))) == []


def test_rule_terms_for_check_in_are_validated(app, street):
    for bad in (dict(hours_rounding_minutes=7), dict(hours_rounding_minutes=0), dict(checkin_hours_cap=Decimal("0")),
                dict(checkin_hours_cap=Decimal("1.25")), dict(checkin_hours_cap=Decimal("25"))):
        with pytest.raises(InvalidInput):
            rules.create_rule(street.street_admin, street.street, rule_terms(**bad))
        db.session.rollback()
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(checkin_hours_cap=Decimal("1.5"), hours_rounding_minutes=15,
                                        backfill_earns_points=False))
    db.session.commit()
    v = rule.current
    assert (v.checkin_hours_cap, v.hours_rounding_minutes, v.backfill_earns_points) == (Decimal("1.5"), 15, False)
    assert street.meeting.current.hours_rounding_minutes == 30 and street.meeting.current.backfill_earns_points


# --- signing in and out ---------------------------------------------------------------------


def test_sign_in_opens_thirty_minutes_early_and_closes_at_the_end(app, street):
    rule = hour_rule(street)
    start = now_utc() + timedelta(hours=2)
    event = make_event(street, rule, start=start)
    with pytest.raises(CheckinNotOpen):
        checkin.sign_in(street.vol_a, event.id, now=start - timedelta(minutes=31))
    db.session.rollback()
    with pytest.raises(CheckinNotOpen):
        checkin.sign_in(street.vol_a, event.id, now=start + timedelta(hours=3, seconds=1))
    db.session.rollback()
    assert checkin.sign_in(street.vol_a, event.id, now=start - timedelta(minutes=29)).changed
    db.session.commit()
    assert checkin.attendee_count(event.id) == (1, 1)


def test_sign_in_twice_is_one_row_and_sign_out_once(app, street):
    event = make_event(street, hour_rule(street))
    first = checkin.sign_in(street.vol_a, event.id)
    db.session.commit()
    again = checkin.sign_in(street.vol_a, event.id)
    db.session.commit()
    assert first.changed and not again.changed and again.attendance.id == first.attendance.id
    out = checkin.sign_out(street.vol_a, event.id)
    db.session.commit()
    assert out.changed and out.attendance.signed_out_at is not None
    assert not checkin.sign_out(street.vol_a, event.id).changed
    db.session.commit()
    assert checkin.attendee_count(event.id) == (0, 1)
    assert db.session.scalar(select(func.count()).select_from(CheckinAttendance)) == 1
    with pytest.raises(CheckinNotOpen):
        checkin.sign_out(street.vol_a2, event.id)


def test_only_volunteers_of_the_events_subtree_and_the_rules_titles_sign_in(app, street):
    rule = hour_rule(street, titles=["unit_leader"])
    event = make_event(street, rule, unit=street.grid_a)
    with pytest.raises(CheckinNotForYou):
        checkin.sign_in(street.vol_b, event.id)  # community B
    with pytest.raises(CheckinNotForYou):
        checkin.sign_in(street.vol_a2, event.id)  # a building leader: not this rule's title
    with pytest.raises(CheckinNotForYou):
        checkin.sign_in(street.staff_a, event.id)  # staff are not volunteers
    assert checkin.sign_in(street.vol_a, event.id).changed


# --- closing: hours, credits, approval ------------------------------------------------------


def _signed(s, event, volunteer, minutes_in, minutes_out=None):
    checkin.sign_in(volunteer, event.id, now=event.starts_at + timedelta(minutes=minutes_in))
    if minutes_out is not None:
        checkin.sign_out(volunteer, event.id, now=event.starts_at + timedelta(minutes=minutes_out))
    db.session.commit()


def test_hours_are_rounded_down_and_capped_and_credited_once_on_closing(app, street, check_ledger):
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, -20, 100)  # early: counted from the start; 100 min -> 1.5 h
    _signed(street, event, street.vol_a2, 10)  # never signed out: to the end, 170 min -> 2.5 h -> cap 2 h
    done = checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    assert done.changed
    by_volunteer = {a.volunteer_id: a for a in done.activities}
    a, a2 = by_volunteer[street.vol_a.id], by_volunteer[street.vol_a2.id]
    assert (a.hours, a.points_credited, a.source, a.status) == (Decimal("1.5"), 15, "checkin", "approved")
    assert (a2.hours, a2.points_credited) == (Decimal("2"), 20)
    assert balance(street.vol_a).available == 15 and balance(street.vol_a2).available == 20
    again = checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    assert not again.changed
    assert db.session.scalar(select(func.count()).select_from(Activity).where(Activity.source == "checkin")) == 2
    assert balance(street.vol_a).available == 15
    with pytest.raises(EventClosed):
        checkin.sign_out(street.vol_a2, event.id)  # after closing, the hours are final
    db.session.rollback()
    assert db.session.scalar(select(AuditRecord.action).order_by(AuditRecord.id.desc())) == "checkin.event_closed"
    check_ledger()


def test_daily_caps_apply_to_check_in_credits(app, street, check_ledger):
    rule = hour_rule(street, daily_cap=12)
    event = make_event(street, rule, start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 120)
    act = checkin.close_event(street.staff_a, event.id).activities[0]
    db.session.commit()
    assert (act.points_requested, act.points_credited) == (20, 12) and "daily cap" in act.cap_note
    check_ledger()


def test_an_hour_rule_gives_nothing_for_less_than_one_rounding_step(app, street, check_ledger):
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 20)  # 20 minutes: rounded down to 0
    done = checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    assert done.activities == []
    assert db.session.scalar(select(CheckinAttendance.hours)) == Decimal("0")
    check_ledger()


def test_rules_that_need_approval_leave_check_ins_pending_in_the_queue(app, street, check_ledger):
    event = make_event(street, hour_rule(street, needs_approval=True), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 60)
    act = checkin.close_event(street.staff_a, event.id).activities[0]
    db.session.commit()
    assert (act.status, act.points_requested, act.points_credited) == ("pending", 10, 0)
    assert act.id in [x.id for x in db.session.scalars(claims.pending_claims_query(street.admin_a))]
    claims.approve_claim(street.admin_a, act.id)
    db.session.commit()
    assert balance(street.vol_a).available == 10
    check_ledger()


def test_the_closers_own_attendance_waits_for_another_verifier(app, street, check_ledger):
    from pointsapp.domain import people
    from pointsapp.models.user import ROLE_VOLUNTEER

    people.grant_role(street.street_admin, street.staff_a, ROLE_VOLUNTEER, unit=street.grid_a)
    db.session.commit()
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.staff_a, 0, 60)
    _signed(street, event, street.vol_a, 0, 60)
    acts = {a.volunteer_id: a for a in checkin.close_event(street.staff_a, event.id).activities}
    db.session.commit()
    # The rule needs no approval: vol_a is credited at once, the grid worker who closed it is not.
    assert (acts[street.vol_a.id].status, acts[street.vol_a.id].points_credited) == ("approved", 10)
    mine = acts[street.staff_a.id]
    assert (mine.status, mine.points_requested, mine.points_credited) == ("pending", 10, 0)
    assert balance(street.staff_a).available == 0
    with pytest.raises(Forbidden):
        claims.approve_claim(street.staff_a, mine.id)
    db.session.rollback()
    claims.approve_claim(street.admin_a, mine.id)
    db.session.commit()
    assert balance(street.staff_a).available == 10
    check_ledger()


def test_occurrence_rules_credit_their_points_and_keep_the_hours(app, street, check_ledger):
    rule = hour_rule(street, unit="occurrence", points=5)
    event = make_event(street, rule, start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 65)
    act = checkin.close_event(street.staff_a, event.id).activities[0]
    db.session.commit()
    assert (act.hours, act.points_credited) == (Decimal("1"), 5)
    check_ledger()


def test_closing_is_for_staff_of_the_events_subtree_after_it_started(app, street):
    event = make_event(street, hour_rule(street), start=now_utc() + timedelta(hours=1))
    with pytest.raises(NotFound):
        checkin.close_event(street.staff_b, event.id)
    with pytest.raises(CheckinNotOpen):
        checkin.close_event(street.staff_a, event.id)
    assert checkin.close_event(street.admin_a, event.id, now=event.starts_at + timedelta(minutes=1)).changed


# --- back-filled attendance -----------------------------------------------------------------


def test_backfilled_attendance_earns_points_when_the_rule_says_so(app, street, check_ledger):
    event = make_event(street, hour_rule(street, checkin_hours_cap=None), start=now_utc() - timedelta(hours=4))
    checkin.add_attendee(street.staff_a, event.id, street.vol_a.id, hours="1.5")
    checkin.add_attendee(street.staff_a, event.id, street.vol_a2.id)  # the whole event: 3 h
    db.session.commit()
    with pytest.raises(AlreadyRecorded):
        checkin.add_attendee(street.staff_a, event.id, street.vol_a.id)
    db.session.rollback()
    with pytest.raises(NotFound):
        checkin.add_attendee(street.staff_a, event.id, street.vol_b.id)
    db.session.rollback()
    acts = {a.volunteer_id: a for a in checkin.close_event(street.staff_a, event.id).activities}
    db.session.commit()
    assert (acts[street.vol_a.id].hours, acts[street.vol_a.id].points_credited) == (Decimal("1.5"), 15)
    assert (acts[street.vol_a2.id].hours, acts[street.vol_a2.id].points_credited) == (Decimal("3"), 30)
    check_ledger()


def test_backfilled_attendance_counts_hours_only_when_the_rule_says_so(app, street, check_ledger):
    event = make_event(street, hour_rule(street, backfill_earns_points=False), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 60)
    checkin.add_attendee(street.staff_a, event.id, street.vol_a2.id, hours="2")
    db.session.commit()
    transfers_before = db.session.scalar(select(func.count()).select_from(Transfer))
    acts = {a.volunteer_id: a for a in checkin.close_event(street.staff_a, event.id).activities}
    db.session.commit()
    hours_only = acts[street.vol_a2.id]
    assert (hours_only.status, hours_only.hours, hours_only.points_requested, hours_only.points_credited) == (
        "approved", Decimal("2"), 0, 0)
    assert acts[street.vol_a.id].points_credited == 10
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == transfers_before + 1
    assert balance(street.vol_a2).earned == 0
    check_ledger()


def test_backfilled_hours_only_stays_out_of_the_approval_queue_even_when_the_rule_needs_approval(app, street, check_ledger):
    event = make_event(street, hour_rule(street, backfill_earns_points=False, needs_approval=True),
                       start=now_utc() - timedelta(hours=4))
    checkin.add_attendee(street.staff_a, event.id, street.vol_a.id)
    act = checkin.close_event(street.staff_a, event.id).activities[0]
    db.session.commit()
    assert (act.status, act.hours, act.points_credited) == ("approved", Decimal("2"), 0)
    check_ledger()


def test_staff_cannot_backfill_themselves_or_after_closing(app, street):
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))
    with pytest.raises(NotFound):
        checkin.add_attendee(street.staff_a, event.id, street.staff_b.id)
    db.session.rollback()
    checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    with pytest.raises(EventClosed):
        checkin.add_attendee(street.staff_a, event.id, street.vol_a.id)


# --- with the other earning terms -----------------------------------------------------------

def test_a_community_on_public_notice_posts_check_in_credits_before_crediting_them(app, street, check_ledger):
    from pointsapp.domain import notice

    notice.set_notice_days(street.street_admin, street.community_a, 3)
    db.session.commit()
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 60)
    done = checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    (act,) = done.activities
    assert (act.status, act.points_requested, act.points_credited) == ("on_notice", 10, 0)
    assert act.notice_until is not None and balance(street.vol_a).balance == 0
    assert not db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.activity_id == act.id))
    check_ledger()
    # After the window, with no objection, the publishing run credits it once.
    assert notice.publish_one(act.id, act.notice_until + timedelta(seconds=1))
    db.session.commit()
    assert balance(street.vol_a).balance == 10
    assert not notice.publish_one(act.id, act.notice_until + timedelta(seconds=2))
    db.session.commit()
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_deduction_rules_cannot_be_used_for_events(app, street):
    deduct = hour_rule(street, kind="deduct", unit="occurrence", checkin_hours_cap=None)
    assert deduct.id not in {r.id for r in checkin.usable_rules(street.staff_a)}
    with pytest.raises((NotFound, InvalidInput)):
        make_event(street, deduct)
    db.session.rollback()


# --- the volunteer's events -----------------------------------------------------------------


def _event_at(s, rule, unit, actor, start, title, hours=2):
    event = checkin.create_event(actor, title=title, rule_id=rule.id, org_unit_id=unit.id, place="活动室",
                                 starts_at=start, ends_at=start + timedelta(hours=hours), now=start - timedelta(hours=1))
    db.session.commit()
    return event


def test_a_volunteer_sees_the_open_events_of_their_node_and_above_soonest_first_with_their_state(app, street):
    rule = hour_rule(street)
    now = now_utc()
    later = _event_at(street, rule, street.community_a, street.admin_a, now + timedelta(days=2), "社区大扫除")
    ongoing = _event_at(street, rule, street.grid_a, street.staff_a, now - timedelta(minutes=30), "网格巡逻")
    soon = _event_at(street, rule, street.building_a, street.staff_a, now + timedelta(hours=3), "楼道清洁")
    _event_at(street, rule, street.unit_a, street.staff_a, now + timedelta(hours=1), "单元会议")  # below vol_a2
    _event_at(street, rule, street.grid_b, street.staff_b, now + timedelta(hours=1), "别的网格")  # a sibling
    _event_at(street, rule, street.community_b, street.admin_b, now + timedelta(hours=1), "别的社区")
    ended = _event_at(street, rule, street.grid_a, street.staff_a, now - timedelta(hours=5), "昨天的活动")
    closed = _event_at(street, rule, street.grid_a, street.staff_a, now + timedelta(hours=4), "已关的活动")
    checkin.sign_in(street.vol_a2, ongoing.id, now=ongoing.starts_at)
    checkin.sign_in(street.vol_a2, ended.id, now=ended.starts_at)
    db.session.commit()
    checkin.close_event(street.staff_a, closed.id, now=closed.starts_at + timedelta(minutes=1))
    db.session.commit()

    mine = checkin.events_for_volunteer(street.vol_a2, now)
    assert [e.title for e, _row in mine.upcoming] == ["网格巡逻", "楼道清洁", "社区大扫除"]
    states = {e.id: row for e, row in mine.upcoming}
    assert states[ongoing.id].signed_in_at == ongoing.starts_at and states[soon.id] is None and states[later.id] is None
    assert [a.event.title for a in mine.attended] == ["网格巡逻", "昨天的活动"]  # newest first

    checkin.sign_out(street.vol_a2, ongoing.id, now=now)
    db.session.commit()
    row = dict(checkin.events_for_volunteer(street.vol_a2, now).upcoming)[ongoing]
    assert row.signed_out_at == now
    assert [e.title for e, _row in checkin.events_for_volunteer(street.vol_a, now).upcoming] == [
        "网格巡逻", "单元会议", "楼道清洁", "社区大扫除"]
    assert [e.title for e, _row in checkin.events_for_volunteer(street.vol_b, now).upcoming] == ["别的网格", "别的社区"]
    assert checkin.events_for_volunteer(street.staff_a, now).upcoming == []


def test_a_volunteer_does_not_see_events_of_activity_types_not_for_their_title(app, street):
    _event_at(street, hour_rule(street, titles=["unit_leader"]), street.grid_a, street.staff_a,
              now_utc() + timedelta(hours=1), "单元长会议")
    assert [e.title for e, _ in checkin.events_for_volunteer(street.vol_a).upcoming] == ["单元长会议"]
    assert checkin.events_for_volunteer(street.vol_a2).upcoming == []


def test_events_not_for_the_volunteer_do_not_push_theirs_off_the_list(app, street):
    """The list is cut after leaving out events whose activity type is not for the volunteer."""
    leaders_only = hour_rule(street, titles=["unit_leader"])
    soon = now_utc() + timedelta(hours=1)
    for i in range(checkin.VOLUNTEER_OPEN_EVENTS + 1):
        _event_at(street, leaders_only, street.grid_a, street.staff_a, soon + timedelta(minutes=i), f"单元长会议{i}")
    _event_at(street, hour_rule(street), street.grid_a, street.staff_a, soon + timedelta(hours=5), "全体巡逻")
    assert [e.title for e, _ in checkin.events_for_volunteer(street.vol_a2).upcoming] == ["全体巡逻"]


def test_the_volunteers_events_are_a_fixed_number_of_queries(app, street):
    from sqlalchemy import event as sa_event

    rule = hour_rule(street)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def queries() -> int:
        db.session.expire_all()
        vol = db.session.get(type(street.vol_a), street.vol_a.id)
        vol.org_unit, vol.grants  # noqa: B018  (the user's own rows, loaded per request anyway)
        statements.clear()
        sa_event.listen(db.engine, "before_cursor_execute", count)
        try:
            checkin.events_for_volunteer(vol)
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    def add(n):
        for i in range(n):
            e = _event_at(street, rule, street.grid_a, street.staff_a, now_utc() + timedelta(minutes=10 + i), f"活动{i}")
            checkin.sign_in(street.vol_a, e.id, now=e.starts_at)
            checkin.sign_in(street.vol_a2, e.id, now=e.starts_at)
        db.session.commit()

    add(1)
    few = queries()
    add(6)
    # The open events, their nodes, rules, rules' nodes and terms; the attendance at them; the
    # attended rows and the same for their events: the same count for one event or seven.
    assert queries() == few <= 12


# --- editing events -------------------------------------------------------------------------


def _audits(action="checkin.event_updated"):
    return list(db.session.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def test_staff_change_an_events_title_place_and_window_with_one_audit_record(app, street):
    event = make_event(street, hour_rule(street), start=now_utc() + timedelta(hours=1))
    old_start = event.starts_at
    start = old_start + timedelta(minutes=30)
    changed = checkin.update_event(street.admin_a, event.id, title=" 楼道大扫除 ", place="2号楼下",
                                   starts_at=start, ends_at=start + timedelta(hours=1))
    db.session.commit()
    db.session.expire_all()
    assert (changed.title, changed.place, changed.starts_at, changed.ends_at) == (
        "楼道大扫除", "2号楼下", start, start + timedelta(hours=1))
    [rec] = _audits()
    assert rec.actor_id == street.admin_a.id and rec.target_id == event.id
    changes = json.loads(rec.summary)["changes"]
    assert changes["title"] == ["楼道清洁", "楼道大扫除"] and changes["place"] == ["1号楼下", "2号楼下"]
    assert changes["starts_at"] == [old_start.isoformat(), start.isoformat()]
    assert set(changes) == {"title", "place", "starts_at", "ends_at"}
    # Nothing changed (the same values again): nothing written.
    checkin.update_event(street.staff_a, event.id, title="楼道大扫除", place="2号楼下",
                         starts_at=start, ends_at=start + timedelta(hours=1))
    db.session.commit()
    assert len(_audits()) == 1


def _unchanged(event_id, before):
    db.session.rollback()
    db.session.expire_all()
    from pointsapp.models import CheckinEvent

    e = db.session.get(CheckinEvent, event_id)
    assert (e.title, e.place, e.starts_at, e.ends_at, e.status) == before
    assert _audits() == []


def test_edits_that_are_refused_change_nothing(app, street):
    from pointsapp.domain.errors import EventNotEditable

    rule = hour_rule(street)
    event = make_event(street, rule, start=now_utc() - timedelta(minutes=10))
    before = (event.title, event.place, event.starts_at, event.ends_at, "open")
    fields = dict(title="新标题", place=event.place, starts_at=event.starts_at, ends_at=event.ends_at)

    with pytest.raises(NotFound):
        checkin.update_event(street.staff_b, event.id, **fields)  # another community's staff
    _unchanged(event.id, before)
    with pytest.raises((NotFound, Forbidden)):
        checkin.update_event(street.vol_a, event.id, **fields)
    _unchanged(event.id, before)
    for bad, field in ((dict(ends_at=event.starts_at), "ends_at"),
                       (dict(ends_at=event.starts_at + timedelta(hours=25)), "ends_at"),
                       (dict(title=" "), "title"), (dict(place=""), "place"),
                       (dict(starts_at=event.starts_at - timedelta(hours=3), ends_at=now_utc() - timedelta(minutes=1)),
                        "ends_at")):
        with pytest.raises(InvalidInput) as exc:
            checkin.update_event(street.staff_a, event.id, **{**fields, **bad})
        assert exc.value.field == field
        _unchanged(event.id, before)

    checkin.sign_in(street.vol_a, event.id)
    db.session.commit()
    with pytest.raises(InvalidInput) as exc:
        checkin.update_event(street.staff_a, event.id, **{**fields, "starts_at": event.starts_at + timedelta(minutes=5)})
    assert exc.value.field == "starts_at" and "signed in" in exc.value.message
    _unchanged(event.id, before)
    # The end may still move, and the title: the start stays.
    checkin.update_event(street.staff_a, event.id, **{**fields, "ends_at": event.ends_at + timedelta(hours=1)})
    db.session.commit()
    assert set(json.loads(_audits()[0].summary)["changes"]) == {"title", "ends_at"}

    ended = make_event(street, rule, start=now_utc() - timedelta(hours=4), hours=1)
    with pytest.raises(EventNotEditable) as exc:
        checkin.update_event(street.staff_a, ended.id, title="x", place="p", starts_at=ended.starts_at,
                             ends_at=now_utc() + timedelta(hours=1))
    assert "Close it" in exc.value.message
    db.session.rollback()
    closed = make_event(street, rule, start=now_utc() - timedelta(minutes=10))
    checkin.close_event(street.staff_a, closed.id)
    db.session.commit()
    with pytest.raises(EventNotEditable) as exc:
        checkin.update_event(street.staff_a, closed.id, title="x", place="p", starts_at=closed.starts_at,
                             ends_at=closed.ends_at)
    assert "closed" in exc.value.message
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(type(closed), closed.id).title == "楼道清洁"
    assert len(_audits()) == 1


# --- the node an attendance counts at -------------------------------------------------------


def _move(s, volunteer, unit):
    from pointsapp.domain import people

    people.move_person(s.street_admin, volunteer.id, unit)
    db.session.commit()


def _row(event, volunteer) -> CheckinAttendance:
    db.session.expire_all()
    return checkin.attendance_of(event.id, volunteer.id)


def test_attendance_moved_between_sign_in_and_close_counts_at_the_old_node_and_draws_on_the_new_budget(
        app, street, check_ledger):
    from pointsapp.domain import notice
    from pointsapp.models import Budget, BudgetCharge
    from tests.unit.helpers import fund, state_of

    fund(street, street.community_a, 100)
    fund(street, street.community_b, 100)
    # The new community posts its credits for objections first; the old one credits at once.
    notice.set_notice_days(street.street_admin, street.community_b, 3)
    db.session.commit()
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4), unit=street.street,
                       actor=street.street_admin)
    _signed(street, event, street.vol_a, 0, 60)  # 1 h: 10 points
    _signed(street, event, street.vol_a2, 0, 120)  # 2 h: 20 points
    assert _row(event, street.vol_a).org_unit_id == street.unit_a.id
    _move(street, street.vol_a, street.building_b)  # moved house to community B before the close

    done = checkin.close_event(street.street_admin, event.id)
    db.session.commit()
    acts = {a.volunteer_id: a for a in done.activities}
    moved = acts[street.vol_a.id]
    assert (moved.org_unit_id, moved.status, moved.points_credited, moved.notice_until) == (
        street.unit_a.id, "approved", 10, None)
    assert (acts[street.vol_a2.id].org_unit_id, acts[street.vol_a2.id].points_credited) == (street.building_a.id, 20)
    assert balance(street.vol_a).available == 10
    # As every credit, each draws on the budget of the volunteer's node when credited: the moved
    # volunteer's on community B's, the other's on community A's.
    assert state_of(street.community_a).used == 20
    assert state_of(street.community_b).used == 10
    budget_b = db.session.scalar(select(Budget.id).where(Budget.org_unit_id == street.community_b.id))
    charged = db.session.execute(
        select(BudgetCharge.budget_id, BudgetCharge.points)
        .join(Transfer, Transfer.id == BudgetCharge.transfer_id)
        .where(Transfer.activity_id == moved.id)
    ).all()
    assert [tuple(c) for c in charged] == [(budget_b, 10)]
    check_ledger()


def test_the_old_nodes_public_notice_applies_to_attendance_moved_before_the_close(app, street, check_ledger):
    from pointsapp.domain import notice

    notice.set_notice_days(street.street_admin, street.community_a, 3)
    db.session.commit()
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4), unit=street.street,
                       actor=street.street_admin)
    _signed(street, event, street.vol_a, 0, 60)
    _move(street, street.vol_a, street.building_b)  # community B: no public notice
    (act,) = checkin.close_event(street.street_admin, event.id).activities
    db.session.commit()
    assert (act.org_unit_id, act.status, act.points_requested, act.points_credited) == (
        street.unit_a.id, "on_notice", 10, 0)
    assert act.notice_until is not None and balance(street.vol_a).balance == 0
    check_ledger()


def test_attendance_moved_out_of_the_events_subtree_still_counts_at_the_old_node(app, street, check_ledger):
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))  # grid A
    _signed(street, event, street.vol_a, 0, 90)  # 1.5 h: 15 points
    _move(street, street.vol_a, street.building_b)  # community B: outside the event's grid
    done = checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    (act,) = done.activities
    assert (act.volunteer_id, act.org_unit_id, act.hours, act.status, act.points_credited) == (
        street.vol_a.id, street.unit_a.id, Decimal("1.5"), "approved", 15)
    assert balance(street.vol_a).available == 15
    closed = json.loads(db.session.scalar(
        select(AuditRecord.summary).where(AuditRecord.action == "checkin.event_closed")))
    assert closed["attendees"] == {str(street.vol_a.id): {
        "hours": "1.50", "status": "approved", "points_requested": 15, "points_credited": 15}}
    check_ledger()


def test_a_volunteer_moved_out_of_the_events_subtree_after_signing_in_still_signs_out(app, street, check_ledger):
    event = make_event(street, hour_rule(street), start=now_utc() - timedelta(hours=4))  # grid A
    checkin.sign_in(street.vol_a, event.id, now=event.starts_at)
    db.session.commit()
    _move(street, street.vol_a, street.building_b)  # community B: outside the event's grid
    signed = checkin.sign_out(street.vol_a, event.id, now=event.starts_at + timedelta(minutes=60))
    db.session.commit()
    assert signed.changed and signed.attendance.signed_out_at == event.starts_at + timedelta(minutes=60)
    # Counted to when they left (1 h), not to the event's end (3 h, capped at 2 h).
    (act,) = checkin.close_event(street.staff_a, event.id).activities
    db.session.commit()
    assert (act.org_unit_id, act.hours, act.points_credited) == (street.unit_a.id, Decimal("1.00"), 10)
    # Someone else moved there who never signed in is still turned away.
    with pytest.raises(CheckinNotForYou):
        checkin.event_and_attendance(street.vol_b, event.id)
    check_ledger()


def test_attendance_moved_out_of_the_subtree_waits_in_the_old_nodes_approval_queue(app, street, check_ledger):
    event = make_event(street, hour_rule(street, needs_approval=True), start=now_utc() - timedelta(hours=4))
    _signed(street, event, street.vol_a, 0, 60)
    _move(street, street.vol_a, street.building_b)
    (act,) = checkin.close_event(street.staff_a, event.id).activities
    db.session.commit()
    assert (act.org_unit_id, act.status, act.points_requested) == (street.unit_a.id, "pending", 10)
    assert [a.id for a in db.session.scalars(claims.pending_claims_query(street.admin_a))] == [act.id]
    assert list(db.session.scalars(claims.pending_claims_query(street.admin_b))) == []
    check_ledger()


def test_a_backfilled_row_keeps_the_node_of_when_staff_added_it(app, street, check_ledger):
    event = make_event(street, hour_rule(street, checkin_hours_cap=None), start=now_utc() - timedelta(hours=4))
    _move(street, street.vol_a, street.building_a)  # moved before being added: added at the new node
    checkin.add_attendee(street.staff_a, event.id, street.vol_a.id, hours="1")
    checkin.add_attendee(street.staff_a, event.id, street.vol_a2.id, hours="2")
    db.session.commit()
    assert _row(event, street.vol_a).org_unit_id == street.building_a.id
    assert _row(event, street.vol_a2).org_unit_id == street.building_a.id
    _move(street, street.vol_a2, street.unit_a)  # moved after being added: counts where added
    acts = {a.volunteer_id: a for a in checkin.close_event(street.staff_a, event.id).activities}
    db.session.commit()
    assert {v: (a.org_unit_id, a.points_credited) for v, a in acts.items()} == {
        street.vol_a.id: (street.building_a.id, 10), street.vol_a2.id: (street.building_a.id, 20)}
    check_ledger()
