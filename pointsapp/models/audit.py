"""The audit log: who changed money-like state, when, and how. See ``pointsapp.domain.audit``."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime

GENESIS_HASH = "0" * 64


class AuditRecord(db.Model):
    """One admin or staff action. Append-only (database triggers); chained by hash to the one before."""

    __tablename__ = "audit_record"
    __table_args__ = (
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint("length(hash) = 64 AND length(prev_hash) = 64", name="hashes_are_sha256"),
        Index("ix_audit_record_org_path_id", "org_path", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Position in the chain, 1, 2, 3 ... without gaps; UNIQUE so that the chain cannot fork.
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    action: Mapped[str] = mapped_column(String(48))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[Optional[int]] = mapped_column(Integer)
    # Where in the tree the change happened, so admins browse only their subtree's records.
    org_path: Mapped[Optional[str]] = mapped_column(String(255))
    # The change as canonical JSON text (sorted keys): hashed exactly as stored.
    summary: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    actor = relationship("User", lazy="joined")


class AuditChainHead(db.Model):
    """The single row that points at the newest record; appenders lock it to take turns."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
