"""Builders for test data, made through the domain functions (so they obey the same rules)."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from pointsapp.domain import claims, ledger, people, rules, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.org import add_unit, ensure_levels
from pointsapp.extensions import db
from pointsapp.models.user import (
    ROLE_COMMUNITY_ADMIN,
    ROLE_GRID_STAFF,
    ROLE_MERCHANT_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
)

PASSWORD = "correct-horse-1"


def person(username, unit, roles=(ROLE_VOLUNTEER,), title=None, merchant=None, full_name=None):
    return people.create_person(
        None,
        username=username,
        full_name=full_name or f"测试{username}",
        password=PASSWORD,
        org_unit=unit,
        title=title,
        roles=roles,
        merchant=merchant,
    )


def rule_terms(**overrides) -> rules.RuleTerms:
    base = dict(
        name_zh="参加会议", name_en="Attend a meeting", category="meeting", unit="occurrence", points=10
    )
    base.update(overrides)
    return rules.RuleTerms(**base)


def build_street():
    """Build: street → communities A, B → grids → buildings → units; people; rules; merchant; rewards."""
    ensure_levels()
    s = SimpleNamespace()
    s.street = add_unit("友谊街道", "street")
    s.community_a = add_unit("青山社区", "community", s.street)
    s.community_b = add_unit("友谊社区", "community", s.street)
    s.grid_a = add_unit("第一网格", "grid", s.community_a)
    s.grid_b = add_unit("第一网格", "grid", s.community_b)
    s.building_a = add_unit("1号楼", "building", s.grid_a)
    s.unit_a = add_unit("1单元", "unit", s.building_a)
    s.building_b = add_unit("9号楼", "building", s.grid_b)

    s.street_admin = person("street_admin", s.street, roles=(ROLE_STREET_ADMIN,), full_name="王街道")
    s.admin_a = person("admin_a", s.community_a, roles=(ROLE_COMMUNITY_ADMIN,), full_name="李社区")
    s.admin_b = person("admin_b", s.community_b, roles=(ROLE_COMMUNITY_ADMIN,), full_name="赵社区")
    s.staff_a = person("staff_a", s.grid_a, roles=(ROLE_GRID_STAFF,), full_name="陈网格")
    s.staff_b = person("staff_b", s.grid_b, roles=(ROLE_GRID_STAFF,), full_name="周网格")
    s.vol_a = person("vol_a", s.unit_a, title="unit_leader", full_name="张秀华")
    s.vol_a2 = person("vol_a2", s.building_a, title="building_leader", full_name="刘建国")
    s.vol_b = person("vol_b", s.building_b, title="building_leader", full_name="孙丽")

    s.meeting = rules.create_rule(s.street_admin, s.street, rule_terms())
    s.patrol = rules.create_rule(
        s.street_admin,
        s.street,
        rule_terms(name_zh="巡查执勤", name_en="Patrol", category="patrol", unit="hour", points=2, daily_cap=8, monthly_cap=40),
    )
    s.shop = vouchers.create_merchant(s.street_admin, s.street, name="友谊慈善超市", kind="charity_supermarket", address="友谊大街1号")
    s.other_shop = vouchers.create_merchant(s.street_admin, s.street, name="12349便民为老服务平台", kind="service_platform")
    s.cashier = person("cashier", None, roles=(ROLE_MERCHANT_STAFF,), merchant=s.shop, full_name="钱收银")
    s.other_cashier = person("cashier2", None, roles=(ROLE_MERCHANT_STAFF,), merchant=s.other_shop, full_name="吴收银")
    s.rice = vouchers.create_reward(s.street_admin, s.shop.id, vouchers.RewardTerms(name="大米 5kg", price=10, stock=100))
    s.oil = vouchers.create_reward(s.street_admin, s.other_shop.id, vouchers.RewardTerms(name="上门理发", price=20))
    db.session.commit()
    return s


def give_points(s, volunteer, amount: int) -> None:
    """Credit ``amount`` points to a volunteer through a recorded activity, and commit."""
    rule = rules.create_rule(
        s.street_admin, s.street, rule_terms(name_zh=f"奖励{amount}", name_en=f"Award {amount}", points=amount)
    )
    claims.record_attendance(
        s.street_admin,
        rule_id=rule.id,
        activity_date=local_today(),
        volunteer_ids=[volunteer.id],
        batch_key=f"give-{volunteer.id}-{amount}-{rule.id}",
    )
    db.session.commit()


def balance(user) -> ledger.Balance:
    acc = ledger.account_for_volunteer(user)
    return ledger.balance_of(acc.id)


def yesterday():
    return local_today() - timedelta(days=1)
