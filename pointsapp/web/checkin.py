"""Check-in events: staff pages (events, the QR page, closing) and the volunteer's scan page."""
from __future__ import annotations

import base64
from datetime import timedelta
from functools import partial
from types import SimpleNamespace

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy.orm import selectinload

from ..domain import checkin
from ..domain.clock import local_zone, now_utc, to_local
from ..domain.errors import AlreadyRecorded, EventClosed, EventNotEditable, PointsError
from ..domain.org import subtree_units
from ..extensions import db
from ..forms import AttendeeForm, CheckinForm, EventForm, rule_choices, show_domain_error
from ..models import CheckinEvent, User
from ..models.checkin import EVENT_OPEN
from ..models.rules import STATUS_PENDING
from ..models.user import ROLE_VOLUNTEER, STAFF_ROLES
from .admin import unit_choices
from .security import SCAN_PASS_KEY
from .guards import role_required
from .staff import volunteers_in_scope
from .template_helpers import page_is_zh, zh_choices

bp = Blueprint("events", __name__)

LIST_SIZE = 100


def _me() -> User:
    return current_user._get_current_object()


def _units(actor: User):
    found = {}
    for grant in actor.grants(*STAFF_ROLES):
        for unit in subtree_units(grant.org_unit):
            found[unit.id] = unit
    return sorted(found.values(), key=lambda u: [int(p) for p in u.path.strip("/").split("/")])


def checkin_url(event_id: int) -> str:
    """The absolute URL the event's QR code shows now."""
    return url_for("events.checkin", event_id=event_id, token=checkin.current_token(event_id), _external=True)


def qr_data_url(text: str) -> str:
    """Return ``text`` as an SVG QR code in a data: URL (an <img> under the strict CSP)."""
    import qrcode  # only the event page draws a code: loaded on first use, not by every worker
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=4)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


# --- staff: events --------------------------------------------------------------------------


@bp.route("/staff/events")
@role_required(*STAFF_ROLES)
def index():
    """List the events in the staff member's subtrees, newest first."""
    events = list(
        db.session.scalars(checkin.events_query(_me()).options(selectinload(CheckinEvent.rule)).limit(LIST_SIZE))
    )
    return render_template("checkin/events.html", events=events)


@bp.route("/staff/events/new", methods=["GET", "POST"])
@role_required(*STAFF_ROLES)
def new():
    """Create an event: title, activity type, time window, place and the volunteers it is for."""
    actor = _me()
    form = EventForm()
    form.rule_id.choices = rule_choices([r.current for r in checkin.usable_rules(actor)], page_is_zh())
    form.org_unit_id.choices = unit_choices(_units(actor))
    if request.method == "GET":
        start = to_local(now_utc()).replace(second=0, microsecond=0, tzinfo=None)
        form.starts_at.data = start
        form.ends_at.data = start + timedelta(hours=2)
    if form.validate_on_submit():
        event, refused = _saved(form, partial(checkin.create_event, actor, rule_id=form.rule_id.data,
                                              org_unit_id=form.org_unit_id.data))
        if refused:
            return refused
        flash(_("The event %(title)s was created. Show this page at the event.", title=event.title), "ok")
        return redirect(url_for(".show", event_id=event.id))
    return _event_form_page(form, None, 422 if form.errors else 200)


def _event_form_page(form: EventForm, event: CheckinEvent | None = None, status: int = 200):
    return render_template("checkin/event_form.html", form=form, event=event), status


def _saved(form: EventForm, save, event: CheckinEvent | None = None):
    """Call ``save`` with the form's title, place and window (local times) and commit.

    Return (its result, None), or (None, the form page with the refusal) when the domain refuses.
    """
    zone = local_zone()
    try:
        result = save(title=form.title.data, place=form.place.data,
                      starts_at=form.starts_at.data.replace(tzinfo=zone), ends_at=form.ends_at.data.replace(tzinfo=zone))
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        if exc.status == 404:
            raise
        status = show_domain_error(form, exc)
        return None, _event_form_page(form, event, status)
    return result, None


@bp.route("/staff/events/<int:event_id>/edit", methods=["GET", "POST"])
@role_required(*STAFF_ROLES)
def edit(event_id: int):
    """Change an open event's title, place or time window; its activity type and node stay."""
    actor = _me()
    event = checkin.scoped_event(actor, event_id)
    form = EventForm(obj=None if request.method == "POST" else _local_window(event))
    del form.rule_id, form.org_unit_id
    try:
        checkin.require_editable(event)
    except EventNotEditable as exc:
        flash(exc.message, "info")
        return redirect(url_for(".show", event_id=event.id))
    if form.validate_on_submit():
        stored = (event.starts_at, event.ends_at)

        def save(*, starts_at, ends_at, **fields):
            return checkin.update_event(actor, event.id, starts_at=_unless_same_minute(starts_at, stored[0]),
                                        ends_at=_unless_same_minute(ends_at, stored[1]), **fields)

        _event, refused = _saved(form, save, event)
        if refused:
            return refused
        flash(_("The event was saved."), "ok")
        return redirect(url_for(".show", event_id=event.id))
    return _event_form_page(form, event, 422 if form.errors else 200)


def _unless_same_minute(submitted, stored):
    """The form gives times to the minute: a time left as shown keeps its stored seconds (an
    event made through the API may have them), so saving a new title does not move the start."""
    return stored if submitted == to_local(stored).replace(second=0, microsecond=0) else submitted


def _local_window(event: CheckinEvent):
    """The event's fields as the form shows them: times in local time, without a zone."""
    return SimpleNamespace(
        title=event.title, place=event.place,
        starts_at=to_local(event.starts_at).replace(tzinfo=None),
        ends_at=to_local(event.ends_at).replace(tzinfo=None),
    )


def _event_page(event: CheckinEvent, form: AttendeeForm | None = None, status: int = 200):
    actor = _me()
    if form is None:
        form = AttendeeForm(formdata=None)
    listed = {a.volunteer_id for a in event.attendances}
    form.volunteer_id.choices = zh_choices(
        (p.id, f"{p.full_name} · {p.org_unit.name}")
        for p in volunteers_in_scope(actor)
        if p.id not in listed and p.id != actor.id and p.org_unit.path.startswith(event.org_unit.path)
    )
    present, total = checkin.attendee_count(event.id)
    return render_template(
        "checkin/event.html",
        event=event,
        form=form,
        present=present,
        total=total,
        is_open=event.status == EVENT_OPEN,
        editable=checkin.is_editable(event),
        url=checkin_url(event.id) if event.status == EVENT_OPEN else None,
        qr=qr_data_url(checkin_url(event.id)) if event.status == EVENT_OPEN else None,
    ), status


@bp.route("/staff/events/<int:event_id>")
@role_required(*STAFF_ROLES)
def show(event_id: int):
    """The event page: the rotating QR code, the live count, attendees, back-filling and closing."""
    return _event_page(checkin.scoped_event(_me(), event_id))


@bp.route("/staff/events/<int:event_id>/code.json")
@role_required(*STAFF_ROLES)
def code(event_id: int):
    """The current code as JSON, for the event page's script: URL, QR image, count, seconds left."""
    event = checkin.scoped_event(_me(), event_id)
    present, total = checkin.attendee_count(event.id)
    body = {"open": event.status == EVENT_OPEN, "present": present, "total": total,
            "refresh_in": checkin.seconds_left()}
    if event.status == EVENT_OPEN:
        url = checkin_url(event.id)
        body.update(url=url, qr=qr_data_url(url))
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/staff/events/<int:event_id>/attendees", methods=["POST"])
@role_required(*STAFF_ROLES)
def add_attendee(event_id: int):
    """Add a volunteer who was there without a phone."""
    event = checkin.scoped_event(_me(), event_id)
    form = AttendeeForm()
    form.volunteer_id.choices = zh_choices((p.id, p.full_name) for p in volunteers_in_scope(_me()))
    if form.validate_on_submit():
        try:
            row = checkin.add_attendee(_me(), event.id, form.volunteer_id.data, form.hours.data)
            db.session.commit()
        except AlreadyRecorded as exc:
            db.session.rollback()
            flash(exc.message, "info")
            return redirect(url_for(".show", event_id=event.id))
        except PointsError as exc:
            db.session.rollback()
            if exc.status == 404:
                raise
            status = show_domain_error(form, exc, "volunteer_id")
            return _event_page(checkin.scoped_event(_me(), event_id), form, status)
        flash(_("%(name)s was added to the list.", name=row.volunteer.full_name), "ok")
        return redirect(url_for(".show", event_id=event.id))
    return _event_page(event, form, 422)


@bp.route("/staff/events/<int:event_id>/close", methods=["POST"])
@role_required(*STAFF_ROLES)
def close(event_id: int):
    """Close the event: credit (or queue for approval) each attendee's activity, once."""
    done = checkin.close_event(_me(), event_id)
    db.session.commit()
    if done.changed:
        said = [ngettext("The event was closed: %(num)s activity, %(points)s points credited.",
                         "The event was closed: %(num)s activities, %(points)s points credited.",
                         len(done.activities), points=sum(a.points_credited for a in done.activities))]
        waiting = [a for a in done.activities if a.status == STATUS_PENDING]
        if any(a.volunteer_id == _me().id for a in waiting):
            said.append(_("Your own attendance waits for another grid worker or admin to approve it."))
        elif waiting:
            said.append(ngettext("%(num)s waits for approval.", "%(num)s wait for approval.", len(waiting)))
        flash(" ".join(said), "ok")
    else:
        flash(_("The event was already closed; nothing was changed."), "info")
    return redirect(url_for(".show", event_id=event_id))


# --- volunteers: their events ---------------------------------------------------------------


@bp.route("/volunteer/events")
@role_required(ROLE_VOLUNTEER)
def mine():
    """The open events a volunteer may sign in to, with their state, and the events they attended."""
    return render_template("checkin/mine.html", mine=checkin.events_for_volunteer(_me()))


# --- volunteers: the scanned URL -------------------------------------------------------------


def _refused(exc: PointsError):
    db.session.rollback()
    return render_template("checkin/refused.html", message=exc.message, code=exc.code), exc.status


@bp.route("/checkin/<int:event_id>/<token>", methods=["GET", "POST"], endpoint="checkin")
def checkin_page(event_id: int, token: str):
    """What the event's QR code opens: sign in (or out) after a tap on the confirm button.

    GET changes nothing. A fresh code gives this browser's session a pass for the event (ten
    minutes), so logging in first does not make the code expire. The pass stays in the session,
    never in a URL: a link forwarded to someone at home dies with its code within a minute.
    """
    form = CheckinForm()
    scan_pass = session.get(SCAN_PASS_KEY)
    try:
        checkin.require_fresh(event_id, token, scan_pass)
    except PointsError as exc:
        return _refused(exc)
    if not checkin.pass_is_valid(event_id, scan_pass):
        session[SCAN_PASS_KEY] = checkin.pass_for(event_id)
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=url_for(".checkin", event_id=event_id, token=token)))
    if not current_user.has_role(ROLE_VOLUNTEER):
        abort(403)
    me = _me()
    try:
        event, row = checkin.event_and_attendance(me, event_id)
        if request.method == "POST":
            if not form.validate_on_submit() or form.action.data not in ("in", "out"):
                return _refused(PointsError(_("The form was incomplete. Scan the QR code again.")))
            if form.action.data == "in":
                result = checkin.sign_in(me, event.id)
                message = _("You are signed in.") if result.changed else _("You were already signed in.")
            else:
                result = checkin.sign_out(me, event.id)
                message = _("You are signed out.") if result.changed else _("You were already signed out.")
            db.session.commit()
            flash(message, "ok")
            return redirect(url_for(".checkin", event_id=event.id, token=token))
        if event.status != EVENT_OPEN:
            raise EventClosed()
    except PointsError as exc:
        return _refused(exc)
    return render_template("checkin/scan.html", event=event, row=row, form=form, token=token)

