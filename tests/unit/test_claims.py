"""Point rules, claims, approvals and recorded attendance."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from flask_babel import force_locale

from pointsapp.domain import claims, people, rules
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import (
    AccountInactive,
    AlreadyDecided,
    AlreadyRecorded,
    Forbidden,
    InvalidInput,
    NotFound,
    RuleNotApplicable,
    VolunteerInactive,
)
from pointsapp.extensions import db
from pointsapp.models import Activity
from pointsapp.models.user import ROLE_GRID_STAFF, ROLE_VOLUNTEER
from tests.factories import balance, person, rule_terms, yesterday
from tests.unit.helpers import ledger_state


def make_rule(s, at=None, **terms):
    rule = rules.create_rule(s.street_admin, at or s.street, rule_terms(**terms))
    db.session.commit()
    return rule


def claim(volunteer, rule, day=None, **kw):
    act = claims.submit_claim(volunteer, rule_id=rule.id, activity_date=day or yesterday(), **kw)
    db.session.commit()
    return act


def approve(staff, act):
    claims.approve_claim(staff, act.id)
    db.session.commit()
    return db.session.get(Activity, act.id)


def last_month_days():
    """Two days of last month: within the 90-day window, whatever today is."""
    first = (local_today().replace(day=1) - timedelta(days=1)).replace(day=1)
    return first, first + timedelta(days=1)


# --- points per hour -------------------------------------------------------------------------


@pytest.mark.parametrize("hours, points", [("0.5", 2), ("1", 3), ("1.5", 5), ("2.5", 8), ("24", 72)])
def test_per_hour_points_are_rounded_half_up(street, hours, points):
    rule = make_rule(street, name_zh="义务巡逻", name_en="Patrol", unit="hour", points=3)
    act = claim(street.vol_a, rule, hours=hours)
    assert act.hours == Decimal(hours)
    assert act.points_requested == points


@pytest.mark.parametrize("hours", ["0", "-1", "0.25", "1.2", "24.5", "abc", "", None, "NaN", "inf"])
def test_hours_must_be_half_hour_steps_between_half_an_hour_and_a_day(street, hours):
    with pytest.raises(InvalidInput) as exc:
        claims.submit_claim(street.vol_a, rule_id=street.patrol.id, activity_date=yesterday(), hours=hours)
    assert exc.value.field == "hours"
    db.session.rollback()
    assert db.session.query(Activity).count() == 0


def test_a_per_occurrence_rule_ignores_hours(street):
    act = claim(street.vol_a, street.meeting, hours="3")
    assert act.hours is None and act.points_requested == 10


# --- caps ------------------------------------------------------------------------------------


def test_the_daily_cap_credits_up_to_the_cap_and_says_so(street, check_ledger):
    act = approve(street.staff_a, claim(street.vol_a, street.patrol, hours="5"))  # 2/h, daily cap 8
    assert (act.points_requested, act.points_credited) == (10, 8)
    assert act.cap_note == "capped: 8 of 10 credited (daily cap 8)"
    assert balance(street.vol_a).balance == 8
    # The cap is full for that day; the next day is a fresh one.
    full = approve(street.staff_a, claim(street.vol_a, street.patrol, hours="1"))
    assert full.points_credited == 0 and "daily cap 8" in full.cap_note
    other_day = approve(street.staff_a, claim(street.vol_a, street.patrol, day=yesterday() - timedelta(days=1), hours="1"))
    assert other_day.points_credited == 2 and other_day.cap_note is None
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_the_monthly_cap_credits_up_to_the_cap_across_days(street, check_ledger):
    rule = make_rule(street, name_zh="调解纠纷", name_en="Mediation", category="mediation", points=10, monthly_cap=15)
    day1, day2 = last_month_days()
    first = approve(street.staff_a, claim(street.vol_a, rule, day=day1))
    second = approve(street.staff_a, claim(street.vol_a, rule, day=day2))
    assert first.points_credited == 10 and first.cap_note is None
    assert second.points_credited == 5
    assert second.cap_note == "capped: 5 of 10 credited (monthly cap 15)"
    # This month is a new month.
    third = approve(street.staff_a, claim(street.vol_a, rule, day=local_today()))
    assert third.points_credited == 10
    assert balance(street.vol_a).balance == 25
    check_ledger()


def test_caps_count_recorded_attendance_and_claims_together(street, check_ledger):
    claims.record_attendance(
        street.staff_a, rule_id=street.patrol.id, activity_date=yesterday(), volunteer_ids=[street.vol_a.id],
        hours="3", batch_key="patrol-night-1",
    )
    db.session.commit()
    act = approve(street.staff_a, claim(street.vol_a, street.patrol, hours="3"))
    assert act.points_credited == 2 and "daily cap 8" in act.cap_note
    assert balance(street.vol_a).balance == 8
    check_ledger()


def test_one_patrol_recorded_for_many_caps_each_attendee_by_what_they_already_have(street, check_ledger):
    from sqlalchemy import func, select

    from pointsapp.models import PointLot, Transfer

    newcomer = person("newcomer", street.unit_a, title="resident")  # no account yet
    db.session.commit()
    # For yesterday vol_a has the daily cap's 8 already; vol_a2 has 6 of it.
    approve(street.staff_a, claim(street.vol_a, street.patrol, hours="4"))
    approve(street.staff_a, claim(street.vol_a2, street.patrol, hours="3"))
    acts = claims.record_attendance(
        street.staff_a, rule_id=street.patrol.id, activity_date=yesterday(), batch_key="patrol-all",
        volunteer_ids=[street.vol_a.id, street.vol_a2.id, newcomer.id], hours="2",
    )
    db.session.commit()
    got = {a.volunteer_id: (a.points_credited, a.cap_note) for a in acts}
    assert got == {
        street.vol_a.id: (0, "capped: 0 of 4 credited (daily cap 8)"),
        street.vol_a2.id: (2, "capped: 2 of 4 credited (daily cap 8)"),
        newcomer.id: (4, None),
    }
    credited = {a.volunteer_id: a for a in acts}
    transfers = dict(db.session.execute(
        select(Transfer.activity_id, Transfer.amount).where(Transfer.activity_id.in_([a.id for a in acts]))).all())
    assert transfers == {credited[street.vol_a2.id].id: 2, credited[newcomer.id].id: 4}
    assert db.session.scalar(select(func.count()).select_from(PointLot).where(
        PointLot.transfer_id.in_(select(Transfer.id).where(Transfer.activity_id == credited[street.vol_a.id].id)))) == 0
    assert (balance(street.vol_a).balance, balance(street.vol_a2).balance, balance(newcomer).balance) == (8, 8, 4)
    check_ledger()


def test_caps_are_per_volunteer(street, check_ledger):
    a = approve(street.staff_a, claim(street.vol_a, street.patrol, hours="4"))
    a2 = approve(street.staff_a, claim(street.vol_a2, street.patrol, hours="4"))
    assert a.points_credited == a2.points_credited == 8
    check_ledger()


def test_a_reversed_activity_no_longer_counts_towards_the_cap(street, check_ledger):
    from tests.unit.helpers import credit_of

    first = approve(street.staff_a, claim(street.vol_a, street.patrol, hours="4"))
    claims.reverse_transfer(street.street_admin, credit_of(first).id, "claimed by mistake")
    db.session.commit()
    again = approve(street.staff_a, claim(street.vol_a, street.patrol, hours="4"))
    assert again.points_credited == 8
    assert balance(street.vol_a).balance == 8
    check_ledger()


# --- versions --------------------------------------------------------------------------------


def test_editing_a_rule_never_changes_credited_activities(street, check_ledger):
    old = approve(street.staff_a, claim(street.vol_a, street.meeting))
    old_version_id = old.rule_version_id
    pending = claim(street.vol_a, street.meeting, day=yesterday() - timedelta(days=1))
    new_version = rules.update_rule(street.street_admin, street.meeting.id, rule_terms(points=25))
    db.session.commit()
    assert new_version.version == 2 and new_version.id != old_version_id

    old = db.session.get(Activity, old.id)
    assert (old.rule_version_id, old.points_credited) == (old_version_id, 10)
    # A claim submitted under the old terms is judged under them.
    assert approve(street.staff_a, pending).points_credited == 10
    # New claims use the new terms.
    new = approve(street.staff_a, claim(street.vol_a, street.meeting, day=yesterday() - timedelta(days=2)))
    assert (new.rule_version_id, new.points_credited) == (new_version.id, 25)
    assert balance(street.vol_a).earned == 45
    assert [v.version for v in db.session.get(type(street.meeting), street.meeting.id).versions] == [1, 2]
    check_ledger()


def test_an_edit_that_switches_a_rule_off_refuses_new_claims(street):
    rules.update_rule(street.street_admin, street.meeting.id, rule_terms(is_active=False))
    db.session.commit()
    with pytest.raises(RuleNotApplicable):
        claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.rollback()


def test_rule_terms_are_validated(street):
    bad = [
        (dict(points=0), "points"),
        (dict(category="gossip"), "category"),
        (dict(unit="week"), "unit"),
        (dict(daily_cap=10, monthly_cap=5), "daily_cap"),
        (dict(titles=["king"]), "titles"),
        (dict(name_zh=" "), "name_zh"),
        (dict(active_from=local_today(), active_to=yesterday()), "active_to"),
    ]
    for overrides, field in bad:
        with pytest.raises(InvalidInput) as exc:
            rules.create_rule(street.street_admin, street.street, rule_terms(**overrides))
        assert exc.value.field == field, overrides
        db.session.rollback()


def test_only_admins_over_a_node_define_its_rules(street):
    with pytest.raises(NotFound):
        rules.create_rule(street.admin_a, street.community_b, rule_terms())
    db.session.rollback()
    with pytest.raises(Forbidden):
        rules.create_rule(street.staff_a, street.grid_a, rule_terms())
    db.session.rollback()
    with pytest.raises(NotFound):
        rules.update_rule(street.admin_a, street.meeting.id, rule_terms(points=99))  # defined at the street
    db.session.rollback()
    assert street.meeting.current.points == 10


# --- which rules apply -----------------------------------------------------------------------


def test_a_rule_for_some_titles_refuses_other_volunteers(street, check_ledger):
    rule = make_rule(street, name_zh="楼栋巡查", name_en="Building check", titles=["building_leader"])
    with pytest.raises(RuleNotApplicable) as exc:
        claims.submit_claim(street.vol_a, rule_id=rule.id, activity_date=yesterday())  # a unit leader
    with force_locale("en"):
        assert "title" in exc.value.message
    db.session.rollback()
    assert claim(street.vol_a2, rule).points_requested == 10  # a building leader
    assert [v.rule_id for v in rules.rules_for_volunteer(street.vol_a, yesterday())].count(rule.id) == 0
    assert rule.id in [v.rule_id for v in rules.rules_for_volunteer(street.vol_a2, yesterday())]


def test_a_rule_applies_only_between_its_active_dates(street):
    today = local_today()
    rule = make_rule(street, name_zh="防汛值守", name_en="Flood duty", active_from=today - timedelta(days=10), active_to=today - timedelta(days=5))
    for day in (today - timedelta(days=11), today - timedelta(days=4)):
        with pytest.raises(RuleNotApplicable):
            claims.submit_claim(street.vol_a, rule_id=rule.id, activity_date=day)
        db.session.rollback()
    assert claim(street.vol_a, rule, day=today - timedelta(days=10)).status == "pending"
    assert claim(street.vol_a, rule, day=today - timedelta(days=5)).status == "pending"


def test_a_rule_of_another_community_is_refused(street):
    rule = make_rule(street, at=street.community_b, name_zh="友谊社区议事", name_en="B council")
    with pytest.raises(RuleNotApplicable):
        claims.submit_claim(street.vol_a, rule_id=rule.id, activity_date=yesterday())
    db.session.rollback()
    assert claim(street.vol_b, rule).volunteer_id == street.vol_b.id
    assert rule.id not in [r.id for r in rules.rules_for_unit(street.unit_a)]


def test_a_rule_needing_evidence_refuses_a_claim_without_it(street):
    rule = make_rule(street, name_zh="排查隐患", name_en="Hazard check", category="safety", requires_note=True, requires_photo=True)
    with pytest.raises(InvalidInput) as exc:
        claims.submit_claim(street.vol_a, rule_id=rule.id, activity_date=yesterday(), note="  ", photo_name="a.jpg")
    assert exc.value.field == "note"
    db.session.rollback()
    with pytest.raises(InvalidInput) as exc:
        claims.submit_claim(street.vol_a, rule_id=rule.id, activity_date=yesterday(), note="3号楼楼道堆物")
    assert exc.value.field == "photo"
    db.session.rollback()
    act = claim(street.vol_a, rule, note="3号楼楼道堆物", photo_name="abc.jpg")
    assert (act.note, act.photo_path) == ("3号楼楼道堆物", "abc.jpg")


def test_a_claim_for_a_future_date_or_too_long_ago_is_refused(street):
    for day in (local_today() + timedelta(days=1), local_today() - timedelta(days=claims.CLAIM_MAX_AGE_DAYS + 1)):
        with pytest.raises(InvalidInput) as exc:
            claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=day)
        assert exc.value.field == "activity_date"
        db.session.rollback()
    assert claim(street.vol_a, street.meeting, day=local_today()).status == "pending"


def test_an_unknown_rule_is_refused_as_a_form_error(street):
    with pytest.raises(InvalidInput) as exc:
        claims.submit_claim(street.vol_a, rule_id=99999, activity_date=yesterday())
    assert exc.value.field == "rule_id"
    db.session.rollback()


def test_a_deactivated_volunteer_cannot_claim(street):
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    with pytest.raises(AccountInactive):
        claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.rollback()


def test_a_claim_of_a_volunteer_deactivated_before_approval_is_not_credited(street, check_ledger):
    pending = claim(street.vol_a, street.meeting)
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    with pytest.raises(VolunteerInactive) as exc:
        claims.approve_claim(street.staff_a, pending.id)
    db.session.rollback()
    assert "reactivate" in exc.value.message
    assert db.session.get(Activity, pending.id).status == "pending"
    assert balance(street.vol_a).earned == 0
    # Rejecting it is still possible, so the queue can be cleared.
    claims.reject_claim(street.staff_a, pending.id, "账户已停用")
    db.session.commit()
    check_ledger()


def test_the_same_claim_form_submitted_twice_is_recorded_once(street):
    claim(street.vol_a, street.meeting, submission_key="form-1")
    with pytest.raises(AlreadyRecorded):
        claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday(), submission_key="form-1")
    db.session.rollback()
    assert db.session.query(Activity).count() == 1


# --- deciding claims -------------------------------------------------------------------------


def test_a_claim_needing_no_approval_is_credited_at_once(street, check_ledger):
    rule = make_rule(street, name_zh="反映情况", name_en="Report", category="reporting", points=3, needs_approval=False)
    act = claim(street.vol_a, rule)
    assert act.status == "approved" and act.points_credited == 3
    assert balance(street.vol_a).balance == 3
    check_ledger()


def test_a_claim_of_someone_who_verifies_claims_there_waits_for_another_verifier(street, check_ledger):
    # A community admin who volunteers defines a rule that needs no approval and claims it.
    people.grant_role(street.street_admin, street.admin_a, ROLE_VOLUNTEER, unit=street.community_a)
    db.session.commit()
    rule = make_rule(street, at=street.community_a, name_zh="巡楼", name_en="Walk", category="patrol", points=500,
                     needs_approval=False)
    act = claim(street.admin_a, rule)
    assert (act.status, act.points_credited) == ("pending", 0)
    assert balance(street.admin_a).balance == 0
    with pytest.raises(Forbidden):
        approve(street.admin_a, act)
    db.session.rollback()
    # A volunteer of the same community is credited at once; the admin's claim by another verifier.
    assert claim(street.vol_a, rule).status == "approved"
    assert approve(street.street_admin, act).status == "approved"
    assert balance(street.admin_a).balance == 500
    check_ledger()


def test_a_claim_waits_for_approval_before_any_points_move(street, check_ledger):
    act = claim(street.vol_a, street.meeting)
    assert act.status == "pending" and balance(street.vol_a).balance == 0
    act = approve(street.staff_a, act)
    assert act.status == "approved" and act.decided_by_id == street.staff_a.id and act.decided_at is not None
    assert balance(street.vol_a).earned == 10
    check_ledger()


def approve_watching(staff, act, listener):
    """Approve ``act`` as ``staff`` in a fresh session, as an API request would (the approver and
    their grants loaded, nothing else), with ``listener`` on every statement sent; commit."""
    from sqlalchemy import event

    from pointsapp.models import User

    act_id, staff_id = act.id, staff.id
    db.session.expunge_all()
    staff = db.session.get(User, staff_id)
    staff.roles  # the approver's own grants, as authentication loads them
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        done = claims.approve_claim(staff, act_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    db.session.commit()
    return done


def test_approving_reads_the_claim_with_its_node_rule_and_volunteer_at_once(street, check_ledger):
    """One statement loads the activity, its node (scope), rule version and volunteer (active?);
    the volunteer's role grants are not read."""
    from pointsapp.models import User

    act = claim(street.vol_a, street.meeting)
    tables = []

    def keep(conn, cur, statement, params, ctx, many):
        found = re.match(r"SELECT\b.*?\sFROM\s+(\w+)", statement, re.S)
        if found:
            tables.append(found.group(1))

    done = approve_watching(street.staff_a, act, keep)
    assert done.status == "approved"
    assert tables[0] == "activity"  # the claim, with its node, rule version and volunteer joined
    assert "role_grant" not in tables and "point_rule_version" not in tables and "user_account" not in tables
    assert balance(db.session.get(User, done.volunteer_id)).earned == 10
    check_ledger()


def test_an_approval_writes_its_credit_in_few_statements(street, check_ledger):
    """On PostgreSQL, crediting an approved claim debits the street's issuance account and
    writes the transfer, its two entries, its lot and the volunteer's monthly total in one
    statement, finds, draws on and charges the budget in one, and appends the audit record with
    the chain head in one. SQLite runs them one by one. The same rows are written either way."""
    from sqlalchemy import func, select

    from pointsapp.domain import budgets
    from pointsapp.models import AccountMonth, AuditRecord, BudgetCharge, Entry, PointLot, Transfer, User

    budgets.record_funding(street.street_admin, street.street, fen=10_000, source="partner",
                           funded_on=local_today(), note=None, key="fund-1")
    approve(street.street_admin, claim(street.vol_b, street.meeting))  # the street's first credit makes its issuance account
    act = claim(street.vol_a, street.meeting)
    db.session.commit()
    act_id = act.id
    seen = []
    done = approve_watching(
        street.staff_a, act, lambda conn, cur, statement, params, ctx, many: seen.append(" ".join(statement.split()[:3]))
    )
    assert (done.status, done.points_credited) == ("approved", 10)
    if db.engine.dialect.name == "postgresql":
        assert len(seen) == 12, "\n".join(seen)
        assert [s for s in seen if s.startswith("WITH")] == [
            "WITH debit AS", "WITH found AS", 'WITH "then" AS',  # the credit, the budget, the audit
        ]
        # The issuance account, which every credit of the street updates, is locked by the
        # last statements of the transaction: the credit, the budget's charge, the yearly
        # totals and the audit record.
        assert seen[seen.index("WITH debit AS"):] == [
            "WITH debit AS", "WITH found AS", "INSERT INTO volunteer_year",
            "SELECT audit_chain_head.seq, audit_chain_head.hash", 'WITH "then" AS',
        ]
        assert not any(s.startswith(("INSERT INTO entry", "INSERT INTO point_lot", "INSERT INTO account_month",
                                     "INSERT INTO budget_charge", "UPDATE audit_chain_head")) for s in seen)
    [transfer] = db.session.scalars(select(Transfer).where(Transfer.activity_id == act_id))
    assert sorted(db.session.scalars(select(Entry.amount).where(Entry.transfer_id == transfer.id))) == [-10, 10]
    lot = db.session.scalar(select(PointLot).where(PointLot.transfer_id == transfer.id))
    assert (lot.amount, lot.remaining, lot.earned_on) == (10, 10, done.activity_date)
    assert db.session.scalar(select(func.sum(AccountMonth.amount)).where(AccountMonth.account_id == transfer.to_account_id)) == 10
    assert db.session.scalar(select(BudgetCharge.points).where(BudgetCharge.transfer_id == transfer.id)) == 10
    record = db.session.scalar(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1))
    assert (record.action, record.target_id) == ("claim.approved", act_id)
    assert balance(db.session.get(User, done.volunteer_id)).balance == 10
    check_ledger()


def test_approving_twice_is_refused_and_credits_once(street, check_ledger):
    act = approve(street.staff_a, claim(street.vol_a, street.meeting))
    before = ledger_state()
    with pytest.raises(AlreadyDecided) as exc:
        claims.approve_claim(street.admin_a, act.id)
    with force_locale("en"):
        assert str(exc.value.params["status"]) == "approved"
    db.session.rollback()
    assert ledger_state() == before
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_a_rejection_needs_a_reason_the_volunteer_sees(street, check_ledger):
    act = claim(street.vol_a, street.meeting)
    with pytest.raises(InvalidInput) as exc:
        claims.reject_claim(street.staff_a, act.id, " ")
    assert exc.value.field == "reason"
    db.session.rollback()
    assert db.session.get(Activity, act.id).status == "pending"
    claims.reject_claim(street.staff_a, act.id, "会议当天未签到 not signed in")
    db.session.commit()
    act = db.session.get(Activity, act.id)
    assert (act.status, act.reject_reason) == ("rejected", "会议当天未签到 not signed in")
    with pytest.raises(AlreadyDecided):
        claims.approve_claim(street.staff_a, act.id)
    db.session.rollback()
    assert balance(street.vol_a).balance == 0
    check_ledger()


def test_staff_cannot_approve_their_own_claim(street, check_ledger):
    both = person("both_roles", street.grid_a, roles=(ROLE_VOLUNTEER, ROLE_GRID_STAFF), title="resident")
    db.session.commit()
    act = claim(both, street.meeting)
    with pytest.raises(Forbidden):
        claims.approve_claim(both, act.id)
    db.session.rollback()
    with pytest.raises(Forbidden):
        claims.reject_claim(both, act.id, "nope")
    db.session.rollback()
    assert db.session.get(Activity, act.id).status == "pending"
    assert approve(street.staff_a, act).status == "approved"  # a colleague may
    check_ledger()


def test_staff_of_one_community_cannot_decide_claims_of_another(street):
    act = claim(street.vol_b, street.meeting)
    for outsider in (street.staff_a, street.admin_a):
        with pytest.raises(NotFound):
            claims.approve_claim(outsider, act.id)
        db.session.rollback()
        with pytest.raises(NotFound):
            claims.reject_claim(outsider, act.id, "not my grid")
        db.session.rollback()
    assert db.session.get(Activity, act.id).status == "pending"
    assert balance(street.vol_b).balance == 0
    assert approve(street.staff_b, act).status == "approved"


def test_a_volunteer_cannot_approve_claims(street):
    act = claim(street.vol_a, street.meeting)
    with pytest.raises(NotFound):
        claims.approve_claim(street.vol_a2, act.id)
    db.session.rollback()


def test_the_approval_queue_shows_only_pending_claims_in_the_staffs_subtree(street):
    a = claim(street.vol_a, street.meeting)
    a2 = claim(street.vol_a2, street.meeting)
    b = claim(street.vol_b, street.meeting)
    approve(street.staff_a, a2)

    def queue(actor):
        return [x.id for x in db.session.scalars(claims.pending_claims_query(actor))]

    assert queue(street.staff_a) == [a.id]
    assert queue(street.admin_b) == [b.id]
    assert queue(street.street_admin) == [a.id, b.id]
    assert queue(street.vol_a) == []
    assert queue(street.cashier) == []


# --- recorded attendance ---------------------------------------------------------------------


def test_recording_a_meeting_credits_each_attendee_once(street, check_ledger):
    extra = [person(f"att{i}", street.unit_a, title="resident") for i in range(5)]
    db.session.commit()
    ids = [street.vol_a.id, street.vol_a2.id] + [v.id for v in extra]
    acts = claims.record_attendance(
        street.staff_a, rule_id=street.meeting.id, activity_date=yesterday(),
        volunteer_ids=ids + [street.vol_a.id], batch_key="meeting-0601", note="楼栋长例会",
    )
    db.session.commit()
    assert sorted(a.volunteer_id for a in acts) == sorted(ids)
    assert all(a.status == "approved" and a.source == "recorded" and a.points_credited == 10 for a in acts)
    for v in [street.vol_a, street.vol_a2, *extra]:
        assert balance(v).balance == 10
    check_ledger()


def test_the_same_attendance_batch_twice_is_refused_and_records_nothing_more(street, check_ledger):
    kw = dict(rule_id=street.meeting.id, activity_date=yesterday(), volunteer_ids=[street.vol_a.id, street.vol_a2.id], batch_key="meeting-0602")
    claims.record_attendance(street.staff_a, **kw)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(AlreadyRecorded):
        claims.record_attendance(street.staff_a, **kw)
    db.session.rollback()
    with pytest.raises(AlreadyRecorded):
        claims.record_attendance(street.staff_a, **{**kw, "volunteer_ids": [street.vol_a2.id]})
    db.session.rollback()
    assert ledger_state() == before
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_recording_attendance_for_a_deactivated_volunteer_is_refused(street):
    people.set_active(street.admin_a, street.vol_a2.id, False)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(InvalidInput) as exc:
        claims.record_attendance(
            street.staff_a, rule_id=street.meeting.id, activity_date=yesterday(),
            volunteer_ids=[street.vol_a.id, street.vol_a2.id], batch_key="meeting-0603",
        )
    assert exc.value.field == "volunteer_ids" and "刘建国" in exc.value.message
    db.session.rollback()
    assert ledger_state() == before


def test_recording_attendance_for_a_volunteer_outside_the_staffs_grid_is_refused(street):
    before = ledger_state()
    with pytest.raises(NotFound):
        claims.record_attendance(
            street.staff_a, rule_id=street.meeting.id, activity_date=yesterday(),
            volunteer_ids=[street.vol_a.id, street.vol_b.id], batch_key="meeting-0604",
        )
    db.session.rollback()
    with pytest.raises(NotFound):
        claims.record_attendance(
            street.staff_a, rule_id=street.meeting.id, activity_date=yesterday(),
            volunteer_ids=[999999], batch_key="meeting-0605",
        )
    db.session.rollback()
    assert ledger_state() == before


def test_only_staff_record_attendance(street):
    for actor in (street.vol_a, street.cashier):
        with pytest.raises(Forbidden):
            claims.record_attendance(
                actor, rule_id=street.meeting.id, activity_date=yesterday(),
                volunteer_ids=[street.vol_a2.id], batch_key="meeting-0606",
            )
        db.session.rollback()
    assert balance(street.vol_a2).balance == 0


def test_recorded_attendance_respects_the_rules_titles(street):
    rule = make_rule(street, name_zh="楼长例会", name_en="Building leaders", titles=["building_leader"])
    with pytest.raises(InvalidInput) as exc:
        claims.record_attendance(
            street.staff_a, rule_id=rule.id, activity_date=yesterday(),
            volunteer_ids=[street.vol_a.id, street.vol_a2.id], batch_key="meeting-0607",
        )
    assert "张秀华" in exc.value.message
    db.session.rollback()
    assert balance(street.vol_a2).balance == 0
