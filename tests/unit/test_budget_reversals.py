"""A credit reversed after its points were spent at a shop: the budget that paid for the credit
gets its charge back, and the budget that paid for the points the reversal takes in their place
stays charged (those points were, in effect, spent)."""
from datetime import timedelta


from pointsapp.domain import claims, people, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from tests.factories import balance
from tests.unit.helpers import fund, state_of
from tests.unit.test_lots import grant


def test_reversing_a_spent_credit_frees_its_own_budget_not_another(app, street, check_ledger):
    fund(street, street.community_a, 100)
    fund(street, street.community_b, 100)
    grant(street, street.vol_b, 10, None)  # community B's budget pays (rightly earned)
    people.move_person(street.street_admin, street.vol_b.id, street.unit_a)  # moved house to A
    db.session.commit()
    wrong = grant(street, street.vol_b, 10, local_today() + timedelta(days=5))  # A's budget pays; a mistake
    issued = vouchers.issue_voucher(street.vol_b, street.rice.id)  # 10: takes the earliest lot (the wrong one's)
    db.session.commit()
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    db.session.commit()
    assert balance(street.vol_b).balance == 0
    # As if the wrong credit had never been: B paid for the 10 points issued and spent, A for none.
    used = (state_of(street.community_a).used, state_of(street.community_b).used)
    assert used == (0, 10), f"community A, B budgets used {used}"
    check_ledger()


def test_a_credit_partly_deducted_then_reversed_gives_back_the_rest_of_its_charge(app, street, check_ledger):
    """4 of a wrong credit's 10 were deducted (giving 4 back); its reversal gives back the other 6."""
    from pointsapp.domain import budgets
    from tests.unit.test_lots import deduct_rule

    fund(street, street.community_a, 100)
    wrong = grant(street, street.vol_a, 10, local_today() + timedelta(days=3))  # spent first
    grant(street, street.vol_a, 20, None)
    from pointsapp.domain import deductions
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=deduct_rule(street, points=4).id,
                               reason="楼道堆物", submission_key="part")
    db.session.commit()
    assert state_of(street.community_a).used == 26
    claims.reverse_transfer(street.street_admin, wrong.id, "录入错误")
    db.session.commit()
    assert state_of(street.community_a).used == 20 and balance(street.vol_a).balance == 16
    assert budgets.check_budgets() == []
    check_ledger()
