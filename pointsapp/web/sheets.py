"""Spreadsheet pages for admins: import people and org nodes, export lists as XLSX or CSV."""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, render_template, request, stream_with_context
from flask_login import current_user

from ..domain import exports
from ..domain.errors import PointsError
from ..domain.imports import import_people, import_steps, template_headers
from ..extensions import db
from ..forms import ImportForm
from ..models.user import ADMIN_ROLES, User
from ..spreadsheets import UnreadableFile, read_rows, table_response
from .guards import role_required
from .template_helpers import page_is_zh

bp = Blueprint("sheets", __name__, url_prefix="/sheets")

FORMATS = ("xlsx", "csv")


def _me() -> User:
    return current_user._get_current_object()


@bp.route("/")
@role_required(*ADMIN_ROLES)
def index():
    """List the downloads and the import form."""
    return render_template("sheets/index.html", form=ImportForm(formdata=None), exports=exports.TITLES_OF, result=None)


@bp.route("/template.<fmt>")
@role_required(*ADMIN_ROLES)
def template(fmt: str):
    """Download an empty import file with the columns named."""
    if fmt not in FORMATS:
        abort(404)
    return table_response(fmt, "people-import-template", "import", template_headers(page_is_zh()), [])


@bp.route("/import", methods=["POST"])
@role_required(*ADMIN_ROLES)
def import_file():
    """Check (dry run) or import an uploaded file; all rows or none."""
    form = ImportForm()
    status = 200
    result = None
    if not form.validate_on_submit():
        status = 422
    elif not form.file.data or not form.file.data.filename:
        form.file.errors = [*form.file.errors, _no_file()]
        status = 422
    elif len(data := form.file.data.read(current_app.config["UPLOAD_MAX_BYTES"] + 1)) > current_app.config["UPLOAD_MAX_BYTES"]:
        form.file.errors = [*form.file.errors, _too_large()]
        status = 413
    else:
        try:
            rows = read_rows(data, form.file.data.filename)
        except UnreadableFile:
            form.file.errors = [*form.file.errors, _unreadable()]
            status = 422
        else:
            if request.accept_mimetypes.best == STREAM:
                return _import_stream(rows, bool(form.dry_run.data))
            result = import_people(_me(), rows)
            if result.ok and not form.dry_run.data:
                db.session.commit()
            else:
                db.session.rollback()
                status = 422 if result.errors else 200
            current_app.logger.info("people import by %s: %s", _me().username, result)
    return render_template(
        "sheets/index.html", form=form, exports=exports.TITLES_OF, result=result,
        dry_run=bool(form.dry_run.data),
    ), status


STREAM = "application/x-ndjson"


def _import_stream(rows: list[list[str]], dry_run: bool) -> Response:
    """Import as the form does, reporting progress as JSON lines while the rows are checked.

    The page's script asks for this (``Accept: application/x-ndjson``) to draw a progress bar;
    the lines are ``{"total": n}``, then ``{"done": k}`` as rows are checked, then
    ``{"done": n, "ok": ..., "html": <the result section>}``. The transaction is the request's,
    committed after the last row only when every row is sound, exactly as without the stream.
    """
    me = _me()
    total = max(len(rows) - 1, 0)
    step = max(1, total // 100)

    def lines():
        yield json.dumps({"total": total}) + "\n"
        steps = import_steps(me, rows)
        try:
            while True:
                done = next(steps)
                if done and done % step == 0:
                    yield json.dumps({"done": done}) + "\n"
        except StopIteration as finished:
            result = finished.value
        except PointsError as exc:
            db.session.rollback()
            yield json.dumps({"done": total, "ok": False, "error": exc.message}) + "\n"
            return
        if result.ok and not dry_run:
            db.session.commit()
        else:
            db.session.rollback()
        current_app.logger.info("people import by %s: %s", me.username, result)
        html = render_template("sheets/_result.html", result=result, dry_run=dry_run)
        yield json.dumps({"done": total, "ok": result.ok, "html": html}, ensure_ascii=False) + "\n"

    resp = Response(stream_with_context(lines()), mimetype=STREAM)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass each line on at once
    return resp


def _no_file() -> str:
    from flask_babel import gettext as _

    return _("Choose a file to upload.")


def _too_large() -> str:
    from flask_babel import gettext as _

    return _("The file is too large: at most %(mb)s MB. Make it smaller (split a long roster into several files) "
             "and send it again.", mb=max(1, current_app.config["UPLOAD_MAX_BYTES"] // (1024 * 1024)))


def _unreadable() -> str:
    from flask_babel import gettext as _

    return _("This file cannot be read: upload an XLSX file or a CSV file in UTF-8.")


@bp.route("/export/<what>.<fmt>")
@role_required(*ADMIN_ROLES)
def export(what: str, fmt: str):
    """Download one list, scoped to the admin's subtrees, as XLSX or CSV."""
    if what not in exports.EXPORTS or fmt not in FORMATS:
        abort(404)
    title, headers, rows = exports.export(_me(), what, page_is_zh())
    return table_response(fmt, what, title, headers, rows)
