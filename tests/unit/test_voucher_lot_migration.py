"""Migration f0f0a1b2c3d4 on a database with open vouchers: each is given the lots its hold
covered (the earliest-expiring points, voucher by voucher in issue order), the books check, and
the new constraints and append-only guard hold on both databases."""
import secrets
from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from pointsapp.domain import ledger, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from tests.factories import build_street


def _grant(s, points, expires_on):
    ledger.credit(
        ledger.issuance_account(s.street), ledger.account_for_volunteer(s.vol_a), points, reason="测试",
        cause_key=f"test:{secrets.token_hex(6)}", earned_on=local_today(), expires_on=expires_on,
    )


def test_open_vouchers_are_given_the_lots_their_holds_covered(app, check_ledger):
    s = build_street()
    today = local_today()
    _grant(s, 10, None)
    _grant(s, 6, today + timedelta(days=3))
    _grant(s, 8, today + timedelta(days=30))
    reward = vouchers.create_reward(s.street_admin, s.shop.id, vouchers.RewardTerms(name="米", price=9))
    first = vouchers.issue_voucher(s.vol_a, reward.id).voucher.id
    cancelled = vouchers.issue_voucher(s.vol_a, reward.id).voucher.id
    vouchers.cancel_voucher(s.vol_a, cancelled)
    second = vouchers.issue_voucher(s.vol_a, reward.id).voucher.id
    db.session.commit()
    db.session.remove()
    downgrade(revision="eff0a1b2c3d4")
    assert "voucher_lot" not in inspect(db.engine).get_table_names()
    upgrade()
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT v.voucher_id, l.amount, v.points FROM voucher_lot v JOIN point_lot l ON l.id = v.lot_id "
            "ORDER BY v.id"
        )).all()
        reserved = conn.execute(text("SELECT amount, reserved FROM point_lot ORDER BY id")).all()
    # The first voucher: the 6 expiring in 3 days, then 3 of the 8; the second: the other 5 of
    # the 8, then 4 of the never-expiring 10. The cancelled voucher reserves nothing.
    assert [tuple(r) for r in rows] == [(first, 6, 6), (first, 8, 3), (second, 8, 5), (second, 10, 4)]
    assert [tuple(r) for r in reserved] == [(10, 4), (6, 6), (8, 8)]
    check_ledger()
    checks = [c["name"] for c in inspect(db.engine).get_check_constraints("point_lot")]
    assert "ck_point_lot_reserved_within_remaining" in checks
    with pytest.raises(DBAPIError):
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE point_lot SET reserved = remaining + 1"))
    with pytest.raises(DBAPIError) as exc:
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM voucher_lot"))
    assert "append-only" in str(exc.value)
