"""Merchant settlement: closed periods, the ledger entries each one took, payments, and the
points-to-yuan rate. See ``pointsapp.domain.settlement``."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

# 1 point = ¥1 until a street admin sets a rate.
DEFAULT_FEN_PER_POINT = 100
# At most ¥1000 a point: a typo cannot value a redemption at millions (and fen fit 32 bits).
MAX_FEN_PER_POINT = 100_000


class PointsRate(db.Model):
    """The value of one point in fen (¥0.01) in one street (a root of the org tree) from
    ``effective_from`` until that street's next rate."""

    __tablename__ = "points_rate"
    __table_args__ = (
        CheckConstraint("fen_per_point > 0", name="fen_positive"),
        CheckConstraint(f"fen_per_point <= {MAX_FEN_PER_POINT}", name="fen_at_most_1000_yuan"),
        UniqueConstraint("org_unit_id", "effective_from", name="uq_points_rate_street_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))  # the street
    effective_from: Mapped[date] = mapped_column(Date)
    fen_per_point: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettlementPeriod(db.Model):
    """A closed settlement period of one merchant. Rows exist only once closed and are never
    changed (the database refuses UPDATE and DELETE). Totals are frozen at closing."""

    __tablename__ = "settlement_period"
    __table_args__ = (
        UniqueConstraint("merchant_id", "period_start", name="uq_settlement_period_merchant_start"),
        CheckConstraint("period_end > period_start", name="dates_ordered"),
        CheckConstraint("redeemed >= 0 AND paid >= 0 AND corrected <= 0", name="totals_signed"),
        CheckConstraint(
            "closing_balance = opening_balance + redeemed + corrected - paid", name="closing_adds_up"
        ),
        CheckConstraint("closing_balance >= 0", name="closing_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # exclusive
    opening_balance: Mapped[int] = mapped_column(Integer)
    redeemed: Mapped[int] = mapped_column(Integer)  # captures
    corrected: Mapped[int] = mapped_column(Integer)  # reversals of captures (<= 0)
    paid: Mapped[int] = mapped_column(Integer)  # settlement payments
    closing_balance: Mapped[int] = mapped_column(Integer)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))

    merchant = relationship("Merchant")
    closed_by = relationship("User")


class SettlementLine(db.Model):
    """One ledger entry on a merchant's account, taken into a closed period (once, ever)."""

    __tablename__ = "settlement_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("settlement_period.id"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entry.id"), unique=True)


class SettlementPayment(db.Model):
    """Money paid to a merchant; its ``settlement`` transfer takes the points off the merchant."""

    __tablename__ = "settlement_payment"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("fen >= 0", name="fen_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)
    fen: Mapped[int] = mapped_column(Integer)  # the value of the oldest unpaid points it retired
    paid_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(100))
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfer.id"), unique=True)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    merchant = relationship("Merchant")
    transfer = relationship("Transfer")
    created_by = relationship("User")
