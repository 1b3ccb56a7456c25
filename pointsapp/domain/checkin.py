"""Check-in events: volunteers sign in and out by scanning a QR code shown at the event.

Design
    Grid staff create an event (title, rule, time window, place, node of the tree). The event page
    shows a QR code of ``/checkin/<event>/<token>``; the token is a short HMAC of the event id and
    the current 30-second slot under the app's secret key, so it changes every 30 seconds and one
    is accepted during its own slot and the next (30 to 60 seconds: time to scan, not to send a
    photo home). ``pass_for`` signs (event, time) for the person who scanned in time, so that
    logging in first, or a slow tap on the confirm button, does not make them scan again.

    Signing in inserts one ``CheckinAttendance`` row; UNIQUE (event, volunteer) makes a double tap
    or two phones at once one row. The row keeps the volunteer's node of that moment (a
    back-filled row, that of when staff add it). Signing out is a conditional UPDATE
    (``signed_out_at IS NULL``).

    Closing the event (a conditional UPDATE ``open`` -> ``closed``, so a second close changes
    nothing) turns each attendance into one ``Activity`` with source ``checkin``:
    hours = sign-out (or the event's end, for those who never signed out) minus sign-in (not
    before the start), rounded down to the rule's ``hours_rounding_minutes`` and capped at its
    ``checkin_hours_cap``. Rules that need approval leave it pending in the approval queue;
    others are credited at once, set-based as a recorded meeting is (caps apply). Back-filled
    attendance earns points only when the rule's ``backfill_earns_points`` says so; otherwise it
    counts hours only (approved, ``points_requested = points_credited = 0``, no transfer).
    Each activity is at the node its attendance row kept, not the volunteer's node at the close:
    a volunteer moved (to another grid, or out of the event's subtree) after signing in still
    counts where they attended, under that node's public notice and in its approval queue. The
    points draw on the budget of the volunteer's node when they are credited, as every credit's.

Lock order: the event row (its status UPDATE) first, like an activity row; then the attendees'
accounts in ascending id (taken before the first credit), then the issuance account.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal

from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import Activity, CheckinAttendance, CheckinEvent, OrgUnit, PointRule, User
from ..models.checkin import EVENT_CLOSED, EVENT_OPEN
from ..models.rules import RULE_EARN, STATUS_APPROVED, STATUS_ON_NOTICE, STATUS_PENDING, UNIT_HOUR
from ..models.user import ROLE_VOLUNTEER, STAFF_ROLES
from . import activity_totals, audit, claims, notice
from .access import ancestor_paths, in_scope, require_in_scope, subtree_filter
from .clock import local_today, now_utc, to_local
from .errors import (
    AccountInactive,
    AlreadyRecorded,
    CheckinCodeExpired,
    CheckinNotForYou,
    CheckinNotOpen,
    EventClosed,
    EventNotEditable,
    Forbidden,
    InvalidInput,
    NotFound,
    RuleNotApplicable,
)

SLOT_SECONDS = 30
TOKEN_CHARS = 10  # 60 bits of HMAC: short enough for a small QR code, far too many to guess
EARLY_SIGN_IN = timedelta(minutes=30)
PASS_MAX_AGE = 600  # seconds a successful scan lets its scanner log in and confirm
MAX_EVENT_LENGTH = timedelta(hours=24)
ZERO = Decimal(0)


# --- the rotating code ----------------------------------------------------------------------


def slot_of(now: datetime) -> int:
    return int(now.timestamp()) // SLOT_SECONDS


def token_for(event_id: int, slot: int) -> str:
    """Return the event's check-in token for one 30-second slot."""
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"checkin:{event_id}:{slot}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOKEN_CHARS]


def current_token(event_id: int, now: datetime | None = None) -> str:
    return token_for(event_id, slot_of(now or now_utc()))


def token_is_valid(event_id: int, token: str, now: datetime | None = None) -> bool:
    """Say whether ``token`` belongs to the current or the previous slot of this event."""
    slot = slot_of(now or now_utc())
    given = (token or "")[:64].encode("utf-8", "replace")
    return any(hmac.compare_digest(token_for(event_id, s).encode(), given) for s in (slot, slot - 1))


def seconds_left(now: datetime | None = None) -> int:
    """Seconds until the next code: the page refreshes then."""
    now = now or now_utc()
    return SLOT_SECONDS - int(now.timestamp()) % SLOT_SECONDS


def _pass_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="checkin-pass")


def pass_for(event_id: int) -> str:
    """Sign 'this browser scanned a valid code of ``event_id`` now', for the login and the confirm."""
    return _pass_serializer().dumps(event_id)


def pass_is_valid(event_id: int, value: str | None) -> bool:
    if not value:
        return False
    try:
        return _pass_serializer().loads(value[:200], max_age=PASS_MAX_AGE) == event_id
    except BadSignature:
        return False


def require_fresh(event_id: int, token: str, scan_pass: str | None = None, now: datetime | None = None) -> None:
    """Raise ``CheckinCodeExpired`` unless the token, or a pass from a recent valid scan, is good."""
    if not (token_is_valid(event_id, token, now) or pass_is_valid(event_id, scan_pass)):
        raise CheckinCodeExpired()


# --- events ---------------------------------------------------------------------------------


def usable_rules(actor: User) -> list[PointRule]:
    """Rules an event of the actor may use: defined at or above their nodes, or inside them."""
    found: dict[int, PointRule] = {}
    units = [g.org_unit for g in actor.grants(*STAFF_ROLES) if g.org_unit is not None]
    paths = {p for u in units for p in ancestor_paths(u)}
    query = select(PointRule).join(OrgUnit, OrgUnit.id == PointRule.org_unit_id)
    for rule in db.session.scalars(query.where(OrgUnit.path.in_(paths) if paths else False)):
        found[rule.id] = rule
    for rule in db.session.scalars(query.where(subtree_filter(OrgUnit.path, actor, STAFF_ROLES))):
        found[rule.id] = rule
    today = local_today()
    return [
        r for _id, r in sorted(found.items())
        if r.current and r.current.kind == RULE_EARN and r.current.applies_on(today)
    ]


def scoped_event(actor: User, event_id: int) -> CheckinEvent:
    """Return an event in the actor's staff subtrees, else raise ``NotFound``."""
    event = db.session.get(CheckinEvent, event_id)
    if event is None:
        raise NotFound()
    require_in_scope(actor, event.org_unit, STAFF_ROLES)
    return event


def events_query(actor: User):
    """Return a select of the events in the actor's staff subtrees, newest first."""
    return (
        select(CheckinEvent)
        .join(OrgUnit, OrgUnit.id == CheckinEvent.org_unit_id)
        .where(subtree_filter(OrgUnit.path, actor, STAFF_ROLES))
        .order_by(CheckinEvent.starts_at.desc(), CheckinEvent.id.desc())
    )


def _checked_details(title: str, place: str, starts_at: datetime, ends_at: datetime) -> tuple[str, str]:
    """Check an event's title, place and time window (new or edited); return the stripped texts."""
    title, place = (title or "").strip(), (place or "").strip()
    if not title or len(title) > 100:
        raise InvalidInput("Give the event a title of up to 100 characters.", field="title")
    if not place or len(place) > 200:
        raise InvalidInput("Say where the event takes place (up to 200 characters).", field="place")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput("Give the start and end times with their time zone.", field="starts_at")
    if ends_at <= starts_at:
        raise InvalidInput("The event must end after it starts.", field="ends_at")
    if ends_at - starts_at > MAX_EVENT_LENGTH:
        raise InvalidInput("An event can last at most 24 hours.", field="ends_at")
    return title, place


def _check_rule_on_day(rule: PointRule, starts_at: datetime, field: str) -> None:
    if not rule.current.applies_on(to_local(starts_at).date()):
        raise InvalidInput("This activity type is not in force on the day of the event.", field=field)


def create_event(
    actor: User,
    *,
    title: str,
    rule_id: int,
    org_unit_id: int,
    place: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime | None = None,
) -> CheckinEvent:
    """Create an open event for the volunteers under a node in the actor's staff subtrees."""
    now = now or now_utc()
    if not actor.has_role(*STAFF_ROLES):
        raise Forbidden()
    unit = db.session.get(OrgUnit, org_unit_id)
    require_in_scope(actor, unit, STAFF_ROLES)
    title, place = _checked_details(title, place, starts_at, ends_at)
    if ends_at <= now:
        raise InvalidInput("The event has already ended; record its attendance instead.", field="ends_at")
    rule = next((r for r in usable_rules(actor) if r.id == rule_id), None)
    if rule is None:
        raise InvalidInput("Choose an activity type from the list.", field="rule_id")
    if not (rule.org_unit.path in ancestor_paths(unit) or rule.org_unit.path.startswith(unit.path)):
        raise InvalidInput("This activity type does not apply to the volunteers of that place.", field="rule_id")
    _check_rule_on_day(rule, starts_at, field="rule_id")
    event = CheckinEvent(
        title=title, rule_id=rule.id, org_unit_id=unit.id, place=place, starts_at=starts_at, ends_at=ends_at,
        status=EVENT_OPEN, created_at=now, created_by_id=actor.id,
    )
    db.session.add(event)
    db.session.flush()
    audit.record(
        actor, audit.EVENT_CREATED, "checkin_event", event.id,
        {"title": title, "rule_id": rule.id, "org_unit_id": unit.id, "place": place,
         "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()},
        org_path=unit.path, now=now,
    )
    return event


def _locked_event(event_id: int) -> CheckinEvent:
    """Lock the event's row (before anything else, as closing does) and return it as committed."""
    return db.session.scalars(
        select(CheckinEvent).where(CheckinEvent.id == event_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def is_editable(event: CheckinEvent, now: datetime | None = None) -> bool:
    """Say whether staff may still change the event: it is open and has not ended."""
    return event.status == EVENT_OPEN and event.ends_at > (now or now_utc())


def require_editable(event: CheckinEvent, now: datetime | None = None) -> None:
    """Raise ``EventNotEditable`` (saying why) unless the event is open and has not ended."""
    if is_editable(event, now):
        return
    if event.status != EVENT_OPEN:
        raise EventNotEditable(_l("This event has been closed and its attendance credited, so it can no longer be "
                                  "changed. Create a new event if the activity takes place again."))
    raise EventNotEditable(_l("This event has already ended, so it can no longer be changed. Close it to "
                              "credit the attendees."))


def update_event(
    actor: User,
    event_id: int,
    *,
    title: str,
    place: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime | None = None,
) -> CheckinEvent:
    """Change an open event's title, place or time window before it ends.

    The activity type and the node stay: they decide who may sign in and what attendance earns.
    Once someone has signed in the start stays too (hours count from it and from their sign-in).
    The event's row is locked first, so an edit and a closing at the same moment take turns: the
    closing counts the edited window, or the edit finds the event closed. Nothing changed writes
    nothing, not even an audit record.
    """
    now = now or now_utc()
    scoped_event(actor, event_id)
    event = _locked_event(event_id)
    require_editable(event, now)
    title, place = _checked_details(title, place, starts_at, ends_at)
    if ends_at <= now:
        raise InvalidInput("The end cannot be in the past; to finish the event now, close it.", field="ends_at")
    if starts_at != event.starts_at:
        signed_in = db.session.scalar(
            select(func.count()).select_from(CheckinAttendance)
            .where(CheckinAttendance.event_id == event.id, CheckinAttendance.signed_in_at.is_not(None))
        )
        if signed_in:
            raise InvalidInput(
                "Volunteers have already signed in, so the start can no longer be changed (their hours count "
                "from it). You can still change the title, the place and the end.", field="starts_at")
        _check_rule_on_day(event.rule, starts_at, field="starts_at")
    new = {"title": title, "place": place, "starts_at": starts_at, "ends_at": ends_at}
    changes = {
        name: [_audit_value(getattr(event, name)), _audit_value(value)]
        for name, value in new.items() if getattr(event, name) != value
    }
    if not changes:
        return event
    for name, value in new.items():
        setattr(event, name, value)
    db.session.flush()
    audit.record(actor, audit.EVENT_UPDATED, "checkin_event", event.id, {"changes": changes},
                 org_path=event.org_unit.path, now=now)
    return event


def _audit_value(value):
    return value.astimezone(timezone.utc).isoformat() if isinstance(value, datetime) else value


def attendee_count(event_id: int) -> tuple[int, int]:
    """Return (signed in now, signed in ever) for the event page's live count."""
    rows = db.session.execute(
        select(CheckinAttendance.signed_out_at.is_(None), func.count())
        .where(CheckinAttendance.event_id == event_id)
        .group_by(CheckinAttendance.signed_out_at.is_(None))
    ).all()
    present = sum(n for here, n in rows if here)
    return present, sum(n for _here, n in rows)


# --- volunteers sign in and out -------------------------------------------------------------


@dataclass
class Signed:
    attendance: CheckinAttendance
    changed: bool  # False: it was already so (a double tap); nothing was written


def _check_volunteer(volunteer: User, event: CheckinEvent) -> None:
    if not volunteer.is_active:
        raise AccountInactive()
    if not volunteer.has_role(ROLE_VOLUNTEER):
        raise CheckinNotForYou(why=_l("only volunteers sign in."))
    unit = volunteer.org_unit
    if unit is None or not unit.path.startswith(event.org_unit.path):
        raise CheckinNotForYou(why=_l("it is for the volunteers of %(unit)s.", unit=event.org_unit.name))
    rule = event.rule
    try:
        claims._check_rule_applies(rule.current, rule, volunteer, to_local(event.starts_at).date())
    except RuleNotApplicable as exc:
        raise CheckinNotForYou(why=exc.message)


def event_and_attendance(volunteer: User, event_id: int) -> tuple[CheckinEvent, CheckinAttendance | None]:
    """Return the event a volunteer scanned, if they may sign in to it or have signed in to it
    already, with their attendance row (None: not signed in); else raise. One who has signed in
    may be moved (to a node outside the event's, or off the rule's activity type) before they
    leave: they still sign out, and their attendance counts at the node they signed in from."""
    event = db.session.get(CheckinEvent, event_id)
    if event is None:
        raise NotFound()
    if not volunteer.is_active:
        raise AccountInactive()
    row = attendance_of(event.id, volunteer.id)
    if row is None:
        _check_volunteer(volunteer, event)
    return event, row


def attendance_of(event_id: int, volunteer_id: int) -> CheckinAttendance | None:
    return db.session.scalar(
        select(CheckinAttendance).where(
            CheckinAttendance.event_id == event_id, CheckinAttendance.volunteer_id == volunteer_id
        )
    )


VOLUNTEER_OPEN_EVENTS = 50
VOLUNTEER_ATTENDED = 20


@dataclass
class VolunteerEvents:
    upcoming: list[tuple[CheckinEvent, CheckinAttendance | None]]  # open and not ended, soonest first
    attended: list[CheckinAttendance]  # their own attendance rows (event loaded), newest first


def events_for_volunteer(
    volunteer: User, now: datetime | None = None, *, limit: int = VOLUNTEER_ATTENDED
) -> VolunteerEvents:
    """The open events a volunteer may sign in to (with their own attendance), and those they attended.

    An event is theirs when its node is theirs or above it and its activity type applies to them,
    as for signing in. A fixed number of queries, however many events: the events, their rules
    and nodes, the volunteer's attendance at them, and the attended rows with their events.
    """
    now = now or now_utc()
    unit = volunteer.org_unit
    if unit is None or not volunteer.has_role(ROLE_VOLUNTEER):
        return VolunteerEvents([], [])
    with_names = (
        lazyload(CheckinEvent.attendances),
        selectinload(CheckinEvent.org_unit),
        selectinload(CheckinEvent.rule).selectinload(PointRule.org_unit),
    )
    events = list(
        db.session.scalars(
            select(CheckinEvent)
            .join(OrgUnit, OrgUnit.id == CheckinEvent.org_unit_id)
            .where(OrgUnit.path.in_(ancestor_paths(unit)), CheckinEvent.status == EVENT_OPEN,
                   CheckinEvent.ends_at > now)
            .order_by(CheckinEvent.starts_at, CheckinEvent.id)
            .options(*with_names)
        )
    )
    # Filtered before the cut: events whose activity type is not for this volunteer must not push
    # theirs off the list (a node and those above it have few open events at a time).
    events = [e for e in events if _may_sign_in(volunteer, e)][:VOLUNTEER_OPEN_EVENTS]
    mine = {
        a.event_id: a
        for a in db.session.scalars(
            select(CheckinAttendance).where(
                CheckinAttendance.volunteer_id == volunteer.id,
                CheckinAttendance.event_id.in_([e.id for e in events]),
            )
        )
    } if events else {}
    attended = list(
        db.session.scalars(
            select(CheckinAttendance)
            .join(CheckinEvent, CheckinEvent.id == CheckinAttendance.event_id)
            .where(CheckinAttendance.volunteer_id == volunteer.id)
            .order_by(CheckinEvent.starts_at.desc(), CheckinAttendance.id.desc())
            .limit(limit)
            .options(selectinload(CheckinAttendance.event).options(*with_names),
                     # what became of each: credited, waiting for approval, on notice
                     selectinload(CheckinAttendance.activity).load_only(Activity.status))
        )
    )
    return VolunteerEvents([(e, mine.get(e.id)) for e in events], attended)


def _may_sign_in(volunteer: User, event: CheckinEvent) -> bool:
    try:
        _check_volunteer(volunteer, event)
    except (CheckinNotForYou, AccountInactive):
        return False
    return True


def _require_open(event: CheckinEvent) -> None:
    """Raise ``EventClosed`` unless the event is open, holding a shared lock on its row.

    Sign-ins share the lock with each other; closing (an UPDATE) waits for them, and a sign-in
    that comes after a close sees it closed: no attendance slips in beside a closing.
    """
    t = CheckinEvent.__table__
    status, starts_at, ends_at = db.session.execute(
        select(t.c.status, t.c.starts_at, t.c.ends_at).where(t.c.id == event.id).with_for_update(read=True)
    ).one()
    if status != EVENT_OPEN:
        raise EventClosed()
    # The window as it stands under the lock: an edit committed while this waited is the one used.
    set_committed_value(event, "starts_at", starts_at)
    set_committed_value(event, "ends_at", ends_at)


def sign_in(volunteer: User, event_id: int, now: datetime | None = None) -> Signed:
    """Sign the volunteer in (once); a second sign-in changes nothing."""
    now = now or now_utc()
    event, existing = event_and_attendance(volunteer, event_id)
    _require_open(event)
    if existing is not None:
        return Signed(existing, False)
    if now < event.starts_at - EARLY_SIGN_IN:
        raise CheckinNotOpen(why=_l("signing in opens 30 minutes before the start, at %(when)s.",
                                    when=to_local(event.starts_at - EARLY_SIGN_IN).strftime("%H:%M")))
    if now > event.ends_at:
        raise CheckinNotOpen(why=_l("the event ended at %(when)s.", when=to_local(event.ends_at).strftime("%H:%M")))
    # Their node now: closing records the attendance there, even if they move before the close.
    row = CheckinAttendance(event_id=event.id, volunteer_id=volunteer.id, org_unit_id=volunteer.org_unit_id,
                            signed_in_at=now, backfilled=False, created_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        # The same person's other tap (or phone) signed in a moment ago: one row, as it should be.
        return Signed(attendance_of(event.id, volunteer.id), False)
    return Signed(row, True)


def sign_out(volunteer: User, event_id: int, now: datetime | None = None) -> Signed:
    """Sign the volunteer out (once, after signing in); a second sign-out changes nothing."""
    now = now or now_utc()
    event, row = event_and_attendance(volunteer, event_id)
    _require_open(event)
    if row is None or row.signed_in_at is None:
        raise CheckinNotOpen(why=_l("you have not signed in to this event."))
    t = CheckinAttendance.__table__
    result = db.session.execute(
        update(t)
        .where(t.c.id == row.id, t.c.signed_out_at.is_(None), t.c.hours.is_(None))
        .values(signed_out_at=max(now, row.signed_in_at))
    )
    db.session.refresh(row)
    return Signed(row, result.rowcount == 1)


# --- staff: back-filled attendance and closing ----------------------------------------------


def _parse_optional_hours(hours) -> Decimal | None:
    if hours is None or str(hours).strip() == "":
        return None
    return claims.parse_hours(hours)


def add_attendee(
    actor: User, event_id: int, volunteer_id: int, hours=None, now: datetime | None = None
) -> CheckinAttendance:
    """Add a volunteer who was there without a phone; ``hours`` empty means the whole event."""
    now = now or now_utc()
    event = scoped_event(actor, event_id)
    _require_open(event)
    given = _parse_optional_hours(hours)
    volunteer = db.session.get(User, volunteer_id)
    if volunteer is None or not in_scope(actor, volunteer.org_unit, STAFF_ROLES):
        raise NotFound()
    if volunteer.id == actor.id:
        raise Forbidden(_l("You cannot record points for yourself; another staff member must."))
    try:
        _check_volunteer(volunteer, event)
    except (CheckinNotForYou, AccountInactive) as exc:
        raise InvalidInput("%(name)s: %(why)s", field="volunteer_id", name=volunteer.full_name, why=exc.message)
    row = CheckinAttendance(
        event_id=event.id, volunteer_id=volunteer.id, org_unit_id=volunteer.org_unit_id, backfilled=True,
        added_by_id=actor.id, hours=given, created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        raise AlreadyRecorded(_l("%(name)s is already on this event's list.", name=volunteer.full_name))
    audit.record(
        actor, audit.EVENT_ATTENDEE_ADDED, "checkin_event", event.id,
        {"volunteer_id": volunteer.id, "hours": str(given) if given is not None else None},
        org_path=event.org_unit.path, now=now,
    )
    return row


def counted_hours(event: CheckinEvent, row: CheckinAttendance, version) -> Decimal:
    """Hours one attendance counts: rounded down to the rule's step, capped at its cap."""
    if row.backfilled:
        raw = row.hours if row.hours is not None else Decimal((event.ends_at - event.starts_at).total_seconds()) / 3600
        minutes = Decimal(raw) * 60
    else:
        start = max(row.signed_in_at, event.starts_at)
        end = min(row.signed_out_at or event.ends_at, event.ends_at)
        minutes = Decimal(max(0, int((end - start).total_seconds())) // 60)
    step = Decimal(version.hours_rounding_minutes or 30)
    rounded = (minutes / step).to_integral_value(rounding=ROUND_DOWN) * step / 60
    if version.checkin_hours_cap is not None:
        rounded = min(rounded, Decimal(version.checkin_hours_cap))
    return rounded.quantize(Decimal("0.01"), rounding=ROUND_DOWN)


@dataclass
class Closed:
    event: CheckinEvent
    activities: list[Activity]
    changed: bool  # False: it was closed already; nothing was written


def close_event(actor: User, event_id: int, now: datetime | None = None) -> Closed:
    """Close the event and turn its attendance into activities; closing again changes nothing."""
    now = now or now_utc()
    event = scoped_event(actor, event_id)
    if now < event.starts_at:
        raise CheckinNotOpen(why=_l("the event has not started yet."))
    db.session.flush()
    t = CheckinEvent.__table__
    result = db.session.execute(
        update(t).where(t.c.id == event.id, t.c.status == EVENT_OPEN)
        .values(status=EVENT_CLOSED, closed_at=now, closed_by_id=actor.id)
    )
    db.session.refresh(event)
    if result.rowcount != 1:
        return Closed(event, [a.activity for a in event.attendances if a.activity is not None], False)
    rule = event.rule
    version = rule.current
    day = to_local(event.starts_at).date()
    rows = list(
        db.session.scalars(
            select(CheckinAttendance)
            .where(CheckinAttendance.event_id == event.id)
            .order_by(CheckinAttendance.volunteer_id)
            .options(selectinload(CheckinAttendance.org_unit))
            .execution_options(populate_existing=True)
        )
    )
    # Each attendance counts at the node its volunteer signed in from (or was added at), not the
    # one they may have moved to since: its activity and public notice are that node's.
    notice_days = notice.notice_days_for_units({row.org_unit for row in rows})
    to_credit: list[Activity] = []
    made: list[Activity] = []
    summary: dict[str, dict] = {}
    for row in rows:
        volunteer = row.volunteer
        hours = counted_hours(event, row, version)
        row.hours = hours
        if not volunteer.is_active or (version.unit == UNIT_HOUR and hours <= ZERO):
            summary[str(volunteer.id)] = {"hours": str(hours), "skipped": "inactive" if not volunteer.is_active else "no hours"}
            continue
        hours_only = row.backfilled and not version.backfill_earns_points
        points = 0 if hours_only else claims.points_for(version, hours if version.unit == UNIT_HOUR else None)
        # The closer's own attendance waits for another verifier: no one credits themselves.
        pending = (version.needs_approval or volunteer.id == actor.id) and not hours_only
        # A community on public notice posts the attendance for objections before crediting it.
        days = 0 if pending or points == 0 else notice_days[row.org_unit_id]
        act = Activity(
            volunteer_id=volunteer.id, org_unit_id=row.org_unit_id, org_unit=row.org_unit, rule_id=rule.id,
            rule_version_id=version.id, activity_date=day, hours=hours if hours > ZERO else None,
            note=f"{event.title} · {event.place}"[:1000], source="checkin",
            status=STATUS_PENDING if pending else STATUS_ON_NOTICE if days else STATUS_APPROVED,
            notice_until=notice.notice_end(now, days) if days else None,
            points_requested=points, points_credited=0, batch_key=f"checkin:{event.id}",
            created_by_id=actor.id, created_at=now,
            decided_at=None if pending else now, decided_by_id=None if pending else actor.id,
        )
        db.session.add(act)
        made.append(act)
        if not pending and not days and points > 0:
            to_credit.append(act)
        row.activity = act
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise AlreadyRecorded() from exc
    # As a recorded meeting is credited: every attendee's account locked (ascending id) and their
    # caps read in one query each, then one set-based credit for them all.
    accounts, grants = claims._capped_grants(
        [a.volunteer for a in to_credit], version, day, {a.volunteer_id: a.points_requested for a in to_credit}
    )
    for act in to_credit:
        act.points_credited, act.cap_note = grants[act.volunteer_id]
    db.session.flush()
    claims._credit_batch(to_credit, accounts, version, actor, now)
    activity_totals.add([a for a in made if a.status == STATUS_APPROVED])  # hours-only attendance too
    for act in made:
        summary[str(act.volunteer_id)] = {
            "hours": str(act.hours) if act.hours is not None else None, "status": act.status,
            "points_requested": act.points_requested, "points_credited": act.points_credited,
        }
    audit.record(
        actor, audit.EVENT_CLOSED, "checkin_event", event.id,
        {"rule_id": rule.id, "rule_version": version.version, "attendees": summary},
        org_path=event.org_unit.path, now=now,
    )
    return Closed(event, made, True)
