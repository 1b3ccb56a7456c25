"""Point rules (versioned) and activities (credited pieces of work, claimed or recorded)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Optional

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

CATEGORIES: dict[str, tuple[str, str]] = {
    "meeting": ("参加会议", "Attending meetings"),
    "reporting": ("反映情况", "Reporting problems"),
    "governance": ("协助治理", "Assisting governance"),
    "mobilising": ("组织发动居民", "Organising residents"),
    "helping": ("助人为乐", "Helping others"),
    "brave_deed": ("见义勇为", "Brave deeds"),
    "patrol": ("巡查执勤", "Patrol and duty"),
    "mediation": ("调解纠纷", "Mediating disputes"),
    "safety": ("排查安全隐患", "Safety-hazard checks"),
    "errand": ("代办政务事项", "Government errands"),
    "other": ("其他", "Other"),
}

UNIT_OCCURRENCE = "occurrence"
UNIT_HOUR = "hour"


class PointRule(db.Model):
    """A rule's identity; its terms live in versions so that edits never rewrite history."""

    __tablename__ = "point_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The subtree whose volunteers the rule applies to, and whose admins manage it.
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    org_unit = relationship("OrgUnit")
    versions = relationship(
        "PointRuleVersion",
        foreign_keys="PointRuleVersion.rule_id",
        back_populates="rule",
        order_by="PointRuleVersion.version",
        lazy="selectin",
    )

    @property
    def current(self) -> "PointRuleVersion | None":
        """The latest version: the terms in force for new claims."""
        return self.versions[-1] if self.versions else None


class PointRuleVersion(db.Model):
    """The terms of a rule as they stood from ``created_at``; activities point at one of these."""

    __tablename__ = "point_rule_version"
    __table_args__ = (
        UniqueConstraint("rule_id", "version", name="uq_point_rule_version_rule_version"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("unit IN ('occurrence', 'hour')", name="unit_known"),
        CheckConstraint("daily_cap IS NULL OR daily_cap > 0", name="daily_cap_positive"),
        CheckConstraint("monthly_cap IS NULL OR monthly_cap > 0", name="monthly_cap_positive"),
        CheckConstraint(
            "active_to IS NULL OR active_from IS NULL OR active_to >= active_from",
            name="active_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("point_rule.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)  # per occurrence, or per hour
    daily_cap: Mapped[Optional[int]] = mapped_column(Integer)
    monthly_cap: Mapped[Optional[int]] = mapped_column(Integer)
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=True)
    requires_note: Mapped[bool] = mapped_column(Boolean, default=False)
    requires_photo: Mapped[bool] = mapped_column(Boolean, default=False)
    active_from: Mapped[Optional[date]] = mapped_column(Date)
    active_to: Mapped[Optional[date]] = mapped_column(Date)
    # Volunteer title codes the rule applies to; empty list means every title.
    titles: Mapped[list] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))

    rule = relationship("PointRule", foreign_keys=[rule_id], back_populates="versions")

    def name(self, locale: str = "zh") -> str:
        return self.name_zh if locale.startswith("zh") else self.name_en

    def applies_on(self, day: date) -> bool:
        return (
            self.is_active
            and (self.active_from is None or day >= self.active_from)
            and (self.active_to is None or day <= self.active_to)
        )


STATUS_PENDING = "pending"
STATUS_APPROVED = "approved"
STATUS_REJECTED = "rejected"
STATUS_REVERSED = "reversed"


class Activity(db.Model):
    """A credited piece of work: a volunteer's claim, or attendance recorded by staff."""

    __tablename__ = "activity"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'reversed')", name="status_known"
        ),
        CheckConstraint("source IN ('claim', 'recorded')", name="source_known"),
        CheckConstraint("hours IS NULL OR hours > 0", name="hours_positive"),
        CheckConstraint("points_credited >= 0", name="points_credited_not_negative"),
        CheckConstraint(
            "status <> 'rejected' OR reject_reason IS NOT NULL", name="rejection_has_reason"
        ),
        # One submission of a form (its hidden key) creates at most one activity per volunteer.
        UniqueConstraint("volunteer_id", "batch_key", name="uq_activity_volunteer_id_batch_key"),
        Index("ix_activity_volunteer_id_rule_id_activity_date", "volunteer_id", "rule_id", "activity_date"),
        # Honour rolls and reports: a subtree's approved activities in a period (EXPLAIN on both databases).
        Index("ix_activity_org_unit_id_status_activity_date", "org_unit_id", "status", "activity_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    # Denormalised at submission so that staff queues can be scoped by subtree cheaply.
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    rule_version_id: Mapped[int] = mapped_column(ForeignKey("point_rule_version.id"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("point_rule.id"))
    activity_date: Mapped[date] = mapped_column(Date)
    hours: Mapped[Optional[Decimal]] = mapped_column(Numeric(5, 2))
    note: Mapped[Optional[str]] = mapped_column(Text)
    photo_path: Mapped[Optional[str]] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16), default="claim")
    status: Mapped[str] = mapped_column(String(16), default=STATUS_PENDING, index=True)
    points_requested: Mapped[int] = mapped_column(Integer)
    points_credited: Mapped[int] = mapped_column(Integer, default=0)
    cap_note: Mapped[Optional[str]] = mapped_column(String(255))
    reject_reason: Mapped[Optional[str]] = mapped_column(Text)
    batch_key: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))

    volunteer = relationship("User", foreign_keys=[volunteer_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
    rule_version = relationship("PointRuleVersion")
    org_unit = relationship("OrgUnit")
