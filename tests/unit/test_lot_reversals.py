"""A wrong credit reversed while an open voucher holds its points: the reversal takes the
credit's own lot, so when the voucher is cancelled the volunteer keeps what they rightly earned."""
from datetime import timedelta

from pointsapp.cli import expire_points
from pointsapp.domain import claims, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from tests.factories import balance
from tests.unit.test_lots import grant


def test_reversing_a_held_credit_then_cancelling_keeps_the_rightful_points(app, street, check_ledger):
    today = local_today()
    wrong = grant(street, street.vol_a, 10, today + timedelta(days=2))  # a mistake, expires soon
    grant(street, street.vol_a, 10, None)  # rightly earned, never expires
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)  # holds the wrong credit's lot
    db.session.commit()
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    db.session.commit()
    vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.commit()
    expire_points(today + timedelta(days=3))
    # As if the wrong credit had never been: the 10 rightly earned points are still theirs.
    assert balance(street.vol_a).balance == 10, "the reversal took the rightful points; the wrong ones expired"
    check_ledger()
