"""Settlement pages: merchants' statements (staff see theirs, admins all in their subtree),
closing a period, recording payments, the points rate; XLSX and printable statements."""
from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from sqlalchemy import select

from ..domain import settlement
from ..domain.access import managed_merchants_query, merchant_ids_for_staff
from ..domain.clock import parse_month
from ..domain.errors import PointsError
from ..extensions import db
from ..forms import ActionForm, PaymentForm, RateForm, show_domain_error
from ..models import Merchant, OrgUnit
from ..models.user import ADMIN_ROLES, ROLE_MERCHANT_STAFF, ROLE_STREET_ADMIN, User
from ..spreadsheets import Sheet, xlsx_response
from .guards import role_required

bp = Blueprint("settlement", __name__, url_prefix="/settlement")


def _me() -> User:
    return current_user._get_current_object()


def _month() -> date | None:
    """Parse ``?month=YYYY-MM``; a malformed month is refused with a message."""
    text = request.args.get("month")
    return parse_month(text) if text else None


def yuan(fen: int) -> str:
    """Format fen as yuan with two decimals."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


@bp.app_template_filter("yuan")
def _yuan_filter(fen):
    return yuan(int(fen or 0))


@bp.route("/")
@role_required(ROLE_MERCHANT_STAFF, *ADMIN_ROLES)
def index():
    """List the merchants whose statements the user may see, with what is owed to each."""
    me = _me()
    ids = set(merchant_ids_for_staff(me))
    if me.has_role(*ADMIN_ROLES):
        ids |= set(db.session.scalars(managed_merchants_query(me).with_only_columns(Merchant.id)))
    merchants = list(db.session.scalars(select(Merchant).where(Merchant.id.in_(ids)).order_by(Merchant.id)))
    owed = {m.id: settlement.owed(m.id) for m in merchants}
    return render_template("settlement/index.html", merchants=merchants, owed=owed)


def _statement_page(merchant_id: int, form: PaymentForm | None = None, status: int = 200):
    me = _me()
    st = settlement.statement(me, merchant_id, _month())
    is_admin = _administers(me, merchant_id)
    if form is None:
        form = PaymentForm(formdata=None, paid_on=settlement.local_today(), key=secrets.token_urlsafe(16))
    return render_template(
        "settlement/statement.html",
        st=st,
        months=settlement.statement_months(me, merchant_id),
        owed=settlement.owed(merchant_id),
        owed_fen=settlement.owed_fen(merchant_id),
        is_admin=is_admin,
        form=form,
        close_form=ActionForm(),
    ), status


def _administers(me: User, merchant_id: int) -> bool:
    return me.has_role(*ADMIN_ROLES) and settlement.administers(me, merchant_id)


@bp.route("/<int:merchant_id>")
@login_required
def statement(merchant_id: int):
    """Show a merchant's statement for a month."""
    return _statement_page(merchant_id)


@bp.route("/<int:merchant_id>/print")
@login_required
def statement_print(merchant_id: int):
    """Show a merchant's statement laid out for printing."""
    st = settlement.statement(_me(), merchant_id, _month())
    return render_template("settlement/print.html", st=st)


@bp.route("/<int:merchant_id>/statement.xlsx")
@login_required
def statement_xlsx(merchant_id: int):
    """Download a merchant's statement as an XLSX workbook."""
    st = settlement.statement(_me(), merchant_id, _month())
    month = st.start.strftime("%Y-%m")
    summary = Sheet(
        _("Summary"),
        [_("Item"), _("Points"), _("Yuan")],
        [
            [_("Merchant"), st.merchant.name, None],
            [_("Period"), f"{st.start.isoformat()} – {st.last_day.isoformat()}", None],
            [_("Status"), _("closed") if st.period else _("open"), None],
            [_("Previous balance"), st.opening, None],
            [_("Redeemed"), st.redeemed, None],
            [_("Corrections"), st.corrected, None],
            [_("Value of redemptions"), None, Decimal(st.redeemed_fen) / 100],
            [_("Paid"), st.paid, Decimal(st.paid_fen) / 100],
            [_("Balance owed"), st.closing, Decimal(st.closing_fen) / 100],
        ],
    )
    redemptions = Sheet(
        _("Redemptions"),
        [_("Time"), _("Voucher"), _("Reward"), _("Volunteer"), _("Community"), _("Points"), _("Yuan")],
        [
            [line.when, line.voucher_id, line.reward, line.volunteer, line.community or _("Street level"),
             line.points, Decimal(line.fen) / 100]
            for line in st.redemptions
        ],
    )
    communities = Sheet(
        _("By community"),
        [_("Community"), _("Points"), _("Yuan")],
        [[c or _("Street level"), p, Decimal(f) / 100] for c, p, f in st.by_community],
    )
    payments = Sheet(
        _("Payments"),
        [_("Paid on"), _("Reference"), _("Points"), _("Yuan")],
        [[line.paid_on, line.reference, -line.points, Decimal(-line.fen) / 100] for line in st.payments],
    )
    return xlsx_response(f"statement-{st.merchant.id}-{month}.xlsx", [summary, redemptions, communities, payments])


@bp.route("/<int:merchant_id>/close", methods=["POST"])
@role_required(*ADMIN_ROLES)
def close(merchant_id: int):
    """Close the merchant's next period."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    period = settlement.close_period(_me(), merchant_id)
    db.session.commit()
    flash(_("The period %(month)s was closed.", month=period.period_start.strftime("%Y-%m")), "ok")
    return redirect(url_for(".statement", merchant_id=merchant_id, month=period.period_start.strftime("%Y-%m")))


@bp.route("/<int:merchant_id>/payments", methods=["POST"])
@role_required(*ADMIN_ROLES)
def payment(merchant_id: int):
    """Record a payment to the merchant."""
    form = PaymentForm()
    if form.validate_on_submit():
        try:
            settlement.record_payment(
                _me(), merchant_id, points=form.points.data, paid_on=form.paid_on.data,
                reference=form.reference.data, key=form.key.data,
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            return _statement_page(merchant_id, form, show_domain_error(form, exc, fallback="points"))
        flash(ngettext("The payment of %(num)s point was recorded.", "The payment of %(num)s points was recorded.",
                       form.points.data), "ok")
        return redirect(url_for(".statement", merchant_id=merchant_id))
    return _statement_page(merchant_id, form, 422)


def _admin_street() -> OrgUnit | None:
    """Return the street the user is street admin of (the first, when several)."""
    grants = sorted(_me().grants(ROLE_STREET_ADMIN), key=lambda g: g.org_unit_id)
    for grant in grants:
        if grant.org_unit is not None and grant.org_unit.parent_id is None:
            return grant.org_unit
    return None


@bp.route("/rates", methods=["GET", "POST"])
@role_required(ROLE_STREET_ADMIN)
def rates():
    """Show the street's points-to-yuan rates and set a new one."""
    street = _admin_street()
    if street is None:
        abort(403)
    tomorrow = settlement.local_today() + timedelta(days=1)
    form = RateForm(effective_from=tomorrow)
    status = 200
    if form.validate_on_submit():
        try:
            fen = settlement.fen_from_yuan(form.yuan_per_point.data)
            settlement.set_rate(_me(), street, form.effective_from.data, fen)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
        else:
            flash(_("The rate was saved."), "ok")
            return redirect(url_for(".rates"))
    elif form.errors:
        status = 422
    table = settlement.rate_table(street.id)
    return render_template(
        "settlement/rates.html", form=form, rates=table, street=street,
        current=settlement.rate_on(settlement.local_today(), table),
    ), status
