"""Two app processes on one database, as in production behind a load balancer.

Two gunicorn servers (two workers of four threads each) serve the same database. Each race of
the core loop is sent over HTTP with its requests alternating between the two servers, so the
requests that collide run in different processes with different connection pools: only the
database can keep them apart.
"""
from __future__ import annotations

import copy

import pytest

from pointsapp.domain import vouchers
from pointsapp.extensions import db
from pointsapp.models import Reward, User, Voucher
from tests.conftest import BACKEND
from tests.factories import balance, give_points, person
from tests.live.conftest import WebSession, all_at_once
from tests.live.processes import gunicorn

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="several app processes share one database only on PostgreSQL in production; this runs in the PostgreSQL pass",
)


@pytest.fixture
def two_servers(app, database_url, tmp_path):
    """Yield the base URLs of two gunicorn servers on the test's database."""
    db.session.rollback()
    with gunicorn(app, database_url, tmp_path / "a.log") as a, gunicorn(app, database_url, tmp_path / "b.log") as b:
        yield [a.base, b.base]


def through(session: WebSession, base: str) -> WebSession:
    """The same browser (same cookies) reaching the app through another server."""
    other = copy.copy(session)
    other.base = base
    return other


def test_one_voucher_confirmed_through_both_servers_at_once_is_redeemed_once(street, two_servers, check_ledger):
    give_points(street, street.vol_a, 50)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    cashier = WebSession(two_servers[0])
    cashier.login("cashier")
    token = cashier.csrf("/merchant/")
    tills = [through(cashier, base) for base in two_servers]

    results = all_at_once(40, lambda i: tills[i % 2].post_with_token("/merchant/confirm", {"code": issued.code}, token))

    statuses = sorted(r.status for r in results)
    assert (statuses.count(200), statuses.count(409)) == (1, 39), statuses
    db.session.expire_all()
    assert db.session.get(Voucher, issued.voucher.id).status == "redeemed"
    b = balance(db.session.get(User, street.vol_a.id))
    assert (b.balance, b.held) == (40, 0)
    check_ledger()


def test_taps_on_redeem_through_both_servers_never_overspend(street, two_servers, check_ledger):
    give_points(street, street.vol_a, 100)
    volunteer = WebSession(two_servers[1])
    volunteer.login("vol_a")
    token = volunteer.csrf("/volunteer/rewards")
    phones = [through(volunteer, base) for base in two_servers]
    path = f"/volunteer/rewards/{street.rice.id}/redeem"

    results = all_at_once(40, lambda i: phones[i % 2].post_with_token(path, {}, token))

    ok = [r for r in results if r.status == 200 and "/volunteer/vouchers/" in r.url]
    refused = [r for r in results if r.status == 409]
    assert (len(ok), len(refused)) == (10, 30), sorted(r.status for r in results)
    db.session.expire_all()
    b = balance(db.session.get(User, street.vol_a.id))
    assert (b.balance, b.held, b.available) == (100, 100, 0)
    assert db.session.get(Reward, street.rice.id).stock == 90
    check_ledger()


def test_volunteers_on_both_servers_racing_for_the_last_item_one_gets_it(street, two_servers, check_ledger):
    last = vouchers.create_reward(street.street_admin, street.shop.id, vouchers.RewardTerms(name="最后一桶油", price=5, stock=1))
    db.session.commit()
    last_id = last.id
    names = [f"racer{i}" for i in range(12)]
    for name in names:
        v = person(name, street.unit_a, title="resident")
        db.session.commit()
        give_points(street, v, 10)
    db.session.rollback()
    sessions = []
    for i, name in enumerate(names):
        s = WebSession(two_servers[i % 2])
        s.login(name)
        sessions.append((s, s.csrf("/volunteer/rewards")))

    results = all_at_once(
        len(names), lambda i: sessions[i][0].post_with_token(f"/volunteer/rewards/{last_id}/redeem", {}, sessions[i][1])
    )

    winners = [r for r in results if r.status == 200 and "/volunteer/vouchers/" in r.url]
    assert len(winners) == 1, sorted(r.status for r in results)
    assert sorted(r.status for r in results if r not in winners) == [409] * (len(names) - 1)
    db.session.expire_all()
    assert db.session.get(Reward, last_id).stock == 0
    check_ledger()
