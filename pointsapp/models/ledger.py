"""Ledger tables: accounts, transfers and their entries. See ``pointsapp.domain.ledger``."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

ACCOUNT_ISSUANCE = "issuance"
ACCOUNT_VOLUNTEER = "volunteer"
ACCOUNT_MERCHANT = "merchant"
ACCOUNT_EXPIRY = "expiry"


class Account(db.Model):
    """A holder of points. Balances are kept in the same transaction as the entries."""

    __tablename__ = "account"
    __table_args__ = (
        CheckConstraint("kind IN ('issuance', 'volunteer', 'merchant', 'expiry')", name="kind_known"),
        # Only a street's issuance account may go negative: it is where points come from.
        CheckConstraint("kind = 'issuance' OR balance >= 0", name="balance_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("kind = 'issuance' OR held <= balance", name="held_within_balance"),
        CheckConstraint("earned >= 0", name="earned_not_negative"),
        CheckConstraint(
            "(kind = 'issuance' AND org_unit_id IS NOT NULL AND user_id IS NULL AND merchant_id IS NULL)"
            " OR (kind = 'volunteer' AND user_id IS NOT NULL AND org_unit_id IS NULL AND merchant_id IS NULL)"
            " OR (kind = 'merchant' AND merchant_id IS NOT NULL AND org_unit_id IS NULL AND user_id IS NULL)"
            " OR (kind = 'expiry' AND org_unit_id IS NOT NULL AND user_id IS NULL AND merchant_id IS NULL)",
            name="owner_matches_kind",
        ),
        UniqueConstraint("kind", "org_unit_id", name="uq_account_kind_org_unit"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    org_unit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("org_unit.id"))
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"), unique=True)
    merchant_id: Mapped[Optional[int]] = mapped_column(ForeignKey("merchant.id"), unique=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    # Lifetime points credited (honours rank on this); never reduced by spending.
    earned: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user = relationship("User")
    merchant = relationship("Merchant")
    org_unit = relationship("OrgUnit")

    @property
    def available(self) -> int:
        return self.balance - self.held


TRANSFER_CREDIT = "credit"
TRANSFER_CAPTURE = "capture"
TRANSFER_REVERSAL = "reversal"
TRANSFER_SETTLEMENT = "settlement"
TRANSFER_EXPIRY = "expiry"
TRANSFER_DEDUCTION = "deduction"
TRANSFER_KINDS = (
    TRANSFER_CREDIT, TRANSFER_CAPTURE, TRANSFER_REVERSAL, TRANSFER_SETTLEMENT, TRANSFER_EXPIRY, TRANSFER_DEDUCTION
)


class Transfer(db.Model):
    """A movement of points from one account to another. Append-only."""

    __tablename__ = "transfer"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("from_account_id <> to_account_id", name="distinct_accounts"),
        CheckConstraint(
            "kind IN ('credit', 'capture', 'reversal', 'settlement', 'expiry', 'deduction')", name="kind_known"
        ),
        CheckConstraint(
            "(kind = 'reversal') = (reverses_id IS NOT NULL)", name="reversal_links_original"
        ),
        # A volunteer's deductions in a period (their pages' yearly totals), without their entries.
        Index(
            "ix_transfer_deductions_from", "from_account_id", "created_at",
            postgresql_where=text("kind = 'deduction'"), sqlite_where=text("kind = 'deduction'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    from_account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    to_account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    reason: Mapped[str] = mapped_column(Text)
    activity_id: Mapped[Optional[int]] = mapped_column(ForeignKey("activity.id"), index=True)
    voucher_id: Mapped[Optional[int]] = mapped_column(ForeignKey("voucher.id"), index=True)
    # A transfer can be reversed once, in full.
    reverses_id: Mapped[Optional[int]] = mapped_column(ForeignKey("transfer.id"), unique=True)
    # What caused the transfer, unique, so that retries and double clicks cannot move points twice.
    cause_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))

    from_account = relationship("Account", foreign_keys=[from_account_id])
    to_account = relationship("Account", foreign_keys=[to_account_id])
    activity = relationship("Activity")
    voucher = relationship("Voucher", foreign_keys=[voucher_id])
    reverses = relationship("Transfer", remote_side=[id], foreign_keys=[reverses_id])
    created_by = relationship("User")
    entries: Mapped[list["Entry"]] = relationship(back_populates="transfer", order_by="Entry.id")


class Entry(db.Model):
    """One leg of a transfer on one account: ``amount`` is signed; legs of a transfer sum to zero."""

    __tablename__ = "entry"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_entry_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfer.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    amount: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)

    transfer: Mapped[Transfer] = relationship(back_populates="entries")
    account = relationship("Account")


class PointLot(db.Model):
    """The points of one credit, with the date they expire; spent earliest-expiring first.

    ``remaining`` is what is left of the lot; the sum over a volunteer's lots is their balance.
    ``reserved`` is the part of ``remaining`` that open vouchers hold (``VoucherLot``); the sum
    over a volunteer's lots is their ``held``. An opening lot (``transfer_id`` NULL) holds a
    balance that predates lots. See ``pointsapp.domain.ledger``, "Lots and expiry".
    """

    __tablename__ = "point_lot"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        CheckConstraint("reserved >= 0 AND reserved <= remaining", name="reserved_within_remaining"),
        Index("ix_point_lot_account_id_expires_on", "account_id", "expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    # The credit (or a reversal giving back points with no lot to return to) that made the lot.
    transfer_id: Mapped[Optional[int]] = mapped_column(ForeignKey("transfer.id"), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    earned_on: Mapped[date] = mapped_column(Date)
    # The last day the points can be spent; NULL: they never expire.
    expires_on: Mapped[Optional[date]] = mapped_column(Date)


class LotUse(db.Model):
    """Points a transfer took from (``amount`` > 0) or gave back to (< 0) a lot. Append-only."""

    __tablename__ = "lot_use"
    __table_args__ = (CheckConstraint("amount <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("point_lot.id"), index=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfer.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)


class VoucherLot(db.Model):
    """Points of a lot that a voucher reserved (``points`` > 0) when it was issued, or that moved
    to another lot (< 0: a credit reversal taking back the lot). Append-only. A voucher's
    reservation in a lot is the sum of its rows; it counts in the lot's ``reserved`` while the
    voucher is issued, and its capture takes exactly those points."""

    __tablename__ = "voucher_lot"
    __table_args__ = (CheckConstraint("points <> 0", name="points_not_zero"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("voucher.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("point_lot.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)


class AccountMonth(db.Model):
    """A volunteer account's ledger legs of one kind in one street-local month, summed.

    Kept in the same transaction as the legs (``pointsapp.domain.ledger``, "Monthly totals"),
    so that a month's reports read one row per active volunteer and kind instead of every
    transfer of the month. ``amount`` is the signed sum of the legs (a credit adds, a capture
    subtracts); ``transfers`` counts them.
    """

    __tablename__ = "account_month"
    __table_args__ = (CheckConstraint("transfers > 0", name="transfers_positive"),)

    # The first day of the month; first in the key, as reports read a range of months.
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[int] = mapped_column(Integer)
    transfers: Mapped[int] = mapped_column(Integer)
