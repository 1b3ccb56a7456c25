"""Property: any sequence of credits, redemptions, confirmations, cancellations, expiries and
reversals keeps the books sound and agrees with a plain Python model of the same story."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pointsapp.domain import ledger, vouchers
from pointsapp.domain.clock import now_utc
from pointsapp.domain.errors import (
    CannotReverse,
    InsufficientPoints,
    LimitReached,
    OutOfStock,
    PointsError,
    VoucherAlreadyRedeemed,
    VoucherCancelled,
    VoucherExpired,
)
from pointsapp.extensions import db
from pointsapp.models import Account, Reward, Transfer, Voucher
from tests.factories import person

TTL = timedelta(days=7)
# (price, stock, per-volunteer limit) of the rewards each example starts with.
REWARDS = [(5, 2, None), (10, None, 2), (25, 1, None)]
_serial = itertools.count()


@dataclass
class ModelVoucher:
    id: int
    volunteer: int
    reward: int
    points: int
    expires_at: datetime
    status: str = "issued"


@dataclass
class Model:
    balance: list[int] = field(default_factory=lambda: [0, 0])
    held: list[int] = field(default_factory=lambda: [0, 0])
    earned: list[int] = field(default_factory=lambda: [0, 0])
    stock: list[int | None] = field(default_factory=lambda: [s for _, s, _ in REWARDS])
    vouchers: list[ModelVoucher] = field(default_factory=list)
    credits: list[list] = field(default_factory=list)  # [transfer id, volunteer, amount, reversed]

    def release(self, v: ModelVoucher, status: str) -> None:
        v.status = status
        self.held[v.volunteer] -= v.points
        if self.stock[v.reward] is not None:
            self.stock[v.reward] += 1


volunteer_index = st.integers(0, 1)
pick = st.integers(0, 50)


def issue():
    return st.tuples(st.just("issue"), volunteer_index, st.integers(0, len(REWARDS) - 1))


# Redemptions are drawn three times as often as the rest, so that vouchers pile up to act on.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), volunteer_index, st.integers(1, 40)),
        issue(),
        issue(),
        issue(),
        st.tuples(st.just("confirm"), pick),
        st.tuples(st.just("cancel"), pick),
        st.tuples(st.just("wait"), st.sampled_from([170, 24, 1])),  # hours; a voucher lives 168
        st.tuples(st.just("expire")),
        st.tuples(st.just("reverse"), pick),
    ),
    min_size=12,
    max_size=30,
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_stories_keep_the_books_sound_and_match_a_simple_model(street, ops):
    n = next(_serial)
    vols = [person(f"prop{n}_{i}", street.unit_a, title="resident") for i in range(2)]
    rewards = [
        vouchers.create_reward(
            street.street_admin, street.shop.id,
            vouchers.RewardTerms(name=f"奖品{n}-{i}", price=p, stock=s, per_volunteer_limit=lim),
        )
        for i, (p, s, lim) in enumerate(REWARDS)
    ]
    db.session.commit()
    accounts = [ledger.account_for_volunteer(v).id for v in vols]  # ascending, like the volunteers
    vol_ids, reward_ids = [v.id for v in vols], [r.id for r in rewards]
    issuance = ledger.issuance_account(street.street)
    model = Model()
    now = now_utc()
    # Every story starts with a credit to each volunteer, so that most redemptions can happen.
    ops = [("credit", 0, 30), ("credit", 1, 30), *ops]

    for op in ops:
        kind = op[0]
        expected: type[PointsError] | None = None
        try:
            if kind == "credit":
                _, who, amount = op
                t = ledger.credit(
                    issuance, db.session.get(Account, accounts[who]), amount,
                    reason="property test", cause_key=f"prop:{n}:{len(model.credits)}",
                )
                model.credits.append([t.id, who, amount, False])
                model.balance[who] += amount
                model.earned[who] += amount

            elif kind == "issue":
                _, who, r = op
                price, _, limit = REWARDS[r]
                taken = sum(1 for v in model.vouchers if v.volunteer == who and v.reward == r and v.status in ("issued", "redeemed"))
                if model.balance[who] - model.held[who] < price:
                    expected = InsufficientPoints
                elif limit is not None and taken >= limit:
                    expected = LimitReached
                elif model.stock[r] == 0:
                    expected = OutOfStock
                issued = vouchers.issue_voucher(vols[who], rewards[r].id, now=now)
                model.vouchers.append(ModelVoucher(issued.voucher.id, who, r, price, now + TTL))
                model.held[who] += price
                if model.stock[r] is not None:
                    model.stock[r] -= 1

            elif kind in ("confirm", "cancel"):
                if not model.vouchers:
                    continue
                v = model.vouchers[op[1] % len(model.vouchers)]
                expected = {
                    "redeemed": VoucherAlreadyRedeemed, "cancelled": VoucherCancelled, "expired": VoucherExpired
                }.get(v.status)
                overdue = expected is None and v.expires_at <= now
                if overdue and kind == "confirm":
                    expected = VoucherExpired
                code = vouchers.code_for(db.session.get(Voucher, v.id).nonce)
                if kind == "confirm":
                    vouchers.confirm_redemption(street.cashier, code, now=now)
                    v.status = "redeemed"
                    model.balance[v.volunteer] -= v.points
                    model.held[v.volunteer] -= v.points
                else:
                    closed = vouchers.cancel_voucher(vols[v.volunteer], v.id, now=now)
                    # An overdue voucher is closed as expired, with the same release.
                    model.release(v, "expired" if overdue else "cancelled")
                    assert closed.status == v.status

            elif kind == "wait":
                now += timedelta(hours=op[1])

            elif kind == "expire":
                vouchers.expire_vouchers(now=now)
                for v in model.vouchers:
                    if v.status == "issued" and v.expires_at <= now:
                        model.release(v, "expired")
                        event("a voucher expired")

            elif kind == "reverse":
                if not model.credits:
                    continue
                c = model.credits[op[1] % len(model.credits)]
                tid, who, amount, done = c
                if done or model.balance[who] - model.held[who] < amount:
                    expected = CannotReverse
                ledger.reverse(db.session.get(Transfer, tid), reason="property test", created_by_id=None)
                c[3] = True
                model.balance[who] -= amount
                model.earned[who] -= amount

            assert expected is None, f"{op}: expected {expected.__name__}, but it succeeded"
            db.session.commit()
            event(f"{kind} succeeded")
        except PointsError as exc:
            db.session.rollback()
            event(f"{kind} refused: {type(exc).__name__}")
            assert expected is not None and isinstance(exc, expected), f"{op}: got {exc!r}, expected {expected}"

        balances = db.session.execute(
            select(Account.id, Account.balance, Account.held, Account.earned).where(Account.id.in_(accounts))
        ).all()
        assert sorted(tuple(r) for r in balances) == [
            (acc, model.balance[i], model.held[i], model.earned[i]) for i, acc in enumerate(accounts)
        ], op
        stocks = dict(db.session.execute(select(Reward.id, Reward.stock).where(Reward.id.in_(reward_ids))).all())
        assert [stocks[r] for r in reward_ids] == model.stock, op
        statuses = dict(db.session.execute(select(Voucher.id, Voucher.status).where(Voucher.volunteer_id.in_(vol_ids))).all())
        assert statuses == {v.id: v.status for v in model.vouchers}, op

    db.session.rollback()
    assert ledger.check_ledger() == []
    db.session.rollback()
