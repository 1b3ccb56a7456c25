"""Approving many claims at once: each ends as approving them one by one would leave it, or
none is approved."""
import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pointsapp.domain import budgets, claims, ledger, notice, people, rules
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.domain.errors import (
    AlreadyDecided,
    AlreadyVoted,
    BudgetExhausted,
    Forbidden,
    InvalidInput,
    NotFound,
    VolunteerInactive,
)
from pointsapp.extensions import db
from pointsapp.models import (
    AccountMonth,
    Activity,
    ApprovalVote,
    AuditRecord,
    BudgetCharge,
    Entry,
    PointLot,
    Transfer,
)
from pointsapp.models.rules import VolunteerYear
from tests.factories import balance, person, rule_terms, yesterday
from tests.unit.helpers import ledger_state


def claim(volunteer, rule, day=None, **kw):
    act = claims.submit_claim(volunteer, rule_id=rule.id, activity_date=day or yesterday(), **kw)
    db.session.commit()
    return act


def outcome(ids: list[int], actor_id: int) -> dict:
    """Everything approving ``ids`` writes, read back without the ids that differ between two
    runs of the same approvals (transfers, entries, lots and audit records are numbered anew)."""
    db.session.expire_all()

    def rows(stmt):
        return sorted(tuple(r) for r in db.session.execute(stmt))

    credit = Transfer.activity_id.in_(ids)
    return {
        "activities": rows(select(Activity.id, Activity.status, Activity.points_credited, Activity.cap_note,
                                  Activity.notice_until, Activity.decided_by_id).where(Activity.id.in_(ids))),
        "transfers": rows(select(Transfer.activity_id, Transfer.kind, Transfer.amount, Transfer.from_account_id,
                                 Transfer.to_account_id, Transfer.reason, Transfer.cause_key).where(credit)),
        "entries": rows(select(Transfer.activity_id, Entry.account_id, Entry.amount)
                        .join(Transfer, Transfer.id == Entry.transfer_id).where(credit)),
        "lots": rows(select(Transfer.activity_id, PointLot.account_id, PointLot.amount, PointLot.remaining,
                            PointLot.earned_on, PointLot.expires_on)
                     .join(Transfer, Transfer.id == PointLot.transfer_id).where(credit)),
        "charges": rows(select(Transfer.activity_id, BudgetCharge.budget_id, BudgetCharge.points)
                        .join(Transfer, Transfer.id == BudgetCharge.transfer_id).where(credit)),
        "votes": rows(select(ApprovalVote.activity_id, ApprovalVote.voter_id, ApprovalVote.decision)
                      .where(ApprovalVote.activity_id.in_(ids))),
        "audit": rows(select(AuditRecord.action, AuditRecord.target_id, AuditRecord.summary, AuditRecord.org_path)
                      .where(AuditRecord.actor_id == actor_id, AuditRecord.target_type == "activity")),
        "accounts": ledger_state()["accounts"],
        "months": rows(select(*AccountMonth.__table__.c)),
        "years": rows(select(*VolunteerYear.__table__.c)),
    }


def both_ways(actor, ids: list[int]) -> tuple[dict, dict]:
    """Approve ``ids`` all at once, then (after rolling that back) one by one in id order, each in
    the same transaction as the others; return what each wrote. Every claim must be approvable."""
    actor_id, now = actor.id, now_utc()
    # The street's issuance account, made by its first credit, is made here, outside both runs:
    # on PostgreSQL a rolled-back insert still uses up its id.
    ledger.issuance_account(db.session.get(Activity, ids[0]).org_unit)
    db.session.commit()
    claims.approve_claims(actor, ids, now=now)
    db.session.flush()
    together = outcome(ids, actor_id)
    db.session.rollback()
    for i in sorted(ids):
        claims.approve_claim(actor, i, now=now)
    db.session.flush()
    one_by_one = outcome(ids, actor_id)
    db.session.rollback()
    return together, one_by_one


def test_many_claims_approved_at_once_end_as_approved_one_by_one(street, check_ledger):
    """Caps counting the batch's earlier claims, two claims of one volunteer, a volunteer without
    an account, a rule needing two votes (one reached, one not), a community on public notice,
    a funded budget: the same rows either way."""
    s = street
    budgets.record_funding(s.street_admin, s.street, fen=100_000, source="partner", funded_on=local_today(),
                           note=None, key="fund-1")
    two_votes = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh="见义勇为", name_en="Brave deed", category="brave_deed", points=50, approvals_required=2))
    mediation = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh="调解纠纷", name_en="Mediation", category="mediation", points=10, monthly_cap=25))
    notice.set_notice_days(s.admin_b, s.community_b, 5)
    db.session.commit()
    day1, day2 = yesterday() - timedelta(days=1), yesterday()
    acts = [
        claim(s.vol_a, s.patrol, hours="3"),            # 6 of the daily cap's 8
        claim(s.vol_a, s.patrol, hours="2"),            # 4 asked, 2 left that day
        claim(s.vol_a, s.patrol, day=day1, hours="1"),  # another day
        claim(s.vol_a2, s.meeting),
        claim(s.vol_a2, mediation, day=day1),
        claim(s.vol_a2, mediation, day=day2),
        claim(s.vol_a2, mediation, day=day2, note="again"),  # 25 a month: 5 of 10
        claim(s.vol_b, s.meeting),                      # community B: on notice
    ]
    voted = claim(s.vol_a, two_votes)
    claims.approve_claim(s.staff_a, voted.id)  # one vote of two: this one decides it
    waiting = claim(s.vol_a2, two_votes)        # this one gets its first
    db.session.commit()
    ids = [a.id for a in acts] + [voted.id, waiting.id]

    together, one_by_one = both_ways(s.street_admin, ids)
    for key in together:
        assert together[key] == one_by_one[key], key
    status = {i: st for i, st, *_ in together["activities"]}
    assert status[voted.id] == "approved" and status[waiting.id] == "pending"
    assert status[acts[-1].id] == "on_notice"
    credited = {i: p for i, _, p, *_ in together["activities"]}
    assert [credited[a.id] for a in acts] == [6, 2, 2, 10, 10, 10, 5, 0]
    assert len(together["charges"]) == 8 and len(together["lots"]) == 8  # with the brave deed's 50

    done = claims.approve_claims(s.street_admin, ids)
    db.session.commit()
    assert [a.id for a in done] == sorted(ids)
    assert balance(s.vol_a).balance == 6 + 2 + 2 + 50 and balance(s.vol_a2).balance == 10 + 25
    check_ledger()


_serial = itertools.count()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 3),
                                st.sampled_from(["1", "2.5", "4"])), min_size=1, max_size=12))
def test_any_mix_of_claims_approved_at_once_ends_as_one_by_one(street, picks):
    """Claims of three new volunteers under capped and uncapped rules over four days."""
    s = street
    n = next(_serial)
    mediation = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh=f"调解纠纷{n}", name_en=f"Mediation {n}", category="mediation", points=7, monthly_cap=20, daily_cap=10))
    vols = [person(f"p{n}_{i}", unit, title="resident") for i, unit in enumerate((s.unit_a, s.building_a, s.building_b))]
    db.session.commit()
    rule_of = [s.meeting, s.patrol, mediation]
    ids = []
    for k, (v, r, back, hours) in enumerate(picks):
        rule = rule_of[r]
        kw = {"hours": hours} if rule is s.patrol else {}
        ids.append(claim(vols[v], rule, day=local_today() - timedelta(days=back), note=f"#{k}", **kw).id)
    together, one_by_one = both_ways(s.street_admin, ids)
    assert together == one_by_one
    assert {status for _, status, *_ in together["activities"]} == {"approved"}


def test_a_batch_is_few_statements_whatever_its_size(street, check_ledger):
    """Approving 30 claims of 30 volunteers writes each table once, not once per claim."""
    from sqlalchemy import event

    s = street
    vols = [person(f"vol{n}", s.unit_a, title="resident") for n in range(30)]
    db.session.commit()
    ids = [claim(v, s.meeting).id for v in vols]
    seen = []

    def keep(conn, cur, statement, params, ctx, many):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        done = claims.approve_claims(s.staff_a, ids)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    db.session.commit()
    assert [a.points_credited for a in done] == [10] * 30
    if db.engine.dialect.name == "postgresql":
        assert len(seen) <= 30, "\n".join(seen)
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.activity_id.in_(ids))) == 30
    check_ledger()


# --- refused: nothing is approved --------------------------------------------------------------


def refused(actor, ids, error):
    before = ledger_state()
    votes = db.session.scalar(select(func.count()).select_from(ApprovalVote))
    with pytest.raises(error) as exc:
        claims.approve_claims(actor, ids)
    db.session.rollback()
    assert ledger_state() == before
    assert db.session.scalar(select(func.count()).select_from(ApprovalVote)) == votes
    return exc.value


def test_a_claim_decided_meanwhile_refuses_the_batch_and_names_it(street, check_ledger):
    s = street
    a, b = claim(s.vol_a, s.meeting), claim(s.vol_a2, s.meeting)
    claims.approve_claim(s.staff_a, b.id)
    db.session.commit()
    exc = refused(s.street_admin, [a.id, b.id], AlreadyDecided)
    assert exc.params["name"] == "刘建国" and exc.params["day"] == yesterday().isoformat()
    assert "nothing was approved" in exc.message.lower() or "一条也没有通过" in exc.message
    check_ledger()


def test_a_claim_already_voted_on_by_the_verifier_refuses_the_batch(street):
    s = street
    two_votes = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh="见义勇为", name_en="Brave deed", category="brave_deed", points=50, approvals_required=2))
    db.session.commit()
    a, b = claim(s.vol_a, s.meeting), claim(s.vol_a2, two_votes)
    claims.approve_claim(s.staff_a, b.id)
    db.session.commit()
    exc = refused(s.staff_a, [a.id, b.id], AlreadyVoted)
    assert exc.params["name"] == "刘建国"


def test_the_batch_is_refused_for_claims_out_of_scope_or_unknown_and_a_deactivated_volunteer(street):
    s = street
    a, b = claim(s.vol_a, s.meeting), claim(s.vol_b, s.meeting)
    refused(s.staff_a, [a.id, b.id], NotFound)  # vol_b is in community B
    refused(s.staff_a, [a.id, 10 ** 9], NotFound)
    refused(s.staff_a, [a.id, 2 ** 40], NotFound)  # beyond the id column's range: not a database error
    refused(s.staff_a, [0, a.id], NotFound)
    people.set_active(s.street_admin, s.vol_b.id, False)
    db.session.commit()
    exc = refused(s.street_admin, [a.id, b.id], VolunteerInactive)
    assert exc.params["name"] == "孙丽"


def test_own_claims_cannot_be_approved_in_a_batch(street):
    s = street
    staff = person("staff_vol", s.grid_a, roles=("grid_staff", "volunteer"), title="resident")
    db.session.commit()
    a, mine = claim(s.vol_a, s.meeting), claim(staff, s.meeting)
    refused(staff, [a.id, mine.id], Forbidden)


def test_an_empty_or_oversized_batch_is_a_form_error(street):
    for ids in ([], list(range(1, claims.APPROVE_MANY_MAX + 2))):
        with pytest.raises(InvalidInput) as exc:
            claims.approve_claims(street.staff_a, ids)
        assert exc.value.field == "activity_ids"
        db.session.rollback()


def test_a_budget_that_cannot_cover_the_batch_approves_none(street, check_ledger):
    s = street
    budgets.record_funding(s.street_admin, s.street, fen=100, source="partner", funded_on=local_today(),
                           note=None, key="fund-small")
    db.session.commit()
    capacity = budgets.status(budgets.budget_of_unit(s.street)).capacity
    acts = [claim(v, s.meeting, note=f"#{n}") for n, v in enumerate((s.vol_a, s.vol_a, s.vol_a2, s.vol_b))]
    assert capacity < 40, capacity
    exc = refused(s.street_admin, [a.id for a in acts], BudgetExhausted)
    # What the whole batch needs, and what was left before it (a volunteer's two claims included).
    assert (exc.params["needed"], exc.params["left"], exc.params["used"]) == (40, capacity, 0)
    assert "Approve fewer claims" in exc.message or "请少选几条" in exc.message
    check_ledger()
