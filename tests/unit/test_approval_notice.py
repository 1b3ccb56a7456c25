"""Several verifiers per claim (N of M votes) and public notice (公示) with objections."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pointsapp.domain import audit, claims, notice, rules
from pointsapp.domain.clock import now_utc
from pointsapp.domain.errors import (
    AlreadyDecided,
    AlreadyVoted,
    Forbidden,
    InvalidInput,
    NotFound,
)
from pointsapp.extensions import db
from pointsapp.models import Activity, ApprovalVote, AuditRecord, NoticeObjection, Transfer, User
from pointsapp.models.user import ROLE_GRID_STAFF, ROLE_VOLUNTEER
from tests.conftest import run_in_parallel
from tests.factories import balance, person, rule_terms, yesterday


def brave_rule(s, n=2):
    rule = rules.create_rule(
        s.street_admin, s.street,
        rule_terms(name_zh="见义勇为", name_en="Brave deed", category="brave_deed", points=50, approvals_required=n),
    )
    db.session.commit()
    return rule


def claim(s, rule, who=None):
    act = claims.submit_claim(who or s.vol_a, rule_id=rule.id, activity_date=yesterday(), note="救人")
    db.session.commit()
    return act


def credits(act_id) -> int:
    return db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.activity_id == act_id))


def actions(act_id) -> list[str]:
    return list(db.session.scalars(
        select(AuditRecord.action).where(AuditRecord.target_type == "activity", AuditRecord.target_id == act_id)
        .order_by(AuditRecord.seq)
    ))


def notice_on(s, days=7, unit=None):
    notice.set_notice_days(s.admin_a, unit or s.community_a, days)
    db.session.commit()


# --- votes ------------------------------------------------------------------------------------


def test_two_of_three_the_first_vote_waits_the_second_credits_the_third_is_told(street, check_ledger):
    act = claim(street, brave_rule(street))
    claims.approve_claim(street.staff_a, act.id, comment="看到了现场照片")
    db.session.commit()
    assert act.status == "pending" and credits(act.id) == 0 and balance(street.vol_a).balance == 0
    assert actions(act.id) == [audit.CLAIM_VOTED]
    assert claims.approvals_of(act.id) == 1

    claims.approve_claim(street.admin_a, act.id)
    db.session.commit()
    assert act.status == "approved" and act.points_credited == 50 and credits(act.id) == 1
    assert balance(street.vol_a).balance == 50
    assert actions(act.id) == [audit.CLAIM_VOTED, audit.CLAIM_APPROVED]

    with pytest.raises(AlreadyDecided) as exc:
        claims.approve_claim(street.street_admin, act.id)
    db.session.rollback()
    assert "already" in exc.value.message
    assert db.session.scalar(select(func.count()).select_from(ApprovalVote)) == 2
    check_ledger()


def test_a_verifier_votes_once_and_is_told_so(street, check_ledger):
    act = claim(street, brave_rule(street))
    claims.approve_claim(street.staff_a, act.id)
    db.session.commit()
    with pytest.raises(AlreadyVoted) as exc:
        claims.approve_claim(street.staff_a, act.id)
    db.session.rollback()
    assert "already voted" in exc.value.message and "approved" in exc.value.message  # says what the vote was
    with pytest.raises(AlreadyVoted):
        claims.reject_claim(street.staff_a, act.id, "再想想")
    db.session.rollback()
    assert db.session.get(Activity, act.id).status == "pending"
    assert db.session.scalar(select(func.count()).select_from(ApprovalVote)) == 1
    check_ledger()


def test_a_verifier_cannot_vote_on_their_own_claim(street):
    both = person("both", street.grid_a, roles=(ROLE_VOLUNTEER, ROLE_GRID_STAFF), title="unit_leader")
    db.session.commit()
    act = claim(street, brave_rule(street), who=both)
    with pytest.raises(Forbidden):
        claims.approve_claim(both, act.id)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ApprovalVote)) == 0


def test_a_verifier_outside_the_subtree_cannot_vote(street):
    act = claim(street, brave_rule(street))
    with pytest.raises(NotFound):
        claims.approve_claim(street.staff_b, act.id)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ApprovalVote)) == 0


def test_one_rejection_vote_with_a_reason_rejects_the_claim(street, check_ledger):
    act = claim(street, brave_rule(street))
    claims.approve_claim(street.staff_a, act.id)
    db.session.commit()
    with pytest.raises(InvalidInput):
        claims.reject_claim(street.admin_a, act.id, " ")
    db.session.rollback()
    claims.reject_claim(street.admin_a, act.id, "现场无人证实")
    db.session.commit()
    act = db.session.get(Activity, act.id)
    assert act.status == "rejected" and act.reject_reason == "现场无人证实" and credits(act.id) == 0
    decisions = db.session.scalars(select(ApprovalVote.decision).order_by(ApprovalVote.id)).all()
    assert decisions == ["approve", "reject"]
    with pytest.raises(AlreadyDecided):
        claims.approve_claim(street.street_admin, act.id)
    db.session.rollback()
    check_ledger()


def test_a_rule_term_outside_one_to_five_approvals_is_refused(street):
    with pytest.raises(InvalidInput) as exc:
        rules.create_rule(street.street_admin, street.street, rule_terms(approvals_required=6))
    assert exc.value.field == "approvals_required"
    db.session.rollback()


# --- public notice ------------------------------------------------------------------------------


def test_notice_is_set_on_a_community_by_its_admins(street):
    with pytest.raises(InvalidInput):
        notice.set_notice_days(street.admin_a, street.grid_a, 7)
    db.session.rollback()
    with pytest.raises(InvalidInput):
        notice.set_notice_days(street.admin_a, street.community_a, 16)
    db.session.rollback()
    with pytest.raises(NotFound):
        notice.set_notice_days(street.admin_b, street.community_a, 7)
    db.session.rollback()
    with pytest.raises(Forbidden):
        notice.set_notice_days(street.staff_a, street.community_a, 7)
    db.session.rollback()
    notice_on(street, 5)
    assert notice.notice_days_for(street.unit_a) == 5 and notice.notice_days_for(street.building_b) is None
    notice.set_notice_days(street.street_admin, street.community_a, 0)
    db.session.commit()
    assert notice.notice_days_for(street.unit_a) is None


def test_with_notice_on_an_approved_claim_is_posted_not_credited(street, check_ledger):
    notice_on(street, 7)
    act = claim(street, brave_rule(street, 1))
    before = now_utc()
    claims.approve_claim(street.staff_a, act.id)
    db.session.commit()
    act = db.session.get(Activity, act.id)
    assert act.status == "on_notice" and act.points_credited == 0 and credits(act.id) == 0
    assert timedelta(days=7) <= act.notice_until - before < timedelta(days=7, minutes=1)
    assert balance(street.vol_a).balance == 0
    assert act in notice.public_notices()
    # Community B has no notice: its volunteers are credited at once.
    other = claim(street, street.meeting, who=street.vol_b)
    claims.approve_claim(street.staff_b, other.id)
    db.session.commit()
    assert db.session.get(Activity, other.id).status == "approved"
    check_ledger()


def test_recorded_attendance_goes_on_notice_too(street, check_ledger):
    notice_on(street, 3)
    acts = claims.record_attendance(
        street.admin_a, rule_id=street.meeting.id, activity_date=yesterday(),
        volunteer_ids=[street.vol_a.id, street.vol_a2.id], batch_key="notice-batch",
    )
    db.session.commit()
    assert {a.status for a in acts} == {"on_notice"} and balance(street.vol_a).balance == 0
    check_ledger()


def on_notice(s, days=7):
    notice_on(s, days)
    act = claim(s, s.meeting)
    claims.approve_claim(s.staff_a, act.id)
    db.session.commit()
    return db.session.get(Activity, act.id)


def test_an_upheld_objection_withholds_the_activity_for_good(street, check_ledger):
    act = on_notice(street)
    objection = notice.file_objection(act.id, "那天会议她没来", contact="13800000000")
    db.session.commit()
    notice.resolve_objection(street.admin_a, objection.id, uphold=True, note="核实：未参加会议")
    db.session.commit()
    act = db.session.get(Activity, act.id)
    assert act.status == "withheld" and act.reject_reason == "核实：未参加会议"
    later = act.notice_until + timedelta(days=1)
    assert notice.due_notice_ids(later) == [] and notice.publish_one(act.id, later) is False
    db.session.commit()
    assert credits(act.id) == 0 and balance(street.vol_a).balance == 0
    with pytest.raises(NotFound):
        notice.file_objection(act.id, "再提一次")
    db.session.rollback()
    check_ledger()


def test_a_dismissed_objection_lets_it_be_credited_after_the_window(street, check_ledger):
    act = on_notice(street)
    objection = notice.file_objection(act.id, "不确定")
    db.session.commit()
    after = act.notice_until + timedelta(seconds=1)
    assert notice.due_notice_ids(after) == []  # an open objection holds it back
    notice.resolve_objection(street.staff_a, objection.id, uphold=False)
    db.session.commit()
    assert db.session.get(Activity, act.id).status == "on_notice"  # the window is still open
    assert notice.publish_one(act.id, after) is True
    db.session.commit()
    act = db.session.get(Activity, act.id)
    assert act.status == "approved" and act.points_credited == 10 and credits(act.id) == 1
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_dismissing_the_last_objection_after_the_window_credits_at_once(street, check_ledger):
    act = on_notice(street)
    first = notice.file_objection(act.id, "有疑问")
    second = notice.file_objection(act.id, "我也有疑问", filed_by=street.admin_a)
    db.session.commit()
    after = act.notice_until + timedelta(hours=1)
    notice.resolve_objection(street.admin_a, first.id, uphold=False, now=after)
    db.session.commit()
    assert db.session.get(Activity, act.id).status == "on_notice"  # one still open
    notice.resolve_objection(street.admin_a, second.id, uphold=False, note="已核实", now=after)
    db.session.commit()
    assert db.session.get(Activity, act.id).status == "approved" and balance(street.vol_a).balance == 10
    check_ledger()


def test_the_window_boundary(street, check_ledger):
    act = on_notice(street)
    until = act.notice_until
    assert notice.due_notice_ids(until - timedelta(seconds=1)) == []
    assert notice.publish_one(act.id, until - timedelta(seconds=1)) is False
    db.session.commit()
    assert credits(act.id) == 0
    # Objections are taken until the end and not after it.
    with pytest.raises(NotFound):
        notice.file_objection(act.id, "太晚了", now=until)
    db.session.rollback()
    assert notice.due_notice_ids(until) == [act.id]
    assert notice.publish_one(act.id, until) is True
    db.session.commit()
    assert notice.publish_one(act.id, until) is False  # idempotent
    db.session.commit()
    assert credits(act.id) == 1
    check_ledger()


def test_an_objection_without_a_reason_is_refused_and_nothing_is_written(street):
    act = on_notice(street)
    records = db.session.scalar(select(func.count()).select_from(AuditRecord))
    for bad in ("", "   ", "x"):
        with pytest.raises(InvalidInput) as exc:
            notice.file_objection(act.id, bad)
        assert exc.value.field == "reason"
        db.session.rollback()
    with pytest.raises(InvalidInput):
        notice.file_objection(act.id, "理由充分", contact="1" * 101)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(NoticeObjection)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditRecord)) == records


def test_only_staff_over_the_volunteer_resolve_objections(street):
    act = on_notice(street)
    objection = notice.file_objection(act.id, "有疑问")
    db.session.commit()
    for outsider in (street.staff_b, street.admin_b, street.vol_a, street.cashier):
        with pytest.raises(NotFound):
            notice.resolve_objection(outsider, objection.id, uphold=True, note="不行")
        db.session.rollback()
    with pytest.raises(InvalidInput):
        notice.resolve_objection(street.staff_a, objection.id, uphold=True, note="")
    db.session.rollback()
    assert db.session.get(NoticeObjection, objection.id).status == "open"
    notice.resolve_objection(street.staff_a, objection.id, uphold=False)
    db.session.commit()
    from pointsapp.domain.errors import ObjectionResolved

    with pytest.raises(ObjectionResolved):
        notice.resolve_objection(street.admin_a, objection.id, uphold=True, note="改判")
    db.session.rollback()


def test_the_publish_command_credits_due_activities_once(street, runner, check_ledger, monkeypatch):
    from pointsapp.domain import clock

    act = on_notice(street)
    when = (act.notice_until + timedelta(minutes=1)).isoformat()
    # While the notice runs, a time after it is refused: nothing is credited before objections close.
    early = runner.invoke(args=["points", "publish-notices", "--now", when])
    assert early.exit_code == 2 and "in the future" in early.output
    assert runner.invoke(args=["points", "publish-notices", "--now", "soon"]).exit_code == 2
    assert credits(act.id) == 0
    # Once that time has come.
    monkeypatch.setattr(clock, "now_utc", lambda: act.notice_until + timedelta(minutes=2))
    result = runner.invoke(args=["points", "publish-notices", "--now", when])
    assert result.exit_code == 0, result.output
    assert "credited 1 activity" in result.output
    result = runner.invoke(args=["points", "publish-notices", "--now", when])
    assert "credited 0 activities" in result.output
    db.session.expire_all()
    assert credits(act.id) == 1 and balance(street.vol_a).balance == 10
    check_ledger()


# --- races --------------------------------------------------------------------------------------


def test_two_last_votes_at_the_same_moment_credit_the_claim_once(app, street, check_ledger):
    act = claim(street, brave_rule(street))
    claims.approve_claim(street.staff_a, act.id)
    db.session.commit()
    act_id, voters = act.id, [street.admin_a.id, street.street_admin.id]

    def vote(i):
        claims.approve_claim(db.session.get(User, voters[i]), act_id)
        db.session.commit()

    db.session.commit()  # the main thread holds no transaction (SQLite's write lock) in the race
    results = run_in_parallel(app, 2, vote)
    db.session.expire_all()
    outcomes = sorted("ok" if r is None else type(r).__name__ for r in results)
    assert outcomes == ["AlreadyDecided", "ok"], results
    assert credits(act_id) == 1 and balance(street.vol_a).balance == 50
    check_ledger()


def test_two_publish_runs_at_the_same_moment_credit_once(app, street, check_ledger):
    notice_on(street, 2)
    acts = claims.record_attendance(
        street.admin_a, rule_id=street.meeting.id, activity_date=yesterday(),
        volunteer_ids=[street.vol_a.id, street.vol_a2.id], batch_key="race-batch",
    )
    db.session.commit()
    later = acts[0].notice_until + timedelta(minutes=5)
    ids = [a.id for a in acts]

    def publish(i):
        done = 0
        for activity_id in notice.due_notice_ids(later) or ids:
            done += notice.publish_one(activity_id, later)
            db.session.commit()
        return done

    db.session.commit()
    results = run_in_parallel(app, 2, publish)
    db.session.expire_all()
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 2
    assert [credits(i) for i in ids] == [1, 1]
    check_ledger()
