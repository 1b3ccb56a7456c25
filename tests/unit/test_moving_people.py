"""Moving a person to another node of their street: their node and volunteer role move, their
points and history go with them, work already recorded keeps its node, and only an admin of both
nodes may do it."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from pointsapp.domain import access, budgets, people
from pointsapp.domain.errors import Forbidden, InvalidInput, NotFound
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import Activity, AuditRecord, RoleGrant, User
from pointsapp.models.user import ROLE_COMMUNITY_ADMIN, ROLE_GRID_STAFF, ROLE_STREET_ADMIN, ROLE_VOLUNTEER
from tests.factories import balance, person
from tests.unit.helpers import award, fund, ledger_state, state_of


def _moves(street, actor, who, unit):
    person = people.move_person(actor, who.id, unit)
    db.session.commit()
    db.session.expire_all()
    return person


def _volunteer_grants(user) -> list[int]:
    return sorted(db.session.scalars(select(RoleGrant.org_unit_id).where(
        RoleGrant.user_id == user.id, RoleGrant.role == ROLE_VOLUNTEER)))


def _unchanged(street, who, call, error):
    """Run ``call``; it must raise ``error`` and leave the person, their roles and the audit log as they were."""
    before = (who.org_unit_id, _volunteer_grants(who),
              db.session.scalar(select(func.count()).select_from(AuditRecord)), ledger_state())
    with pytest.raises(error) as exc:
        call()
    db.session.rollback()
    db.session.expire_all()
    assert (who.org_unit_id, _volunteer_grants(who),
            db.session.scalar(select(func.count()).select_from(AuditRecord)), ledger_state()) == before
    return exc.value


def test_a_volunteer_moves_to_another_community_with_their_points_and_history(street, check_ledger):
    done = award(street, street.vol_a, 30)
    assert done.org_unit_id == street.unit_a.id

    moved = _moves(street, street.street_admin, street.vol_a, street.building_b)

    assert moved.org_unit_id == street.building_b.id
    assert _volunteer_grants(moved) == [street.building_b.id]
    assert balance(moved).balance == 30
    # The work was done in community A and stays there.
    assert db.session.get(Activity, done.id).org_unit_id == street.unit_a.id
    # Community B's admin and grid staff now have them; community A's no longer.
    assert people.person_in_scope(street.admin_b, moved.id) == moved
    assert access.in_scope(street.staff_b, moved.org_unit)
    with pytest.raises(NotFound):
        people.person_in_scope(street.admin_a, moved.id)
    # The points they hold are now the new community's liability.
    assert budgets.liability(street.community_b).held == 30
    assert budgets.liability(street.community_a).held == 0
    check_ledger()


def test_the_move_is_audited_where_admins_over_both_nodes_read_it(street):
    _moves(street, street.street_admin, street.vol_a, street.building_b)
    record = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "person.moved"))
    assert record.target_id == street.vol_a.id and record.actor_id == street.street_admin.id
    assert record.org_path == street.street.path  # the lowest node over community A and B
    summary = json.loads(record.summary)
    # Each node named by its path below the street: many buildings share a name.
    assert summary == {
        "username": "vol_a", "full_name": "张秀华",
        "before": {"org_unit_id": street.unit_a.id, "name": "青山社区 › 第一网格 › 1号楼 › 1单元"},
        "after": {"org_unit_id": street.building_b.id, "name": "友谊社区 › 第一网格 › 9号楼"},
    }
    # A move from building 9 up to its grid is filed under the grid, inside community B.
    _moves(street, street.admin_b, street.vol_b, street.grid_b)
    inside = db.session.scalars(select(AuditRecord).where(AuditRecord.action == "person.moved")
                                .order_by(AuditRecord.id)).all()[-1]
    assert inside.org_path == street.grid_b.path


def test_new_credits_draw_on_the_new_nodes_budget_and_old_charges_stay(street, check_ledger):
    fund(street, street.community_a, 100)
    fund(street, street.community_b, 100)
    award(street, street.vol_a, 40)
    _moves(street, street.street_admin, street.vol_a, street.building_b)
    award(street, street.vol_a, 25)
    assert state_of(street.community_a).used == 40
    assert state_of(street.community_b).used == 25
    check_ledger()


def test_only_the_volunteer_role_moves_other_roles_stay(street):
    people.grant_role(street.street_admin, street.vol_a, ROLE_GRID_STAFF, unit=street.grid_a)
    db.session.commit()
    _moves(street, street.street_admin, street.vol_a, street.building_b)
    grants = sorted((g.role, g.org_unit_id) for g in db.session.get(User, street.vol_a.id).roles)
    assert grants == sorted([(ROLE_GRID_STAFF, street.grid_a.id), (ROLE_VOLUNTEER, street.building_b.id)])


def test_moving_to_where_they_are_is_refused_and_changes_nothing(street):
    exc = _unchanged(street, street.vol_a, lambda: people.move_person(street.admin_a, street.vol_a.id, street.unit_a),
                     InvalidInput)
    assert exc.field == "org_unit_id" and "already belongs to 青山社区 › 第一网格 › 1号楼 › 1单元" in exc.message


def test_a_community_admin_moves_people_only_within_what_they_administer(street):
    award(street, street.vol_a, 10)
    # Into another community: the destination is not theirs.
    _unchanged(street, street.vol_a, lambda: people.move_person(street.admin_a, street.vol_a.id, street.building_b),
               NotFound)
    # Someone of another community: not theirs to move.
    _unchanged(street, street.vol_b, lambda: people.move_person(street.admin_a, street.vol_b.id, street.building_a),
               NotFound)
    # Grid staff are not admins.
    _unchanged(street, street.vol_a, lambda: people.move_person(street.staff_a, street.vol_a.id, street.building_a),
               NotFound)
    # Within their own community they can.
    moved = _moves(street, street.admin_a, street.vol_a, street.building_a)
    assert moved.org_unit_id == street.building_a.id


def test_no_admin_moves_themselves(street):
    people.grant_role(street.street_admin, street.admin_a, ROLE_VOLUNTEER, unit=street.community_a)
    db.session.commit()
    exc = _unchanged(street, street.admin_a,
                     lambda: people.move_person(street.admin_a, street.admin_a.id, street.grid_a), Forbidden)
    assert "another admin" in exc.message


def test_a_person_moves_only_within_their_street_and_a_cashier_not_at_all(street):
    other = add_unit("钢铁大街街道", "street")
    boss = person("boss_of_both", street.street, roles=(ROLE_STREET_ADMIN,))
    people.grant_role(None, boss, ROLE_STREET_ADMIN, unit=other)
    db.session.commit()
    exc = _unchanged(street, street.vol_a, lambda: people.move_person(boss, street.vol_a.id, other), InvalidInput)
    assert exc.field == "org_unit_id" and "street" in exc.message
    exc = _unchanged(street, street.cashier,
                     lambda: people.move_person(street.street_admin, street.cashier.id, street.unit_a), InvalidInput)
    assert "cashier" in exc.message
    _unchanged(street, street.vol_a, lambda: people.move_person(street.street_admin, street.vol_a.id, None), NotFound)


@pytest.mark.parametrize("role", [ROLE_COMMUNITY_ADMIN, ROLE_STREET_ADMIN])
def test_a_community_admin_cannot_move_someone_they_may_not_otherwise_change(street, role):
    # A second admin filed under community A (a peer community admin, or a street admin living there).
    unit = street.community_a if role == ROLE_COMMUNITY_ADMIN else street.building_a
    grant_unit = street.community_a if role == ROLE_COMMUNITY_ADMIN else street.street
    other = people.create_person(None, username="other_admin", full_name="另一位管理员", password="correct-horse-1",
                                 org_unit=unit, roles=(ROLE_VOLUNTEER,))
    people.grant_role(None, other, role, unit=grant_unit)
    db.session.commit()
    # The domain already refuses admin_a every other change to this person:
    with pytest.raises(Forbidden):
        people.set_active(street.admin_a, other.id, False)
    db.session.rollback()
    with pytest.raises(Forbidden):
        people.update_details(street.admin_a, other.id, full_name="改名", phone=None, title=None)
    db.session.rollback()
    # ... and moving them (with their volunteer role) too.
    with pytest.raises(Forbidden):
        people.move_person(street.admin_a, other.id, street.unit_a)
    db.session.rollback()
