"""The OpenAPI document and a readable page for it (Swagger UI, vendored, no inline script)."""
from __future__ import annotations

from flask import current_app, jsonify, render_template

from . import bp
from .spec import build_spec


@bp.get("/openapi.json")
def openapi():
    """Serve the OpenAPI 3 document (built once per process)."""
    spec = current_app.extensions.get("points_openapi")
    if spec is None:
        spec = current_app.extensions["points_openapi"] = build_spec()
    return jsonify(spec)


@bp.get("/docs")
def docs():
    """Show the API reference, rendered by the vendored Swagger UI."""
    return render_template("api/docs.html")
