"""The core loop told as a story: earn, hold, redeem, and the books still balance."""
from pointsapp.domain import claims, vouchers
from pointsapp.extensions import db
from tests.factories import balance, give_points, yesterday


def test_volunteer_earns_50_redeems_30_and_has_20_left(street, check_ledger):
    give_points(street, street.vol_a, 50)
    issued = [vouchers.issue_voucher(street.vol_a, street.rice.id) for _ in range(3)]
    db.session.commit()
    assert balance(street.vol_a).available == 20
    assert balance(street.vol_a).held == 30
    for v in issued:
        vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.available, b.earned) == (20, 0, 20, 50)
    check_ledger()


def test_claim_waits_for_approval_then_credits_once(street, check_ledger):
    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday(), note="楼栋会议")
    db.session.commit()
    assert balance(street.vol_a).balance == 0
    claims.approve_claim(street.staff_a, act.id)
    db.session.commit()
    assert balance(street.vol_a).balance == 10
    check_ledger()
