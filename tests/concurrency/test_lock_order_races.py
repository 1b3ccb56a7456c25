"""Writers that lock the same street-level rows in one order (ledger's global lock order: people's
accounts, the street's issuance account, its expiry account, budget rows by id), forced into the
interleaving that would deadlock otherwise: a deduction that first expires a volunteer's points
past their last day, beside a credit of the same budget; an expiry whose points were paid for by
two budgets, beside a deduction over the same two (a volunteer moved between communities).
On SQLite writers queue, and both finish too."""
from __future__ import annotations

import secrets
import threading
from datetime import timedelta

from pointsapp.domain import budgets, deductions, ledger, people, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import OrgUnit, User
from tests.concurrency.test_races import race, tally, unexpected
from tests.unit.helpers import fund
from tests.unit.test_lots import deduct_rule, grant


def test_deduction_expiring_due_points_and_a_credit_do_not_deadlock(app, street, check_ledger, monkeypatch):
    fund(street, street.community_a, 1000)  # community A's budget pays for its volunteers' points
    today = local_today()
    grant(street, street.vol_a, 10, today - timedelta(days=1))  # due: the nightly job has not run
    grant(street, street.vol_a, 8, None)
    rule_id = deduct_rule(street, points=5).id
    staff_id, vol_a, vol_a2, street_id = street.staff_a.id, street.vol_a.id, street.vol_a2.id, street.street.id

    # Force the interleaving that two requests can hit naturally: the deduction has done its
    # expiry (budget row locked) when the credit has debited the issuance account (row locked).
    deduction_has_budget, credit_has_issuance = threading.Event(), threading.Event()
    real_deduct, real_on_transfer = ledger.deduct, budgets.on_transfer

    def deduct(*a, **kw):
        deduction_has_budget.set()
        credit_has_issuance.wait(3)
        return real_deduct(*a, **kw)

    def on_transfer(t):
        if t.kind == "credit":
            credit_has_issuance.set()
            deduction_has_budget.wait(3)
        return real_on_transfer(t)

    monkeypatch.setattr(ledger, "deduct", deduct)
    monkeypatch.setattr(budgets, "on_transfer", on_transfer)

    def work(i):
        if i == 0:
            deductions.apply_deduction(db.session.get(User, staff_id), volunteer_id=vol_a, rule_id=rule_id,
                                       reason="楼道堆物", submission_key="dl-1")
        else:
            deduction_has_budget.wait(3)  # start once the deduction holds the budget row
            v = db.session.get(User, vol_a2)
            street_ = db.session.get(OrgUnit, street_id)
            ledger.credit(ledger.issuance_account(street_), ledger.account_for_volunteer(v), 7,
                          reason="测试", cause_key=f"test:{secrets.token_hex(6)}")
        db.session.commit()

    results = race(app, 2, work)
    assert tally(results) == {"ok": 2}, unexpected(results)
    check_ledger()


def test_an_expiry_and_a_deduction_over_two_budgets_do_not_deadlock(app, street, check_ledger, monkeypatch):
    fund(street, street.community_a, 1000)  # budget A: the lower id
    fund(street, street.community_b, 1000)  # budget B
    today = local_today()
    # vol_b (community B): first-expiring lot paid by B; moved to A, the next lot paid by A.
    grant(street, street.vol_b, 10, today - timedelta(days=3))
    people.move_person(street.street_admin, street.vol_b.id, street.unit_a); db.session.commit()
    grant(street, street.vol_b, 10, today - timedelta(days=1))
    grant(street, street.vol_b, 10, None)  # valid points for the voucher
    # vol_a (community A): a lot paid by A; moved to B, a lot paid by B. A deduction takes from both.
    grant(street, street.vol_a, 10, today + timedelta(days=30))
    people.move_person(street.street_admin, street.vol_a.id, street.building_b); db.session.commit()
    grant(street, street.vol_a, 10, None)
    rule_id = deduct_rule(street, points=15).id
    staff_id, vol_a, vol_b, rice = street.street_admin.id, street.vol_a.id, street.vol_b.id, street.rice.id
    db.session.commit()

    firsts = {0: threading.Event(), 1: threading.Event()}
    me = threading.local()
    real = budgets._give_back

    def give_back(budget, points, transfer_id):
        real(budget, points, transfer_id)
        if not getattr(me, "paused", False):
            me.paused = True  # one budget row locked: let the other take its first one too
            firsts[me.i].set()
            firsts[1 - me.i].wait(3)

    monkeypatch.setattr(budgets, "_give_back", give_back)

    def work(i):
        me.i = i
        if i == 0:  # vol_b redeems: their points past their last day expire first (B, then A)
            vouchers.issue_voucher(db.session.get(User, vol_b), rice)
        else:  # staff deduct 15 from vol_a: gives back to A, then B
            deductions.apply_deduction(db.session.get(User, staff_id), volunteer_id=vol_a, rule_id=rule_id,
                                       reason="楼道堆物", submission_key="dl-2")
        db.session.commit()

    results = race(app, 2, work)
    assert tally(results) == {"ok": 2}, unexpected(results)
    check_ledger()
