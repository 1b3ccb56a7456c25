"""Request-wide protections: security headers, session checks (version, idle time), forced
password change, and the login throttles.

Sessions live in Flask's signed cookie. A cookie alone cannot be revoked, so each session also
carries the user's ``session_version`` from the time it was opened (``_sv``); raising the number
in the database (logout, password change or reset, deactivation) ends every such session at its
next request, on every machine. ``_seen`` is the time of the session's last request: a session
idle for longer than ``IDLE_TIMEOUT`` is ended.
"""
from __future__ import annotations

import time

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, logout_user

# Strict: nothing inline, nothing from another host. Camera frames for QR scanning are drawn
# from blob:/data: URLs; frame-ancestors 'none' is the modern X-Frame-Options: DENY.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
# Cashiers scan QR codes with the camera, on this site only; nothing else is allowed.
PERMISSIONS_POLICY = "camera=(self), microphone=(), geolocation=(), payment=(), usb=()"

SESSION_VERSION_KEY = "_sv"
SEEN_KEY = "_seen"
SEEN_RESOLUTION_S = 60  # write the last-seen time at most once a minute (fewer new cookies)

# Pages a person who must change their password can still open.
ALLOWED_BEFORE_PASSWORD_CHANGE = {"auth.change_password", "auth.logout", "auth.set_language", "static"}


def start_session(user) -> None:
    """Bind the (already cleared) session to ``user``'s current session version."""
    session[SESSION_VERSION_KEY] = user.session_version
    session[SEEN_KEY] = int(time.time())


def session_matches(user) -> bool:
    """Say whether the request's session was opened under the user's current session version."""
    return session.get(SESSION_VERSION_KEY) == user.session_version


# The session key of the signed pass a fresh check-in scan gives (``checkin.pass_for``): it
# survives the login it leads to, so a slow login does not make the code expire.
SCAN_PASS_KEY = "checkin_pass"


def end_session_keep_language(keep_scan_pass: bool = False) -> None:
    """Log out this browser and empty its session, keeping only the chosen language (and, for a
    login, the pass of a check-in scan made just before it)."""
    kept = {k: session[k] for k in ("lang", SCAN_PASS_KEY if keep_scan_pass else None) if k in session}
    logout_user()
    session.clear()
    session.update(kept)


def init_security(app: Flask) -> None:
    @app.before_request
    def _idle_timeout():
        if "_user_id" not in session:
            return None
        now = int(time.time())
        seen = session.get(SEEN_KEY)
        limit = current_app.config["IDLE_TIMEOUT"].total_seconds()
        if not isinstance(seen, int) or now - seen > limit:
            end_session_keep_language()
            minutes = int(limit // 60)
            flash(ngettext("You were logged out after %(num)s minute without activity.",
                           "You were logged out after %(num)s minutes without activity.", minutes), "info")
            if request.method == "POST":  # a form sent after the limit: say it was not taken
                flash(_("What you just sent was not saved. Log in and send it again."), "error")
            return None  # the request goes on as anonymous: a protected page sends to login
        if now - seen >= SEEN_RESOLUTION_S:
            session[SEEN_KEY] = now
        return None

    @app.before_request
    def _force_password_change():
        if request.blueprint == "health":  # answers without loading anyone (or the database)
            return None
        if not current_user.is_authenticated and g.get("database_unavailable"):
            abort(503)  # "the server is busy; nothing was changed": not a login page or a bare 500
        if request.endpoint in ALLOWED_BEFORE_PASSWORD_CHANGE or not current_user.is_authenticated:
            return None
        if current_user.must_change_password:
            return redirect(url_for("auth.change_password"))
        return None

    @app.after_request
    def _security_headers(resp):
        headers = resp.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if current_app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        # Pages with personal data are not kept by the browser or a proxy (back button on a
        # shared phone); static files keep their own caching.
        if request.endpoint != "static" and "Cache-Control" not in headers and (
                "_user_id" in session or request.path.startswith("/api/")):  # a token's answers too
            headers["Cache-Control"] = "no-store"
        return resp
