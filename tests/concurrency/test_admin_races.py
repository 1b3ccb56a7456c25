"""Admins doing the same thing at the same moment: one wins and the other gets the refusal it
would get a moment later (never a 500), and a deactivation does not let a voucher or a credit
slip past.

On PostgreSQL the threads' checks really interleave (both see no row, both insert); on SQLite
the write lock runs them one after the other, and each test asserts the same outcome there."""
from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from pointsapp.domain import checkin, claims, people, rules, vouchers
from pointsapp.domain.clock import now_utc
from pointsapp.domain.errors import AccountInactive, InvalidInput, VolunteerInactive
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import Activity, CheckinEvent, OrgUnit, PointRuleVersion, Transfer, User, Voucher
from pointsapp.models.user import ROLE_STREET_ADMIN
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import balance, person, rule_terms, yesterday
from tests.unit.helpers import award

ROUNDS = 4


def _two_admins(s) -> list[int]:
    second = person("street_admin2", s.street, roles=(ROLE_STREET_ADMIN,))
    db.session.commit()
    return [s.street_admin.id, second.id]


def test_two_people_whose_usernames_differ_only_in_case_added_at_once_one_is_refused(app, street):
    admins = _two_admins(street)
    unit_id = street.unit_a.id
    for n in range(ROUNDS):
        def add(i):
            people.create_person(db.session.get(User, admins[i]), username=(f"Li{n}", f"li{n}")[i],
                                 full_name="李九", password=("first-horse-11", "second-horse-22")[i],
                                 org_unit=db.session.get(OrgUnit, unit_id))
            db.session.commit()

        results = race(app, 2, add)
        assert tally(results) == {"ok": 1, "InvalidInput": 1}, unexpected(results, "InvalidInput")
        refusal = next(r for r in results if isinstance(r, BaseException))
        assert refusal.field == "username" and "taken" in refusal.message
        assert db.session.scalar(select(func.count()).select_from(User)
                                 .where(func.lower(User.username) == f"li{n}")) == 1
        # The one who was added logs in.
        winner = results.index(None)
        assert people.authenticate(f"LI{n}", ("first-horse-11", "second-horse-22")[winner]) is not None


def test_the_same_node_added_twice_at_once_is_one_node_and_one_refusal(app, street):
    admins = _two_admins(street)
    parent_id = street.community_a.id
    for n in range(ROUNDS):
        def add(i):
            add_unit(f"第{n + 10}网格", "grid", db.session.get(OrgUnit, parent_id))
            db.session.commit()

        results = race(app, 2, add)
        assert tally(results) == {"ok": 1, "InvalidInput": 1}, unexpected(results, "InvalidInput")
        assert "already has a node" in next(r for r in results if isinstance(r, BaseException)).message
        assert db.session.scalar(select(func.count()).select_from(OrgUnit)
                                 .where(OrgUnit.parent_id == parent_id, OrgUnit.name == f"第{n + 10}网格")) == 1
    assert admins  # both admins exist; the domain function checks no actor


def test_two_admins_changing_one_rule_at_once_add_two_versions(app, street):
    admins = _two_admins(street)
    rule_id = street.patrol.id
    for n in range(ROUNDS):
        def change(i):
            rules.update_rule(db.session.get(User, admins[i]), rule_id, rule_terms(
                name_zh="巡查执勤", name_en="Patrol", category="patrol", unit="hour", points=2,
                daily_cap=4 + i, monthly_cap=40 + n))
            db.session.commit()

        results = race(app, 2, change)
        assert tally(results) == {"ok": 2}, unexpected(results)
    versions = db.session.scalars(select(PointRuleVersion.version).where(PointRuleVersion.rule_id == rule_id)
                                  .order_by(PointRuleVersion.version)).all()
    assert versions == list(range(1, 2 + 2 * ROUNDS))  # one after the other, none lost


def test_a_volunteer_deactivated_while_their_redemption_runs_gets_no_voucher(app, street, check_ledger):
    """The request loaded the volunteer (active) before the admin's deactivation committed."""
    award(street, street.vol_a, 50)
    reward_id = street.rice.id
    out = _run_after_deactivation(app, street.vol_a.id, street.street_admin.id,
                                  lambda me: vouchers.issue_voucher(me, reward_id).voucher.id)
    assert "result" not in out and isinstance(out.get("error"), AccountInactive), out
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 0
    assert balance(street.vol_a).available == 50
    check_ledger()


def test_deactivating_a_volunteer_while_their_token_writes_does_not_deadlock(app, street, check_ledger, monkeypatch):
    """An API write records its token's use (the token row) before it locks the account; a
    deactivation revokes the tokens before it locks the account: the same order, so they take turns."""
    import time
    import uuid

    from tests.api.conftest import make_token
    from tests.conftest import connection_burst
    from tests.factories import give_points

    give_points(street, street.vol_a, 50)
    secret = make_token(street.vol_a)  # never used: its first use is written in the request
    vol_id, admin_id, reward_id = street.vol_a.id, street.street_admin.id, street.rice.id
    db.session.commit()
    touched = threading.Event()
    original = vouchers.require_agreed_key

    def slow_key_check():  # after the token's row is written, before the account's lock
        touched.set()
        time.sleep(2)  # the deactivation runs meanwhile
        return original()

    monkeypatch.setattr(vouchers, "require_agreed_key", slow_key_check)
    results: dict = {}

    def volunteer_request():
        resp = app.test_client().post("/api/v1/vouchers", json={"reward_id": reward_id}, headers={
            "Authorization": f"Bearer {secret}", "Idempotency-Key": str(uuid.uuid4())})
        results["api"] = (resp.status_code, resp.get_json())

    def admin_deactivates():  # another worker: the admin's page
        touched.wait(10)
        with app.app_context():
            try:
                people.set_active(db.session.get(User, admin_id), vol_id, False)
                db.session.commit()
                results["admin"] = "ok"
            except Exception as exc:
                db.session.rollback()
                results["admin"] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=volunteer_request), threading.Thread(target=admin_deactivates)]
    with connection_burst():
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    # One after the other: a voucher then the deactivation, or a refusal; never an error.
    assert results["admin"] == "ok", results
    assert results["api"][0] in (201, 401, 403), results
    db.session.expire_all()
    assert not db.session.get(User, vol_id).is_active
    check_ledger()


def _run_after_deactivation(app, vol_id: int, admin_id: int, action) -> dict:
    """Run ``action(volunteer)`` in a request that loaded the volunteer (active) before an
    admin's deactivation of them committed; return its result or its error."""
    loaded, deactivated = threading.Event(), threading.Event()
    out: dict = {}

    def request():
        with app.app_context():
            try:
                # Loaded, and held (the session keeps only what is referenced), as the request
                # holds what it loaded before it takes the volunteer's account lock.
                volunteer = db.session.get(User, vol_id)
                assert volunteer.is_active
                if db.engine.dialect.name == "sqlite":
                    db.session.rollback()  # SQLite: a reader would hold off the admin's write
                loaded.set()
                deactivated.wait(10)
                out["result"] = action(volunteer)
                db.session.commit()
            except Exception as exc:  # the refusal, asserted by the caller
                db.session.rollback()
                out["error"] = exc
            finally:
                db.session.remove()

    db.session.commit()
    thread = threading.Thread(target=request)
    thread.start()
    assert loaded.wait(10)
    people.set_active(db.session.get(User, admin_id), vol_id, False)
    db.session.commit()
    deactivated.set()
    thread.join(30)
    db.session.expire_all()
    return out


def _refused_as_deactivated(out: dict, name: str) -> None:
    """On PostgreSQL the request passed its first check of the volunteer (loaded active) and is
    refused under the account lock. On SQLite the two run one after the other: the request sees
    the deactivation at its first check, and is refused there."""
    assert "result" not in out and isinstance(out.get("error"), (VolunteerInactive, InvalidInput)), out
    assert name in out["error"].message or db.engine.dialect.name == "sqlite", out["error"].message
    if db.engine.dialect.name == "postgresql":
        assert isinstance(out["error"], VolunteerInactive)
        assert "deactivated while this was being saved" in out["error"].message


def test_a_claim_approved_as_its_volunteer_is_deactivated_credits_nothing(app, street, check_ledger):
    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    act_id, vol_id, staff_id = act.id, street.vol_a.id, street.staff_a.id
    out = _run_after_deactivation(app, vol_id, street.street_admin.id,
                                  lambda _me: claims.approve_claim(db.session.get(User, staff_id), act_id).status)
    _refused_as_deactivated(out, "张秀华")
    assert db.session.get(Activity, act_id).status == "pending"
    assert balance(street.vol_a).available == 0
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == 0
    check_ledger()


def test_claims_approved_together_as_one_volunteer_is_deactivated_credit_none(app, street, check_ledger):
    first = claims.submit_claim(street.vol_a2, rule_id=street.meeting.id, activity_date=yesterday())
    second = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    ids, vol_id, staff_id = [first.id, second.id], street.vol_a.id, street.staff_a.id
    out = _run_after_deactivation(app, vol_id, street.street_admin.id,
                                  lambda _me: len(claims.approve_claims(db.session.get(User, staff_id), ids)))
    _refused_as_deactivated(out, "张秀华")
    assert [db.session.get(Activity, i).status for i in ids] == ["pending", "pending"]
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == 0
    check_ledger()


def test_a_meeting_recorded_as_an_attendee_is_deactivated_records_nothing(app, street, check_ledger):
    vol_ids, staff_id, rule_id = [street.vol_a.id, street.vol_a2.id], street.staff_a.id, street.meeting.id
    out = _run_after_deactivation(app, street.vol_a.id, street.street_admin.id, lambda _me: len(claims.record_attendance(
        db.session.get(User, staff_id), rule_id=rule_id, activity_date=yesterday(), volunteer_ids=vol_ids,
        batch_key="meeting-1")))
    _refused_as_deactivated(out, "张秀华")
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == 0
    check_ledger()


def test_an_event_closed_as_an_attendee_is_deactivated_is_closed_again_without_them(app, street, check_ledger):
    start = now_utc() - timedelta(hours=4)
    rule = rules.create_rule(street.street_admin, street.street, rule_terms(
        name_zh="社区服务", name_en="Community service", category="helping", unit="hour", points=10,
        needs_approval=False, checkin_hours_cap=Decimal("2")))
    event = checkin.create_event(street.staff_a, title="楼道清洁", rule_id=rule.id, org_unit_id=street.grid_a.id,
                                 place="1号楼", starts_at=start, ends_at=start + timedelta(hours=3),
                                 now=start - timedelta(hours=1))
    for v in (street.vol_a, street.vol_a2):
        checkin.sign_in(v, event.id, now=start)
    event_id, staff_id = event.id, street.staff_a.id
    out = _run_after_deactivation(
        app, street.vol_a.id, street.street_admin.id,
        lambda _me: [a.volunteer_id for a in checkin.close_event(db.session.get(User, staff_id), event_id).activities])
    if db.engine.dialect.name == "postgresql":
        _refused_as_deactivated(out, "张秀华")
        assert db.session.get(CheckinEvent, event_id).status == "open"
        assert db.session.scalar(select(func.count()).select_from(Transfer)) == 0
        # Closed again, the deactivated attendee is left out and the other is credited.
        done = checkin.close_event(db.session.get(User, staff_id), event_id)
        db.session.commit()
        assert [a.volunteer_id for a in done.activities] == [street.vol_a2.id]
    else:  # one after the other: the closing leaves the deactivated attendee out at once
        assert out.get("result") == [street.vol_a2.id], out
    assert db.session.get(CheckinEvent, event_id).status == "closed"
    assert balance(street.vol_a2).available == 20 and balance(street.vol_a).available == 0
    check_ledger()
