"""Deductions: staff apply a deduction rule to a volunteer, with a reason.

The points leave the volunteer's available balance for the street's issuance account (they are
retired, as if never issued), earliest-expiring first like any spending. A deduction takes at
most what is available - never below zero, never points held for vouchers - and tells staff the
shortfall. ``earned`` (lifetime points) is not lowered: honours subtract deductions themselves
(transfers of kind ``deduction``). An admin can reverse a deduction like a credit
(``claims.reverse_transfer``); the points go back to the lots they came from.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..extensions import db
from ..models import PointRule, Transfer, User
from ..models.rules import RULE_DEDUCT
from ..models.user import ROLE_VOLUNTEER, STAFF_ROLES
from . import audit, ledger
from .access import ancestor_paths, require_in_scope
from .clock import local_today, now_utc
from .errors import AlreadyRecorded, Forbidden, InvalidInput, NotFound, NothingToDeduct, RuleNotApplicable

DEDUCTOR_ROLES = STAFF_ROLES  # the same people who record attendance, in their subtree


@dataclass
class Deduction:
    transfer: Transfer
    requested: int  # the rule's points
    deducted: int  # what was available to take

    @property
    def shortfall(self) -> int:
        return self.requested - self.deducted


def deduction_rules_for(volunteer: User) -> list:
    """Return the current versions of the deduction rules that apply to a volunteer today."""
    from .rules import rules_for_unit

    if volunteer.org_unit is None:
        return []
    today = local_today()
    return [
        r.current
        for r in rules_for_unit(volunteer.org_unit)
        if r.current and r.current.kind == RULE_DEDUCT and r.current.applies_on(today)
    ]


def apply_deduction(
    actor: User,
    *,
    volunteer_id: int,
    rule_id: int,
    reason: str,
    submission_key: str,
    now: datetime | None = None,
) -> Deduction:
    """Deduct a rule's points from a volunteer (at most their available points) with a reason."""
    now = now or now_utc()
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput("A deduction needs a reason that the volunteer and the auditor will read.", field="reason")
    if not submission_key:
        raise InvalidInput("The form is missing its submission key; reload the page.")
    if not actor.has_role(*DEDUCTOR_ROLES):
        raise Forbidden()
    volunteer = db.session.get(User, volunteer_id)
    if volunteer is None or volunteer.org_unit is None or not volunteer.has_role(ROLE_VOLUNTEER):
        raise NotFound()
    require_in_scope(actor, volunteer.org_unit, DEDUCTOR_ROLES)
    if volunteer.id == actor.id:
        raise Forbidden(_l("You cannot deduct points from yourself; another staff member must."))
    rule = db.session.get(PointRule, rule_id)
    version = rule.current if rule is not None else None
    if version is None or version.kind != RULE_DEDUCT:
        raise InvalidInput("Choose a deduction rule from the list.", field="rule_id")
    if rule.org_unit.path not in ancestor_paths(volunteer.org_unit):
        raise RuleNotApplicable(why=_l("it is not defined for this volunteer's community"))
    if not version.applies_on(local_today(now)):
        raise RuleNotApplicable(why=_l("it is not in force on that date"))
    cause_key = f"deduction:{submission_key[:48]}"
    # The volunteer's account first (global lock order); what is available is read under it.
    db.session.flush()
    acc = ledger.locked_account_for_volunteer(volunteer)
    if db.session.scalar(select(Transfer.id).where(Transfer.cause_key == cause_key)):
        raise AlreadyRecorded()
    # Points past their last day expire rather than being deducted.
    ledger.expire_due(acc.id, local_today(now), issuance_of=volunteer.org_unit)
    available = ledger.balance_of(acc.id).available
    amount = min(version.points, max(0, available))
    if amount <= 0:
        raise NothingToDeduct(name=volunteer.full_name)
    t = ledger.deduct(
        acc.id,
        ledger.issuance_account(volunteer.org_unit).id,
        amount,
        reason=f"扣分：{version.name_zh}（{reason[:200]}）",
        cause_key=cause_key,
        created_by_id=actor.id,
    )
    audit.record(
        actor, audit.DEDUCTION_APPLIED, "transfer", t.id,
        {"volunteer_id": volunteer.id, "rule_id": rule.id, "rule_version": version.version,
         "requested": version.points, "deducted": amount, "reason": reason[:1000]},
        org_path=volunteer.org_unit.path, now=now,
    )
    return Deduction(t, version.points, amount)


def deducted_points(since: datetime | None = None, until: datetime | None = None, user_ids=None) -> dict[int, int]:
    """Points deducted per volunteer (user id) by deductions made in ``[since, until)`` and not
    reversed: what honours subtract from points earned in a period (``earned`` is never lowered)."""
    from sqlalchemy import func

    from ..models import Account
    from ..models.ledger import TRANSFER_DEDUCTION

    reversed_ids = select(Transfer.reverses_id).where(Transfer.reverses_id.is_not(None))
    query = (
        select(Account.user_id, func.sum(Transfer.amount))
        .join(Account, Account.id == Transfer.from_account_id)
        .where(Transfer.kind == TRANSFER_DEDUCTION, Transfer.id.not_in(reversed_ids))
        .group_by(Account.user_id)
    )
    if since is not None:
        query = query.where(Transfer.created_at >= since)
    if until is not None:
        query = query.where(Transfer.created_at < until)
    if user_ids is not None:
        query = query.where(Account.user_id.in_(list(user_ids)))
    return dict(db.session.execute(query).all())
