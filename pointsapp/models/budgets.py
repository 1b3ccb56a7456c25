"""Budgets: money a street or a community set aside for its points, and what the points drew
from it. See ``pointsapp.domain.budgets``."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

# One funding record moves at most ¥10,000,000 either way: a typo cannot fund a street with billions.
MAX_FUNDING_FEN = 1_000_000_000

# Where the money came from: code -> (Chinese, English).
FUNDING_SOURCES = {
    "street_grant": ("街道拨款", "Street grant"),
    "donation": ("社会捐赠", "Donation"),
    "partner": ("共建单位", "Partner organisation"),
    "other": ("其他", "Other"),
}


class Budget(db.Model):
    """The budget of one street or community: a counter row, the one place credits race for.

    ``funded_fen`` is the sum of its funding records, ``used`` the points charged to it (the sum
    of its charges); its capacity in points is ``funded_fen // fen_per_point`` at the street's
    current rate, computed in the conditional UPDATE that charges it."""

    __tablename__ = "budget"
    __table_args__ = (
        CheckConstraint("funded_fen >= 0", name="funded_not_negative"),
        CheckConstraint("used >= 0", name="used_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), unique=True)
    funded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    org_unit = relationship("OrgUnit")


class BudgetFunding(db.Model):
    """Money recorded for a budget. Append-only: a correction is a negative record with a reason."""

    __tablename__ = "budget_funding"
    __table_args__ = (
        CheckConstraint("fen <> 0", name="fen_not_zero"),
        CheckConstraint(f"fen BETWEEN -{MAX_FUNDING_FEN} AND {MAX_FUNDING_FEN}", name="fen_within_limit"),
        CheckConstraint("fen > 0 OR note IS NOT NULL", name="correction_has_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budget.id"), index=True)
    fen: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(32))
    funded_on: Mapped[date] = mapped_column(Date)
    note: Mapped[Optional[str]] = mapped_column(Text)
    # The form's one-time key: a double click records nothing twice.
    key: Mapped[Optional[str]] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    budget = relationship("Budget")
    created_by = relationship("User")


class BudgetCharge(db.Model):
    """What one transfer drew from (points > 0) or gave back to (points < 0) a budget. Append-only.

    One row per transfer and budget: points leaving a volunteer give back to each budget that
    paid for the lots they came from."""

    __tablename__ = "budget_charge"
    __table_args__ = (
        CheckConstraint("points <> 0", name="points_not_zero"),
        UniqueConstraint("transfer_id", "budget_id", name="uq_budget_charge_transfer_id_budget_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfer.id"))
    budget_id: Mapped[int] = mapped_column(ForeignKey("budget.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)
