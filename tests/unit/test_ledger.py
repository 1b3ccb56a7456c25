"""The ledger as an accountant reads it: transfers, holds, captures, releases and reversals."""
import pytest
from flask_babel import force_locale
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from pointsapp.domain import claims, ledger, vouchers
from pointsapp.domain.errors import CannotReverse, InsufficientPoints
from pointsapp.extensions import db
from pointsapp.models import Account, Activity, Entry, PointLot, Transfer
from tests.factories import balance
from tests.unit.helpers import award, award_many, credit_of, ledger_state


def entries_of(transfer: Transfer) -> dict[int, tuple[int, int]]:
    return {e.account_id: (e.amount, e.balance_after) for e in transfer.entries}


def test_credit_moves_new_points_from_the_street_to_the_volunteer_in_two_legs(street, check_ledger):
    act = award(street, street.vol_a, 30)
    t = credit_of(act)
    vol = ledger.account_for_volunteer(street.vol_a)
    iss = ledger.issuance_account(street.street)
    assert t.amount == 30 and t.from_account_id == iss.id and t.to_account_id == vol.id
    assert "奖励30" in t.reason and t.cause_key == f"activity:{act.id}"
    assert entries_of(t) == {iss.id: (-30, -30), vol.id: (30, 30)}
    assert ledger.balance_of(iss.id).balance == -30
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (30, 0, 30)
    check_ledger()


def test_entries_carry_the_balance_after_each_movement(street, check_ledger):
    award(street, street.vol_a, 20)
    award(street, street.vol_a, 15)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    vol = ledger.account_for_volunteer(street.vol_a)
    rows = db.session.execute(
        select(Entry.amount, Entry.balance_after).where(Entry.account_id == vol.id).order_by(Entry.id)
    ).all()
    assert [tuple(r) for r in rows] == [(20, 20), (15, 35), (-10, 25)]
    check_ledger()


def test_a_meeting_credited_set_based_writes_what_one_credit_at_a_time_would(street, check_ledger):
    award(street, street.vol_a, 7)  # the volunteer and the street already have balances
    acts = award_many(street, [street.vol_a, street.vol_a2, street.vol_b], 10)
    iss = ledger.issuance_account(street.street)
    rows = db.session.execute(
        select(Entry.account_id, Entry.amount, Entry.balance_after).join(Transfer).where(
            Transfer.activity_id.in_([a.id for a in acts])).order_by(Entry.id)
    ).all()
    vol = {v.id: ledger.account_for_volunteer(v).id for v in (street.vol_a, street.vol_a2, street.vol_b)}
    # Volunteers in id order; the issuance account's balance after runs down transfer by transfer.
    by_vol = sorted(acts, key=lambda a: a.volunteer_id)
    expected = []
    after = -7
    for a in by_vol:
        after -= 10
        expected += [(iss.id, -10, after), (vol[a.volunteer_id], 10, 17 if a.volunteer_id == street.vol_a.id else 10)]
    assert [tuple(r) for r in rows] == expected
    for a in acts:
        t = credit_of(a)
        assert (t.kind, t.amount, t.cause_key, t.from_account_id) == ("credit", 10, f"activity:{a.id}", iss.id)
        lot = db.session.scalar(select(PointLot).where(PointLot.transfer_id == t.id))
        assert (lot.account_id, lot.amount, lot.remaining, lot.earned_on) == (vol[a.volunteer_id], 10, 10, a.activity_date)
    assert (balance(street.vol_a).balance, balance(street.vol_a).earned) == (17, 17)
    assert ledger.balance_of(iss.id).balance == -37
    check_ledger()


def test_credit_many_credits_an_account_twice_in_order(street, check_ledger):
    vol = ledger.account_for_volunteer(street.vol_a).id
    other = ledger.account_for_volunteer(street.vol_a2).id
    iss = ledger.issuance_account(street.street).id
    ids = ledger.credit_many(iss, [ledger.Credit(vol, 5, "x", "x:1"), ledger.Credit(other, 3, "x", "x:2"),
                                   ledger.Credit(vol, 7, "x", "x:3")])
    db.session.commit()
    rows = db.session.execute(select(Entry.transfer_id, Entry.account_id, Entry.amount, Entry.balance_after)
                              .where(Entry.account_id != iss).order_by(Entry.transfer_id)).all()
    assert [tuple(r) for r in rows] == [(ids[0], vol, 5, 5), (ids[1], other, 3, 3), (ids[2], vol, 7, 12)]
    assert (balance(street.vol_a).balance, balance(street.vol_a).earned, balance(street.vol_a2).balance) == (12, 12, 3)
    assert ledger.balance_of(iss).balance == -15
    check_ledger()


def test_credit_many_refuses_an_account_that_is_not_a_volunteers(street):
    iss = ledger.issuance_account(street.street).id
    merchant = ledger.account_for_merchant(street.shop.id).id
    with pytest.raises(ValueError):
        ledger.credit_many(iss, [ledger.Credit(merchant, 5, "x", "x:3")])
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == 0


def test_the_same_cause_cannot_move_points_twice(street, check_ledger):
    vol = ledger.account_for_volunteer(street.vol_a)
    iss = ledger.issuance_account(street.street)
    ledger.credit(iss, vol, 5, reason="bonus", cause_key="bonus:1")
    db.session.commit()
    with pytest.raises(IntegrityError):
        ledger.credit(iss, vol, 5, reason="bonus again", cause_key="bonus:1")
    db.session.rollback()
    assert balance(street.vol_a).balance == 5
    check_ledger()


def test_a_refused_second_transfer_for_a_cause_leaves_nothing_to_commit(street, check_ledger):
    """The unique cause is checked when the transfer is written, after both balances moved: the
    refusal rolls the transaction back, so a caller that goes on and commits commits none of it."""
    vol = ledger.account_for_volunteer(street.vol_a)
    iss = ledger.issuance_account(street.street)
    ledger.credit(iss, vol, 5, reason="bonus", cause_key="bonus:1")
    db.session.commit()
    vol_id, iss_id = vol.id, iss.id
    with pytest.raises(IntegrityError):
        ledger.credit(iss, vol, 5, reason="bonus again", cause_key="bonus:1")
    db.session.commit()  # nothing left to commit
    assert ledger.balance_of(vol_id).balance == 5 and db.session.get(Account, iss_id).balance == -5
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == 1
    check_ledger()


def test_hold_reserves_points_and_release_gives_them_back(street):
    award(street, street.vol_a, 40)
    acc = ledger.account_for_volunteer(street.vol_a)
    ledger.hold(acc.id, 25)
    b = ledger.balance_of(acc.id)
    assert (b.balance, b.held, b.available) == (40, 25, 15)
    with pytest.raises(InsufficientPoints) as exc:
        ledger.hold(acc.id, 16)
    assert exc.value.params == {"needed": 16, "available": 15}
    ledger.release(acc.id, 25)
    b = ledger.balance_of(acc.id)
    assert (b.balance, b.held, b.available) == (40, 0, 40)
    db.session.rollback()


def test_release_of_more_than_is_held_stops_rather_than_papering_over(street):
    award(street, street.vol_a, 10)
    acc = ledger.account_for_volunteer(street.vol_a)
    with pytest.raises(RuntimeError):
        ledger.release(acc.id, 1)
    db.session.rollback()


def test_capture_moves_held_points_to_the_merchant(street, check_ledger):
    award(street, street.vol_a, 50)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    t = db.session.scalar(select(Transfer).where(Transfer.voucher_id == v.voucher.id))
    merchant = ledger.account_for_merchant(street.shop.id)
    vol = ledger.account_for_volunteer(street.vol_a)
    assert t.kind == "capture" and t.cause_key == f"voucher:{v.voucher.id}:capture"
    assert entries_of(t) == {vol.id: (-10, 40), merchant.id: (10, 10)}
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (40, 0, 50)  # spending never lowers earned
    check_ledger()


def test_reversing_a_credit_lowers_balance_and_earned_and_marks_the_activity_reversed(street, check_ledger):
    award(street, street.vol_a, 20)
    act = award(street, street.vol_a, 30)
    r = claims.reverse_transfer(street.street_admin, credit_of(act).id, "重复登记 duplicate entry")
    db.session.commit()
    assert r.kind == "reversal" and r.reverses_id == credit_of(act).id and r.activity_id == act.id
    assert r.reason == "重复登记 duplicate entry" and r.created_by_id == street.street_admin.id
    b = balance(street.vol_a)
    assert (b.balance, b.earned) == (20, 20)
    assert db.session.get(Activity, act.id).status == "reversed"
    assert ledger.balance_of(ledger.issuance_account(street.street).id).balance == -20
    check_ledger()


def test_a_transfer_can_be_reversed_only_once(street, check_ledger):
    act = award(street, street.vol_a, 30)
    claims.reverse_transfer(street.street_admin, credit_of(act).id, "mistake")
    db.session.commit()
    before = ledger_state()
    with pytest.raises(CannotReverse):
        claims.reverse_transfer(street.street_admin, credit_of(act).id, "mistake again")
    db.session.rollback()
    assert ledger_state() == before
    # The ledger function refuses too, whoever calls it.
    with pytest.raises(CannotReverse):
        ledger.reverse(credit_of(act), reason="again", created_by_id=None)
    db.session.rollback()
    assert ledger_state() == before
    check_ledger()


def test_a_reversal_cannot_itself_be_reversed(street, check_ledger):
    act = award(street, street.vol_a, 30)
    r = claims.reverse_transfer(street.street_admin, credit_of(act).id, "mistake")
    db.session.commit()
    with pytest.raises(CannotReverse):
        claims.reverse_transfer(street.street_admin, r.id, "undo the undo")
    db.session.rollback()
    assert balance(street.vol_a).balance == 0
    check_ledger()


def test_reversing_a_credit_already_spent_is_refused_and_nothing_changes(street, check_ledger):
    act = award(street, street.vol_a, 10)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(CannotReverse) as exc:
        claims.reverse_transfer(street.street_admin, credit_of(act).id, "wrong volunteer")
    with force_locale("en"):
        assert "spent or held" in exc.value.message
    assert exc.value.params == {"available": 0, "needed": 10}
    db.session.rollback()
    assert ledger_state() == before
    assert db.session.get(Activity, act.id).status == "approved"
    check_ledger()


def test_reversing_a_credit_whose_points_are_held_is_refused_and_nothing_changes(street, check_ledger):
    act = award(street, street.vol_a, 10)
    vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(CannotReverse):
        claims.reverse_transfer(street.street_admin, credit_of(act).id, "wrong volunteer")
    db.session.rollback()
    assert ledger_state() == before
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (10, 10, 10)
    check_ledger()


def test_reversing_a_capture_gives_the_points_back_to_the_volunteer(street, check_ledger):
    award(street, street.vol_a, 30)
    v = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, v.code)
    db.session.commit()
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    claims.reverse_transfer(street.street_admin, capture.id, "goods out of stock at the till")
    db.session.commit()
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (30, 0, 30)
    assert ledger.balance_of(ledger.account_for_merchant(street.shop.id).id).balance == 0
    check_ledger()


def test_only_an_admin_over_the_volunteer_may_reverse(street, check_ledger):
    from pointsapp.domain.errors import NotFound

    act = award(street, street.vol_a, 30)
    for outsider in (street.admin_b, street.staff_a):
        with pytest.raises(NotFound):
            claims.reverse_transfer(outsider, credit_of(act).id, "not mine")
        db.session.rollback()
    claims.reverse_transfer(street.admin_a, credit_of(act).id, "community admin of A may")
    db.session.commit()
    assert balance(street.vol_a).balance == 0
    check_ledger()


def test_no_admin_reverses_an_entry_of_their_own_points(street, check_ledger):
    """An admin who also volunteers can neither undo a deduction of theirs nor get back the points
    of goods they redeemed; another admin over them can."""
    from pointsapp.domain import deductions, people, rules
    from pointsapp.domain.errors import Forbidden
    from pointsapp.models.user import ROLE_MERCHANT_STAFF, ROLE_VOLUNTEER
    from tests.factories import person, rule_terms

    me = street.admin_a
    people.grant_role(street.street_admin, me, ROLE_VOLUNTEER, unit=street.community_a)
    db.session.commit()
    credit = credit_of(award(street, me, 40))
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="乱扔垃圾", name_en="Littering", points=15, kind="deduct"))
    db.session.commit()
    deduction = deductions.apply_deduction(street.street_admin, volunteer_id=me.id, rule_id=rule.id,
                                           reason="楼道堆物", submission_key="own-1").transfer
    # A merchant of the admin's own community, where they redeem a voucher of their own.
    shop = vouchers.create_merchant(me, street.community_a, name="青山小卖部", kind="shop")
    till = person("till_a", None, roles=(ROLE_MERCHANT_STAFF,), merchant=shop)
    oil = vouchers.create_reward(me, shop.id, vouchers.RewardTerms(name="食用油", price=10))
    db.session.commit()
    issued = vouchers.issue_voucher(me, oil.id)
    vouchers.confirm_redemption(till, issued.code)
    db.session.commit()
    capture = db.session.scalar(select(Transfer).where(Transfer.voucher_id == issued.voucher.id))
    assert balance(me).balance == 15

    before = ledger_state()
    for own in (deduction, capture, credit):
        with pytest.raises(Forbidden) as exc:
            claims.reverse_transfer(me, own.id, "我不同意")
        assert "another admin" in exc.value.message
        db.session.rollback()
    assert ledger_state() == before
    claims.reverse_transfer(street.street_admin, deduction.id, "复核后撤销")
    db.session.commit()
    assert balance(me).balance == 30
    check_ledger()


def test_a_reversed_redemption_does_not_count_against_the_rewards_limit_per_volunteer(street, check_ledger):
    from pointsapp.domain.errors import LimitReached

    award(street, street.vol_a, 30)
    once = vouchers.create_reward(street.street_admin, street.shop.id,
                                  vouchers.RewardTerms(name="限领一次", price=10, per_volunteer_limit=1))
    db.session.commit()
    first = vouchers.issue_voucher(street.vol_a, once.id)
    vouchers.confirm_redemption(street.cashier, first.code)
    db.session.commit()
    with pytest.raises(LimitReached):
        vouchers.issue_voucher(street.vol_a, once.id)
    db.session.rollback()
    capture = db.session.scalar(select(Transfer).where(Transfer.voucher_id == first.voucher.id))
    claims.reverse_transfer(street.street_admin, capture.id, "收银错误，未交货")
    db.session.commit()
    again = vouchers.issue_voucher(street.vol_a, once.id)  # the reversed one no longer counts
    db.session.commit()
    with pytest.raises(LimitReached):  # the open one does
        vouchers.issue_voucher(street.vol_a, once.id)
    db.session.rollback()
    vouchers.confirm_redemption(street.cashier, again.code)
    db.session.commit()
    assert balance(street.vol_a).balance == 20
    check_ledger()


def test_a_reversal_needs_a_reason(street):
    from pointsapp.domain.errors import InvalidInput

    act = award(street, street.vol_a, 30)
    with pytest.raises(InvalidInput) as exc:
        claims.reverse_transfer(street.street_admin, credit_of(act).id, " ")
    assert exc.value.field == "reason"
    db.session.rollback()
    assert balance(street.vol_a).balance == 30


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE transfer SET reason = 'rewritten'",
        "UPDATE transfer SET amount = amount + 1",
        "DELETE FROM transfer",
        "UPDATE entry SET amount = amount * 2",
        "UPDATE entry SET balance_after = 0",
        "DELETE FROM entry",
    ],
)
def test_the_database_refuses_to_change_or_delete_ledger_rows(street, check_ledger, statement):
    award(street, street.vol_a, 30)
    before = ledger_state()
    with pytest.raises(DBAPIError) as exc:
        db.session.execute(text(statement))
        db.session.flush()
    assert "append-only" in str(exc.value)
    db.session.rollback()
    assert ledger_state() == before
    check_ledger()


def test_the_database_refuses_a_negative_volunteer_balance_written_directly(street, check_ledger):
    award(street, street.vol_a, 30)
    acc_id = ledger.account_for_volunteer(street.vol_a).id
    db.session.commit()
    with pytest.raises(IntegrityError) as exc:
        db.session.execute(text("UPDATE account SET balance = -1 WHERE id = :id"), {"id": acc_id})
    assert "balance_not_negative" in str(exc.value) or "held_within_balance" in str(exc.value)
    db.session.rollback()
    with pytest.raises(IntegrityError) as exc:
        db.session.execute(text("UPDATE account SET held = 31 WHERE id = :id"), {"id": acc_id})
    assert "held_within_balance" in str(exc.value)
    db.session.rollback()
    with pytest.raises(IntegrityError) as exc:
        db.session.execute(text("UPDATE account SET held = -1 WHERE id = :id"), {"id": acc_id})
    assert "held_not_negative" in str(exc.value)
    db.session.rollback()
    assert balance(street.vol_a).balance == 30
    check_ledger()


def test_only_the_issuance_account_may_go_below_zero(street, check_ledger):
    award(street, street.vol_a, 30)
    iss = ledger.issuance_account(street.street)
    assert db.session.get(Account, iss.id).balance == -30
    check_ledger()


def test_the_database_refuses_a_transfer_of_nothing(street):
    vol = ledger.account_for_volunteer(street.vol_a)
    iss = ledger.issuance_account(street.street)
    db.session.commit()
    with pytest.raises(IntegrityError) as exc:
        db.session.execute(
            text(
                "INSERT INTO transfer (kind, amount, from_account_id, to_account_id, reason, cause_key, created_at)"
                " VALUES ('credit', 0, :f, :t, 'nothing', 'zero:1', CURRENT_TIMESTAMP)"
            ),
            {"f": iss.id, "t": vol.id},
        )
    assert "amount_positive" in str(exc.value)
    db.session.rollback()
    with pytest.raises(ValueError):
        ledger.credit(iss, vol, 0, reason="nothing", cause_key="zero:2")
    db.session.rollback()


def test_a_rollback_forgets_the_transfers_it_undid_whatever_savepoints_came_between(street):
    """Transfers are written as rows and given to the session; a rollback takes out those it
    undid, also after a savepoint of their own was released and after an account's first use (a
    savepoint) came later. A copy of such a row loaded again, and kept, is replaced when a later
    transfer is given the same key (SQLite reuses the key of a row rolled back)."""
    import gc

    vol = ledger.account_for_volunteer(street.vol_a)
    iss = ledger.issuance_account(street.street)
    db.session.commit()
    with db.session.begin_nested():
        first = ledger.credit(iss, vol, 5, reason="x", cause_key="x:1")
    second = ledger.credit(iss, vol, 5, reason="x", cause_key="x:2")
    ledger.account_for_volunteer(street.vol_b)  # its first use: a savepoint, released
    db.session.rollback()
    assert first not in db.session and second not in db.session
    third_id = ledger.credit(iss, vol, 5, reason="x", cause_key="x:3").id
    gc.collect()  # the object given is gone: the row is loaded again, and this copy kept
    again = db.session.get(Transfer, third_id)
    assert again.cause_key == "x:3"
    db.session.rollback()
    done = ledger.credit(db.session.get(Account, iss.id), db.session.get(Account, vol.id), 7, reason="y",
                         cause_key="y:1")
    db.session.commit()
    assert db.session.get(Transfer, done.id) is done and done.cause_key == "y:1"
    assert ledger.balance_of(vol.id).balance == 7
    assert db.session.scalar(select(func.count()).select_from(Transfer)) == 1
