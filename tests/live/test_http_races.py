"""Races over real HTTP: a threaded server, many clients posting at the same instant.

These go through everything a phone's request goes through (session cookie, CSRF, the view,
the domain, the commit) and check that exactly one wins where exactly one may.
"""
from __future__ import annotations


from pointsapp.domain import vouchers
from pointsapp.extensions import db
from pointsapp.models import Reward, User, Voucher
from tests.factories import balance, give_points, person
from tests.live.conftest import WebSession, all_at_once


def test_fifty_cashier_confirms_of_one_voucher_redeem_it_once(street, live_server, check_ledger):
    give_points(street, street.vol_a, 50)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    cashier = WebSession(live_server)
    cashier.login("cashier")
    token = cashier.csrf("/merchant/")

    results = all_at_once(50, lambda i: cashier.post_with_token("/merchant/confirm", {"code": issued.code}, token))

    statuses = sorted(r.status for r in results)
    assert statuses.count(200) == 1, statuses  # the winner is redirected to the redeem page
    assert statuses.count(409) == 49, statuses  # everyone else: already redeemed
    db.session.expire_all()
    v = db.session.get(Voucher, issued.voucher.id)
    assert v.status == "redeemed"
    b = balance(db.session.get(User, street.vol_a.id))
    assert (b.balance, b.held) == (40, 0)
    check_ledger()


def test_fifty_taps_on_redeem_with_points_for_ten_issue_ten_vouchers(street, live_server, check_ledger):
    give_points(street, street.vol_a, 100)
    volunteer = WebSession(live_server)
    volunteer.login("vol_a")
    token = volunteer.csrf("/volunteer/rewards")
    path = f"/volunteer/rewards/{street.rice.id}/redeem"

    results = all_at_once(50, lambda i: volunteer.post_with_token(path, {}, token))

    ok = [r for r in results if r.status == 200 and "/volunteer/vouchers/" in r.url]
    refused = [r for r in results if r.status == 409]
    assert (len(ok), len(refused)) == (10, 40), sorted(r.status for r in results)
    db.session.expire_all()
    b = balance(db.session.get(User, street.vol_a.id))
    assert (b.balance, b.held, b.available) == (100, 100, 0)
    assert db.session.get(Reward, street.rice.id).stock == 90
    check_ledger()


def test_twenty_volunteers_racing_for_the_last_item_one_gets_it(street, live_server, check_ledger):
    last = vouchers.create_reward(
        street.street_admin, street.shop.id, vouchers.RewardTerms(name="最后一桶油", price=5, stock=1)
    )
    db.session.commit()
    last_id = last.id
    names = [f"racer{i}" for i in range(20)]
    for name in names:
        v = person(name, street.unit_a, title="resident")
        db.session.commit()
        give_points(street, v, 10)
    sessions = []
    for name in names:
        s = WebSession(live_server)
        s.login(name)
        sessions.append((s, s.csrf("/volunteer/rewards")))

    results = all_at_once(
        20, lambda i: sessions[i][0].post_with_token(f"/volunteer/rewards/{last_id}/redeem", {}, sessions[i][1])
    )

    winners = [r for r in results if r.status == 200 and "/volunteer/vouchers/" in r.url]
    assert len(winners) == 1, sorted(r.status for r in results)
    assert sorted(r.status for r in results if r not in winners) == [409] * 19
    db.session.expire_all()
    assert db.session.get(Reward, last_id).stock == 0
    check_ledger()
