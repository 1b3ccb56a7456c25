"""Budgets: funding records, refusing credit beyond the funded budget, and the liability view."""
from __future__ import annotations

import secrets
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from pointsapp.domain import budgets, claims, ledger, settlement, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import (
    AlreadyRecorded,
    BudgetExhausted,
    Forbidden,
    FundingFromAbove,
    InvalidInput,
    NotFound,
)
from pointsapp.extensions import db
from pointsapp.models import AuditRecord, Budget, BudgetCharge, BudgetFunding, PointsRate, Transfer
from tests.factories import person
from tests.unit.helpers import award, award_many, credit_of, fund, ledger_state, state_of, two_rates


def refused_award(s, volunteer, points):
    """Try to credit ``points``; return the refusal, after checking that nothing was written."""
    before = ledger_state()
    charges = db.session.scalar(select(func.count()).select_from(BudgetCharge))
    with pytest.raises(BudgetExhausted) as exc:
        award(s, volunteer, points)
    db.session.rollback()
    assert ledger_state() == before
    assert db.session.scalar(select(func.count()).select_from(BudgetCharge)) == charges
    return exc.value


# -- refusing at the boundary -----------------------------------------------------------------------

def test_a_credit_that_fits_exactly_passes_and_one_point_more_is_refused_with_nothing_written(street, check_ledger):
    fund(street, street.street, 100)  # ¥100 at the default ¥1 a point: 100 points
    award(street, street.vol_a, 60)
    award(street, street.vol_b, 40)
    assert (state_of(street.street).used, state_of(street.street).remaining) == (100, 0)

    exc = refused_award(street, street.vol_a, 1)
    assert exc.code == "budget_exhausted" and exc.status == 409
    assert (exc.params["used"], exc.params["capacity"], exc.params["needed"], exc.params["left"]) == (100, 100, 1, 0)
    assert "友谊街道" in exc.message and "100" in exc.message
    assert state_of(street.street).used == 100
    check_ledger()


def test_the_refusal_message_tells_staff_in_chinese_what_to_do(app, street):
    fund(street, street.street, 12)
    award(street, street.vol_a, 5)
    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=local_today(), note="会议")
    db.session.commit()
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        with pytest.raises(BudgetExhausted) as exc:
            claims.approve_claim(street.staff_a, act.id)
        db.session.rollback()
        assert exc.value.message == (
            "友谊街道的积分预算已用完：已发放 5 分，预算 12 分，无法再发放 10 分，未记录任何内容。请联系街道管理员追加经费。"
        )
        exc = refused_award(street, street.vol_a, 10)
        assert "需要 10 分" in exc.message and "仅剩 7 分" in exc.message and "追加经费" in exc.message


def test_a_claim_approved_over_budget_stays_pending(street, check_ledger):
    fund(street, street.street, 5)
    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=local_today(), note="会议")
    db.session.commit()
    with pytest.raises(BudgetExhausted):
        claims.approve_claim(street.staff_a, act.id)
    db.session.rollback()
    db.session.expire_all()
    assert act.status == "pending" and act.points_credited == 0
    assert credit_of(act) is None
    check_ledger()


def test_a_credit_refused_and_rolled_back_leaves_nothing_in_the_session(street, check_ledger):
    """The refused credit's transfer was written as a plain row and given to the session; the
    rollback must take it out again, or the next credit (given the same key on SQLite) fails."""
    fund(street, street.street, 5)
    a = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=local_today(), note="会议")
    b = claims.submit_claim(street.vol_b, rule_id=street.meeting.id, activity_date=local_today(), note="会议")
    db.session.commit()
    with pytest.raises(BudgetExhausted) as refused:  # the traceback keeps the refused transfer alive
        claims.approve_claim(street.staff_a, a.id)
    db.session.rollback()
    assert refused.value.params["needed"] == 10
    assert not [o for o in db.session.identity_map.values() if isinstance(o, Transfer)]
    fund(street, street.street, 100)
    done = claims.approve_claim(street.admin_b, b.id)
    db.session.commit()
    assert done.status == "approved" and credit_of(done).amount == 10
    check_ledger()


def test_without_any_funding_crediting_is_unlimited(street, check_ledger):
    award(street, street.vol_a, 10_000)
    assert db.session.scalar(select(func.count()).select_from(BudgetCharge)) == 0
    assert budgets.budget_of_unit(street.vol_a.org_unit) is None
    check_ledger()


# -- reversals give back ----------------------------------------------------------------------------

def test_reversing_a_credit_frees_its_points_in_the_budget_it_charged(street, check_ledger):
    fund(street, street.street, 100)
    act = award(street, street.vol_a, 100)
    refused_award(street, street.vol_b, 1)
    claims.reverse_transfer(street.street_admin, credit_of(act).id, "录入错误")
    db.session.commit()
    assert state_of(street.street).used == 0
    reversal = db.session.scalar(select(Transfer).where(Transfer.reverses_id == credit_of(act).id))
    charge = db.session.scalar(select(BudgetCharge).where(BudgetCharge.transfer_id == reversal.id))
    assert charge.points == -100 and charge.budget_id == state_of(street.street).budget_id
    award(street, street.vol_b, 100)
    assert state_of(street.street).used == 100
    check_ledger()


def test_a_reversal_gives_back_to_the_budget_charged_even_after_a_nearer_one_appears(street, check_ledger):
    fund(street, street.street, 100)
    act = award(street, street.vol_a, 30)
    fund(street, street.community_a, 10)  # vol_a now draws on the community's budget
    claims.reverse_transfer(street.street_admin, credit_of(act).id, "录入错误")
    db.session.commit()
    assert state_of(street.street).used == 0 and state_of(street.community_a).used == 0
    check_ledger()


def test_a_credit_made_before_any_funding_gives_nothing_back_when_reversed(street, check_ledger):
    act = award(street, street.vol_a, 30)
    fund(street, street.street, 100)
    award(street, street.vol_b, 20)
    claims.reverse_transfer(street.street_admin, credit_of(act).id, "录入错误")
    db.session.commit()
    assert state_of(street.street).used == 20
    check_ledger()


def test_points_that_leave_for_good_free_the_budget_that_paid_for_them_and_spent_points_free_nothing(
        app, street, check_ledger):
    """A deduction frees the budget of the lots it takes; points no budget paid for (credited
    before it existed) free nothing; redeemed points stay paid for; undoing the deduction draws
    on the budget again."""
    today = local_today()
    grant_lot(street, street.vol_a, 40, expires_on=today + timedelta(days=3))  # before the budget: never charged
    fund(street, street.street, 100)
    grant_lot(street, street.vol_a, 10, expires_on=today + timedelta(days=1))  # charged, and the first spent
    assert state_of(street.street).used == 10
    _deduct(street, street.vol_a, 15)  # 10 of the charged lot, 5 of the other
    assert state_of(street.street).used == 0
    assert budgets.check_budgets() == []
    _deduct(street, street.vol_a, 5)  # uncharged points only
    assert state_of(street.street).used == 0
    grant_lot(street, street.vol_a, 10, expires_on=today)  # charged: 10 used
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, issued.code)  # spent at a shop: still paid for
    db.session.commit()
    assert state_of(street.street).used == 10
    first = db.session.scalar(select(Transfer).where(Transfer.kind == "deduction").order_by(Transfer.id))
    claims.reverse_transfer(street.street_admin, first.id, "误操作")  # its 10 charged points come back
    db.session.commit()
    assert state_of(street.street).used == 20
    assert budgets.check_budgets() == []
    check_ledger()


def grant_lot(s, volunteer, points, *, expires_on):
    """Credit a lot straight through the ledger, charged like any credit; commit."""
    t = ledger.credit(ledger.issuance_account(s.street), ledger.account_for_volunteer(volunteer), points,
                      reason="测试", cause_key=f"test:{secrets.token_hex(6)}", earned_on=local_today(),
                      expires_on=expires_on)
    db.session.commit()
    return t


def _deduct(s, volunteer, points):
    from pointsapp.domain import deductions, rules
    from tests.factories import rule_terms

    rule = rules.create_rule(s.street_admin, s.street,
                             rule_terms(name_zh="楼道堆物", name_en="Clutter in the stairwell", points=points, kind="deduct"))
    db.session.commit()
    deductions.apply_deduction(s.staff_a, volunteer_id=volunteer.id, rule_id=rule.id, reason="楼道堆物",
                               submission_key=secrets.token_hex(8))
    db.session.commit()


@pytest.mark.parametrize("leave", ["deduction", "expiry"])
def test_uncharged_points_leaving_free_nothing_and_a_charged_credit_reversed_gives_back_its_charge(
        street, check_ledger, leave):
    """Points credited before the budget existed were never charged: when they leave they free
    nothing, and reversing a charged credit afterwards gives back all of its charge."""
    from pointsapp.cli import expire_points

    today = local_today()
    if leave == "deduction":
        award(street, street.vol_a, 10)  # before the budget: never charged
    else:
        ledger.credit(ledger.issuance_account(street.street), ledger.account_for_volunteer(street.vol_a), 10,
                      reason="旧积分", cause_key="old-points", earned_on=today - timedelta(days=400),
                      expires_on=today + timedelta(days=1))
        db.session.commit()
    fund(street, street.street, 100)
    act = award(street, street.vol_a, 10)
    assert state_of(street.street).used == 10
    if leave == "deduction":
        _deduct(street, street.vol_a, 4)  # from the uncharged lot (the older, as neither expires)
    else:
        assert expire_points(today + timedelta(days=5)).points == 10
    assert state_of(street.street).used == 10  # the charged credit's points are all still there

    reversal = claims.reverse_transfer(street.street_admin, credit_of(act).id, "录入错误")
    db.session.commit()
    assert reversal.amount == 10
    assert state_of(street.street).used == 0
    assert db.session.scalar(select(func.sum(BudgetCharge.points)).where(BudgetCharge.transfer_id == reversal.id)) == -10
    assert budgets.check_budgets() == []
    check_ledger()


def test_a_moved_volunteers_points_free_the_budget_that_paid_for_them_not_their_new_ones(street, check_ledger):
    """Community A paid for vol_a's first points, community B (after the move) for the next;
    a deduction taking from both gives back to each what it paid, and its reversal draws on each
    again. B cannot then credit beyond its money."""
    from pointsapp.domain import people

    fund(street, street.community_a, 100, source="partner")
    fund(street, street.community_b, 100, source="partner")
    award(street, street.vol_a, 60)  # paid by A
    award(street, street.vol_b, 70)  # paid by B
    people.move_person(street.street_admin, street.vol_a.id, street.building_b)
    db.session.commit()
    award(street, street.vol_a, 30)  # paid by B: 100 of 100
    assert (state_of(street.community_a).used, state_of(street.community_b).used) == (60, 100)
    _deduct_by(street, street.staff_b, street.vol_a, 80)  # 60 of A's lot, 20 of B's
    assert (state_of(street.community_a).used, state_of(street.community_b).used) == (0, 80)
    deduction = db.session.scalar(select(Transfer).where(Transfer.kind == "deduction"))
    rows = db.session.execute(select(BudgetCharge.budget_id, BudgetCharge.points)
                              .where(BudgetCharge.transfer_id == deduction.id).order_by(BudgetCharge.budget_id)).all()
    assert sorted(p for _, p in rows) == [-60, -20]
    assert budgets.check_budgets() == []
    refused_award(street, street.vol_b, 21)  # B has 20 left, not the 80 a give-back to B would have left
    claims.reverse_transfer(street.street_admin, deduction.id, "扣错了")  # the points go back to both lots
    db.session.commit()
    assert (state_of(street.community_a).used, state_of(street.community_b).used) == (60, 100)
    refused_award(street, street.vol_b, 1)
    assert budgets.check_budgets() == []
    check_ledger()


def _deduct_by(s, staff, volunteer, points):
    from pointsapp.domain import deductions, rules
    from tests.factories import rule_terms

    rule = rules.create_rule(s.street_admin, s.street,
                             rule_terms(name_zh=f"扣{points}", name_en=f"Deduct {points}", points=points, kind="deduct"))
    db.session.commit()
    deductions.apply_deduction(staff, volunteer_id=volunteer.id, rule_id=rule.id, reason="楼道堆物",
                               submission_key=secrets.token_hex(8))
    db.session.commit()


# -- which budget -----------------------------------------------------------------------------------

def test_a_community_budget_is_used_before_and_instead_of_the_street_budget(street, check_ledger):
    fund(street, street.street, 1000)
    fund(street, street.community_a, 50, source="partner")
    award(street, street.vol_a, 30)  # community A (unit_a, three levels below)
    award(street, street.vol_a2, 20)  # community A
    assert state_of(street.community_a).used == 50 and state_of(street.street).used == 0
    # Community A's budget is used up: no falling back on the street's.
    exc = refused_award(street, street.vol_a, 1)
    assert "青山社区" in exc.message
    # Community B has no budget of its own: the street's.
    award(street, street.vol_b, 70)
    assert state_of(street.street).used == 70 and state_of(street.community_a).used == 50
    assert budgets.budget_of_unit(street.vol_b.org_unit).org_unit_id == street.street.id
    assert budgets.budget_of_unit(street.vol_a.org_unit).org_unit_id == street.community_a.id
    check_ledger()


def test_a_batch_over_budget_records_nothing_and_says_how_many_points_are_left(street, check_ledger):
    fund(street, street.street, 100)
    award(street, street.vol_b, 75)
    volunteer = person("vol_a3", street.grid_a)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(BudgetExhausted) as exc:
        award_many(street, [street.vol_a, street.vol_a2, volunteer], 10)
    db.session.rollback()
    assert ledger_state() == before
    assert exc.value.params["needed"] == 30 and exc.value.params["left"] == 25
    assert (exc.value.params["used"], exc.value.params["capacity"]) == (75, 100)
    assert "30" in exc.value.message and "25" in exc.value.message
    award_many(street, [street.vol_a, street.vol_a2], 10)
    assert state_of(street.street).used == 95
    check_ledger()


def test_a_batch_across_two_budgets_charges_each_its_share_or_writes_nothing(street, check_ledger):
    fund(street, street.street, 100)
    fund(street, street.community_a, 25, source="partner")
    award_many(street, [street.vol_a, street.vol_a2, street.vol_b], 10)  # A: 20 of 25; street: 10 of 100
    assert (state_of(street.community_a).used, state_of(street.street).used) == (20, 10)
    # Community A has 5 left, so a batch of 10 each refuses as a whole, though the street could pay.
    before = ledger_state()
    with pytest.raises(BudgetExhausted) as exc:
        award_many(street, [street.vol_a, street.vol_b], 10)
    db.session.rollback()
    assert ledger_state() == before
    assert exc.value.params["unit"] == "青山社区" and (exc.value.params["needed"], exc.value.params["left"]) == (10, 5)
    assert (state_of(street.community_a).used, state_of(street.street).used) == (20, 10)
    charges = dict(db.session.execute(
        select(Budget.org_unit_id, func.sum(BudgetCharge.points)).join(Budget).group_by(Budget.org_unit_id)).all())
    assert charges == {street.community_a.id: 20, street.street.id: 10}
    check_ledger()


def test_a_batch_charges_only_the_attendees_with_a_funded_unit_and_a_reversal_gives_back_its_share(street, check_ledger):
    fund(street, street.community_a, 100, source="partner")  # community B: unlimited
    acts = {a.volunteer_id: a for a in award_many(street, [street.vol_a, street.vol_b], 10)}
    charged = dict(db.session.execute(select(BudgetCharge.transfer_id, BudgetCharge.points)).all())
    assert charged == {credit_of(acts[street.vol_a.id]).id: 10}
    assert state_of(street.community_a).used == 10
    claims.reverse_transfer(street.street_admin, credit_of(acts[street.vol_a.id]).id, "录入错误")
    claims.reverse_transfer(street.street_admin, credit_of(acts[street.vol_b.id]).id, "录入错误")
    db.session.commit()
    assert state_of(street.community_a).used == 0
    assert sorted(db.session.scalars(select(BudgetCharge.points))) == [-10, 10]
    check_ledger()


# -- funding ----------------------------------------------------------------------------------------

def test_a_negative_correction_lowers_the_budget_and_needs_a_reason(street, check_ledger):
    fund(street, street.street, 100)
    with pytest.raises(InvalidInput) as exc:
        fund(street, street.street, -40)
    assert exc.value.field == "note"
    db.session.rollback()
    fund(street, street.street, -40, note="重复录入")
    assert (state_of(street.street).funded_fen, state_of(street.street).capacity) == (6000, 60)
    award(street, street.vol_a, 60)
    refused_award(street, street.vol_a, 1)
    # A correction cannot take away more than was ever funded.
    with pytest.raises(InvalidInput) as exc:
        fund(street, street.street, -61, note="更正")
    assert exc.value.field == "amount"
    db.session.rollback()
    # It may take the budget below what was used (the money was never there): then nothing more is credited.
    fund(street, street.street, -30, note="拨款未到位")
    assert state_of(street.street).remaining == -30
    refused_award(street, street.vol_b, 1)
    records = db.session.scalars(select(BudgetFunding).order_by(BudgetFunding.id)).all()
    assert [r.fen for r in records] == [10000, -4000, -3000]
    check_ledger()


def test_a_rate_change_changes_the_capacity(street, check_ledger):
    fund(street, street.street, 100)
    award(street, street.vol_a, 80)
    db.session.add(PointsRate(org_unit_id=street.street.id, effective_from=local_today(), fen_per_point=50))
    db.session.commit()
    assert state_of(street.street).capacity == 200  # ¥0.50 a point: twice as many points
    award(street, street.vol_a, 120)
    refused_award(street, street.vol_a, 1)
    # A rate that took effect later than today changes nothing yet.
    db.session.add(PointsRate(org_unit_id=street.street.id, effective_from=local_today() + timedelta(days=1),
                              fen_per_point=200))
    db.session.commit()
    assert state_of(street.street).capacity == 200
    check_ledger()


def test_who_may_record_funding(street):
    fund(street, street.street, 10)  # the street is the top: its admin funds it
    fund(street, street.community_b, 10)
    fund(street, street.community_a, 10)
    for actor, unit, error in (
        (street.admin_a, street.community_a, FundingFromAbove),  # the budget the admin spends from
        (street.admin_a, street.street, NotFound),  # above the community admin
        (street.admin_a, street.community_b, NotFound),  # another community
        (street.staff_a, street.community_a, Forbidden),
        (street.vol_a, street.community_a, Forbidden),
        (street.cashier, street.street, Forbidden),
    ):
        with pytest.raises(error):
            fund(street, unit, 10, actor=actor)
        db.session.rollback()
    with pytest.raises(InvalidInput) as exc:
        fund(street, street.grid_a, 10)  # funding is for a street or a community
    assert exc.value.field == "org_unit_id"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 3
    audited = db.session.scalars(select(AuditRecord).where(AuditRecord.action == "budget.funded")).all()
    assert len(audited) == 3 and {a.org_path for a in audited} == {
        street.street.path, street.community_a.path, street.community_b.path}
    assert {a.actor_id for a in audited} == {street.street_admin.id}


def test_a_community_admin_cannot_fund_their_own_community_and_nothing_is_written(street):
    fund(street, street.community_a, 10)
    before = state_of(street.community_a)
    with pytest.raises(FundingFromAbove) as exc:
        fund(street, street.community_a, 1000, actor=street.admin_a)
    db.session.rollback()
    assert exc.value.status == 403 and exc.value.params == {"unit": street.community_a.name}
    assert state_of(street.community_a) == before
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 1
    # Correcting it down is funding too: the street's decision.
    with pytest.raises(FundingFromAbove):
        fund(street, street.community_a, -5, actor=street.admin_a, note="更正：重复录入")
    db.session.rollback()
    assert state_of(street.community_a) == before


def test_the_funding_form_offers_what_the_level_above_funds(street):
    ids = lambda actor: [u.id for u in budgets.fundable_units(actor)]  # noqa: E731
    assert ids(street.street_admin) == [street.street.id, street.community_a.id, street.community_b.id]
    assert ids(street.admin_a) == [] and ids(street.admin_b) == []
    assert ids(street.staff_a) == []


@pytest.mark.parametrize("text", ["0", "-0", "0.00", "abc", "", "1.234", "nan", "inf", "-inf", "1e12",
                                  "10000000.01", "-10000000.01", "1,000",
                                  "1e999999999999999999", "1e-999999999", "0.001",
                                  "1_000", "٣", "३००", "1e3", "+5", ".5", "5."])
def test_amounts_that_make_no_sense_are_refused(app, text):
    with pytest.raises(InvalidInput) as exc:
        budgets.fen_from_yuan(text)
    assert exc.value.field == "amount"


def test_amounts_in_yuan_become_fen():
    assert budgets.fen_from_yuan("350000") == 35_000_000
    assert budgets.fen_from_yuan(" -12.5 ") == -1250
    assert budgets.fen_from_yuan("10000000") == 1_000_000_000
    # Typed with a Chinese input method in full-width mode: the same digits.
    assert budgets.fen_from_yuan("１２．５") == 1250 and budgets.fen_from_yuan("－３００") == -30000


def test_bad_funding_input_is_refused_and_nothing_written(street):
    today = local_today()
    good = dict(fen=100, source="donation", funded_on=today, note=None, key="k")
    for change, field in (
        ({"fen": 0}, "amount"),
        ({"fen": 1_000_000_001}, "amount"),
        ({"fen": True}, "amount"),
        ({"source": "lottery"}, "source"),
        ({"funded_on": today + timedelta(days=1)}, "funded_on"),
        ({"funded_on": date(1999, 12, 31)}, "funded_on"),
        ({"note": "x" * 501}, "note"),
        ({"key": ""}, None),
    ):
        with pytest.raises(InvalidInput) as exc:
            budgets.record_funding(street.street_admin, street.street, **{**good, **change})
        assert exc.value.field == field, change
        db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 0
    assert db.session.scalar(select(func.count()).select_from(Budget)) == 0


def test_the_same_funding_form_sent_twice_records_once(street):
    budgets.record_funding(street.street_admin, street.street, fen=100, source="donation",
                           funded_on=local_today(), note=None, key="same")
    db.session.commit()
    with pytest.raises(AlreadyRecorded):
        budgets.record_funding(street.street_admin, street.street, fen=100, source="donation",
                               funded_on=local_today(), note=None, key="same")
    db.session.rollback()
    assert state_of(street.street).funded_fen == 100


# -- the liability view -----------------------------------------------------------------------------

def issuance_balance(s) -> int:
    db.session.expire_all()
    return ledger.balance_of(ledger.issuance_account(s.street).id).balance


def test_the_liability_view_reconciles_with_the_ledger(street, check_ledger):
    db.session.add(PointsRate(org_unit_id=street.street.id, effective_from=local_today(), fen_per_point=50))
    fund(street, street.street, 1000)  # 2000 points at ¥0.50
    fund(street, street.community_b, 100, source="partner")  # 200 points
    award(street, street.vol_a, 100)
    wrong = award(street, street.vol_a2, 40)
    award(street, street.vol_b, 60)
    claims.reverse_transfer(street.street_admin, credit_of(wrong).id, "录入错误")
    db.session.commit()
    for v in (street.vol_a, street.vol_a, street.vol_b):  # 3 x 10 points of rice
        issued = vouchers.issue_voucher(v, street.rice.id)
        vouchers.confirm_redemption(street.cashier, issued.code)
        db.session.commit()
    undone = db.session.scalar(select(Transfer).where(Transfer.kind == "capture").order_by(Transfer.id.desc()))
    claims.reverse_transfer(street.street_admin, undone.id, "收银误操作")  # vol_b's redemption, unpaid
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)  # held for a voucher, still theirs
    db.session.commit()
    settlement.record_payment(street.street_admin, street.shop.id, points=15, paid_on=local_today(),
                              reference="转账001", key="pay-1")
    db.session.commit()

    whole = budgets.liability(street.street)
    a, b = budgets.liability(street.community_a), budgets.liability(street.community_b)
    # What the ledger says, read independently.
    credits = db.session.scalar(select(func.sum(Transfer.amount)).where(Transfer.kind == "credit"))
    assert whole.issued == credits - 40 == 160
    assert whole.redeemed == 20 and whole.paid == 15 and whole.owed == 5
    assert whole.owed == budgets.merchant_balances(street.street)
    assert whole.paid == db.session.scalar(select(func.sum(Transfer.amount)).where(Transfer.kind == "settlement"))
    assert (whole.expired, whole.deducted) == (0, 0)
    # The identities: issued = redeemed + held + expired + deducted; redeemed = paid + owed;
    # outstanding (held + owed) = what the street's issuance account owes.
    for r in (whole, a, b):
        assert r.issued == r.redeemed + r.held + r.expired + r.deducted
        assert r.redeemed == r.paid + r.owed
        assert r.issued == r.paid + r.outstanding + r.expired + r.deducted
    assert whole.outstanding == -issuance_balance(street) == 145
    # The communities add up to the street (every volunteer here belongs to one).
    for name in ("issued", "redeemed", "held", "owed", "paid", "outstanding"):
        assert getattr(a, name) + getattr(b, name) == getattr(whole, name), name
    # vol_a's two redemptions came first and were paid for first (15 of 20 points, oldest first).
    assert (a.redeemed, a.owed, a.paid) == (20, 5, 15) and (b.redeemed, b.owed) == (0, 0)
    # Yuan at today's rate (¥0.50 a point), and the budgets.
    assert whole.fen(whole.outstanding) == 145 * 50
    assert (whole.budget.funded_fen, whole.budget.capacity, whole.budget.used, whole.budget.remaining) == (
        100000, 2000, 100, 1900)
    assert (b.budget.capacity, b.budget.used) == (200, 60) and a.budget is None
    assert whole.budget.used + b.budget.used == whole.issued  # all credited after the funding
    check_ledger()


def test_redemptions_are_in_yuan_at_their_own_days_rate_as_settlement_values_them(street, check_ledger):
    two_back, this_month = two_rates(street)  # ¥0.70 a point two months back, ¥0.40 from this month
    award(street, street.vol_a, 50, day=two_back)
    for start in (two_back, this_month):
        when = settlement.utc_start_of(start) + timedelta(hours=10)
        issued = vouchers.issue_voucher(street.vol_a, street.rice.id, now=when)
        vouchers.confirm_redemption(street.cashier, issued.code, now=when)
        db.session.commit()
    settlement.record_payment(street.street_admin, street.shop.id, points=5, paid_on=local_today(),
                              reference="转账002", key="pay-rates")
    db.session.commit()

    whole = budgets.liability(street.street)
    assert (whole.redeemed, whole.paid, whole.owed, whole.held) == (20, 5, 15, 30)
    # Two redemptions of 10 points: at ¥0.70 and at ¥0.40. The payment retired 5 of the older.
    assert whole.redeemed_fen == 10 * 70 + 10 * 40
    assert whole.paid_fen == 5 * 70
    assert whole.owed_fen == 5 * 70 + 10 * 40 == settlement.owed_fen(street.shop.id)
    # What is not yet redeemed has only today's value.
    assert whole.fen_per_point == 40 and whole.outstanding_fen == 30 * 40 + whole.owed_fen
    figures = {name: (points, fen) for name, points, fen in whole.figures()}
    assert figures["owed"] == (15, 750) and figures["held"] == (30, 1200)
    # In yuan the parts add up as the points do: redeemed = paid + owed, outstanding = held + owed.
    assert figures["redeemed"][1] == figures["paid"][1] + figures["owed"][1]
    assert figures["outstanding"][1] == figures["held"][1] + figures["owed"][1]
    # Issued, expired and deducted mix rates: no yuan of their own, rather than a sum that does not add up.
    assert figures["issued"] == (50, None) and figures["expired"][1] is None and figures["deducted"][1] is None
    check_ledger()


def test_the_view_lists_the_street_and_its_funded_communities_for_each_admin(street):
    fund(street, street.community_b, 10)
    units = lambda actor: [r.unit.id for r in budgets.liabilities(actor)]  # noqa: E731
    assert units(street.street_admin) == [street.street.id, street.community_b.id]
    assert units(street.admin_a) == [street.community_a.id]
    assert units(street.admin_b) == [street.community_b.id]
    with pytest.raises(Forbidden):
        budgets.liabilities(street.staff_a)


def test_check_ledger_finds_a_budget_counter_that_disagrees_with_its_charges(street):
    fund(street, street.street, 100)
    award(street, street.vol_a, 10)
    db.session.execute(Budget.__table__.update().values(used=11))
    problems = budgets.check_budgets()
    assert any("used 11 but its charges sum to 10" in p for p in problems)
    db.session.rollback()
