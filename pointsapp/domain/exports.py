"""Lists an admin can download: people, activities, ledger entries, redemptions, each scoped
in SQL to the admin's subtrees. Each function returns (headers, rows); headers are lazy
strings so the file speaks the page's language."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import Account, Activity, Entry, Merchant, OrgUnit, PointRuleVersion, Reward, Transfer, User, Voucher
from ..models.ledger import TRANSFER_REVERSAL
from ..models.rules import CATEGORIES
from ..models.user import ADMIN_ROLES, TITLES
from .access import subtree_filter
from .clock import to_local
from .errors import Forbidden

EXPORTS = ("people", "activities", "ledger", "redemptions")


def _local(moment):
    return to_local(moment).replace(tzinfo=None) if moment else None


def _pair(mapping, code, zh):
    names = mapping.get(code)
    return (names[0] if zh else names[1]) if names else code


def people(actor: User, zh: bool):
    headers = [_l("Username"), _l("Full name"), _l("Phone"), _l("Title"), _l("Belongs to"), _l("Active"),
               _l("Balance"), _l("Earned in total")]
    rows = db.session.execute(
        select(User.username, User.full_name, User.phone, User.title, OrgUnit.name, User.is_active_flag,
               Account.balance, Account.earned)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .outerjoin(Account, Account.user_id == User.id)
        .where(subtree_filter(OrgUnit.path, actor, ADMIN_ROLES))
        .order_by(OrgUnit.path, User.username)
    ).all()
    return headers, [
        [u, n, p, _pair(TITLES, t, zh) if t else None, unit, str(_l("yes") if active else _l("no")), bal or 0,
         earned or 0]
        for u, n, p, t, unit, active, bal, earned in rows
    ]


# An activity's status in words, as the pages say it (templates/macros.html: claim_status).
STATUS_NAMES = {
    "pending": _l("Waiting for approval"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "reversed": _l("Reversed"),
    "on_notice": _l("Approved, on public notice"),
    "withheld": _l("Withheld after an objection"),
}


def activities(actor: User, zh: bool):
    headers = [_l("Number"), _l("Date"), _l("Volunteer"), _l("Activity"), _l("Category"), _l("Hours"),
               _l("Status"), _l("Points credited"), _l("Recorded at")]
    rows = db.session.execute(
        select(Activity.id, Activity.activity_date, User.full_name,
               PointRuleVersion.name_zh if zh else PointRuleVersion.name_en, PointRuleVersion.category,
               Activity.hours, Activity.status, Activity.points_credited, Activity.created_at)
        .join(User, User.id == Activity.volunteer_id)
        .join(PointRuleVersion, PointRuleVersion.id == Activity.rule_version_id)
        .join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
        .where(subtree_filter(OrgUnit.path, actor, ADMIN_ROLES))
        .order_by(Activity.id)
    ).all()
    return headers, [
        [i, d, v, name, _pair(CATEGORIES, cat, zh), float(h) if h is not None else None, str(STATUS_NAMES.get(st, st)),
         pts, _local(at)]
        for i, d, v, name, cat, h, st, pts, at in rows
    ]


KIND_NAMES = {
    "credit": _l("Points credited"),
    "capture": _l("Redemption"),
    "reversal": _l("Correction"),
    "settlement": _l("Payment to a merchant"),
    "expiry": _l("Points expired"),
    "deduction": _l("Points deducted"),
}


def ledger_entries(actor: User, zh: bool):
    headers = [_l("Entry"), _l("Transfer"), _l("Time"), _l("Volunteer"), _l("Kind"), _l("Points"),
               _l("Balance after"), _l("Reason")]
    rows = db.session.execute(
        select(Entry.id, Transfer.id, Transfer.created_at, User.full_name, Transfer.kind, Entry.amount,
               Entry.balance_after, Transfer.reason)
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .join(Account, Account.id == Entry.account_id)
        .join(User, User.id == Account.user_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(subtree_filter(OrgUnit.path, actor, ADMIN_ROLES))
        .order_by(Entry.id)
    ).all()
    return headers, [[e, t, _local(at), v, str(KIND_NAMES.get(k, k)), a, b, r] for e, t, at, v, k, a, b, r in rows]


def redemptions(actor: User, zh: bool):
    headers = [_l("Voucher"), _l("Redeemed at"), _l("Volunteer"), _l("Reward"), _l("Merchant"), _l("Points"),
               _l("Reversed at")]
    vol_unit = aliased(OrgUnit)
    merchant_unit = aliased(OrgUnit)
    # When an admin reversed the redemption (its points went back to the volunteer), if they did.
    reversed_at = (
        select(Transfer.created_at)
        .where(Transfer.voucher_id == Voucher.id, Transfer.kind == TRANSFER_REVERSAL)
        .limit(1)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Voucher.id, Voucher.redeemed_at, User.full_name, Reward.name, Merchant.name, Voucher.points,
               reversed_at)
        .join(User, User.id == Voucher.volunteer_id)
        .join(Reward, Reward.id == Voucher.reward_id)
        .join(Merchant, Merchant.id == Voucher.merchant_id)
        .outerjoin(vol_unit, vol_unit.id == User.org_unit_id)
        .join(merchant_unit, merchant_unit.id == Merchant.org_unit_id)
        .where(
            Voucher.status == "redeemed",
            or_(subtree_filter(vol_unit.path, actor, ADMIN_ROLES), subtree_filter(merchant_unit.path, actor, ADMIN_ROLES)),
        )
        .order_by(Voucher.redeemed_at, Voucher.id)
    ).all()
    return headers, [[i, _local(at), v, r, m, p, _local(back)] for i, at, v, r, m, p, back in rows]


TITLES_OF = {
    "people": _l("People"),
    "activities": _l("Activity records"),
    "ledger": _l("Ledger entries"),
    "redemptions": _l("Redemptions"),
}
BUILDERS = {"people": people, "activities": activities, "ledger": ledger_entries, "redemptions": redemptions}


def export(actor: User, what: str, zh: bool):
    """Return (title, headers, rows) of one list, scoped to the admin's subtrees."""
    if not actor.has_role(*ADMIN_ROLES):
        raise Forbidden()
    headers, rows = BUILDERS[what](actor, zh)
    return str(TITLES_OF[what]), [str(h) for h in headers], rows


# -- the same lists for the API, as queries it pages through ------------------------------------

def ledger_entries_query(actor: User):
    """Return a select of the ledger entries of volunteers in the admin's subtrees (joined to their
    transfer, account, volunteer and node, for filtering)."""
    if not actor.has_role(*ADMIN_ROLES):
        raise Forbidden()
    return (
        select(Entry)
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .join(Account, Account.id == Entry.account_id)
        .join(User, User.id == Account.user_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(subtree_filter(OrgUnit.path, actor, ADMIN_ROLES))
    )


def redemptions_query(actor: User, vol_unit):
    """Return a select of the redeemed vouchers of volunteers, or at merchants, in the admin's subtrees;
    ``vol_unit`` is the alias of the volunteer's node it joins (for filtering by node)."""
    if not actor.has_role(*ADMIN_ROLES):
        raise Forbidden()
    merchant_unit = aliased(OrgUnit)
    return (
        select(Voucher)
        .join(User, User.id == Voucher.volunteer_id)
        .join(Merchant, Merchant.id == Voucher.merchant_id)
        .outerjoin(vol_unit, vol_unit.id == User.org_unit_id)
        .join(merchant_unit, merchant_unit.id == Merchant.org_unit_id)
        .where(
            Voucher.status == "redeemed",
            or_(subtree_filter(vol_unit.path, actor, ADMIN_ROLES),
                subtree_filter(merchant_unit.path, actor, ADMIN_ROLES)),
        )
    )
