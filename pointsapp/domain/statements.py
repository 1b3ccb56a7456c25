"""A volunteer's yearly statement: hours, points earned, spent and corrected, vouchers expired.

Every figure is one aggregate query over the ledger or the activities, so the statement always
agrees with the ledger: opening balance + earned + corrections - spent = closing balance.
Points themselves never expire in this scheme; a voucher that expires gives its points back,
so the statement counts expired vouchers and the points they returned.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from ..extensions import db
from ..models import Account, Activity, Entry, Merchant, PointRuleVersion, Reward, Transfer, User, Voucher
from ..models.ledger import (
    TRANSFER_CAPTURE,
    TRANSFER_CREDIT,
    TRANSFER_DEDUCTION,
    TRANSFER_EXPIRY,
    TRANSFER_REVERSAL,
)
from ..models.rewards import VOUCHER_EXPIRED, VOUCHER_REDEEMED
from ..models.rules import STATUS_APPROVED
from .errors import InvalidInput
from .clock import utc_start_of
from .vouchers import redemption_reversed


@dataclass
class YearStatement:
    volunteer: User
    year: int
    opening: int
    earned: int
    corrected: int
    spent: int
    closing: int
    hours: Decimal
    activities: int
    by_category: list[tuple[str, int, Decimal, int]]  # category, activities, hours, points
    redemptions: list[tuple]  # (redeemed_at, reward, merchant, points, reversed by an admin since)
    expired_vouchers: int
    expired_points: int
    points_expired: int = 0  # points past their last day (expiry transfers)
    deducted: int = 0  # deductions (their reversals count as corrections)


def volunteer_year(volunteer: User, year: int) -> YearStatement:
    """Return the volunteer's statement for a calendar year (the street's time zone)."""
    if not 2000 <= year <= 2100:
        raise InvalidInput("Choose a year between 2000 and 2100.", field="year")
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    t0, t1 = utc_start_of(start), utc_start_of(end)
    acc_id = db.session.scalar(select(Account.id).where(Account.user_id == volunteer.id)) or 0

    opening = db.session.scalar(
        select(func.coalesce(func.sum(Entry.amount), 0)).join(Transfer, Transfer.id == Entry.transfer_id)
        .where(Entry.account_id == acc_id, Transfer.created_at < t0)
    )
    by_kind = dict(db.session.execute(
        select(Transfer.kind, func.coalesce(func.sum(Entry.amount), 0))
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .where(Entry.account_id == acc_id, Transfer.created_at >= t0, Transfer.created_at < t1)
        .group_by(Transfer.kind)
    ).all())
    earned = int(by_kind.get(TRANSFER_CREDIT, 0))
    corrected = int(by_kind.get(TRANSFER_REVERSAL, 0))
    spent = -int(by_kind.get(TRANSFER_CAPTURE, 0))
    points_expired = -int(by_kind.get(TRANSFER_EXPIRY, 0))
    deducted = -int(by_kind.get(TRANSFER_DEDUCTION, 0))

    cats = db.session.execute(
        select(
            PointRuleVersion.category,
            func.count(Activity.id),
            func.coalesce(func.sum(Activity.hours), 0),
            func.coalesce(func.sum(Activity.points_credited), 0),
        )
        .join(PointRuleVersion, PointRuleVersion.id == Activity.rule_version_id)
        .where(
            Activity.volunteer_id == volunteer.id,
            Activity.status == STATUS_APPROVED,
            Activity.activity_date >= start,
            Activity.activity_date < end,
        )
        .group_by(PointRuleVersion.category)
        .order_by(PointRuleVersion.category)
    ).all()
    by_category = [(c, int(n), Decimal(h), int(p)) for c, n, h, p in cats]

    redemptions = [tuple(r) for r in db.session.execute(
        select(Voucher.redeemed_at, Reward.name, Merchant.name, Voucher.points,
               redemption_reversed().label("reversed"))
        .join(Reward, Reward.id == Voucher.reward_id)
        .join(Merchant, Merchant.id == Voucher.merchant_id)
        .where(
            Voucher.volunteer_id == volunteer.id,
            Voucher.status == VOUCHER_REDEEMED,
            Voucher.redeemed_at >= t0,
            Voucher.redeemed_at < t1,
        )
        .order_by(Voucher.redeemed_at)
    )]
    expired_n, expired_pts = db.session.execute(
        select(func.count(Voucher.id), func.coalesce(func.sum(Voucher.points), 0)).where(
            Voucher.volunteer_id == volunteer.id,
            Voucher.status == VOUCHER_EXPIRED,
            Voucher.closed_at >= t0,
            Voucher.closed_at < t1,
        )
    ).one()
    return YearStatement(
        volunteer=volunteer,
        year=year,
        opening=int(opening),
        earned=earned,
        corrected=corrected,
        spent=spent,
        closing=int(opening) + earned + corrected - spent - points_expired - deducted,
        hours=sum((h for _, _, h, _ in by_category), Decimal(0)),
        activities=sum(n for _, n, _, _ in by_category),
        by_category=by_category,
        redemptions=redemptions,
        expired_vouchers=int(expired_n),
        expired_points=int(expired_pts),
        points_expired=points_expired,
        deducted=deducted,
    )
