"""The audit log: every admin and staff change is recorded in its own transaction, chained by
hash; the database refuses edits; ``verify-audit`` finds an edited or deleted record; parallel
writers never fork the chain."""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from pointsapp.domain import audit, claims, people, rules, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import NotFound
from pointsapp.extensions import db
from pointsapp.models import AuditRecord
from pointsapp.models.user import ROLE_GRID_STAFF
from tests.conftest import BACKEND, run_in_parallel
from tests.factories import person, rule_terms, yesterday
from tests.unit.helpers import credit_of


def records() -> list[AuditRecord]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditRecord))


@contextmanager
def append_only_guard_dropped():
    """Drop the audit triggers for a test that plays the intruder; put them back afterwards."""
    db.session.commit()
    if BACKEND == "postgresql":
        drop = ["DROP TRIGGER audit_record_append_only ON audit_record"]
        create = [
            "CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        ]
    else:
        drop = ["DROP TRIGGER audit_record_no_update", "DROP TRIGGER audit_record_no_delete"]
        create = [
            f"CREATE TRIGGER audit_record_no_{a.lower()} BEFORE {a} ON audit_record "
            "BEGIN SELECT RAISE(ABORT, 'audit table audit_record is append-only'); END"
            for a in ("UPDATE", "DELETE")
        ]
    for sql in drop:
        db.session.execute(text(sql))
    db.session.commit()
    try:
        yield
    finally:
        db.session.rollback()
        for sql in create:
            db.session.execute(text(sql))
        db.session.commit()


def test_every_admin_and_staff_change_writes_one_record(street):
    start = count()
    s = street
    rule = rules.create_rule(s.admin_a, s.community_a, rule_terms(name_zh="调解纠纷", name_en="Mediation", points=5))
    rules.update_rule(s.admin_a, rule.id, rule_terms(name_zh="调解纠纷", name_en="Mediation", points=6))
    claim = claims.submit_claim(s.vol_a, rule_id=s.meeting.id, activity_date=yesterday())
    claims.approve_claim(s.staff_a, claim.id)
    other = claims.submit_claim(s.vol_a2, rule_id=s.meeting.id, activity_date=yesterday(), note="again")
    claims.reject_claim(s.staff_a, other.id, "no such meeting")
    [act] = claims.record_attendance(
        s.staff_a, rule_id=s.meeting.id, activity_date=local_today(), volunteer_ids=[s.vol_a.id], batch_key="b1"
    )
    claims.reverse_transfer(s.admin_a, credit_of(act).id, "recorded by mistake")
    shop = vouchers.create_merchant(s.admin_a, s.community_a, name="青山便民店", kind="shop")
    reward = vouchers.create_reward(s.admin_a, shop.id, vouchers.RewardTerms(name="肥皂", price=5, stock=10))
    vouchers.update_reward(s.admin_a, reward.id, vouchers.RewardTerms(name="肥皂", price=5), stock_change=-3)
    newcomer = people.create_person(
        s.admin_a, username="newcomer", full_name="新人", password="plenty-long-pass", org_unit=s.unit_a
    )
    people.grant_role(s.admin_a, newcomer, ROLE_GRID_STAFF, unit=s.grid_a)
    people.set_active(s.admin_a, newcomer.id, False)
    people.set_active(s.admin_a, newcomer.id, True)
    people.reset_password(s.admin_a, newcomer.id)
    db.session.commit()

    recs = records()[start:]
    assert [r.action for r in recs] == [
        "rule.created", "rule.changed", "claim.approved", "claim.rejected", "attendance.recorded",
        "transfer.reversed", "merchant.created", "reward.created", "reward.changed", "person.created",
        "role.granted", "person.deactivated", "person.reactivated", "person.password_reset",
    ]
    by_action = {r.action: r for r in recs}
    assert all(r.actor_id in (s.admin_a.id, s.staff_a.id) for r in recs)
    assert by_action["rule.changed"].target_id == rule.id
    assert json.loads(by_action["rule.changed"].summary)["changes"] == {"points": [5, 6]}
    assert json.loads(by_action["reward.changed"].summary)["changes"] == {"stock": [10, 7]}
    assert json.loads(by_action["claim.approved"].summary)["points_credited"] == 10
    assert json.loads(by_action["transfer.reversed"].summary)["amount"] == 10
    assert "plenty-long-pass" not in " ".join(r.summary for r in recs)
    # Every record sits in the subtree it concerns, so community admins see their own.
    assert all(r.org_path.startswith(s.community_a.path) for r in recs)
    assert audit.verify_chain().problem is None


def test_a_refused_change_leaves_no_record(street):
    before = count()
    with pytest.raises(NotFound):
        rules.update_rule(street.admin_b, street.meeting.id, rule_terms())
    db.session.rollback()
    claim = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    with pytest.raises(NotFound):
        claims.approve_claim(street.staff_b, claim.id)
    db.session.rollback()
    assert count() == before


def test_records_chain_each_to_the_one_before(street):
    recs = records()
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    assert recs[0].prev_hash == "0" * 64
    for prev, rec in zip(recs, recs[1:]):
        assert rec.prev_hash == prev.hash
        assert rec.hash == audit.record_hash(prev.hash, rec)


def test_the_database_refuses_to_change_or_delete_a_record(street):
    rec_id = records()[0].id
    for sql in ("UPDATE audit_record SET summary = '{}' WHERE id = :id", "DELETE FROM audit_record WHERE id = :id"):
        with pytest.raises(DBAPIError) as exc:
            db.session.execute(text(sql), {"id": rec_id})
        assert "append-only" in str(exc.value)
        db.session.rollback()
    assert records()[0].id == rec_id


def test_verify_audit_passes_on_an_intact_chain(street, runner):
    result = runner.invoke(args=["points", "verify-audit"])
    assert result.exit_code == 0, result.output
    newest = db.session.scalar(select(AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1))
    assert f"audit chain intact: {count()} record(s), newest hash {newest}" in result.output


def test_verify_audit_names_an_edited_record(street, runner):
    victim = records()[3]
    with append_only_guard_dropped():
        db.session.execute(
            text("UPDATE audit_record SET summary = :s WHERE id = :id"), {"s": '{"points":1000}', "id": victim.id}
        )
        db.session.commit()
        result = runner.invoke(args=["points", "verify-audit"])
    assert result.exit_code == 1
    assert f"record id {victim.id} (seq {victim.seq}) does not match its hash (edited)" in result.output


def test_verify_audit_finds_an_edit_even_when_the_hash_is_recomputed(street):
    recs = records()
    victim = recs[2]
    forged = {
        "seq": victim.seq, "created_at": victim.created_at, "actor_id": victim.actor_id, "action": victim.action,
        "target_type": victim.target_type, "target_id": victim.target_id, "org_path": victim.org_path,
        "summary": '{"forged":true}',
    }
    with append_only_guard_dropped():
        db.session.execute(
            text("UPDATE audit_record SET summary = :s, hash = :h WHERE id = :id"),
            {"s": forged["summary"], "h": audit.record_hash(victim.prev_hash, forged), "id": victim.id},
        )
        db.session.commit()
        report = audit.verify_chain()
    assert report.problem == f"record id {recs[3].id} (seq {recs[3].seq}) does not follow the record before it (changed or replaced)"


def test_verify_audit_names_a_deleted_record(street, runner):
    recs = records()
    with append_only_guard_dropped():
        db.session.execute(text("DELETE FROM audit_record WHERE id = :id"), {"id": recs[4].id})
        db.session.commit()
        result = runner.invoke(args=["points", "verify-audit"])
    assert result.exit_code == 1
    assert f"record seq 5 is missing (deleted) before record id {recs[5].id}" in result.output


def test_verify_audit_notices_the_newest_records_deleted(street, runner):
    recs = records()
    with append_only_guard_dropped():
        db.session.execute(text("DELETE FROM audit_record WHERE seq >= :n"), {"n": len(recs) - 1})
        db.session.commit()
        result = runner.invoke(args=["points", "verify-audit"])
    assert result.exit_code == 1
    assert f"records after seq {len(recs) - 2} up to seq {len(recs)} are missing (deleted)" in result.output


def test_parallel_admins_never_fork_the_chain(app, street, check_ledger):
    admin_id, street_id = street.street_admin.id, street.street.id
    vol_ids = [person(f"par{i}", street.unit_a).id for i in range(12)]
    db.session.commit()
    before = count()

    def act(i):
        from pointsapp.models import OrgUnit, User

        actor = db.session.get(User, admin_id)
        if i % 2:
            rules.create_rule(actor, db.session.get(OrgUnit, street_id), rule_terms(name_zh=f"规则{i}", name_en=f"Rule {i}"))
        else:
            award_rule = rules.create_rule(
                actor, db.session.get(OrgUnit, street_id), rule_terms(name_zh=f"奖{i}", name_en=f"Award {i}")
            )
            claims.record_attendance(
                actor, rule_id=award_rule.id, activity_date=local_today(), volunteer_ids=[vol_ids[i]], batch_key=f"par-{i}"
            )
        db.session.commit()
        return "ok"

    db.session.remove()  # this thread must not hold SQLite's write lock while the others run
    results = run_in_parallel(app, 12, act)
    assert results == ["ok"] * 12, results
    recs = records()
    assert len(recs) == before + 12 + 6  # twelve rules and six attendance batches
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    assert audit.verify_chain().problem is None
    check_ledger()


def test_the_audit_page_shows_an_admin_the_records_of_their_subtree_only(street, client, auth):
    rules.create_rule(street.admin_a, street.community_a, rule_terms(name_zh="甲社区规则", name_en="A rule"))
    rules.create_rule(street.admin_b, street.community_b, rule_terms(name_zh="乙社区规则", name_en="B rule"))
    db.session.commit()
    auth.login("admin_a")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "甲社区规则" in page and "乙社区规则" not in page
    auth.login("street_admin")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "甲社区规则" in page and "乙社区规则" in page


def test_an_audit_records_details_read_as_lines_with_local_times(app):
    from pointsapp.web.template_helpers import audit_details

    with app.test_request_context():
        lines = audit_details('{"before":{"phone":"139"},"ends_at":"2026-12-07T15:40:00.757386+00:00",'
                              '"ids":[3,4],"name":"甲社区规则","open":true,"note":null}')
    # Asia/Shanghai is eight hours ahead of UTC.
    assert lines == [("before.phone", "139"), ("ends_at", "2026-12-07 23:40"), ("ids", "3, 4"),
                     ("name", "甲社区规则"), ("open", "✓"), ("note", "—")]
    # What was there before is read first, then what came after.
    with app.test_request_context():
        moved = audit_details('{"after":{"name":"乙"},"before":{"name":"甲"},"username":"vol_a"}')
    assert moved == [("before.name", "甲"), ("after.name", "乙"), ("username", "vol_a")]
    assert audit_details("not json") == [("", "not json")]
    assert audit_details("[1, 2]") == [("", "[1, 2]")]


def test_an_audit_records_fields_are_named_in_the_pages_language(app):
    from pointsapp.web.template_helpers import audit_field

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert audit_field("before.phone") == "修改前 · 电话"
        assert audit_field("username") == "用户名"
        assert audit_field("something_new") == "something_new"  # a field not named yet: as kept
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert audit_field("before.phone") == "Before · Phone"


def test_every_audit_action_is_named_on_the_audit_page_in_both_languages(app):
    from flask_babel import force_locale

    from pointsapp.web.admin import AUDIT_ACTIONS

    actions = {v for k, v in vars(audit).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert "person.changed" in actions and "person.moved" in actions
    assert actions <= set(AUDIT_ACTIONS), sorted(actions - set(AUDIT_ACTIONS))
    with app.test_request_context():
        for action in sorted(actions):
            with force_locale("en"):
                english = str(AUDIT_ACTIONS[action])
            with force_locale("zh_Hans_CN"):
                chinese = str(AUDIT_ACTIONS[action])
            assert chinese != english, action  # translated


def test_the_fields_of_rule_records_are_named(app, street):
    from pointsapp.web.template_helpers import AUDIT_FIELDS, audit_details

    summaries = db.session.scalars(select(AuditRecord.summary).where(AuditRecord.action == "rule.created")).all()
    assert summaries
    with app.test_request_context():
        keys = {part for s in summaries for key, _ in audit_details(s) for part in key.split(".")}
    assert keys - set(AUDIT_FIELDS) == set()
