"""Pages for volunteers: balance, history, claims, rewards and vouchers."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import Integer, bindparam, select
from sqlalchemy.orm import aliased, selectinload

from ..domain import claims, honours, ledger, rules, uploads, vouchers
from ..domain.clock import local_today
from ..domain.errors import AlreadyRecorded, PointsError, RuleNotApplicable
from ..extensions import db
from ..forms import ClaimForm, rule_choices, show_domain_error
from ..models import Account, Activity, Entry, Merchant, PointRuleVersion, Reward, Transfer, User, Voucher
from ..models.rewards import VOUCHER_ISSUED, VOUCHER_REDEEMED
from ..models.rules import STATUS_APPROVED
from ..models.user import ROLE_VOLUNTEER
from .guards import db_int, role_required
from .template_helpers import ledger_reason, page_is_zh, voucher_state

bp = Blueprint("volunteer", __name__, url_prefix="/volunteer")

PAGE_SIZE = 20
RECENT_ENTRIES = 5


# --- helpers --------------------------------------------------------------------------------


def _me() -> User:
    """Return the logged-in user (not the proxy), for the domain functions."""
    return current_user._get_current_object()


def _account() -> Account | None:
    return ledger.volunteer_account(current_user.id)


# The statements every volunteer page runs are built once (and run with parameters).

@lru_cache(maxsize=None)
def _entries_query(paged: bool):
    """The entries of the volunteer account of ``user_id`` (found in the same statement), newest
    first (before entry ``before`` when ``paged``), ``limit`` of them; a reversal with the
    transfer it reverses (whose activity and voucher it carries too)."""
    reversed_ = aliased(Transfer, name="reversed_transfer")
    query = (
        select(
            Entry.id, Entry.amount, Entry.balance_after,
            Transfer.id, Transfer.kind, Transfer.reason, Transfer.created_at, Transfer.voucher_id,
            Activity.activity_date, PointRuleVersion.name_zh, PointRuleVersion.name_en,
            Account.balance, Account.held,
            reversed_.kind, reversed_.reason, reversed_.created_at,
        )
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .join(Account, Account.id == Entry.account_id)
        .outerjoin(reversed_, reversed_.id == Transfer.reverses_id)
        .outerjoin(Activity, Activity.id == Transfer.activity_id)
        .outerjoin(PointRuleVersion, PointRuleVersion.id == Activity.rule_version_id)
        .where(Entry.account_id == ledger.volunteer_account_id_of(bindparam("user_id")))
        .order_by(Entry.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )
    return query.where(Entry.id < bindparam("before")) if paged else query


def _before_arg() -> int | None:
    return request.args.get("before", type=db_int)


@dataclass(frozen=True)
class _EntryLine:
    """One line of a volunteer's entries, as the pages show it."""
    id: int
    amount: int
    balance_after: int
    created_at: datetime
    what: str


def _entries(user_id: int, before: int | None, limit: int) -> tuple[list[_EntryLine], bool, tuple[int, int]]:
    """The latest ``limit`` entries of the volunteer ``user_id``'s account (none before it
    exists), newest first, whether there are more, and the account's points held for open
    vouchers and available now (read in the same statement); each with what its line says (described
    only for the lines returned): the activity's rule, and for a correction the entry it
    corrects, in the same statement, the voucher's reward
    and merchant in a second one only when there are redemptions among them. Plain rows, as these
    pages only read them (loading them as related objects took three times as long)."""
    params = {"user_id": user_id, "limit": limit + 1}
    if before:
        params["before"] = before
    rows = db.session.execute(_entries_query(bool(before)), params).all()
    more, rows = len(rows) > limit, rows[:limit]
    voucher_ids = {row.voucher_id for row in rows if row.voucher_id is not None}
    names = {
        vid: (reward, merchant)
        for vid, reward, merchant in db.session.execute(
            select(Voucher.id, Reward.name, Merchant.name)
            .join(Reward, Reward.id == Voucher.reward_id)
            .join(Merchant, Merchant.id == Voucher.merchant_id)
            .where(Voucher.id.in_(voucher_ids))
        )
    } if voucher_ids else {}
    lines = []
    held = (rows[0].held, rows[0].balance - rows[0].held) if rows else (0, 0)
    for (eid, amount, after, tid, kind, reason, created_at, voucher_id, day, zh, en, _balance, _held,
         reversed_kind, reversed_reason, reversed_at) in rows:
        reward, merchant = names.get(voucher_id, (None, None))
        what = ledger_reason(tid, kind, reason, rule=(zh, en) if day is not None else None, activity_date=day,
                             reward=reward, merchant=merchant,
                             reverses=(reversed_kind, reversed_reason, reversed_at) if reversed_kind else None)
        lines.append(_EntryLine(eid, amount, after, created_at, what))
    return lines, more, held


def _own_voucher(voucher_id: int) -> Voucher:
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or voucher.volunteer_id != current_user.id:
        abort(404)
    return voucher


def qr_svg(text: str) -> Markup:
    """Return ``text`` as an inline SVG QR code."""
    import qrcode  # only the voucher page draws a code: loaded on first use
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=4)
    return Markup(image.to_string(encoding="unicode"))


def send_photo(activity: Activity):
    """Send an activity's evidence photo, or 404 when it has none."""
    path = uploads.photo_path(activity.photo_path or "")
    if path is None:
        abort(404)
    # Inline, under a name we make (never the uploader's), as JPEG: stored photos are re-encoded.
    resp = send_file(path, mimetype="image/jpeg", max_age=0, download_name=f"claim-{activity.id}.jpg")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Security-Policy"] = "default-src 'none'"
    return resp


# --- balance and history --------------------------------------------------------------------


@bp.route("/")
@role_required(ROLE_VOLUNTEER)
def home():
    """Show the balance (available first), lifetime and this year's points and hours, the latest
    entries and one-tap links."""
    figures = honours.volunteer_figures(current_user.id)
    return render_template(
        "volunteer/home.html", balance=figures.balance, totals=figures.totals,
        expiring=figures.expiring, entries=_entries(current_user.id, None, RECENT_ENTRIES)[0],
    )


@bp.route("/history")
@role_required(ROLE_VOLUNTEER)
def history():
    """List the volunteer's ledger entries, newest first, a page at a time."""
    entries, more, (held, available) = _entries(current_user.id, _before_arg(), PAGE_SIZE)
    return render_template(
        "volunteer/history.html", entries=entries, next_before=entries[-1].id if more else None,
        held=held, available=available,
    )


# --- claims ---------------------------------------------------------------------------------


@bp.route("/claim", methods=["GET", "POST"])
@role_required(ROLE_VOLUNTEER)
def claim():
    """Show the claim form; record a claim and send it for approval (or credit it at once)."""
    form = ClaimForm()
    form.rule_id.choices = rule_choices(rules.rules_for_volunteer(_me(), local_today()), page_is_zh())
    if request.method == "GET":
        form.activity_date.data = local_today()
        form.submission_key.data = secrets.token_urlsafe(24)
    if form.validate_on_submit():
        photo_name = None
        try:
            if form.photo.data:
                photo_name = uploads.store_photo(form.photo.data.read())
            act = claims.submit_claim(
                _me(),
                rule_id=form.rule_id.data,
                activity_date=form.activity_date.data,
                hours=form.hours.data,
                note=form.note.data,
                photo_name=photo_name,
                submission_key=form.submission_key.data or None,
            )
            db.session.commit()
        except AlreadyRecorded as exc:
            db.session.rollback()
            discard_photo(photo_name)
            flash(exc.message, "info")
            return redirect(url_for(".claims_list"))
        except PointsError as exc:
            db.session.rollback()
            discard_photo(photo_name)
            status = show_domain_error(form, exc, "rule_id" if isinstance(exc, RuleNotApplicable) else None)
            return render_template("volunteer/claim.html", form=form), status
        if act.status == STATUS_APPROVED:
            flash(ngettext("Thank you! %(num)s point was credited.", "Thank you! %(num)s points were credited.",
                           act.points_credited), "ok")
        elif claims.verifies_own_work(act.volunteer, act.org_unit):
            flash(_("Thank you! You verify claims here yourself, so another grid worker or admin must approve "
                    "yours."), "ok")
        else:
            flash(_("Thank you! Your claim is waiting for approval by your grid staff."), "ok")
        return redirect(url_for(".claims_list"))
    return render_template("volunteer/claim.html", form=form), (422 if form.errors else 200)


def discard_photo(name: str | None) -> None:
    """Delete a stored photo whose claim was not recorded."""
    path = uploads.photo_path(name) if name else None
    if path is not None:
        path.unlink(missing_ok=True)


@bp.route("/claims")
@role_required(ROLE_VOLUNTEER)
def claims_list():
    """List the volunteer's claims with their status and any rejection reason."""
    query = (
        select(Activity)
        .where(Activity.volunteer_id == current_user.id)
        .options(selectinload(Activity.rule_version))
        .order_by(Activity.id.desc())
        .limit(PAGE_SIZE + 1)
    )
    before = _before_arg()
    if before:
        query = query.where(Activity.id < before)
    acts = list(db.session.scalars(query))
    more = len(acts) > PAGE_SIZE
    acts = acts[:PAGE_SIZE]
    return render_template("volunteer/claims.html", activities=acts, next_before=acts[-1].id if more else None)


@bp.route("/claims/<int:activity_id>/photo")
@role_required(ROLE_VOLUNTEER)
def claim_photo(activity_id: int):
    """Send the evidence photo of one of the volunteer's own claims."""
    act = db.session.get(Activity, activity_id)
    if act is None or act.volunteer_id != current_user.id:
        abort(404)
    return send_photo(act)


# --- rewards and vouchers -------------------------------------------------------------------


REDEEM_KEY = "redeem_key"


def _rewards_page(error: str | None = None, status: int = 200):
    rewards = list(
        db.session.scalars(vouchers.visible_rewards_query(_me()).options(selectinload(Reward.merchant)))
    )
    # One key per reward, kept in the session until a voucher is issued: a tap sent again, from
    # this page or from the page opened again after Back (the answer to the first was lost, and
    # the session it changed with it), finds the voucher the first issued.
    page_key = session.get(REDEEM_KEY)
    if page_key is None:
        page_key = session[REDEEM_KEY] = secrets.token_urlsafe(12)
    return render_template("volunteer/rewards.html", rewards=rewards, account=_account(), error=error,
                           issue_key=page_key), status


@bp.route("/rewards")
@role_required(ROLE_VOLUNTEER)
def rewards():
    """List the rewards the volunteer can redeem."""
    return _rewards_page()


@bp.route("/rewards/<int:reward_id>/picture")
@login_required  # a reward's picture is no secret: admins and cashiers see it too
def reward_picture(reward_id: int):
    """Send a reward's picture, or the generic gift picture when it has none."""
    path = uploads.reward_picture_path(reward_id)
    if path is None:
        resp = current_app.send_static_file("icons/reward.svg")
    else:
        resp = send_file(path, mimetype="image/jpeg", max_age=0)
        resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.route("/rewards/<int:reward_id>/redeem", methods=["POST"])
@role_required(ROLE_VOLUNTEER)
def redeem(reward_id: int):
    """Redeem a reward: hold its points and issue a voucher."""
    try:
        issued = vouchers.issue_voucher(_me(), reward_id, key=request.form.get("issue_key") or None)
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        if exc.status == 404:
            raise
        return _rewards_page(exc.message, exc.status)
    session[REDEEM_KEY] = secrets.token_urlsafe(12)  # delivered with the voucher: the next tap is a new one
    flash(_("Your voucher is ready. Show this QR code at the counter."), "ok")
    return redirect(url_for(".voucher", voucher_id=issued.voucher.id))


@bp.route("/vouchers")
@role_required(ROLE_VOLUNTEER)
def vouchers_list():
    """List the volunteer's vouchers."""
    rows = list(
        db.session.scalars(
            select(Voucher)
            .where(Voucher.volunteer_id == current_user.id)
            .options(selectinload(Voucher.reward), selectinload(Voucher.merchant))
            .order_by(Voucher.id.desc())
            .limit(100)
        )
    )
    reversed_ids = vouchers.reversed_voucher_ids([v.id for v in rows if v.status == VOUCHER_REDEEMED])
    return render_template("volunteer/vouchers.html", vouchers=rows, reversed_ids=reversed_ids)


@bp.route("/vouchers/<int:voucher_id>")
@role_required(ROLE_VOLUNTEER)
def voucher(voucher_id: int):
    """Show one of the volunteer's vouchers with its QR code and fallback code."""
    v = _own_voucher(voucher_id)
    usable = voucher_state(v) == VOUCHER_ISSUED
    return render_template(
        "volunteer/voucher.html",
        voucher=v,
        qr=qr_svg(vouchers.token_for(v.nonce)) if usable else None,
        code=vouchers.format_code(vouchers.code_for(v.nonce)) if usable else None,
        usable=usable,
        reversed=v.status == VOUCHER_REDEEMED and bool(vouchers.reversed_voucher_ids([v.id])),
    )


@bp.route("/vouchers/<int:voucher_id>/status")
@role_required(ROLE_VOLUNTEER)
def voucher_status_json(voucher_id: int):
    """Tell the voucher's owner its status now, so the open voucher page can turn to "redeemed"."""
    v = _own_voucher(voucher_id)
    resp = jsonify(id=v.id, status=voucher_state(v))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/vouchers/<int:voucher_id>/cancel", methods=["POST"])
@role_required(ROLE_VOLUNTEER)
def cancel_voucher(voucher_id: int):
    """Cancel one of the volunteer's issued vouchers and give its points back."""
    _own_voucher(voucher_id)
    try:
        closed = vouchers.cancel_voucher(_me(), voucher_id)
        db.session.commit()
    except PointsError as exc:  # redeemed (or closed) meanwhile: the voucher's page says how it stands
        db.session.rollback()
        if exc.status == 404:
            raise
        flash(exc.message, "error")
        return redirect(url_for(".voucher", voucher_id=voucher_id))
    if closed.status == "expired":
        flash(_("The voucher had already expired; its points are available again."), "ok")
    else:
        flash(_("The voucher was cancelled and its points are available again."), "ok")
    return redirect(url_for(".voucher", voucher_id=voucher_id))
