"""Honour rolls (光荣榜): volunteers see their grid's, community's and street's; staff and admins
those of their subtrees. A print version for the notice board, and CSV/XLSX downloads."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..domain import honours
from ..extensions import db
from ..models.user import ROLE_VOLUNTEER, User
from ..spreadsheets import table_response
from .guards import db_int, role_required

bp = Blueprint("honours", __name__, url_prefix="/honours")


def _me() -> User:
    return current_user._get_current_object()


def _roll(public: bool = False) -> honours.Roll:
    me = _me()
    unit_text = request.args.get("unit")
    unit_id = None
    if unit_text:
        try:
            unit_id = db_int(unit_text)
        except ValueError:
            abort(404)
    unit = honours.roll_unit(me, unit_id)
    period = honours.parse_period(request.args.get("period"))
    return honours.roll(me, unit, period, honours.parse_top(request.args.get("top")), public=public)


def _args(r: honours.Roll) -> dict:
    return {"unit": r.unit.id, "period": r.period.label, "top": r.top}


@bp.route("/")
@role_required(*honours.ROLL_ROLES)
def index():
    """Show the roll of a grid, community or street for a month or a year."""
    r = _roll()
    return render_template(
        "honours/index.html", r=r, args=_args(r), units=honours.roll_units(_me()),
        periods=honours.period_choices(), is_volunteer=_me().has_role(ROLE_VOLUNTEER),
    )


@bp.route("/print")
@role_required(*honours.ROLL_ROLES)
def print_roll():
    """The roll on one page for the notice board (print stylesheet, no menus); every name as its
    owner chose, the viewer's own too, since the sheet is posted."""
    return render_template("honours/print.html", r=_roll(public=True))


@bp.route("/roll.<fmt>")
@role_required(*honours.ROLL_ROLES)
def download(fmt: str):
    """Download the roll (both rankings) as CSV or XLSX."""
    if fmt not in ("csv", "xlsx"):
        abort(404)
    r = _roll(public=True)
    headers, rows = honours.roll_table(r)
    return table_response(fmt, f"honours-{r.unit.id}-{r.period.label}", _("Honour roll"), headers, rows)


@bp.route("/display", methods=["POST"])
@role_required(ROLE_VOLUNTEER)
def display():
    """Set how the honour rolls show the volunteer to others: full name or surname only."""
    honours.set_honour_display(_me(), request.form.get("honour_display", ""))
    db.session.commit()
    flash(_("Saved. The honour rolls show you as you chose."), "ok")
    return redirect(url_for(".index"))
