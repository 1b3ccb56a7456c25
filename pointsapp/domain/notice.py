"""Public notice (公示): approved activities posted for objections before they are credited.

A community may turn it on (``OrgUnit.notice_days``, 1..15 days; NULL is off). Then an
activity of a volunteer in that community that staff approve (a claim after its votes, or
recorded attendance) becomes ``on_notice`` with ``notice_until`` = approval + N days instead of
being credited, and is listed on the public page ``/notice`` (names masked). Anyone may object
with a reason while it is listed; staff over the community resolve each objection: *uphold*
withholds the activity for good (``withheld``, the volunteer sees the reason), *dismiss* lets it
go on. Once the window has passed and no objection is open, the activity is approved and
credited through ``claims._credit``: by ``flask points publish-notices`` (cron), or at once when
staff dismiss the last open objection after the window.

Every transition locks the activity row first (a no-op conditional UPDATE while it is still
``on_notice``), then reads the objections, then changes state: two publishers, or a publisher
and a resident objecting at the same moment, take turns on that row, so an activity is credited
at most once and never while an objection is open.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import selectinload

from ..database import among, dialect
from ..extensions import db
from ..models import Activity, NoticeObjection, OrgUnit, User
from ..models.rules import (
    OBJECTION_DISMISSED,
    OBJECTION_OPEN,
    OBJECTION_UPHELD,
    STATUS_APPROVED,
    STATUS_ON_NOTICE,
    STATUS_WITHHELD,
)
from ..models.user import STAFF_ROLES
from . import audit, claims
from .access import ancestor_paths, require_admin_of, require_in_scope, subtree_filter
from .clock import now_utc
from .errors import InvalidInput, NotFound, NotOnNotice, ObjectionResolved

MAX_NOTICE_DAYS = 15
COMMUNITY_LEVEL = "community"
act_t = Activity.__table__


def notice_end(now: datetime, days: int) -> datetime:
    """Return when an activity approved at ``now`` leaves notice."""
    return now + timedelta(days=days)


def notice_days_for(unit: OrgUnit | None) -> int | None:
    """Return the notice days of the community above ``unit`` (the nearest setting), or None."""
    if unit is None:
        return None
    return notice_days_for_units([unit])[unit.id]


@lru_cache(maxsize=None)
def _notice_days_at(dialect_name: str):
    return select(OrgUnit.path, OrgUnit.notice_days).where(
        among(OrgUnit.path, "paths", dialect_name), OrgUnit.notice_days.is_not(None)
    )


def notice_days_for_units(units) -> dict[int, int | None]:
    """``notice_days_for`` for many units in one query: unit id -> notice days (or None)."""
    chains = {u.id: list(reversed(ancestor_paths(u))) for u in units}
    above = {p for chain in chains.values() for p in chain}
    days = dict(db.session.execute(_notice_days_at(dialect()), {"paths": sorted(above)}).all()) if above else {}
    return {uid: next((days[p] for p in chain if p in days), None) for uid, chain in chains.items()}


def set_notice_days(actor: User, unit: OrgUnit, days: int | None) -> OrgUnit:
    """Turn public notice on (1..15 days) or off (0 or None) for a community the actor administers."""
    require_admin_of(actor, unit)
    if unit.level.code != COMMUNITY_LEVEL:
        raise InvalidInput("Public notice is set per community.", field="notice_days")
    if days is not None and not 0 <= days <= MAX_NOTICE_DAYS:
        raise InvalidInput("Notice lasts 1 to 15 days; 0 turns it off.", field="notice_days")
    days = days or None
    before = unit.notice_days
    if before == days:
        return unit  # the same setting again: nothing changes, nothing to audit
    unit.notice_days = days
    db.session.flush()
    audit.record(
        actor, audit.NOTICE_SETTING_CHANGED, "org_unit", unit.id, {"notice_days": [before, days]}, org_path=unit.path
    )
    return unit


def _lock_on_notice(activity_id: int) -> bool:
    """Lock the activity row while it is on notice; say whether it still is."""
    result = db.session.execute(
        update(act_t).where(act_t.c.id == activity_id, act_t.c.status == STATUS_ON_NOTICE).values(status=act_t.c.status)
    )
    return result.rowcount == 1


def _open_objections(activity_id: int) -> int:
    return db.session.scalar(
        select(func.count(NoticeObjection.id)).where(
            NoticeObjection.activity_id == activity_id, NoticeObjection.status == OBJECTION_OPEN
        )
    )


def public_notices(now: datetime | None = None) -> list[Activity]:
    """Return the activities on notice now (window not yet passed), newest activity date first."""
    now = now or now_utc()
    return list(
        db.session.scalars(
            select(Activity)
            .where(Activity.status == STATUS_ON_NOTICE, Activity.notice_until > now)
            .options(selectinload(Activity.volunteer), selectinload(Activity.rule_version), selectinload(Activity.org_unit))
            .order_by(Activity.activity_date.desc(), Activity.id.desc())
        )
    )


def public_activity(activity_id: int, now: datetime | None = None) -> Activity:
    """Return an activity that is on public notice now, else raise ``NotFound``."""
    now = now or now_utc()
    act = db.session.get(Activity, activity_id)
    if act is None or act.status != STATUS_ON_NOTICE or act.notice_until <= now:
        raise NotFound()
    return act


def file_objection(
    activity_id: int, reason: str, contact: str | None = None, filed_by: User | None = None,
    now: datetime | None = None,
) -> NoticeObjection:
    """Object to an activity on notice (a resident without login, or staff); a reason is required."""
    now = now or now_utc()
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput("Say what is wrong with this entry: a reason is required.", field="reason")
    contact = (contact or "").strip() or None
    if contact is not None and len(contact) > 100:
        raise InvalidInput("Contact details can be at most 100 characters.", field="contact")
    act = public_activity(activity_id, now)
    if not _lock_on_notice(act.id):
        raise NotOnNotice()
    db.session.refresh(act)
    if act.notice_until <= now:
        raise NotOnNotice()
    objection = NoticeObjection(
        activity_id=act.id, reason=reason[:2000], contact=contact, filed_by_id=filed_by.id if filed_by else None,
        created_at=now, status=OBJECTION_OPEN,
    )
    db.session.add(objection)
    db.session.flush()
    audit.record(
        filed_by, audit.OBJECTION_FILED, "notice_objection", objection.id,
        {"activity_id": act.id, "reason": reason[:2000], "by_staff": filed_by is not None},
        org_path=act.org_unit.path, now=now,
    )
    return objection


def staff_objection(actor: User, objection_id: int) -> NoticeObjection:
    """Return an objection to an activity of a volunteer in the actor's staff subtrees, else 404."""
    objection = db.session.get(NoticeObjection, objection_id)
    if objection is None:
        raise NotFound()
    require_in_scope(actor, objection.activity.org_unit, STAFF_ROLES)
    return objection


def resolve_objection(
    actor: User, objection_id: int, uphold: bool, note: str | None = None, now: datetime | None = None
) -> NoticeObjection:
    """Uphold (withhold the activity for good) or dismiss an objection; staff over the volunteer.

    Dismissing the last open objection after the window has passed credits the activity at once.
    """
    now = now or now_utc()
    note = (note or "").strip() or None
    if uphold and (note is None or len(note) < 2):
        raise InvalidInput("Upholding withholds the points: give the volunteer the reason.", field="note")
    objection = staff_objection(actor, objection_id)
    act = objection.activity
    if act.volunteer_id == actor.id:
        raise NotFound()  # an objection to one's own activity is for someone else to judge
    if objection.status != OBJECTION_OPEN:
        raise ObjectionResolved()
    if not _lock_on_notice(act.id):
        raise NotOnNotice()
    result = db.session.execute(
        update(NoticeObjection.__table__)
        .where(NoticeObjection.__table__.c.id == objection.id, NoticeObjection.__table__.c.status == OBJECTION_OPEN)
        .values(status=OBJECTION_UPHELD if uphold else OBJECTION_DISMISSED, resolved_by_id=actor.id,
                resolved_at=now, resolution_note=note)
    )
    if result.rowcount != 1:
        raise ObjectionResolved()
    db.session.refresh(objection)
    credited = None
    if uphold:
        # The other open objections are answered by the same decision.
        db.session.execute(
            update(NoticeObjection.__table__)
            .where(NoticeObjection.__table__.c.activity_id == act.id, NoticeObjection.__table__.c.status == OBJECTION_OPEN)
            .values(status=OBJECTION_UPHELD, resolved_by_id=actor.id, resolved_at=now, resolution_note=note)
        )
        db.session.execute(
            update(act_t).where(act_t.c.id == act.id, act_t.c.status == STATUS_ON_NOTICE)
            .values(status=STATUS_WITHHELD, reject_reason=note[:1000])
        )
        db.session.refresh(act)
    else:
        db.session.refresh(act)
        if act.notice_until <= now and _open_objections(act.id) == 0:
            _credit_after_notice(act, actor)
            credited = act.points_credited
    audit.record(
        actor, audit.OBJECTION_UPHELD if uphold else audit.OBJECTION_DISMISSED, "notice_objection", objection.id,
        {"activity_id": act.id, "volunteer_id": act.volunteer_id, "note": note, "activity_status": act.status,
         "points_credited": credited},
        org_path=act.org_unit.path, now=now,
    )
    return objection


def _credit_after_notice(act: Activity, actor: User | None) -> None:
    """Approve the locked, on-notice activity and credit it (the caller holds the row lock)."""
    db.session.execute(
        update(act_t).where(act_t.c.id == act.id, act_t.c.status == STATUS_ON_NOTICE).values(status=STATUS_APPROVED)
    )
    db.session.refresh(act)
    claims._credit(act, actor or act.decided_by or act.created_by, while_active=False)


def due_notice_ids(now: datetime | None = None, batch: int = 500) -> list[int]:
    """Return activities whose window has passed with no open objection, oldest first."""
    now = now or now_utc()
    open_objection = exists().where(
        NoticeObjection.activity_id == Activity.id, NoticeObjection.status == OBJECTION_OPEN
    )
    return list(
        db.session.scalars(
            select(Activity.id)
            .where(Activity.status == STATUS_ON_NOTICE, Activity.notice_until <= now, ~open_objection)
            .order_by(Activity.id)
            .limit(batch)
        )
    )


def publish_one(activity_id: int, now: datetime | None = None) -> bool:
    """Credit one activity whose notice has ended without an open objection; say whether it was.

    Safe to run twice or at once: the row lock and the status make the second a no-op. Run one
    activity per transaction (the activity row is locked before the accounts, as everywhere).
    """
    now = now or now_utc()
    if not _lock_on_notice(activity_id):
        return False
    act = db.session.get(Activity, activity_id)
    db.session.refresh(act)
    if act.notice_until > now or _open_objections(act.id):
        return False
    _credit_after_notice(act, None)
    audit.record(
        None, audit.NOTICE_CREDITED, "activity", act.id,
        {"volunteer_id": act.volunteer_id, "points_credited": act.points_credited, "cap_note": act.cap_note},
        org_path=act.org_unit.path, now=now,
    )
    return True


def notices_in_scope(actor: User) -> list[Activity]:
    """Return the activities on notice in the actor's staff subtrees, the window's end first."""
    return list(
        db.session.scalars(
            select(Activity)
            .join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
            .where(Activity.status == STATUS_ON_NOTICE, subtree_filter(OrgUnit.path, actor, STAFF_ROLES))
            .options(selectinload(Activity.volunteer), selectinload(Activity.rule_version), selectinload(Activity.org_unit))
            .order_by(Activity.notice_until, Activity.id)
        )
    )


def objections_for(activity_ids: list[int]) -> dict[int, list[NoticeObjection]]:
    """Return each activity's objections, oldest first."""
    out: dict[int, list[NoticeObjection]] = {i: [] for i in activity_ids}
    if activity_ids:
        for o in db.session.scalars(
            select(NoticeObjection).where(NoticeObjection.activity_id.in_(activity_ids)).order_by(NoticeObjection.id)
        ):
            out[o.activity_id].append(o)
    return out
