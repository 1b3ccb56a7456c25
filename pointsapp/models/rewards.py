"""Merchants, the rewards they offer, and vouchers (QR redemption codes)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

MERCHANT_KINDS: dict[str, tuple[str, str]] = {
    "charity_supermarket": ("慈善超市", "Charity supermarket"),
    "shop": ("合作商户", "Partner shop"),
    "service_platform": ("服务平台", "Service platform"),
}


class Merchant(db.Model):
    __tablename__ = "merchant"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('charity_supermarket', 'shop', 'service_platform')", name="kind_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[Optional[str]] = mapped_column(String(32))
    # The subtree whose admins manage this merchant.
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    org_unit = relationship("OrgUnit")
    rewards = relationship("Reward", back_populates="merchant", order_by="Reward.id")


class Reward(db.Model):
    __tablename__ = "reward"
    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint(
            "per_volunteer_limit IS NULL OR per_volunteer_limit > 0", name="limit_positive"
        ),
        CheckConstraint(
            "active_to IS NULL OR active_from IS NULL OR active_to >= active_from",
            name="active_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(Integer)
    # Units not yet reserved by a voucher; NULL means unlimited.
    stock: Mapped[Optional[int]] = mapped_column(Integer)
    per_volunteer_limit: Mapped[Optional[int]] = mapped_column(Integer)
    active_from: Mapped[Optional[date]] = mapped_column(Date)
    active_to: Mapped[Optional[date]] = mapped_column(Date)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    merchant: Mapped[Merchant] = relationship(back_populates="rewards")

    def available_on(self, day: date) -> bool:
        return (
            self.is_active
            and self.merchant.is_active
            and (self.active_from is None or day >= self.active_from)
            and (self.active_to is None or day <= self.active_to)
        )


VOUCHER_ISSUED = "issued"
VOUCHER_REDEEMED = "redeemed"
VOUCHER_CANCELLED = "cancelled"
VOUCHER_EXPIRED = "expired"


class Voucher(db.Model):
    """A reservation of points and one unit of stock, redeemable once at one merchant.

    The QR token and the fallback code are derived from ``nonce`` with the server's key
    (see ``pointsapp.domain.vouchers``); only their SHA-256 hashes are stored for lookup.
    """

    __tablename__ = "voucher"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint(
            "status IN ('issued', 'redeemed', 'cancelled', 'expired')", name="status_known"
        ),
        CheckConstraint(
            "(status = 'redeemed') = (redeemed_at IS NOT NULL)", name="redeemed_has_time"
        ),
        Index("ix_voucher_status_expires_at", "status", "expires_at"),
        Index("ix_voucher_merchant_id_redeemed_at", "merchant_id", "redeemed_at"),
        Index("ix_voucher_volunteer_id_reward_id", "volunteer_id", "reward_id"),
        Index("uq_voucher_volunteer_id_issue_key", "volunteer_id", "issue_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("reward.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant.id"))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    points: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=VOUCHER_ISSUED)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    redeemed_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # The redeem form's one-time key: the same tap sent again finds this voucher.
    issue_key: Mapped[Optional[str]] = mapped_column(String(64))

    reward = relationship("Reward")
    merchant = relationship("Merchant")
    volunteer = relationship("User", foreign_keys=[volunteer_id])
    redeemed_by = relationship("User", foreign_keys=[redeemed_by_id])
    account = relationship("Account")
