"""HTML blueprints, one per audience, and the error pages."""
from __future__ import annotations

from functools import lru_cache

from flask import Flask, current_app, g, jsonify, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import HTTPException

from ..database import reads_only
from ..domain.errors import PointsError
from ..extensions import db, login_manager


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


@lru_cache(maxsize=None)
def _user_with_roles():
    from ..models import User

    return select(User).options(joinedload(User.roles)).where(User.id == bindparam("user_id"))


def register_web(app: Flask) -> None:
    from . import admin, auth, health, merchant, pwa, security, staff, static_versions, template_helpers, tokens, volunteer
    from . import settlement as settlement_pages
    from . import reports as report_pages
    from . import sheets
    from . import budgets as budget_pages
    from . import notice as notice_pages
    from . import volunteer_statement  # noqa: F401  (adds the statement routes to the volunteer blueprint)
    from . import honours as honour_pages

    login_manager.login_view = "auth.login"
    login_manager.login_message = None

    @login_manager.user_loader
    def load_user(user_id: str):
        try:
            user_id = int(user_id)
        except (TypeError, ValueError):
            return None
        # The person and their role grants in one statement (built once): every page checks a role.
        try:
            user = db.session.scalars(_user_with_roles(), {"user_id": user_id}).unique().one_or_none()
        except (OperationalError, InterfaceError) as exc:  # the database is down or restarting
            db.session.rollback()
            current_app.logger.error("cannot load the logged-in person: database unavailable: %s", exc)
            g.database_unavailable = True
            return None
        # A deactivated person, or a session ended by logout or a password change elsewhere,
        # is anonymous from its next request on.
        if user is None or not user.is_active or not security.session_matches(user):
            return None
        return user

    for bp in (auth.bp, volunteer.bp, staff.bp, admin.bp, merchant.bp, pwa.bp, tokens.bp, health.bp):
        app.register_blueprint(bp)
    app.register_blueprint(settlement_pages.bp)
    app.register_blueprint(sheets.bp)
    app.register_blueprint(report_pages.bp)
    app.register_blueprint(budget_pages.bp)
    from . import checkin as checkin_pages

    app.register_blueprint(checkin_pages.bp)
    app.register_blueprint(notice_pages.bp)
    app.register_blueprint(honour_pages.bp)
    template_helpers.register(app)
    static_versions.register(app)
    security.init_security(app)

    @app.teardown_request
    def _rollback_unfinished(exc):
        # Whatever a request left uncommitted (an error, an early return) is thrown away.
        if exc is not None or db.session.dirty or db.session.new:
            db.session.rollback()
        elif reads_only() and db.session().in_transaction() and db.session.get_bind().dialect.name == "postgresql":
            # A READ ONLY transaction (see pointsapp.database): ended with a COMMIT, which writes
            # nothing, so that psycopg keeps the statements it has prepared. Only one that began
            # read-only (the listener marks it), and a failed COMMIT is rolled back as before.
            if not db.session.connection().info.get("began_read_only"):
                db.session.rollback()
                return
            try:
                db.session.commit()
            except Exception:
                current_app.logger.warning("ending a read-only transaction failed", exc_info=True)
                db.session.rollback()

    @app.errorhandler(PointsError)
    def _points_error(exc: PointsError):
        db.session.rollback()
        if wants_json():
            return jsonify(code=exc.code, message=exc.message), exc.status
        return render_template("error.html", title=_("Refused"), message=exc.message), exc.status

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        db.session.rollback()
        # Why, for whoever runs the server: a proxy that drops the port from Host fails the
        # Referer check of every form sent over HTTPS ("The referrer does not match the host").
        current_app.logger.warning("form refused (CSRF): %s path=%s", exc.description, request.path)
        msg = _("The form expired or was sent twice. Go back, reload the page and try again.")
        if wants_json():
            return jsonify(code="csrf", message=msg), 400
        if request.endpoint == "auth.login" and current_user.is_authenticated:
            # A second login page left open: the person is logged in already (in another tab).
            return redirect(url_for("auth.index"))
        return render_template("error.html", title=_("Form expired"), message=msg, code=400), 400

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        db.session.rollback()
        titles = {
            400: _("Request not understood"), 403: _("Not allowed"), 404: _("Page not found"),
            405: _("Not possible here"), 413: _("Too large"), 429: _("Too many attempts"), 503: _("Server busy"),
        }
        messages = {
            400: _("The request could not be understood. Go back, reload the page and try again."),
            403: _("You are not allowed to see this page. If your work needs it, ask your community or street "
                   "office to give you the role."),
            404: _("This page does not exist, or it is not yours to see."),
            405: _("This action is not possible here. Go back to the page you came from and use its buttons."),
            413: _("What was sent is too large: at most %(mb)s MB. Send a smaller file.",
                   mb=max(1, current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024))),
            429: _("Too many attempts. Wait a minute and try again."),
            503: _("The server is busy. Nothing was changed. Try again in a moment."),
        }
        msg = messages.get(exc.code) or _("This request could not be handled. Go back and try again.")
        if wants_json():
            resp = jsonify(code=f"http_{exc.code}", message=msg)
        else:
            resp = make_response(render_template("error.html", title=titles.get(exc.code) or _("Not handled"),
                                                 message=msg, code=exc.code))
        resp.status_code = exc.code
        for name, value in exc.get_headers():
            if name == "Retry-After":  # when to try again (503 from a full write queue)
                resp.headers[name] = value
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error")
        msg = _("Something went wrong on our side. Nothing was changed. Try again in a minute.")
        if wants_json():
            return jsonify(code="internal", message=msg), 500
        return render_template("error.html", title=_("Something went wrong"), message=msg, code=500), 500
