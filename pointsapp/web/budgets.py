"""Budget pages: the liability view of a street and its funded communities, funding records,
and the view's numbers as CSV or XLSX."""
from __future__ import annotations

import secrets
from decimal import Decimal

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from ..domain import budgets
from ..domain.clock import local_today
from ..domain.errors import PointsError
from ..extensions import db
from ..forms import FundingForm, show_domain_error
from ..models import Budget, OrgUnit
from ..models.budgets import FUNDING_SOURCES
from ..models.user import ADMIN_ROLES, User
from ..spreadsheets import table_response
from .guards import role_required
from .template_helpers import page_is_zh, zh_choices

bp = Blueprint("budgets", __name__, url_prefix="/budgets")


def _me() -> User:
    return current_user._get_current_object()


def _form(units: list[OrgUnit], formdata=True) -> FundingForm:
    kwargs = {} if formdata else {"formdata": None, "funded_on": local_today(), "key": secrets.token_urlsafe(16)}
    form = FundingForm(**kwargs)
    form.org_unit_id.choices = zh_choices((u.id, u.name) for u in units)
    zh = page_is_zh()
    form.source.choices = [(code, names[0] if zh else names[1]) for code, names in FUNDING_SOURCES.items()]
    return form


# The liability view's figures (``Liability.figures``), as the page names them.
FIGURE_LABELS = {
    "issued": _l("Points issued"), "redeemed": _l("Points redeemed"), "expired": _l("Points expired"),
    "deducted": _l("Points deducted"), "held": _l("Held by volunteers"), "owed": _l("Owed to merchants"),
    "outstanding": _l("Outstanding"), "paid": _l("Paid to merchants"),
}


def _page(form: FundingForm | None = None, status: int = 200):
    me = _me()
    units = budgets.fundable_units(me)
    rows = budgets.liabilities(me)
    history = {
        row.unit.id: budgets.fundings(db.session.get(Budget, row.budget.budget_id))[:20]
        for row in rows if row.budget is not None
    }
    return render_template(
        "budgets/index.html", rows=rows, history=history, form=form or _form(units, formdata=False),
        sources=FUNDING_SOURCES, zh=page_is_zh(), figure_labels=FIGURE_LABELS,
    ), status


@bp.route("/")
@role_required(*ADMIN_ROLES)
def index():
    """Show the liability of the admin's street or community and its funded communities, with their budgets."""
    return _page()


@bp.route("/funding", methods=["POST"])
@role_required(*ADMIN_ROLES)
def funding():
    """Record money for a street's or community's points (or a correction), as the level above it."""
    units = budgets.fundable_units(_me())
    form = _form(units)
    if form.validate_on_submit():
        try:
            budgets.record_funding(
                _me(), db.session.get(OrgUnit, form.org_unit_id.data),
                fen=budgets.fen_from_yuan(form.amount.data), source=form.source.data,
                funded_on=form.funded_on.data, note=form.note.data, key=form.key.data,
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            return _page(form, show_domain_error(form, exc))
        flash(_("The funding was recorded."), "ok")
        return redirect(url_for(".index"))
    return _page(form, 422)


def table(rows: list[budgets.Liability]) -> tuple[str, list[str], list[list]]:
    """Return the liability view as one table: a row per unit, points and yuan side by side."""
    headers = [
        _("Unit"), _("Yuan per point"),
        _("Points issued"), _("Yuan"), _("Points redeemed"), _("Yuan"), _("Points expired"), _("Yuan"),
        _("Points deducted"), _("Yuan"), _("Held by volunteers"), _("Yuan"), _("Owed to merchants"), _("Yuan"),
        _("Outstanding"), _("Yuan"), _("Paid to merchants"), _("Yuan"),
        _("Funded (yuan)"), _("Budget (points)"), _("Budget used"), _("Budget left"),
    ]

    def y(fen: int) -> Decimal:
        return Decimal(fen) / 100

    out = []
    for r in rows:
        line = [r.unit.name, y(r.fen_per_point)]
        for _name, points, fen in r.figures():  # the yuan as the page gives them (none for some)
            line += [points, None if fen is None else y(fen)]
        b = r.budget
        line += [y(b.funded_fen), b.capacity, b.used, b.remaining] if b else [None, None, None, None]
        out.append(line)
    return _("Points liability and budgets"), headers, out


@bp.route("/liability.<fmt>")
@role_required(*ADMIN_ROLES)
def download(fmt: str):
    """Download the liability view as CSV or XLSX."""
    if fmt not in ("csv", "xlsx"):
        abort(404)
    title, headers, rows = table(budgets.liabilities(_me()))
    return table_response(fmt, f"liability-{local_today().isoformat()}", title, headers, rows)
