"""The OpenAPI 3 document, generated from the views' ``@doc`` notes and their marshmallow schemas."""
from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app

from ..schemas import ErrorOut

ERRORS = {
    "400": "Bad request: a missing Idempotency-Key, JSON that does not parse, a missing CSRF token.",
    "401": "No valid token.",
    "403": "Not allowed: the token's roles do not allow this here.",
    "404": "Not found, or not in the token's part of the tree (an id too large for the database also ends here).",
    "405": "The method is not allowed at this path.",
    "413": "The body is too large (a photo over the upload limit).",
    "409": "Refused by a rule of the domain (see `code`), or a request with this Idempotency-Key is still running.",
    "422": "Validation failed (`fields` has a message per field), or the Idempotency-Key was used for another request.",
    "429": "Too many wrong voucher codes; wait a minute.",
}
TAGS = [
    {"name": "me", "description": "The acting user and their API tokens."},
    {"name": "volunteer", "description": "Balance, history, claims, rewards and vouchers of a volunteer."},
    {"name": "merchant", "description": "Redemption at the till, for cashiers."},
    {"name": "staff", "description": "The approval queue and recorded attendance, for grid staff and admins."},
    {"name": "admin", "description": "The tree, people, rules, merchants, rewards and reversals, for admins."},
    {"name": "settlement", "description": "What the street owes merchants: statements, periods, payments, rates."},
    {"name": "reports", "description": "The report tables of a subtree and a range of months, for admins."},
    {"name": "budgets", "description": "Funding for points, budgets and the points liability, for admins."},
    {"name": "honours", "description": "Honour rolls of grids, communities and the street, by points and by hours."},
]


def _schema_name_resolver(schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    return cls.__name__.removesuffix("Schema")


def build_spec() -> dict:
    """Return the OpenAPI document of every documented view of the ``api`` blueprint."""
    spec = APISpec(
        title="pointsapp API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name_resolver)],
        info={"description": "Volunteer points and rewards: every action of the pages, for programs. See docs/api.md."},
        servers=[{"url": "/api/v1"}],
        tags=TAGS,
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "description": "A personal API token (pts_...)."})
    spec.components.schema("Error", schema=ErrorOut)
    spec.components.parameter("IdempotencyKey", "header", {
        "name": "Idempotency-Key", "required": True,
        "description": "A unique key per intended action (a UUID). A retry with the same key and body gets the "
                       "first response and moves nothing again.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]+$"},
    })
    paths: dict[str, dict] = {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("api."):
            continue
        view = current_app.view_functions[rule.endpoint]
        note = getattr(view, "_api_doc", None)
        if note is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, note, view)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(rule, note: dict, view) -> dict:
    roles = ", ".join(note["roles"]) or "any"
    op = {
        "summary": note["summary"],
        "description": f"{note['description'].strip()}\n\nRoles: {roles}.",
        "operationId": rule.endpoint.removeprefix("api."),
        "tags": [note["tag"]],
        "security": [{"bearer": []}],
        "parameters": [],
        "responses": {},
    }
    for arg in rule.arguments:
        op["parameters"].append({"name": arg, "in": "path", "required": True,
                                 "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}})
    if note["args"] is not None:
        op["parameters"].append({"in": "query", "schema": note["args"]})
    if note["idempotent"]:
        op["parameters"].append("IdempotencyKey")
    if note["body"] is not None or note.get("form") is not None:
        body_content = {}
        if note["body"] is not None:
            body_content["application/json"] = {"schema": note["body"]}
        if note.get("form") is not None:
            body_content["multipart/form-data"] = {"schema": note["form"]}
        op["requestBody"] = {"required": True, "content": body_content}
    response = note["response"]
    ok = {"description": "Done."}
    if note.get("content", "application/json") != "application/json":
        ok["content"] = {note["content"]: {"schema": {"type": "string", "format": "binary"}}}
    elif response is not None:
        ok["content"] = {"application/json": {"schema": response}}
    op["responses"][str(note["status"])] = ok
    for code, text in ERRORS.items():
        op["responses"][code] = {"description": text, "content": {"application/json": {"schema": ErrorOut}}}
    return op
