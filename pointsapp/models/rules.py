"""Point rules (versioned) and activities (credited pieces of work, claimed or recorded)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
    UniqueConstraint,
)
from sqlalchemy import true as sa_true
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

EXPIRY_NEVER = "never"
EXPIRY_MONTHS = "months"
EXPIRY_NEXT_YEAR_END = "next_year_end"
EXPIRY_POLICIES = (EXPIRY_NEVER, EXPIRY_MONTHS, EXPIRY_NEXT_YEAR_END)
RULE_EARN = "earn"
RULE_DEDUCT = "deduct"


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
        CheckConstraint("expiry_policy IN ('never', 'months', 'next_year_end')", name="expiry_policy_known"),
        CheckConstraint(
            "(expiry_policy = 'months') = (expiry_months IS NOT NULL)"
            " AND (expiry_months IS NULL OR (expiry_months >= 1 AND expiry_months <= 120))",
            name="expiry_months_with_policy",
        ),
        CheckConstraint("kind IN ('earn', 'deduct')", name="kind_known"),
        CheckConstraint("checkin_hours_cap IS NULL OR checkin_hours_cap > 0", name="checkin_hours_cap_positive"),
        CheckConstraint("hours_rounding_minutes BETWEEN 1 AND 60", name="hours_rounding_minutes_range"),
        CheckConstraint("approvals_required BETWEEN 1 AND 5", name="approvals_required_range"),
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
    # Check-in events (pointsapp.domain.checkin): hours are rounded down to this many minutes,
    # capped per event, and back-filled attendance earns points or counts hours only.
    checkin_hours_cap: Mapped[Optional[Decimal]] = mapped_column(Numeric(5, 2))
    hours_rounding_minutes: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    backfill_earns_points: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())

    # When the points of a credit expire (see ``expires_on``), and whether the rule gives points
    # ('earn') or takes them away ('deduct', applied by staff with a reason).
    expiry_policy: Mapped[str] = mapped_column(String(16), default=EXPIRY_NEVER, server_default=EXPIRY_NEVER)
    expiry_months: Mapped[Optional[int]] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default=RULE_EARN, server_default=RULE_EARN)
    # How many verifiers must approve a claim (e.g. 2 of a community's 3 staff for a brave deed).
    approvals_required: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    rule = relationship("PointRule", foreign_keys=[rule_id], back_populates="versions")

    def name(self, locale: str = "zh") -> str:
        return self.name_zh if locale.startswith("zh") else self.name_en

    def expires_on(self, earned_on: date) -> date | None:
        """The last day on which points earned on ``earned_on`` under this version can be spent."""
        return expiry_date(self.expiry_policy, self.expiry_months, earned_on)

    def applies_on(self, day: date) -> bool:
        return (
            self.is_active
            and (self.active_from is None or day >= self.active_from)
            and (self.active_to is None or day <= self.active_to)
        )


def expiry_date(policy: str, months: int | None, earned_on: date) -> date | None:
    """Return the last day points earned on ``earned_on`` can be spent, or None if they never expire.

    ``months``: the same day N months later, or that month's last day when it is shorter
    (earned 2024-02-29, 12 months: 2025-02-28). ``next_year_end``: 31 December of the next year.
    """
    if policy == EXPIRY_MONTHS:
        total = earned_on.year * 12 + earned_on.month - 1 + int(months)
        year, month = divmod(total, 12)
        month += 1
        following = date(year + (month == 12), month % 12 + 1, 1)
        last_day = (following - timedelta(days=1)).day
        return date(year, month, min(earned_on.day, last_day))
    if policy == EXPIRY_NEXT_YEAR_END:
        return date(earned_on.year + 1, 12, 31)
    return None


STATUS_PENDING = "pending"
STATUS_APPROVED = "approved"
STATUS_REJECTED = "rejected"
STATUS_REVERSED = "reversed"
# Approved by staff, posted for public objections (公示), credited when the window has passed.
STATUS_ON_NOTICE = "on_notice"
# An objection was upheld: never credited; ``reject_reason`` says why.
STATUS_WITHHELD = "withheld"

VOTE_APPROVE = "approve"
VOTE_REJECT = "reject"
OBJECTION_OPEN = "open"
OBJECTION_UPHELD = "upheld"
OBJECTION_DISMISSED = "dismissed"


class Activity(db.Model):
    """A credited piece of work: a volunteer's claim, or attendance recorded by staff."""

    __tablename__ = "activity"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'reversed', 'on_notice', 'withheld')",
            name="status_known",
        ),
        CheckConstraint("source IN ('claim', 'recorded', 'checkin')", name="source_known"),
        CheckConstraint("hours IS NULL OR hours > 0", name="hours_positive"),
        CheckConstraint("points_credited >= 0", name="points_credited_not_negative"),
        CheckConstraint(
            "status <> 'rejected' OR reject_reason IS NOT NULL", name="rejection_has_reason"
        ),
        CheckConstraint("status <> 'on_notice' OR notice_until IS NOT NULL", name="notice_has_end"),
        # One submission of a form (its hidden key) creates at most one activity per volunteer.
        UniqueConstraint("volunteer_id", "batch_key", name="uq_activity_volunteer_id_batch_key"),
        Index("ix_activity_volunteer_id_rule_id_activity_date", "volunteer_id", "rule_id", "activity_date"),
        # Honour rolls and reports: a subtree's approved activities in a period (EXPLAIN on both databases).
        Index("ix_activity_org_unit_id_status_activity_date", "org_unit_id", "status", "activity_date"),
        # A volunteer's approved activities in a period (the yearly statement), from the index.
        Index("ix_activity_volunteer_totals", "volunteer_id", "status", "activity_date", "hours", "points_credited"),
        # A whole street's month of reports: approved activities by date, claims by decision time.
        Index("ix_activity_status_activity_date", "status", "activity_date"),
        Index("ix_activity_claims_decided_at", "decided_at", postgresql_where=text("source = 'claim'"),
              sqlite_where=text("source = 'claim'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))  # indexed above
    # Denormalised at submission so that staff queues can be scoped by subtree cheaply.
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    rule_version_id: Mapped[int] = mapped_column(ForeignKey("point_rule_version.id"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("point_rule.id"))
    activity_date: Mapped[date] = mapped_column(Date)
    hours: Mapped[Optional[Decimal]] = mapped_column(Numeric(5, 2))
    note: Mapped[Optional[str]] = mapped_column(Text)
    photo_path: Mapped[Optional[str]] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16), default="claim")
    status: Mapped[str] = mapped_column(String(16), default=STATUS_PENDING)  # indexed above
    points_requested: Mapped[int] = mapped_column(Integer)
    points_credited: Mapped[int] = mapped_column(Integer, default=0)
    cap_note: Mapped[Optional[str]] = mapped_column(String(255))
    reject_reason: Mapped[Optional[str]] = mapped_column(Text)
    batch_key: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    # The end of the public-notice window (status on_notice); credited once it has passed.
    notice_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    volunteer = relationship("User", foreign_keys=[volunteer_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
    rule_version = relationship("PointRuleVersion")
    org_unit = relationship("OrgUnit")


class VolunteerYear(db.Model):
    """A volunteer's approved activities of one year (by activity date), summed.

    Kept in the same transaction as every change of an activity into or out of ``approved``
    (``pointsapp.domain.activity_totals``), so that the volunteer's pages read a few rows a
    volunteer instead of every activity of a lifetime. ``points`` sums the points credited,
    ``centi_hours`` the hours in hundredths, ``activities`` counts them; a year whose activities
    were all reversed keeps a row of zeros.
    """

    __tablename__ = "volunteer_year"
    # No CHECK of signs: a reversal must not be refused because rows written by an older version
    # missed its activity; check-ledger names any row that differs from the activities.

    volunteer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    points: Mapped[int] = mapped_column(Integer)
    centi_hours: Mapped[int] = mapped_column(BigInteger)
    activities: Mapped[int] = mapped_column(Integer)


class ApprovalVote(db.Model):
    """One verifier's vote on a claim; a claim is approved when its rule's approvals are reached."""

    __tablename__ = "approval_vote"
    __table_args__ = (
        UniqueConstraint("activity_id", "voter_id", name="uq_approval_vote_activity_id_voter_id"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision_known"),
        CheckConstraint("decision <> 'reject' OR comment IS NOT NULL", name="rejection_has_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id"), index=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    voter = relationship("User")


class NoticeObjection(db.Model):
    """An objection to an activity on public notice, by a resident (no login) or by staff."""

    __tablename__ = "notice_objection"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'upheld', 'dismissed')", name="status_known"),
        CheckConstraint("status = 'open' OR resolved_by_id IS NOT NULL", name="resolution_has_resolver"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    contact: Mapped[Optional[str]] = mapped_column(String(100))
    filed_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=OBJECTION_OPEN)
    resolved_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    resolved_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    resolution_note: Mapped[Optional[str]] = mapped_column(Text)

    activity = relationship("Activity")
    filed_by = relationship("User", foreign_keys=[filed_by_id])
    resolved_by = relationship("User", foreign_keys=[resolved_by_id])
