"""Check-in events: an activity with a time window, a rotating QR code, and its attendees."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

EVENT_OPEN = "open"
EVENT_CLOSED = "closed"


class CheckinEvent(db.Model):
    """An activity at a place and time that volunteers sign in to by scanning a QR code."""

    __tablename__ = "checkin_event"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
        CheckConstraint("ends_at > starts_at", name="window_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    rule_id: Mapped[int] = mapped_column(ForeignKey("point_rule.id"))
    # The subtree whose volunteers may sign in (and whose staff run the event).
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    place: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=EVENT_OPEN)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))

    rule = relationship("PointRule")
    org_unit = relationship("OrgUnit")
    created_by = relationship("User", foreign_keys=[created_by_id])
    attendances = relationship(
        "CheckinAttendance", back_populates="event", order_by="CheckinAttendance.id", lazy="selectin"
    )

    @property
    def attendee_count(self) -> int:
        return len(self.attendances)


class CheckinAttendance(db.Model):
    """One volunteer at one event: signed in (and out) by scanning, or back-filled by staff."""

    __tablename__ = "checkin_attendance"
    __table_args__ = (
        # One sign-in per volunteer per event, however often and however fast the button is tapped.
        UniqueConstraint("event_id", "volunteer_id", name="uq_checkin_attendance_event_id_volunteer_id"),
        CheckConstraint("hours IS NULL OR hours >= 0", name="hours_not_negative"),
        CheckConstraint(
            "signed_out_at IS NULL OR signed_out_at >= signed_in_at", name="out_after_in"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("checkin_event.id"), index=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    # The node the volunteer belonged to when they signed in (or when staff added them): closing
    # records the attendance there, wherever the volunteer has moved since.
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    signed_in_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    signed_out_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # Added by staff for someone without a phone; their hours are given (or the whole window).
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False)
    added_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("user_account.id"))
    # Counted hours (rounded and capped), set when staff close the event (or given when back-filled).
    hours: Mapped[Optional[Decimal]] = mapped_column(Numeric(5, 2))
    activity_id: Mapped[Optional[int]] = mapped_column(ForeignKey("activity.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event = relationship("CheckinEvent", back_populates="attendances")
    volunteer = relationship("User", foreign_keys=[volunteer_id])
    org_unit = relationship("OrgUnit")
    activity = relationship("Activity")
