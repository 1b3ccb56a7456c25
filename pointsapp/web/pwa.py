"""The installable app: the web app manifest and the service worker that keeps vouchers offline."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, url_for
from flask_babel import gettext as _

bp = Blueprint("pwa", __name__)


@bp.route("/manifest.webmanifest")
def manifest():
    """Describe the app for "Add to home screen", in the page's language."""
    icons = [
        {"src": url_for("static", filename="icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
        {"src": url_for("static", filename="icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
        {
            "src": url_for("static", filename="icons/icon-maskable-512.png"),
            "sizes": "512x512",
            "type": "image/png",
            "purpose": "maskable",
        },
    ]
    resp = jsonify(
        name=_("Volunteer points"),
        short_name=_("Points"),
        start_url=url_for("auth.index"),
        scope=url_for("auth.index"),
        display="standalone",
        background_color="#ffffff",
        theme_color="#b3261e",
        icons=icons,
    )
    resp.mimetype = "application/manifest+json"
    return resp


@bp.route("/sw.js")
def service_worker():
    """Serve the service worker from the site root, so that it may control every page."""
    resp = current_app.send_static_file("js/sw.js")
    resp.headers["Service-Worker-Allowed"] = "/"
    # A changed worker must reach phones at their next visit, not after a week in a cache.
    resp.headers["Cache-Control"] = "no-cache"
    return resp
