"""The volunteer's yearly statement page and its XLSX download (routes of the volunteer blueprint)."""
from __future__ import annotations

from flask import abort, render_template, request
from flask_babel import gettext as _

from ..domain.clock import local_today, to_local
from ..domain.statements import volunteer_year
from ..models.rules import CATEGORIES
from ..models.user import ROLE_VOLUNTEER
from ..spreadsheets import Sheet, xlsx_response
from .guards import role_required
from .template_helpers import bilingual
from .volunteer import _me, bp


def _year() -> int:
    text = request.args.get("year")
    if not text:
        return local_today().year
    if not text.isdigit() or not 2000 <= int(text) <= 2100:
        abort(404)
    return int(text)


@bp.route("/statement")
@role_required(ROLE_VOLUNTEER)
def statement():
    """Show the volunteer's statement for a year."""
    year = _year()
    this_year = local_today().year
    return render_template(
        "volunteer/statement.html",
        st=volunteer_year(_me(), year),
        years=list(range(this_year, this_year - 5, -1)),
        categories=CATEGORIES,
    )


@bp.route("/statement.xlsx")
@role_required(ROLE_VOLUNTEER)
def statement_xlsx():
    """Download the volunteer's statement for a year as XLSX."""
    st = volunteer_year(_me(), _year())
    summary = Sheet(
        _("Summary"),
        [_("Item"), _("Value")],
        [
            [_("Volunteer"), st.volunteer.full_name],
            [_("Year"), st.year],
            [_("Balance at the start of the year"), st.opening],
            [_("Points earned"), st.earned],
            [_("Corrections"), st.corrected],
            [_("Points spent"), st.spent],
            [_("Points expired"), st.points_expired],
            [_("Points deducted"), st.deducted],
            [_("Balance at the end of the year"), st.closing],
            [_("Hours"), float(st.hours)],
            [_("Activities credited"), st.activities],
            [_("Vouchers expired (points returned)"), st.expired_vouchers],
        ],
    )
    cats = Sheet(
        _("By category"),
        [_("Category"), _("Activities"), _("Hours"), _("Points")],
        [[bilingual(CATEGORIES.get(c, (c, c))), n, float(h), p] for c, n, h, p in st.by_category],
    )
    spent = Sheet(
        _("Redemptions"),
        [_("Time"), _("Reward"), _("Merchant"), _("Points"), _("Reversed")],
        [[to_local(when).replace(tzinfo=None), reward, merchant, pts, _("Yes") if reversed_ else ""]
         for when, reward, merchant, pts, reversed_ in st.redemptions],
    )
    return xlsx_response(f"statement-{st.year}.xlsx", [summary, cats, spent])
