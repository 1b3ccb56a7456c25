"""Programs' access: personal API tokens and the idempotency keys of the requests they send."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

IDEMPOTENCY_RUNNING = "running"
IDEMPOTENCY_DONE = "done"


class ApiToken(db.Model):
    """A personal token: a random secret shown once, stored as its SHA-256 hash.

    A token acts with its owner's role grants, optionally narrowed to one role, one subtree of
    the org tree, or one merchant. Revoking sets ``revoked_at``; rows are kept for the audit.
    """

    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint("org_unit_id IS NULL OR merchant_id IS NULL", name="one_narrowing_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the secret, so that a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[Optional[str]] = mapped_column(String(32))
    org_unit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("org_unit.id"))
    merchant_id: Mapped[Optional[int]] = mapped_column(ForeignKey("merchant.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    user = relationship("User")
    org_unit = relationship("OrgUnit")
    merchant = relationship("Merchant")

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotencyKey(db.Model):
    """One ``Idempotency-Key`` of one user: the request it was first sent with and its response.

    The row is inserted and committed (state ``running``) before the work starts, so a duplicate
    sent at the same moment hits the unique constraint; the work and the stored response are
    then committed together (state ``done``).
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_key_user_id_key"),
        CheckConstraint("state IN ('running', 'done')", name="state_known"),
        CheckConstraint("state = 'running' OR status_code IS NOT NULL", name="done_has_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    key: Mapped[str] = mapped_column(String(255))
    method_path: Mapped[str] = mapped_column(String(300))
    body_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=IDEMPOTENCY_RUNNING)
    status_code: Mapped[Optional[int]] = mapped_column(Integer)
    response_body: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
