"""Versioned addresses of static files.

``url_for("static", filename=...)`` adds ``v``: the first 12 hex digits of the file's SHA-256.
A file asked for with the version it has now is kept by the browser for a year without asking
again (``immutable``): a page on a slow line loads its styles and scripts from the phone. A new
release changes the address of every file it changes, so no phone runs yesterday's script with
today's page. Asked for without a version, or with another one (a page from before a release),
the file is answered as it is now, to be checked again next time (``no-cache``).

The digest is kept per process. A release's files do not change while its processes run (a
release restarts gunicorn), so each file is read once; in debug mode (``flask run --debug``) its
size and modification time are looked at for every address written, and a changed file is read
again. A name outside the folder gets no version (checked as text, with no system call).
"""
from __future__ import annotations

import hashlib
import os

from flask import Flask, current_app, request
from werkzeug.security import safe_join

ONE_YEAR = 365 * 24 * 3600
_digests: dict[tuple[str, int, int], str] = {}
_released: dict[tuple[str, str], str] = {}  # by folder and name: a release's files do not change


def version_of(filename: str) -> str | None:
    """The version of static file ``filename`` as it is now, or None if there is no such file."""
    folder = current_app.static_folder
    if not current_app.debug:
        known = _released.get((folder, filename))
        if known is not None:
            return known
    path = safe_join(folder, filename)  # None outside the folder (no system call)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_size, st.st_mtime_ns)
    digest = _digests.get(key)
    if digest is None:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()[:12]
        _digests[key] = digest
    _released[(folder, filename)] = digest
    return digest


def register(app: Flask) -> None:
    @app.url_defaults
    def _static_version(endpoint, values):
        if endpoint == "static" and "v" not in values:
            version = version_of(values.get("filename", ""))
            if version:
                values["v"] = version

    @app.after_request
    def _static_caching(resp):
        if request.endpoint == "static" and resp.status_code in (200, 304):
            asked = request.args.get("v")
            if asked and asked == version_of((request.view_args or {}).get("filename", "")):
                resp.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
            else:
                resp.headers["Cache-Control"] = "no-cache"
            resp.expires = None
        return resp
