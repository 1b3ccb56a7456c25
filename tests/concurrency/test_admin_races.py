"""Admins doing the same thing at the same moment: one wins and the other gets the refusal it
would get a moment later (never a 500), and a deactivation does not let a voucher slip past.

On PostgreSQL the threads' checks really interleave (both see no row, both insert); on SQLite
the write lock runs them one after the other, and each test asserts the same outcome there."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from pointsapp.domain import people, rules, vouchers
from pointsapp.domain.errors import AccountInactive
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import OrgUnit, PointRuleVersion, User, Voucher
from pointsapp.models.user import ROLE_STREET_ADMIN
from tests.concurrency.test_races import race, tally, unexpected
from tests.factories import balance, person, rule_terms
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
    vol_id, admin_id, reward_id = street.vol_a.id, street.street_admin.id, street.rice.id
    loaded, deactivated = threading.Event(), threading.Event()
    out: dict = {}

    def redeem():
        with app.app_context():
            try:
                me = db.session.get(User, vol_id)  # the request's user loader
                assert me.is_active
                if db.engine.dialect.name == "sqlite":
                    db.session.rollback()  # SQLite: a reader would hold off the admin's write
                loaded.set()
                deactivated.wait(10)
                out["voucher"] = vouchers.issue_voucher(me, reward_id).voucher.id
                db.session.commit()
            except Exception as exc:  # the refusal, asserted below
                db.session.rollback()
                out["error"] = exc
            finally:
                db.session.remove()

    db.session.commit()
    thread = threading.Thread(target=redeem)
    thread.start()
    assert loaded.wait(10)
    people.set_active(db.session.get(User, admin_id), vol_id, False)
    db.session.commit()
    deactivated.set()
    thread.join(30)
    assert "voucher" not in out and isinstance(out.get("error"), AccountInactive), out
    db.session.expire_all()
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
