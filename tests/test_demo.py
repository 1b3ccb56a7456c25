"""The demo street: Youyi street as seed 001 describes it, loaded once, with balanced books."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pointsapp.demo import DEMO_LOGINS, DEMO_PASSWORD, seed_demo
from pointsapp.domain.claims import CLAIM_MAX_AGE_DAYS
from pointsapp.domain.clock import local_today, now_utc, to_local
from pointsapp.domain.people import authenticate
from pointsapp.extensions import db
from pointsapp.models import Account, Activity, Merchant, OrgLevel, OrgUnit, RoleGrant, Transfer, User, Voucher
from pointsapp.models.user import (
    ROLE_COMMUNITY_ADMIN,
    ROLE_GRID_STAFF,
    ROLE_MERCHANT_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
)

# What each demo login must be able to do: (role, level of the node it is scoped to, volunteer title).
EXPECTED = {
    "jiedao": (ROLE_STREET_ADMIN, "street", None),
    "shequ1": (ROLE_COMMUNITY_ADMIN, "community", None),
    "wangge1": (ROLE_GRID_STAFF, "grid", None),
    "louzhang1": (ROLE_VOLUNTEER, "building", "building_leader"),
    "danyuan1": (ROLE_VOLUNTEER, "unit", "unit_leader"),
    "chaoshi1": (ROLE_MERCHANT_STAFF, None, None),
}
SEED_001_OUTLETS = {"慈善超市", "12349便民为老服务平台", "汽修一条街", "九九吾电商平台", "老少康育园平台"}


def units_at(level: str) -> list[OrgUnit]:
    return list(db.session.scalars(select(OrgUnit).join(OrgLevel).where(OrgLevel.code == level)))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.slow
def test_seed_demo_builds_youyi_street_once_with_history_and_balanced_books(runner):
    started = now_utc()
    result = runner.invoke(args=["points", "seed-demo"])
    assert result.exit_code == 0, result.output
    assert "demo street loaded" in result.output

    # The tree of seed 001: one street, four communities, 39 grids, buildings and units below.
    (street,) = units_at("street")
    assert street.name == "友谊街道"
    communities = units_at("community")
    assert len(communities) == 4 and all(c.parent_id == street.id for c in communities)
    grids = units_at("grid")
    assert len(grids) == 39
    assert {g.parent_id for g in grids} == {c.id for c in communities}
    assert len(units_at("building")) >= 39 and len(units_at("unit")) >= 39

    # The redemption outlets the article names, each with a cashier and rewards.
    merchants = list(db.session.scalars(select(Merchant)))
    for outlet in SEED_001_OUTLETS:
        assert any(outlet in m.name for m in merchants), outlet
    assert {m.kind for m in merchants} >= {"charity_supermarket", "service_platform", "shop"}
    for m in merchants:
        assert m.rewards, m.name
        assert db.session.scalar(select(RoleGrant.id).where(RoleGrant.merchant_id == m.id).limit(1)), m.name

    # Every demo login exists, holds the role it is described with, and opens with the demo password.
    assert {u for u, _ in DEMO_LOGINS} == set(EXPECTED)
    for username, (role, level, title) in EXPECTED.items():
        user = db.session.scalar(select(User).where(User.username == username))
        assert user is not None, username
        grants = user.grants(role)
        assert grants, f"{username} lacks {role}"
        if level:
            assert grants[0].org_unit.level.code == level, username
        if title:
            assert user.title == title
        assert authenticate(username, DEMO_PASSWORD) == user
        assert authenticate(username, DEMO_PASSWORD + "x") is None
    cashier = db.session.scalar(select(User).where(User.username == "chaoshi1"))
    assert cashier.grants(ROLE_MERCHANT_STAFF)[0].merchant.kind == "charity_supermarket"

    # Hundreds of volunteers, most of whom have earned points and many still hold some.
    volunteers = db.session.scalar(
        select(func.count(func.distinct(RoleGrant.user_id))).where(RoleGrant.role == ROLE_VOLUNTEER)
    )
    assert 150 <= volunteers <= 400
    vol_accounts = list(db.session.scalars(select(Account).where(Account.kind == "volunteer")))
    assert sum(1 for a in vol_accounts if a.earned > 0) >= volunteers * 0.8
    assert sum(1 for a in vol_accounts if a.balance > 0) >= volunteers * 0.5
    for username in ("louzhang1", "danyuan1"):
        acc = db.session.scalar(select(Account).join(User, User.id == Account.user_id).where(User.username == username))
        assert acc.earned > 0 and acc.balance > 0, username

    # The history has every state a newcomer should see.
    statuses = dict(db.session.execute(select(Activity.status, func.count()).group_by(Activity.status)).all())
    assert statuses.get("approved", 0) > 500
    assert statuses.get("rejected", 0) > 0 and statuses.get("pending", 0) > 0
    wangge1 = db.session.scalar(select(User).where(User.username == "wangge1"))
    from pointsapp.domain.claims import pending_claims_query

    assert db.session.scalars(pending_claims_query(wangge1)).first() is not None
    # Public notice in one community (with an objection), and a claim waiting for its second vote.
    from pointsapp.models import ApprovalVote, NoticeObjection

    assert statuses.get("on_notice", 0) > 0 and count(NoticeObjection) >= 1
    half_voted = db.session.scalar(
        select(Activity.id).join(ApprovalVote, ApprovalVote.activity_id == Activity.id)
        .where(Activity.status == "pending").limit(1)
    )
    assert half_voted is not None
    biggest_meeting = db.session.scalar(
        select(func.count())
        .select_from(Activity)
        .where(Activity.source == "recorded")
        .group_by(Activity.batch_key)
        .order_by(func.count().desc())
        .limit(1)
    )
    assert biggest_meeting >= 30
    vouchers = dict(db.session.execute(select(Voucher.status, func.count()).group_by(Voucher.status)).all())
    assert set(vouchers) == {"issued", "redeemed", "cancelled", "expired"}, vouchers
    assert count(Transfer) > 1000
    # Meeting points expire after three months: some have, and volunteers have some expiring soon.
    from pointsapp.domain import ledger

    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.kind == "expiry")) > 0
    accounts = db.session.scalars(select(Account.id).where(Account.kind == "volunteer")).all()
    assert any(ledger.expiring_soon(a, local_today(started)).points > 0 for a in accounts)

    # Every date is in the past and every claim was made within the window claims allow.
    today = local_today(started)
    now = now_utc()
    for act in db.session.scalars(select(Activity)):
        assert act.activity_date <= to_local(act.created_at).date() <= today
        assert to_local(act.created_at).date() - act.activity_date <= timedelta(days=CLAIM_MAX_AGE_DAYS)
        assert act.decided_at is None or act.created_at <= act.decided_at <= now
    assert db.session.scalar(select(func.max(Transfer.created_at))) <= now
    # A recorded meeting's credits carry the moment it was recorded in the history, not today.
    recorded = db.session.execute(
        select(Transfer.created_at, Activity.created_at).join(Activity, Activity.id == Transfer.activity_id)
        .where(Activity.source == "recorded", Transfer.kind == "credit")
    ).all()
    assert len(recorded) > 100 and all(t == a for t, a in recorded)
    assert db.session.scalar(select(func.min(Transfer.created_at))) < started - timedelta(days=90)
    assert db.session.scalar(select(func.max(Voucher.issued_at))) <= now

    # Loading again with --if-empty (what `make run` does) changes nothing.
    users, transfers = count(User), count(Transfer)
    db.session.rollback()
    again = runner.invoke(args=["points", "seed-demo", "--if-empty"])
    assert again.exit_code == 0, again.output
    assert "already" in again.output
    assert (count(User), count(Transfer)) == (users, transfers)

    checked = runner.invoke(args=["points", "check-ledger"])
    assert checked.exit_code == 0, checked.output
    assert "passed" in checked.output

    logins = runner.invoke(args=["points", "demo-logins"])
    assert logins.exit_code == 0
    assert DEMO_PASSWORD in logins.output
    assert all(username in logins.output for username, _ in DEMO_LOGINS)


def test_demo_logins_on_an_empty_database_say_how_to_create_an_admin(runner):
    result = runner.invoke(args=["points", "demo-logins"])
    assert result.exit_code == 0
    assert "create-admin" in result.output
    assert DEMO_PASSWORD not in result.output


def test_seed_demo_flushes_but_leaves_the_commit_to_the_caller(app, check_ledger):
    demo = seed_demo(months=1)
    assert len(demo.grids) == 39 and demo.claims > 0 and demo.vouchers > 0
    assert db.session.scalar(select(User.id).where(User.username == "jiedao")) is not None
    db.session.rollback()
    assert count(User) == 0 and count(Transfer) == 0
    check_ledger()


def test_the_demo_has_an_open_check_in_event_and_honour_rolls_with_one_volunteer_by_surname_only(app, client):
    from pointsapp.domain import checkin, honours
    from pointsapp.models import CheckinEvent

    demo = seed_demo(months=1)
    db.session.commit()

    # An open check-in event in the first grid, with volunteers signed in, its page showing the QR.
    event = db.session.get(CheckinEvent, demo.checkin_event.id)
    assert event.status == "open" and event.org_unit_id == demo.grids[0].id
    assert checkin.attendee_count(event.id) == (3, 3)
    assert event.starts_at <= now_utc() < event.ends_at

    # Honour rolls with places, and one volunteer shown by surname only. Read before any request,
    # whose end removes this session.
    louzhang = db.session.scalar(select(User).where(User.username == "louzhang1"))
    (shy,) = db.session.scalars(select(User).where(User.honour_display == "initials")).all()
    grid = honours.roll_unit(louzhang, None)
    # The month of some credited work of the volunteer shown by surname only, in louzhang1's grid.
    day = db.session.scalar(
        select(Activity.activity_date).join(OrgUnit, OrgUnit.id == Activity.org_unit_id).where(
            Activity.volunteer_id == shy.id, Activity.status == "approved", Activity.points_credited > 0,
            OrgUnit.path.startswith(grid.path),
        ).limit(1)
    )
    roll = honours.roll(louzhang, grid, honours.parse_period(day.strftime("%Y-%m")), top=100)
    assert len(roll.by_points) >= 3 and roll.by_points[0].place == 1
    shown = {p.volunteer_id: p.name for p in roll.by_points + roll.by_hours}
    assert shown[shy.id] == shy.full_name[0] + "**" != shy.full_name

    event_id = event.id
    page = client.get("/login")
    from tests.conftest import csrf_from

    client.post("/login", data={"username": "wangge1", "password": DEMO_PASSWORD,
                                "csrf_token": csrf_from(page.get_data(as_text=True))})
    body = client.get(f"/staff/events/{event_id}").get_data(as_text=True)
    assert "楼道清洁日" in body and "data:image/svg+xml" in body
