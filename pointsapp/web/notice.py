"""The public notice board (公示): no login. Residents see approved activities before they are
credited (names masked) and may object with a reason; objections are rate-limited per address."""
from __future__ import annotations

from itertools import groupby

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..domain import notice
from ..domain.errors import PointsError
from ..extensions import db, limiter
from ..forms import ObjectionForm, show_domain_error
from ..models.user import STAFF_ROLES

bp = Blueprint("notice", __name__, url_prefix="/notice")


def _objection_limit() -> str:
    return current_app.config["OBJECTION_LIMIT"]


@bp.route("/")
def index():
    """The activities on notice now, by month of the activity, names masked."""
    acts = notice.public_notices()
    months = [(month, list(items)) for month, items in groupby(acts, key=lambda a: a.activity_date.strftime("%Y-%m"))]
    return render_template("notice/index.html", months=months)


@bp.route("/<int:activity_id>/object", methods=["GET", "POST"])
@limiter.limit(_objection_limit, methods=["POST"], scope="notice-objection")
def object_to(activity_id: int):
    """File an objection to one activity on notice, with a reason (and a contact, if given)."""
    act = notice.public_activity(activity_id)
    form = ObjectionForm()
    if form.validate_on_submit():
        staff = current_user if current_user.is_authenticated and current_user.has_role(*STAFF_ROLES) else None
        try:
            notice.file_objection(act.id, form.reason.data, form.contact.data, filed_by=staff)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            if exc.status == 404:
                raise
            status = show_domain_error(form, exc, "reason")
            return render_template("notice/object.html", act=act, form=form), status
        flash(_("Thank you. Your objection was recorded; staff will look into it before any points are credited."), "ok")
        return redirect(url_for(".index"))
    return render_template("notice/object.html", act=act, form=form), (422 if form.errors else 200)
