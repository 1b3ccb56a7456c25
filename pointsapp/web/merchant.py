"""Pages for merchant staff (cashiers): look up and confirm a voucher, and today's redemptions."""
from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user

from ..domain import vouchers
from ..domain.errors import PointsError, VoucherJustRedeemed
from ..extensions import db, limiter
from ..forms import RedeemForm
from ..models import Voucher
from ..models.user import ROLE_MERCHANT_STAFF, User
from .guards import db_int, role_required
from .template_helpers import zh_choices

bp = Blueprint("merchant", __name__, url_prefix="/merchant")


def _me() -> User:
    return current_user._get_current_object()


def _staff_key() -> str:
    return f"staff:{current_user.get_id() or get_remote_address()}"


def _code_limit() -> str:
    return current_app.config["FALLBACK_CODE_LIMIT"]


# Unknown codes (404) are counted per cashier, across look-up and confirm together, so that
# nobody can guess 40-bit fallback codes; known codes, right or refused, cost nothing.
# A scanned QR token (``PV1-``, 160 bits) cannot be guessed: it is never held back, so a till
# locked by typing errors still scans.
wrong_code_limit = limiter.shared_limit(
    _code_limit,
    scope="voucher-code",
    key_func=_staff_key,
    deduct_when=lambda resp: resp.status_code == 404,
    exempt_when=lambda: (request.form.get("code") or "").strip().upper().startswith(vouchers.TOKEN_PREFIX),
    methods=["POST"],
)


@bp.errorhandler(429)
def _too_many_codes(exc):
    """Typed codes held back: say so on the till itself, where scanning still works."""
    if not (current_user.is_authenticated and _me().has_role(ROLE_MERCHANT_STAFF)):
        return exc
    message = _("Too many unknown codes were typed in a minute. Wait a minute before typing a code again; "
                "scanning QR codes still works.")
    return render_template("merchant/redeem.html", form=_redeem_form(), voucher=None, refusal=None,
                           redeemed_by_me=False, wait=message), 429


def _redeem_form() -> RedeemForm:
    """Return the redeem form with the cashier's merchants to choose from."""
    form = RedeemForm()
    grants = sorted(_me().grants(ROLE_MERCHANT_STAFF), key=lambda g: g.merchant_id)
    form.merchant_id.choices = zh_choices((g.merchant_id, g.merchant.name) for g in grants)
    if form.merchant_id.data is None and grants:
        wanted = request.args.get("merchant_id", type=db_int)
        ids = [g.merchant_id for g in grants]
        form.merchant_id.data = wanted if wanted in ids else ids[0]
    return form


def _page(form: RedeemForm, *, voucher: Voucher | None = None, refusal: PointsError | None = None,
          status: int = 200):
    return render_template(
        "merchant/redeem.html", form=form, voucher=voucher, refusal=refusal.message if refusal else None,
        # This cashier's own redemption of a moment ago (its answer lost): not a refusal to hand over.
        redeemed_by_me=isinstance(refusal, VoucherJustRedeemed),
    ), status


@bp.route("/")
@role_required(ROLE_MERCHANT_STAFF)
def redeem():
    """Show the redeem page: one input for the scanned or typed code."""
    return _page(_redeem_form())


@bp.route("/lookup", methods=["POST"])
@wrong_code_limit
@role_required(ROLE_MERCHANT_STAFF)
def lookup():
    """Look a code up and show whether the voucher may be redeemed here, and why not."""
    form = _redeem_form()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        voucher = vouchers.look_up_for_redemption(_me(), form.code.data, form.merchant_id.data)
    except PointsError as exc:
        db.session.rollback()
        return _page(form, refusal=exc, status=exc.status)
    return _page(form, voucher=voucher)


@bp.route("/confirm", methods=["POST"])
@wrong_code_limit
@role_required(ROLE_MERCHANT_STAFF)
def confirm():
    """Redeem a voucher: mark it redeemed and take its points."""
    form = _redeem_form()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        voucher = vouchers.confirm_redemption(_me(), form.code.data, form.merchant_id.data)
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        return _page(form, refusal=exc, status=exc.status)
    flash(
        _(
            "Redeemed: hand over %(reward)s to %(name)s. %(points)s points taken.",
            reward=voucher.reward.name,
            name=voucher.volunteer.masked_name,
            points=voucher.points,
        ),
        "done",
    )
    return redirect(url_for(".redeem", merchant_id=form.merchant_id.data))


@bp.route("/today")
@role_required(ROLE_MERCHANT_STAFF)
def today():
    """List the vouchers redeemed today at one of the cashier's merchants."""
    form = _redeem_form()
    merchant_id = form.merchant_id.data
    day = vouchers.todays_takings(_me(), merchant_id)
    return render_template(
        "merchant/today.html",
        form=form,
        redemptions=day.vouchers,
        reversed_ids=day.reversed_ids,
        counted=len(day.counted),
        total=day.points,
        merchant_id=merchant_id,
    )
