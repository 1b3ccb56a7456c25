"""Who may open what: every route of the app (read from its URL map) against every role.

``ROUTES`` is the table. A route that is not in it fails ``test_every_route_is_in_the_table``:
a new page or API endpoint cannot be forgotten. To add a row, give the endpoint the expected
answer per role for GET and/or POST, usually with ``only(...)`` (allowed roles get ``ok``, other
logged-in roles 403, anonymous and deactivated people the login page), and, if the route takes
an argument not yet in ``url_args``, a value there (an object of community A / the charity shop).

Every response of the walk is also checked for the security headers, and every HTML page for
inline scripts and styles (the Content-Security-Policy forbids them) and for POST forms without
a CSRF token.
"""
from __future__ import annotations

import io
import re
from urllib.parse import parse_qsl
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy import func, select

from datetime import timedelta

from pointsapp.domain import checkin, claims, people, tokens, uploads, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.extensions import db
from pointsapp.models import AuditRecord, Transfer
from pointsapp.web.security import CONTENT_SECURITY_POLICY
from tests.conftest import csrf_from
from tests.factories import give_points, yesterday
from tests.unit.helpers import ledger_state
from tests.web.inline import PATTERNS as INLINE_PATTERNS

# --- the roles ------------------------------------------------------------------------------

ANON = "anonymous"
VOL = "volunteer"
GRID = "grid_staff"
COMM = "community_admin"
STREET = "street_admin"
CASHIER = "merchant_staff"
GONE = "deactivated"
ROLES = (ANON, VOL, GRID, COMM, STREET, CASHIER, GONE)
LOGGED_IN = (VOL, GRID, COMM, STREET, CASHIER)
# Who plays each role in the test street (tests.factories.build_street): all in community A,
# the cashier at the street's charity supermarket; vol_a2 is deactivated after logging in.
LOGIN_AS = {VOL: "vol_a", GRID: "staff_a", COMM: "admin_a", STREET: "street_admin", CASHIER: "cashier", GONE: "vol_a2"}

# --- the expected answers -------------------------------------------------------------------

OK = "200"  # the page
LOGIN = "login"  # 302 to the login page
FORBID = "403"
HIDDEN = "404"  # exists, but outside this person's part of the tree: not revealed
GO = "redirect"  # 302 somewhere other than the login page (a role's home, after an action)
REACHED = "reached"  # POST: the view ran (any answer but a refusal by role, CSRF or limit, or 5xx)


def only(*allowed: str, ok: str = OK, **overrides: str) -> dict[str, str]:
    """Return answers where ``allowed`` roles get ``ok``, other people 403, logged-out people login."""
    answers = {r: (ok if r in allowed else FORBID) for r in LOGGED_IN}
    answers.update({ANON: LOGIN, GONE: LOGIN})
    answers.update({k: v for k, v in overrides.items()})
    return answers


def everyone(answer: str = OK) -> dict[str, str]:
    return {r: answer for r in ROLES}


def signed_in(ok: str = OK) -> dict[str, str]:
    return only(*LOGGED_IN, ok=ok)


@dataclass
class Row:
    get: dict[str, str] | None = None
    post: dict[str, str] | None = None
    query: dict = field(default_factory=dict)


ADMINS = (COMM, STREET)
STAFF = (GRID, COMM, STREET)

# endpoint -> expected answers. The street-level objects (the charity shop, its rewards, the
# street's rules) belong to the street admin alone: a community admin gets 404 for them.
ROUTES: dict[str, Row] = {
    "static": Row(get=everyone()),
    "pwa.manifest": Row(get=everyone()),
    # for the load balancer: no login, no secrets
    "health.healthz": Row(get=everyone()),
    "health.readyz": Row(get=everyone()),
    "pwa.service_worker": Row(get=everyone()),
    "auth.index": Row(get={**signed_in(ok=GO)}),
    "auth.login": Row(get=everyone(), post=everyone(REACHED)),
    "auth.logout": Row(post=everyone(LOGIN)),  # logged out, or never logged in: the login page
    "auth.set_language": Row(post=everyone(REACHED)),
    "auth.change_password": Row(get=signed_in(), post=signed_in(ok=REACHED)),
    # everyone manages their own API tokens; someone else's token is not found
    "tokens.index": Row(get=signed_in(), post=signed_in(ok=REACHED)),
    "tokens.revoke": Row(post=only(*LOGGED_IN, ok=REACHED)),
    # volunteers
    "volunteer.home": Row(get=only(VOL)),
    "volunteer.history": Row(get=only(VOL)),
    "volunteer.claim": Row(get=only(VOL), post=only(VOL, ok=REACHED)),
    "volunteer.claims_list": Row(get=only(VOL)),
    "volunteer.claim_photo": Row(get=only(VOL)),
    "volunteer.rewards": Row(get=only(VOL)),
    "volunteer.redeem": Row(post=only(VOL, ok=REACHED)),
    "volunteer.vouchers_list": Row(get=only(VOL)),
    "volunteer.voucher": Row(get=only(VOL)),
    "volunteer.cancel_voucher": Row(post=only(VOL, ok=REACHED)),
    "volunteer.voucher_status_json": Row(get=only(VOL)),
    "volunteer.reward_picture": Row(get=signed_in()),  # a reward's picture is no secret
    # grid staff (and admins, who are staff of their subtree too)
    "staff.queue": Row(get=only(*STAFF)),
    "staff.approve": Row(post=only(*STAFF, ok=REACHED)),
    "staff.approve_selected": Row(post=only(*STAFF, ok=REACHED)),
    "staff.reject": Row(post=only(*STAFF, ok=REACHED)),
    "staff.claim_photo": Row(get=only(*STAFF)),
    "staff.attendance": Row(get=only(*STAFF), post=only(*STAFF, ok=REACHED)),
    # the batch page shows only the recorder's own batches
    "staff.attendance_done": Row(get=only(*STAFF, **{COMM: HIDDEN, STREET: HIDDEN})),
    # settlement: the charity shop is the street's, so its cashier and the street admin read its
    # statement; everyone else is told it does not exist
    "settlement.index": Row(get=only(CASHIER, *ADMINS)),
    "settlement.statement": Row(get=only(CASHIER, STREET, **{VOL: HIDDEN, GRID: HIDDEN, COMM: HIDDEN})),
    "settlement.statement_print": Row(get=only(CASHIER, STREET, **{VOL: HIDDEN, GRID: HIDDEN, COMM: HIDDEN})),
    "settlement.statement_xlsx": Row(get=only(CASHIER, STREET, **{VOL: HIDDEN, GRID: HIDDEN, COMM: HIDDEN})),
    "settlement.close": Row(post=only(*ADMINS, ok=REACHED, **{COMM: HIDDEN})),
    "settlement.payment": Row(post=only(*ADMINS, ok=REACHED, **{COMM: HIDDEN})),
    "settlement.rates": Row(get=only(STREET), post=only(STREET, ok=REACHED)),
    # reports and spreadsheets: admins, over their own subtree
    "reports.index": Row(get=only(*ADMINS)),
    "reports.download": Row(get=only(*ADMINS)),
    "sheets.index": Row(get=only(*ADMINS)),
    "sheets.template": Row(get=only(*ADMINS)),
    "sheets.import_file": Row(post=only(*ADMINS, ok=REACHED)),
    "sheets.export": Row(get=only(*ADMINS)),
    "volunteer.statement": Row(get=only(VOL)),
    "volunteer.statement_xlsx": Row(get=only(VOL)),
    # admins
    "admin.home": Row(get=only(*ADMINS)),
    "admin.rules_list": Row(get=only(*ADMINS)),
    "admin.rule_new": Row(get=only(*ADMINS), post=only(*ADMINS, ok=REACHED)),
    "admin.rule_edit": Row(get=only(*ADMINS, **{COMM: HIDDEN}), post=only(*ADMINS, ok=REACHED)),
    "admin.merchants": Row(get=only(*ADMINS)),
    "admin.merchant_new": Row(get=only(*ADMINS), post=only(*ADMINS, ok=REACHED)),
    "admin.merchant": Row(get=only(*ADMINS, **{COMM: HIDDEN})),
    "admin.cashier_new": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.reward_new": Row(get=only(*ADMINS, **{COMM: HIDDEN}), post=only(*ADMINS, ok=REACHED)),
    "admin.person_revoke": Row(post=only(*ADMINS, ok=GO)),
    "admin.reward_picture": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.reward_edit": Row(get=only(*ADMINS, **{COMM: HIDDEN}), post=only(*ADMINS, ok=REACHED)),
    "admin.people_list": Row(get=only(*ADMINS)),
    "admin.person_new": Row(get=only(*ADMINS), post=only(*ADMINS, ok=REACHED)),
    "admin.person": Row(get=only(*ADMINS)),
    "admin.person_active": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.person_details": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.person_move": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.person_grant": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.person_reset_password": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.person_ledger": Row(get=only(*ADMINS)),
    "admin.reverse": Row(post=only(*ADMINS, ok=REACHED)),
    "admin.org": Row(get=only(*ADMINS), post=only(*ADMINS, ok=REACHED)),
    "admin.audit_log": Row(get=only(*ADMINS)),
    # cashiers
    "merchant.redeem": Row(get=only(CASHIER)),
    "merchant.lookup": Row(post=only(CASHIER, ok=REACHED)),
    "merchant.confirm": Row(post=only(CASHIER, ok=REACHED)),
    "merchant.today": Row(get=only(CASHIER)),
    # deductions: the same staff who record attendance
    "staff.deduction": Row(get=only(*STAFF), post=only(*STAFF, ok=REACHED)),
    # budgets and the liability view: admins, over their own street or community
    "budgets.index": Row(get=only(*ADMINS)),
    "budgets.funding": Row(post=only(*ADMINS, ok=REACHED)),
    "budgets.download": Row(get=only(*ADMINS)),
    # check-in events: staff of the event's subtree (community A's first grid); the QR code's
    # URL is for volunteers, and a logged-out scanner with a fresh code is sent to log in
    "events.index": Row(get=only(*STAFF)),
    "events.new": Row(get=only(*STAFF), post=only(*STAFF, ok=REACHED)),
    "events.show": Row(get=only(*STAFF)),
    "events.code": Row(get=only(*STAFF)),
    "events.add_attendee": Row(post=only(*STAFF, ok=REACHED)),
    "events.close": Row(post=only(*STAFF, ok=GO)),
    # the walk closes the event before it reaches the edit page, which then sends staff back to it
    "events.edit": Row(get=only(*STAFF, ok=GO), post=only(*STAFF, ok=REACHED)),
    "events.mine": Row(get=only(VOL)),
    "events.checkin": Row(get=only(VOL), post=only(VOL, ok=REACHED)),
    # public notice: the board and the objection form need no login (the matrix's claim is not
    # on notice, so its objection page is not found for anyone); staff resolve objections
    "notice.index": Row(get=everyone()),
    "notice.object_to": Row(get=everyone(HIDDEN), post=everyone(REACHED)),
    "staff.notices": Row(get=only(*STAFF)),
    "staff.resolve_objection": Row(post=only(*STAFF, ok=REACHED)),
    "admin.notice_setting": Row(post=only(*ADMINS, ok=REACHED)),
    # honour rolls: volunteers (their own grid, community, street) and staff (their subtrees)
    "honours.index": Row(get=only(VOL, *STAFF)),
    "honours.print_roll": Row(get=only(VOL, *STAFF)),
    "honours.download": Row(get=only(VOL, *STAFF)),
    "honours.display": Row(post=only(VOL, ok=REACHED)),
}

# --- the JSON API ---------------------------------------------------------------------------
# Each API view documents its roles (``@doc(roles=...)``, published in the OpenAPI document) and
# enforces them separately in its body; these rows check that the two agree. Anonymous and
# deactivated callers get 401; a documented role reaches the view (which may still answer 404
# for an object outside its subtree, or 422 for the empty body); any other role gets 403.
API_ANON = "401"
API_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def api_only(*allowed: str) -> dict[str, str]:
    answers = {r: (REACHED if r in allowed else FORBID) for r in LOGGED_IN}
    answers.update({ANON: API_ANON, GONE: API_ANON})
    return answers


def _api_rows() -> dict[str, Row]:
    from pointsapp.api import views

    rows = {}
    for name, view in vars(views).items():
        documented = getattr(view, "_api_doc", None)
        if documented is None or not callable(view):
            continue
        answers = api_only(*documented["roles"])
        rows[f"api.{name}"] = Row(get=answers, post=answers)  # the walk uses the route's own methods
    return rows


ROUTES.update(_api_rows())
ROUTES.update({
    # the published document and its reading page are public
    "api.openapi": Row(get=everyone()),
    "api.docs": Row(get=everyone()),
})

# Writes that take away what later routes need run last: revoking or deactivating vol_a, logging out.
LAST = ("admin.person_active", "admin.person_revoke", "api.person_revoke", "auth.logout")


def url_args(w) -> dict:
    """Return a value for each URL argument: objects of community A / the charity supermarket."""
    return {
        "filename": "app.css",
        "code": "en",
        "user_id": w.street.vol_a.id,
        "activity_id": w.claim.id,
        "voucher_id": w.voucher.id,
        "reward_id": w.street.rice.id,
        "merchant_id": w.street.shop.id,
        "rule_id": w.street.meeting.id,
        "transfer_id": w.credit.id,
        "batch_key": w.batch_key,
        "grant_id": w.street.vol_a.grants("volunteer")[0].id,
        "token_id": w.token.id,
        "fmt": "xlsx",
        "what": "people",
        "key": "points_by_month",
        "event_id": w.event.id,
        "token": checkin.current_token(w.event.id),
        "objection_id": 1,
        "unit_id": w.street.community_a.id,
    }


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (30, 90, 200)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def world(street, monkeypatch):
    """The street, plus a claim with a photo, a voucher, a credit and a recorded batch of vol_a."""
    w = SimpleNamespace(street=street)
    give_points(street, street.vol_a, 50)
    w.credit = db.session.scalar(select(Transfer).order_by(Transfer.id.desc()))
    w.voucher = vouchers.issue_voucher(street.vol_a, street.rice.id).voucher
    w.claim = claims.submit_claim(
        street.vol_a, rule_id=street.meeting.id, activity_date=yesterday(), note="楼栋会议",
        photo_name=uploads.store_photo(jpeg_bytes()),
    )
    w.batch_key = "matrix-batch"
    w.token, _secret = tokens.create_token(street.vol_a, name="matrix")
    claims.record_attendance(
        street.staff_a, rule_id=street.meeting.id, activity_date=local_today(),
        volunteer_ids=[street.vol_a.id], batch_key=w.batch_key,
    )
    # A check-in event now; its code stays the same for the whole walk (an hour per slot).
    monkeypatch.setattr(checkin, "SLOT_SECONDS", 3600)
    start = now_utc() - timedelta(minutes=5)
    w.event = checkin.create_event(
        street.staff_a, title="楼道清洁", rule_id=street.meeting.id, org_unit_id=street.grid_a.id,
        place="1号楼", starts_at=start, ends_at=start + timedelta(hours=2),
    )
    db.session.commit()
    return w


def build_url(app, rule, args: dict, endpoint: str) -> str:
    missing = [a for a in rule.arguments if a not in args]
    assert not missing, f"{endpoint}: add a value for {missing} to url_args() in {__name__}"
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **{a: args[a] for a in rule.arguments})


def classify(resp) -> str:
    """Name the answer the way the table does."""
    if resp.status_code in (301, 302, 303):
        return LOGIN if "/login" in resp.headers.get("Location", "") else GO
    return str(resp.status_code)


def matches(expected: str, resp, method: str) -> bool:
    got = classify(resp)
    if expected == REACHED:
        return got not in (LOGIN, FORBID, "400", "429") and resp.status_code < 500
    return got == expected


POST_FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.I | re.S)


def page_problems(path: str, resp) -> list[str]:
    """Return what is wrong with a response's headers and, for an HTML page, its markup."""
    found = []
    expected_headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }
    for name, value in expected_headers.items():
        if resp.headers.get(name) != value:
            found.append(f"{path}: header {name} is {resp.headers.get(name)!r}")
    csp = resp.headers.get("Content-Security-Policy", "")
    if not csp or "'unsafe-inline'" in csp or "frame-ancestors 'none'" not in csp and "default-src 'none'" not in csp:
        found.append(f"{path}: weak or missing Content-Security-Policy {csp!r}")
    if "camera=(self)" not in resp.headers.get("Permissions-Policy", ""):
        found.append(f"{path}: Permissions-Policy does not keep the camera to this site")
    if resp.mimetype == "text/html":
        body = resp.get_data(as_text=True)
        for name, pattern in INLINE_PATTERNS.items():
            hit = pattern.search(body)
            if hit:
                found.append(f"{path}: {name} {body[max(0, hit.start() - 40):hit.end() + 40]!r}")
        for form in POST_FORM.findall(body):
            if 'name="csrf_token"' not in form:
                found.append(f"{path}: a POST form without a CSRF token")
    return found


def login_as(client, role: str, w) -> None:
    if role == ANON:
        return
    page = client.get("/login")
    resp = client.post(
        "/login", data={"username": LOGIN_AS[role], "password": "correct-horse-1", "csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    assert resp.status_code == 302, f"could not log in as {role}"
    if role == GONE:
        people.set_active(w.street.street_admin, w.street.vol_a2.id, False)
        db.session.commit()


def test_every_route_is_in_the_table(app):
    missing = []
    for rule in app.url_map.iter_rules():
        row = ROUTES.get(rule.endpoint)
        if row is None:
            missing.append(f"{rule.endpoint} ({rule.rule})")
            continue
        for method, answers in (("GET", row.get), ("POST", row.post)):
            methods = {method} if method == "GET" else set(API_WRITES)
            if methods & rule.methods and answers is None:
                missing.append(f"{rule.endpoint} {method}")
            elif answers is not None and set(answers) != set(ROLES):
                missing.append(f"{rule.endpoint} {method}: answers for {sorted(set(ROLES) - set(answers))}")
    assert not missing, (
        "routes without expected answers; add them to ROUTES in tests/web/test_authorisation_matrix.py: "
        + ", ".join(missing)
    )
    stale = set(ROUTES) - {r.endpoint for r in app.url_map.iter_rules()}
    assert not stale, f"ROUTES names endpoints the app no longer has: {sorted(stale)}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_expected_answer_from_every_route(app, client, world, role):
    login_as(client, role, world)
    args = url_args(world)
    wrong, page_faults = [], []
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in LAST, r.endpoint))
    for rule in rules:
        row = ROUTES.get(rule.endpoint)
        if row is None:
            continue  # reported by test_every_route_is_in_the_table
        path = build_url(app, rule, args, rule.endpoint)
        if row.get is not None and "GET" in rule.methods:
            # A built address may carry its own query (a static file's version): keep it.
            bare, _, built = path.partition("?")
            resp = client.get(bare, query_string={**dict(parse_qsl(built)), **(row.query or {})})
            if not matches(row.get[role], resp, "GET"):
                wrong.append(f"GET {path}: expected {row.get[role]}, got {classify(resp)}")
            page_faults += page_problems(f"GET {path}", resp)
        if row.post is not None and "POST" in rule.methods and not rule.endpoint.startswith("api."):
            token = csrf_from(client.get("/login").get_data(as_text=True))
            resp = client.post(path, data={"csrf_token": token})
            if not matches(row.post[role], resp, "POST"):
                wrong.append(f"POST {path}: expected {row.post[role]}, got {classify(resp)}")
            page_faults += page_problems(f"POST {path}", resp)
        if row.post is not None and rule.endpoint.startswith("api."):
            for method in sorted(set(API_WRITES) & rule.methods):
                # A browser session calling the API: its CSRF token in the header, as the API asks.
                token = csrf_from(client.get("/login").get_data(as_text=True))
                headers = {"X-CSRFToken": token, "Idempotency-Key": f"matrix-{role}-{rule.endpoint}-{method}"}
                resp = client.open(path, method=method, json={}, headers=headers)
                if not matches(row.post[role], resp, method):
                    wrong.append(f"{method} {path}: expected {row.post[role]}, got {classify(resp)}")
                page_faults += page_problems(f"{method} {path}", resp)
    assert not wrong, f"{role}: " + "; ".join(wrong)
    assert not page_faults, f"{role}: " + "; ".join(page_faults)


def test_every_post_route_refuses_a_request_without_a_csrf_token(app, client, world, check_ledger):
    login_as(client, STREET, world)
    before = ledger_state()
    audit_before = db.session.scalar(select(func.count()).select_from(AuditRecord))
    args = url_args(world)
    posted = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        path = build_url(app, rule, args, rule.endpoint)
        resp = client.post(path, data={"reason": "x", "code": "ABCD-EFGH", "active": "0", "name": "x"})
        if rule.endpoint == "auth.login":  # logged in already: sent home, nothing done
            assert resp.status_code == 302 and resp.headers["Location"] == "/", resp.status_code
            continue
        assert resp.status_code == 400, f"POST {path} without a CSRF token answered {resp.status_code}"
        posted.append(rule.endpoint)
    assert "auth.logout" in posted and "merchant.confirm" in posted and "admin.reverse" in posted
    assert ledger_state() == before
    assert db.session.scalar(select(func.count()).select_from(AuditRecord)) == audit_before
    assert client.get("/admin/").status_code == 200  # the token-less logout did not log out
    check_ledger()


def test_error_pages_and_static_files_carry_the_security_headers(client, street):
    for path in ("/no-such-page", "/static/app.css", "/login"):
        resp = client.get(path)
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["Referrer-Policy"] == "same-origin", path
        assert resp.headers["Permissions-Policy"].startswith("camera=(self)"), path
    resp = client.post("/login", data={"username": "x"})  # no token: refused, still with headers
    assert resp.status_code == 400 and resp.headers["X-Frame-Options"] == "DENY"
