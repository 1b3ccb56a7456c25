"""Reports for admins: charts drawn by a static script from JSON data blocks, each with its
table beside it and an XLSX/CSV download of exactly those numbers."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, render_template, request
from flask_login import current_user

from ..domain import reports
from ..domain.clock import local_today, parse_month
from ..domain.access import require_in_scope
from ..domain.errors import InvalidInput, NotFound
from ..extensions import db
from ..models import OrgUnit
from ..models.user import ADMIN_ROLES, User
from ..spreadsheets import table_response
from .admin import managed_units
from .guards import db_int, role_required
from .template_helpers import page_is_zh

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _me() -> User:
    return current_user._get_current_object()


def _parse_month(name: str, default: date) -> date:
    text = request.args.get(name)
    return parse_month(text, field=name) if text else default


def _unit() -> OrgUnit:
    """The node asked for (``unit``), else the admin's first; NotFound when there is none."""
    me = _me()
    unit_id = request.args.get("unit", type=db_int)
    if unit_id is None:
        unit = next((g.org_unit for g in me.grants(*ADMIN_ROLES) if g.org_unit is not None), None)
    else:
        unit = db.session.get(OrgUnit, unit_id)
    if unit is None:
        raise NotFound()
    return unit


def _range() -> reports.Range:
    me = _me()
    unit = _unit()
    this_month = local_today().replace(day=1)
    last = _parse_month("last", this_month)
    first = _parse_month("first", reports.add_months(last, -5))
    return reports.make_range(me, unit, first, last)


def _args(r: reports.Range) -> dict:
    return {"unit": r.unit.id, "first": r.start.strftime("%Y-%m"), "last": reports.add_months(r.end, -1).strftime("%Y-%m")}


@bp.route("/")
@role_required(*ADMIN_ROLES)
def index():
    """Show every report of a subtree and a range of months."""
    # The street, its communities and grids: a city's buildings and units are thousands of nodes.
    units = managed_units(_me(), max_rank=2)
    try:
        r = _range()
    except InvalidInput as exc:
        if exc.field not in ("first", "last"):
            raise
        # Months that make no range: the form again, as typed, with the message beside the field.
        unit = _unit()
        require_in_scope(_me(), unit, ADMIN_ROLES)
        args = {"unit": unit.id, "first": request.args.get("first", ""), "last": request.args.get("last", "")}
        return render_template("reports/index.html", unit=unit, tables=[], units=units, args=args, error=exc), 422
    return render_template(
        "reports/index.html", unit=r.unit, tables=reports.build(r, page_is_zh()), units=units, args=_args(r),
        error=None,
    )


@bp.route("/<key>.<fmt>")
@role_required(*ADMIN_ROLES)
def download(key: str, fmt: str):
    """Download one report's numbers as XLSX or CSV."""
    if key not in reports.REPORT_KEYS or fmt not in ("xlsx", "csv"):
        abort(404)
    r = _range()
    [table] = reports.build(r, page_is_zh(), only=key)
    name = f"{key}-{_args(r)['first']}-{_args(r)['last']}"
    return table_response(fmt, name, table.title, table.headers, table.rows)
