"""People, passwords, roles and the subtree every staff member is confined to."""
import pytest
from argon2 import extract_parameters
from sqlalchemy import func, select

from pointsapp.domain import access, claims, people, rules, vouchers
from pointsapp.domain.errors import Forbidden, InvalidInput, NotFound
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import OrgUnit, User
from pointsapp.models.user import (
    ROLE_COMMUNITY_ADMIN,
    ROLE_GRID_STAFF,
    ROLE_MERCHANT_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
)
from tests.factories import PASSWORD, balance, person, rule_terms, yesterday
from tests.unit.helpers import award

# Taken at import, before the suite's fixtures swap in a cheap hasher.
PRODUCTION_HASHER = people._hasher


def test_passwords_are_hashed_with_argon2id(street, monkeypatch):
    assert street.vol_a.password_hash.startswith("$argon2id$")
    assert PASSWORD not in street.vol_a.password_hash
    monkeypatch.setattr(people, "_hasher", PRODUCTION_HASHER)  # not the suite's cheap one
    hashed = people.hash_password("correct-horse-2")
    assert hashed.startswith("$argon2id$") and hashed != people.hash_password("correct-horse-2")  # salted
    params = extract_parameters(hashed)
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2  # at least OWASP's minimum


def test_authenticate_accepts_the_right_password_only(street):
    assert people.authenticate("vol_a", PASSWORD) == street.vol_a
    assert people.authenticate("  VOL_A ", PASSWORD) == street.vol_a  # usernames ignore case
    assert people.authenticate("vol_a", "wrong-password") is None
    assert people.authenticate("vol_a", "") is None
    assert people.authenticate("nobody", PASSWORD) is None
    assert people.authenticate(None, None) is None


def test_a_deactivated_person_cannot_log_in_but_keeps_their_points(street):
    award(street, street.vol_a, 30)
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    assert people.authenticate("vol_a", PASSWORD) is None
    assert balance(street.vol_a).balance == 30
    people.set_active(street.admin_a, street.vol_a.id, True)
    db.session.commit()
    assert people.authenticate("vol_a", PASSWORD) == street.vol_a


def test_only_admins_over_a_person_may_deactivate_them(street):
    with pytest.raises(NotFound):
        people.set_active(street.admin_b, street.vol_a.id, False)
    db.session.rollback()
    with pytest.raises(NotFound):
        people.set_active(street.staff_a, street.vol_a.id, False)
    db.session.rollback()
    with pytest.raises(InvalidInput):
        people.set_active(street.admin_a, street.admin_a.id, False)
    db.session.rollback()
    assert db.session.get(User, street.vol_a.id).is_active


def test_usernames_passwords_and_titles_are_checked(street):
    for kw, field in [
        (dict(username="vol_a"), "username"),
        (dict(username="VOL_A"), "username"),
        (dict(username="a b"), "username"),
        (dict(password="short"), "password"),
        (dict(title="emperor"), "title"),
        (dict(full_name=" "), "full_name"),
    ]:
        args = dict(username="newbie", full_name="新人", password=PASSWORD, org_unit=street.unit_a)
        args.update(kw)
        with pytest.raises(InvalidInput) as exc:
            people.create_person(street.admin_a, **args)
        assert exc.value.field == field, kw
        db.session.rollback()


def test_a_community_admin_cannot_make_a_street_admin(street):
    assert not people.can_grant(street.admin_a, ROLE_STREET_ADMIN, street.community_a, None)
    assert not people.can_grant(street.admin_a, ROLE_STREET_ADMIN, street.street, None)
    with pytest.raises(Forbidden):
        people.grant_role(street.admin_a, street.vol_a, ROLE_STREET_ADMIN, unit=street.community_a)
    db.session.rollback()
    assert not db.session.get(User, street.vol_a.id).has_role(ROLE_STREET_ADMIN)
    assert people.can_grant(street.street_admin, ROLE_STREET_ADMIN, street.street, None)


def test_a_community_admin_cannot_make_a_peer_but_may_appoint_below(street):
    assert not people.can_grant(street.admin_a, ROLE_COMMUNITY_ADMIN, street.community_a, None)
    assert people.can_grant(street.admin_a, ROLE_COMMUNITY_ADMIN, street.grid_a, None)
    assert people.can_grant(street.street_admin, ROLE_COMMUNITY_ADMIN, street.community_a, None)


def test_no_one_grants_roles_outside_their_subtree(street):
    for role in (ROLE_GRID_STAFF, ROLE_VOLUNTEER, ROLE_COMMUNITY_ADMIN):
        assert not people.can_grant(street.admin_a, role, street.community_b, None)
        assert not people.can_grant(street.admin_a, role, street.street, None)
        assert people.can_grant(street.admin_a, role, street.grid_a, None)
    assert not people.can_grant(street.staff_a, ROLE_VOLUNTEER, street.unit_a, None)  # staff are not admins
    assert not people.can_grant(street.vol_a, ROLE_VOLUNTEER, street.unit_a, None)
    shop_b = vouchers.create_merchant(street.admin_b, street.community_b, name="友谊社区便利店", kind="shop")
    assert not people.can_grant(street.admin_a, ROLE_MERCHANT_STAFF, None, shop_b)
    assert people.can_grant(street.admin_b, ROLE_MERCHANT_STAFF, None, shop_b)
    with pytest.raises(Forbidden):
        people.grant_role(street.admin_a, street.vol_b, ROLE_GRID_STAFF, unit=street.grid_b)
    db.session.rollback()


def test_granting_the_volunteer_role_opens_an_account_and_granting_twice_is_harmless(street):
    from pointsapp.models import Account

    staff = street.staff_a
    assert db.session.scalar(select(Account).where(Account.user_id == staff.id)) is None
    g1 = people.grant_role(street.admin_a, staff, ROLE_VOLUNTEER, unit=street.grid_a)
    g2 = people.grant_role(street.admin_a, staff, ROLE_VOLUNTEER, unit=street.grid_a)
    db.session.commit()
    assert g1.id == g2.id
    assert db.session.scalar(select(Account).where(Account.user_id == staff.id)).balance == 0


def test_taking_a_role_away_keeps_the_points_and_is_audited(street):
    from pointsapp.models import AuditRecord

    award(street, street.vol_a, 30)
    staff_grant = people.grant_role(street.admin_a, street.vol_a, ROLE_GRID_STAFF, unit=street.grid_a)
    db.session.commit()
    people.revoke_role(street.admin_a, street.vol_a.id, staff_grant.id)
    db.session.commit()
    db.session.expire_all()
    vol = db.session.get(User, street.vol_a.id)
    assert [g.role for g in vol.roles] == [ROLE_VOLUNTEER]
    assert balance(vol).balance == 30
    rec = db.session.scalar(select(AuditRecord).order_by(AuditRecord.seq.desc()))
    assert (rec.action, rec.target_id, rec.actor_id) == ("role.revoked", vol.id, street.admin_a.id)


def test_no_one_takes_away_a_role_outside_their_subtree_or_their_own(street):
    with pytest.raises(NotFound):  # vol_b lives in community B
        people.revoke_role(street.admin_a, street.vol_b.id, street.vol_b.roles[0].id)
    db.session.rollback()
    with pytest.raises(NotFound):  # a grant of someone else, named through vol_a
        people.revoke_role(street.admin_a, street.vol_a.id, street.vol_b.roles[0].id)
    db.session.rollback()
    with pytest.raises(Forbidden):
        people.revoke_role(street.admin_a, street.admin_a.id, street.admin_a.roles[0].id)
    db.session.rollback()
    with pytest.raises(NotFound):  # the street admin stands above community A
        people.revoke_role(street.admin_a, street.street_admin.id, street.street_admin.roles[0].id)
    db.session.rollback()
    peer = person("peer", street.community_a, roles=(ROLE_COMMUNITY_ADMIN,))
    db.session.commit()
    with pytest.raises(Forbidden):  # no one unmakes a peer they could not have made
        people.revoke_role(street.admin_a, peer.id, peer.roles[0].id)
    db.session.rollback()
    db.session.expire_all()
    assert [len(u.roles) for u in (street.vol_b, street.admin_a, street.street_admin, peer)] == [1, 1, 1, 1]


def test_no_one_gives_themselves_a_role(street):
    from pointsapp.models import AuditRecord, RoleGrant

    def grants():
        db.session.expire_all()
        return (db.session.scalar(select(func.count()).select_from(RoleGrant)),
                db.session.scalar(select(func.count()).select_from(AuditRecord)))

    before = grants()
    for actor, role, unit in ((street.admin_a, ROLE_VOLUNTEER, street.community_a),
                              (street.admin_a, ROLE_GRID_STAFF, street.grid_a),
                              (street.street_admin, ROLE_COMMUNITY_ADMIN, street.community_b)):
        with pytest.raises(Forbidden) as exc:
            people.grant_role(actor, actor, role, unit=unit)
        assert "ask another admin" in exc.value.message
        db.session.rollback()
    assert grants() == before
    # Another admin may.
    people.grant_role(street.street_admin, street.admin_a, ROLE_VOLUNTEER, unit=street.community_a)
    db.session.commit()
    assert street.admin_a.has_role(ROLE_VOLUNTEER)


def test_a_person_may_hold_several_roles(street):
    both = person("both", street.grid_a, roles=(ROLE_VOLUNTEER, ROLE_GRID_STAFF), title="resident")
    db.session.commit()
    assert both.has_role(ROLE_VOLUNTEER) and both.has_role(ROLE_GRID_STAFF)
    assert access.in_scope(both, street.unit_a) and not access.in_scope(both, street.grid_b)


def test_scoped_queries_never_return_rows_outside_the_subtree(street):
    rule_b = rules.create_rule(street.admin_b, street.community_b, rule_terms(name_zh="B社区", name_en="B only"))
    rule_a = rules.create_rule(street.admin_a, street.community_a, rule_terms(name_zh="A社区", name_en="A only"))
    shop_b = vouchers.create_merchant(street.admin_b, street.community_b, name="友谊社区便利店", kind="shop")
    claim_a = claims.submit_claim(street.vol_a, rule_id=rule_a.id, activity_date=yesterday())
    claim_b = claims.submit_claim(street.vol_b, rule_id=rule_b.id, activity_date=yesterday())
    db.session.commit()

    def ids(q):
        return {x.id for x in db.session.scalars(q)}

    assert {r.id for r in rules.managed_rules(street.admin_a)} == {rule_a.id}
    assert {r.id for r in rules.managed_rules(street.admin_b)} == {rule_b.id}
    assert {rule_a.id, rule_b.id, street.meeting.id} <= {r.id for r in rules.managed_rules(street.street_admin)}
    assert rules.managed_rules(street.staff_a) == []
    assert ids(access.managed_merchants_query(street.admin_a)) == set()
    assert ids(access.managed_merchants_query(street.admin_b)) == {shop_b.id}
    assert ids(claims.pending_claims_query(street.staff_a)) == {claim_a.id}
    assert ids(claims.pending_claims_query(street.staff_b)) == {claim_b.id}
    with pytest.raises(NotFound):
        access.require_merchant_admin(street.admin_a, shop_b.id)
    with pytest.raises(NotFound):
        rules.get_managed_rule(street.admin_a, rule_b.id)
    with pytest.raises(NotFound):
        people.person_in_scope(street.admin_a, street.vol_b.id)
    assert people.person_in_scope(street.admin_a, street.vol_a.id) == street.vol_a


def test_a_sibling_node_whose_id_shares_leading_digits_is_outside_the_subtree(street):
    # community A is node 2 (path /1/2/); make a sibling with id 2x (path /1/2x/).
    sibling = None
    for i in range(30):
        unit = add_unit(f"新社区{i}", "community", street.street)
        if str(unit.id).startswith(str(street.community_a.id)) and unit.id != street.community_a.id:
            sibling = unit
            break
    assert sibling is not None and sibling.path.startswith(street.community_a.path.rstrip("/"))
    stranger = person("stranger", sibling, title="resident")
    claim = claims.submit_claim(stranger, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    assert not access.in_scope(street.admin_a, sibling)
    assert claim.id not in {x.id for x in db.session.scalars(claims.pending_claims_query(street.admin_a))}
    with pytest.raises(NotFound):
        claims.approve_claim(street.admin_a, claim.id)
    db.session.rollback()


def test_the_tree_has_configurable_levels_and_refuses_a_node_above_its_parent(street):
    with pytest.raises(InvalidInput):
        add_unit("倒挂社区", "community", street.unit_a)
    db.session.rollback()
    with pytest.raises(InvalidInput):
        add_unit("1单元", "unit", street.building_a)  # the name is taken under that parent
    db.session.rollback()
    with pytest.raises(InvalidInput):
        add_unit("孤儿网格", "grid")
    db.session.rollback()
    s = street
    assert db.session.scalar(select(OrgUnit.path).where(OrgUnit.id == s.unit_a.id)) == (
        f"/{s.street.id}/{s.community_a.id}/{s.grid_a.id}/{s.building_a.id}/{s.unit_a.id}/"
    )


def test_create_admin_command_creates_the_street_and_its_admin(app, runner):
    result = runner.invoke(
        args=["points", "create-admin", "--username", "boss", "--name", "王主任", "--street", "友谊街道",
              "--password", "a-long-password"]
    )
    assert result.exit_code == 0, result.output
    assert "created street admin boss for 友谊街道" in result.output
    db.session.expire_all()
    boss = people.authenticate("boss", "a-long-password")
    assert boss is not None and boss.full_name == "王主任"
    [grant] = boss.grants(ROLE_STREET_ADMIN)
    assert grant.org_unit.name == "友谊街道" and grant.org_unit.parent_id is None
    # A second admin for the same street joins it rather than founding another.
    again = runner.invoke(
        args=["points", "create-admin", "--username", "deputy", "--name", "李副主任", "--street", "友谊街道",
              "--password", "another-long-one"]
    )
    assert again.exit_code == 0, again.output
    assert db.session.query(OrgUnit).filter(OrgUnit.parent_id.is_(None)).count() == 1
    # So does one whose street name came with a stray space.
    spaced = runner.invoke(
        args=["points", "create-admin", "--username", "deputy2", "--name", "赵副主任", "--street", " 友谊街道 ",
              "--password", "a-third-long-one"]
    )
    assert spaced.exit_code == 0, spaced.output
    assert db.session.query(OrgUnit).filter(OrgUnit.parent_id.is_(None)).count() == 1


def test_the_demo_loads_only_into_an_empty_database_and_the_logins_say_what_to_do(app, runner, tmp_path):
    made = runner.invoke(args=["points", "create-admin", "--username", "boss", "--name", "王主任", "--street",
                               "钢铁大街街道", "--password", "a-long-password"])
    assert made.exit_code == 0, made.output
    refused = runner.invoke(args=["points", "seed-demo", "--months", "1"])
    assert refused.exit_code == 1 and "only into an empty database" in refused.output
    quiet = runner.invoke(args=["points", "seed-demo", "--if-empty"])
    assert quiet.exit_code == 0 and "demo not loaded" in quiet.output
    assert db.session.query(User).count() == 1
    logins = runner.invoke(args=["points", "demo-logins"])
    assert "Log in with your admins' accounts" in logins.output and "seed-demo" not in logins.output
    # An export to a folder that does not exist says so.
    missing = runner.invoke(args=["points", "export", str(tmp_path / "no" / "such" / "x.zip")])
    assert missing.exit_code == 1 and "cannot write" in missing.output and isinstance(missing.exception, SystemExit)


def test_create_admin_command_refuses_a_short_password_or_a_taken_username(app, runner):
    short = runner.invoke(
        args=["points", "create-admin", "--username", "boss", "--name", "王主任", "--street", "友谊街道", "--password", "short"]
    )
    assert short.exit_code != 0 and "at least 10" in short.output
    assert db.session.query(User).count() == 0
    ok = ["points", "create-admin", "--username", "boss", "--name", "王主任", "--street", "友谊街道", "--password", "long-enough"]
    assert runner.invoke(args=ok).exit_code == 0
    taken = runner.invoke(args=ok)
    assert taken.exit_code != 0 and "taken" in taken.output
    assert db.session.query(User).count() == 1


def test_create_admin_command_prompts_for_the_password_twice(app, runner):
    result = runner.invoke(
        args=["points", "create-admin", "--username", "boss", "--name", "王主任", "--street", "友谊街道"],
        input="typed-secret-1\ntyped-secret-1\n",
    )
    assert result.exit_code == 0, result.output
    assert "typed-secret-1" not in result.output
    assert people.authenticate("boss", "typed-secret-1") is not None


def test_a_person_can_be_created_with_no_role_yet_and_gets_no_grant_or_account(street):
    """An admin may create a person first and grant roles later."""
    from sqlalchemy import func, select

    from pointsapp.models import Account, RoleGrant

    p = people.create_person(street.street_admin, username="later_role", full_name="周后定", password=None,
                             org_unit=street.grid_a, roles=())
    db.session.commit()
    assert p.id is not None and p.roles == []
    assert db.session.scalar(select(func.count()).select_from(RoleGrant).where(RoleGrant.user_id == p.id)) == 0
    assert db.session.scalar(select(func.count()).select_from(Account).where(Account.user_id == p.id)) == 0
