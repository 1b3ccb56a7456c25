"""Login, logout, language choice and the landing page that sends each role to its home."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ..domain.people import authenticate
from ..extensions import db, limiter
from ..forms import LoginForm
from ..i18n import LANG_COOKIE, LANG_COOKIE_AGE
from ..models.user import ADMIN_ROLES, ROLE_GRID_STAFF, ROLE_MERCHANT_STAFF, ROLE_VOLUNTEER

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_LIMIT"]


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
@limiter.limit(_login_limit, methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is None:
            form.password.errors.append(_("Wrong username or password, or the account is deactivated."))
        else:
            lang = session.get("lang")
            session.clear()
            if lang:  # the language chosen on the login page stays chosen
                session["lang"] = lang
            login_user(user)
            session.permanent = True
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")) or url_for("auth.index"))
    return render_template("auth/login.html", form=form), (200 if not form.errors else 422)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/lang/<code>", methods=["POST"])
def set_language(code: str):
    resp = redirect(_safe_next(request.form.get("next")) or url_for("auth.index"))
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
