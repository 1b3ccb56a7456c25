"""Pages for grid staff (and admins): the approval queue and recording attendance."""
from __future__ import annotations

import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..domain import claims, deductions, notice, rules
from ..domain.access import scope_paths, subtree_filter
from ..domain.clock import local_today
from ..domain.errors import (
    AlreadyDecided,
    AlreadyRecorded,
    AlreadyVoted,
    PointsError,
    RuleNotApplicable,
)
from ..extensions import db
from ..forms import AttendanceForm, DeductionForm, RejectForm, ResolveObjectionForm, rule_choices, show_domain_error
from ..models import Activity, OrgUnit, PointRule, RoleGrant, User
from ..models.rules import RULE_DEDUCT, RULE_EARN, STATUS_ON_NOTICE
from ..models.user import ROLE_VOLUNTEER, STAFF_ROLES
from .guards import role_required
from .template_helpers import cap_note_text, page_is_zh, zh_checkbox_choices, zh_choices
from .volunteer import send_photo

bp = Blueprint("staff", __name__, url_prefix="/staff")

QUEUE_SIZE = 100


def _me() -> User:
    return current_user._get_current_object()


# --- approval queue -------------------------------------------------------------------------


def _queue_page(rejecting: tuple[int, RejectForm] | None = None, status: int = 200):
    """Render the queue; ``rejecting`` is a reject form sent back with its errors, and its claim."""
    query = claims.pending_claims_query(_me()).options(
        selectinload(Activity.volunteer), selectinload(Activity.rule_version), selectinload(Activity.org_unit)
    )
    pending = list(db.session.scalars(query.limit(QUEUE_SIZE)))
    return render_template(
        "staff/queue.html", pending=pending, rejecting=rejecting, more=len(pending) == QUEUE_SIZE,
        votes=claims.votes_for([a.id for a in pending]), me=_me(),
    ), status


@bp.route("/")
@role_required(*STAFF_ROLES)
def queue():
    """List the pending claims in the staff member's subtrees."""
    return _queue_page()


@bp.route("/claims/<int:activity_id>/approve", methods=["POST"])
@role_required(*STAFF_ROLES)
def approve(activity_id: int):
    """Approve a pending claim and credit its points."""
    try:
        act = claims.approve_claim(_me(), activity_id)
        db.session.commit()
    except (AlreadyDecided, AlreadyVoted) as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".queue"))
    if act.status == "pending":
        flash(_(
            "Your approval was recorded (%(n)s of %(m)s); another verifier must approve too.",
            n=claims.approvals_of(act.id), m=act.rule_version.approvals_required,
        ), "ok")
        return redirect(url_for(".queue"))
    if act.status == "on_notice":
        flash(_(
            "Approved: posted for public notice until %(when)s; the points are credited after it.",
            when=act.notice_until.date().isoformat(),
        ), "ok")
        return redirect(url_for(".queue"))
    message = _(
        "Approved: %(points)s points for %(name)s.", points=act.points_credited, name=act.volunteer.full_name
    )
    if act.cap_note:
        message += " " + cap_note_text(act.cap_note)
    flash(message, "ok")
    return redirect(url_for(".queue"))


@bp.route("/claims/approve", methods=["POST"])
@role_required(*STAFF_ROLES)
def approve_selected():
    """Approve the claims ticked in the queue, all of them or none."""
    try:
        ids = [int(i) for i in request.form.getlist("activity_ids")]
    except ValueError:
        abort(400)
    try:
        acts = claims.approve_claims(_me(), ids)
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        if exc.status in (403, 404):
            raise
        flash(exc.message, "error")
        return redirect(url_for(".queue"))
    approved = [a for a in acts if a.status == "approved"]
    parts = [_("Claims approved: %(n)s, %(points)s points credited.", n=len(approved),
               points=sum(a.points_credited for a in approved))]
    capped = sum(1 for a in approved if a.cap_note)
    if capped:
        parts.append(_("Capped by their rule: %(n)s.", n=capped))
    on_notice = sum(1 for a in acts if a.status == "on_notice")
    if on_notice:
        parts.append(_("Posted for public notice: %(n)s; their points are credited after it.", n=on_notice))
    waiting = sum(1 for a in acts if a.status == "pending")
    if waiting:
        parts.append(_("Waiting for another verifier's approval: %(n)s.", n=waiting))
    flash(" ".join(parts), "ok")
    return redirect(url_for(".queue"))


@bp.route("/claims/<int:activity_id>/reject", methods=["POST"])
@role_required(*STAFF_ROLES)
def reject(activity_id: int):
    """Reject a pending claim with a reason the volunteer will see."""
    form = RejectForm()
    if form.validate_on_submit():
        try:
            act = claims.reject_claim(_me(), activity_id, form.reason.data)
            db.session.commit()
        except (AlreadyDecided, AlreadyVoted) as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return redirect(url_for(".queue"))
        except PointsError as exc:
            db.session.rollback()
            if exc.status in (403, 404):
                raise
            status = show_domain_error(form, exc, "reason")
            return _queue_page((activity_id, form), status)
        flash(_("Rejected the claim of %(name)s.", name=act.volunteer.full_name), "ok")
        return redirect(url_for(".queue"))
    claims.scoped_activity(_me(), activity_id)  # outside the subtree: 404, not a form error
    return _queue_page((activity_id, form), 422)


@bp.route("/claims/<int:activity_id>/photo")
@role_required(*STAFF_ROLES)
def claim_photo(activity_id: int):
    """Send the evidence photo of a claim in the staff member's subtrees."""
    return send_photo(claims.scoped_activity(_me(), activity_id))


# --- public notice: objections ---------------------------------------------------------------


def _notices_page(resolving: tuple[int, ResolveObjectionForm] | None = None, status: int = 200):
    acts = notice.notices_in_scope(_me())
    return render_template(
        "staff/notices.html", activities=acts, objections=notice.objections_for([a.id for a in acts]),
        resolving=resolving,
    ), status


@bp.route("/notice")
@role_required(*STAFF_ROLES)
def notices():
    """Activities on public notice in the staff member's subtrees, with their objections."""
    return _notices_page()


@bp.route("/objections/<int:objection_id>/resolve", methods=["POST"])
@role_required(*STAFF_ROLES)
def resolve_objection(objection_id: int):
    """Uphold (withhold the points) or dismiss an objection."""
    notice.staff_objection(_me(), objection_id)  # outside the subtree: 404, not a form error
    form = ResolveObjectionForm()
    if form.validate_on_submit():
        try:
            notice.resolve_objection(_me(), objection_id, form.decision.data == "uphold", form.note.data)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            if exc.status == 404:
                raise
            status = show_domain_error(form, exc, "note")
            return _notices_page((objection_id, form), status)
        flash(_("The objection was upheld; the points are withheld.") if form.decision.data == "uphold"
              else _("The objection was dismissed."), "ok")
        return redirect(url_for(".notices"))
    return _notices_page((objection_id, form), 422)


# --- recording attendance -------------------------------------------------------------------


def volunteers_in_scope(actor: User) -> list[User]:
    """Return the active volunteers in the actor's staff subtrees, by node and name."""
    return list(
        db.session.scalars(
            select(User)
            .join(OrgUnit, OrgUnit.id == User.org_unit_id)
            .where(
                subtree_filter(OrgUnit.path, actor, STAFF_ROLES),
                User.is_active_flag.is_(True),
                User.id.in_(select(RoleGrant.user_id).where(RoleGrant.role == ROLE_VOLUNTEER)),
            )
            .options(selectinload(User.org_unit))
            .order_by(OrgUnit.path, User.full_name, User.id)
        )
    )


def usable_rules(actor: User, kind: str = RULE_EARN) -> list[PointRule]:
    """Return the rules (of ``kind``) that apply somewhere in the actor's subtrees: defined above or inside them."""
    found: dict[int, PointRule] = {}
    for grant in actor.grants(*STAFF_ROLES):
        for rule in rules.rules_for_unit(grant.org_unit):
            found[rule.id] = rule
    if scope_paths(actor, STAFF_ROLES):
        inside = select(PointRule).join(OrgUnit, OrgUnit.id == PointRule.org_unit_id).where(
            subtree_filter(OrgUnit.path, actor, STAFF_ROLES)
        )
        for rule in db.session.scalars(inside):
            found[rule.id] = rule
    today = local_today()
    return [
        r for _id, r in sorted(found.items()) if r.current and r.current.kind == kind and r.current.applies_on(today)
    ]


def _attendance_choices(form: AttendanceForm, actor: User) -> list[User]:
    form.rule_id.choices = rule_choices([rule.current for rule in usable_rules(actor)], page_is_zh())
    people = volunteers_in_scope(actor)
    form.volunteer_ids.choices = zh_checkbox_choices((p.id, f"{p.full_name} · {p.org_unit.name}") for p in people)
    return people


@bp.route("/attendance", methods=["GET", "POST"])
@role_required(*STAFF_ROLES)
def attendance():
    """Show the attendance form; record one activity for many volunteers."""
    actor = _me()
    form = AttendanceForm()
    _attendance_choices(form, actor)
    if request.method == "GET":
        form.activity_date.data = local_today()
        form.batch_key.data = secrets.token_urlsafe(24)
    if form.validate_on_submit():
        try:
            claims.record_attendance(
                actor,
                rule_id=form.rule_id.data,
                activity_date=form.activity_date.data,
                volunteer_ids=form.volunteer_ids.data,
                hours=form.hours.data,
                note=form.note.data,
                batch_key=form.batch_key.data,
            )
            db.session.commit()
        except AlreadyRecorded as exc:
            db.session.rollback()
            flash(exc.message, "info")
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc, "rule_id" if isinstance(exc, RuleNotApplicable) else None)
            return render_template("staff/attendance.html", form=form), status
        return redirect(url_for(".attendance_done", batch_key=form.batch_key.data))
    return render_template("staff/attendance.html", form=form), (422 if form.errors else 200)


@bp.route("/attendance/<batch_key>")
@role_required(*STAFF_ROLES)
def attendance_done(batch_key: str):
    """Show what one attendance submission credited, and who was capped."""
    acts = list(
        db.session.scalars(
            select(Activity)
            .where(Activity.batch_key == batch_key, Activity.created_by_id == current_user.id, Activity.source == "recorded")
            .options(selectinload(Activity.volunteer), selectinload(Activity.rule_version))
            .order_by(Activity.id)
        )
    )
    if not acts:
        abort(404)
    on_notice = [a for a in acts if a.status == STATUS_ON_NOTICE]
    return render_template(
        "staff/attendance_done.html",
        activities=acts,
        credited=len(acts) - len(on_notice),
        on_notice=on_notice,
        notice_until=min((a.notice_until for a in on_notice), default=None),
        total=sum(a.points_credited for a in acts),
        capped=[a for a in acts if a.cap_note],
    )


@bp.route("/deductions", methods=["GET", "POST"])
@role_required(*deductions.DEDUCTOR_ROLES)
def deduction():
    """Apply a deduction rule to a volunteer, with a reason; at most their available points."""
    actor = _me()
    form = DeductionForm()
    form.rule_id.choices = rule_choices([rule.current for rule in usable_rules(actor, RULE_DEDUCT)], page_is_zh())
    form.volunteer_id.choices = zh_choices(
        (p.id, f"{p.full_name} · {p.org_unit.name}") for p in volunteers_in_scope(actor) if p.id != actor.id
    )
    if request.method == "GET":
        form.submission_key.data = secrets.token_urlsafe(24)
    if form.validate_on_submit():
        try:
            done = deductions.apply_deduction(
                actor,
                volunteer_id=form.volunteer_id.data,
                rule_id=form.rule_id.data,
                reason=form.reason.data,
                submission_key=form.submission_key.data,
            )
            name = done.transfer.from_account.user.full_name
            db.session.commit()
        except AlreadyRecorded as exc:
            db.session.rollback()
            flash(exc.message, "info")
            return redirect(url_for(".deduction"))
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc, "rule_id" if isinstance(exc, RuleNotApplicable) else None)
            return render_template("staff/deduction.html", form=form), status
        if done.shortfall:
            flash(
                _(
                    "%(points)s points were deducted from %(name)s: %(short)s fewer than the rule's %(rule)s, "
                    "because that is all they had available.",
                    points=done.deducted, name=name, short=done.shortfall, rule=done.requested,
                ),
                "info",
            )
        else:
            flash(ngettext("%(num)s point was deducted from %(name)s.", "%(num)s points were deducted from %(name)s.",
                           done.deducted, name=name), "ok")
        return redirect(url_for(".deduction"))
    return render_template("staff/deduction.html", form=form), (422 if form.errors else 200)
