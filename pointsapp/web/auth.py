"""Login, logout, password change, language choice and the landing page that sends each role home."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from ..domain.errors import PointsError
from ..domain.people import MIN_PASSWORD_LENGTH, authenticate, change_password as change_own_password, end_sessions
from ..domain.people import username_exists
from ..extensions import db, limiter
from ..forms import ChangePasswordForm, LoginForm, show_domain_error
from ..i18n import LANG_COOKIE, LANG_COOKIE_AGE
from ..models.user import ADMIN_ROLES, ROLE_GRID_STAFF, ROLE_MERCHANT_STAFF, ROLE_VOLUNTEER
from . import security

bp = Blueprint("auth", __name__)

# Set by an explicit logout, read once by the login page that follows: that page (and no other,
# not the one an idle logout leads to) forgets the vouchers saved on the phone for offline use.
FORGET_OFFLINE_KEY = "forget_offline"


def _login_limit() -> str:
    return current_app.config["LOGIN_LIMIT"]


def _login_account_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_LIMIT"]


def _login_account_key() -> str:
    """Key the account throttle by the username tried, whatever address the attempts come from."""
    return "account:" + (request.form.get("username") or "").strip().lower()[:64]


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if current_user.has_role(ROLE_VOLUNTEER):
        return redirect(url_for("volunteer.home"))
    if current_user.has_role(ROLE_MERCHANT_STAFF):
        return redirect(url_for("merchant.redeem"))
    if current_user.has_role(ROLE_GRID_STAFF):
        return redirect(url_for("staff.queue"))
    if current_user.has_role(*ADMIN_ROLES):
        return redirect(url_for("admin.home"))
    return render_template("auth/no_role.html")


@bp.route("/login", methods=["GET", "POST"])
# Only failed attempts count, against the address (people behind one Wi-Fi, at a training, log in
# together) and against the account (its owner still gets in after a stranger's guesses stop).
@limiter.limit(_login_limit, methods=["POST"], scope="login-address", deduct_when=lambda resp: resp.status_code != 302)
@limiter.limit(
    _login_account_limit,
    methods=["POST"],
    key_func=_login_account_key,
    scope="login-account",
    deduct_when=lambda resp: resp.status_code != 302,
)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is None:
            current_app.logger.warning(
                # The username only when it is one: a password typed into its box stays out of the log.
                "login failed username=%r address=%s",
                form.username.data.strip()[:64] if username_exists(form.username.data) else "(no such user)",
                request.remote_addr
            )
            form.password.errors.append(_("Wrong username or password, or the account is deactivated."))
        else:
            # A new session: nothing from before the login survives (session fixation) but the
            # language and a check-in scan's pass (signed; it names an event, not a person).
            security.end_session_keep_language(keep_scan_pass=True)
            login_user(user)
            security.start_session(user)
            session.permanent = True
            db.session.commit()
            if user.must_change_password:
                return redirect(url_for("auth.change_password"))
            # Back where they were going, unless that was a form's address (a button pressed after
            # the idle logout): then their home, where the flash says to send it again.
            return redirect(_opens_with_get(_safe_next(request.args.get("next"))) or url_for("auth.index"))
    forget_offline = bool(session.pop(FORGET_OFFLINE_KEY, False))
    return render_template("auth/login.html", form=form, forget_offline=forget_offline), (
        200 if not form.errors else 422
    )


@bp.errorhandler(429)
def _too_many_logins(exc):
    """Login tries held back: the login form again, with what to do, not a bare error page."""
    if request.endpoint != "auth.login":
        return exc
    form = LoginForm(formdata=None, username=(request.form.get("username") or "").strip()[:64])
    form.password.errors = [_("Too many tries. Wait a minute, then log in again. If you have forgotten your "
                              "password, ask your community office to reset it.")]
    return render_template("auth/login.html", form=form, forget_offline=False), 429


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out: end every session of this person, on every device."""
    end_sessions(current_user._get_current_object())
    db.session.commit()
    security.end_session_keep_language()
    session[FORGET_OFFLINE_KEY] = True
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


def _own_account_key() -> str:
    return f"password-change:{current_user.get_id()}"


@bp.route("/account/password", methods=["GET", "POST"])
# A stolen session must not become a way to guess the current password: wrong tries count
# against the account as failed logins do.
@limiter.limit(
    _login_account_limit,
    methods=["POST"],
    key_func=_own_account_key,
    scope="password-change",
    deduct_when=lambda resp: resp.status_code != 302,
)
@login_required
def change_password():
    """Change one's own password; every other session of the person ends."""
    user = current_user._get_current_object()
    form = ChangePasswordForm()
    # A first login with an activation code: the code is what is asked for, not a password.
    activating = user.activation_hash is not None
    if activating:
        form.current_password.label.text = _("Activation code")

    def page(status: int):
        return render_template("auth/change_password.html", form=form, min_length=MIN_PASSWORD_LENGTH,
                               activating=activating), status

    if form.validate_on_submit():
        try:
            change_own_password(user, form.current_password.data, form.new_password.data)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            return page(show_domain_error(form, exc, "new_password"))
        # This browser stays logged in, in a fresh session bound to the new version.
        security.end_session_keep_language()
        login_user(user)
        security.start_session(user)
        session.permanent = True
        flash(_("Your password is set. Welcome.") if activating
              else _("Your password was changed. Other devices were logged out."), "ok")
        return redirect(url_for("auth.index"))
    return page(422 if form.errors else 200)


def _opens_with_get(target: str | None) -> str | None:
    """``target`` when it is a page of this app that a GET opens (not a form's POST address)."""
    if not target:
        return None
    try:
        current_app.url_map.bind(request.host).match(urlsplit(target).path, method="GET")
    except RequestRedirect:
        return target
    except HTTPException:  # no such page, or one that only takes a form
        return None
    return target


@bp.route("/lang/<code>", methods=["POST"])
def set_language(code: str):
    resp = redirect(_opens_with_get(_safe_next(request.form.get("next"))) or url_for("auth.index"))
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
        # Remembered on this phone for a year, across log-outs and closed browsers.
        resp.set_cookie(
            LANG_COOKIE,
            code,
            max_age=LANG_COOKIE_AGE,
            httponly=True,
            samesite="Lax",
            secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
        )
    return resp
