"""Personal API tokens: shown once, stored hashed, narrowed, revocable; sessions need CSRF."""
from datetime import timedelta

from sqlalchemy import func, select

from pointsapp.domain import tokens
from pointsapp.domain.clock import now_utc
from pointsapp.extensions import db
from pointsapp.models import ApiToken
from pointsapp.models.user import ROLE_GRID_STAFF, ROLE_VOLUNTEER
from pointsapp.domain.people import grant_role
from tests.api.conftest import ApiClient, make_token
from tests.factories import yesterday
from tests.web.conftest import page_text


def test_a_request_without_a_token_gets_401_with_a_bearer_challenge(client, street):
    resp = client.get("/api/v1/me")
    assert resp.status_code == 401
    assert resp.json["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_or_revoked_token_gets_401(app, api_as, street):
    assert ApiClient(app.test_client(), "pts_not-a-real-token").get("/me").status_code == 401
    v = api_as("vol_a")
    assert v.get("/me").status_code == 200
    token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == street.vol_a.id))
    resp = v.delete(f"/tokens/{token.id}")
    assert resp.status_code == 200 and resp.json["revoked_at"]
    assert v.get("/me").status_code == 401


def test_the_secret_is_stored_only_as_its_hash_and_shown_once(api_as, street):
    v = api_as("vol_a")
    made = v.post("/tokens", {"name": "家里的脚本"}, key=None)
    assert made.status_code == 201
    secret = made.json["secret"]
    assert secret.startswith("pts_") and len(secret) > 40
    row = db.session.get(ApiToken, made.json["token"]["id"])
    assert row.token_hash == tokens.hash_secret(secret) and secret not in (row.token_hash, row.prefix)
    listed = v.get("/tokens").get_data(as_text=True)
    assert secret not in listed and "家里的脚本" in listed


def test_last_used_time_is_recorded(app, api_as, street):
    v = api_as("vol_a")
    token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == street.vol_a.id))
    assert token.last_used_at is None
    v.get("/me")
    db.session.expire_all()
    assert now_utc() - token.last_used_at < timedelta(minutes=1)


def test_a_token_narrowed_to_one_role_cannot_use_the_others(app, street):
    grant_role(None, street.staff_a, ROLE_VOLUNTEER, unit=street.grid_a)
    db.session.commit()
    as_volunteer = ApiClient(app.test_client(), make_token(street.staff_a, role=ROLE_VOLUNTEER))
    assert as_volunteer.get("/me/balance").status_code == 200
    assert as_volunteer.get("/claims/pending").status_code == 403
    assert [r["role"] for r in as_volunteer.get("/me").json["roles"]] == ["volunteer"]
    as_staff = ApiClient(app.test_client(), make_token(street.staff_a, role=ROLE_GRID_STAFF))
    assert as_staff.get("/claims/pending").status_code == 200
    assert as_staff.get("/me/balance").status_code == 403


def test_a_token_narrowed_to_a_building_sees_only_that_building(app, street):
    from pointsapp.domain import claims

    in_building = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    narrowed = ApiClient(app.test_client(), make_token(street.admin_a, org_unit_id=street.unit_a.id))
    people = {p["username"] for p in narrowed.get("/people").json["items"]}
    assert people == {"vol_a"}
    assert [c["id"] for c in narrowed.get("/claims/pending").json["items"]] == [in_building.id]
    assert narrowed.get(f"/people/{street.vol_a2.id}").status_code == 404


def test_a_token_cannot_be_narrowed_beyond_the_owners_roles(api_as, street):
    a = api_as("admin_a")
    outside = a.post("/tokens", {"name": "x", "org_unit_id": street.building_b.id}, key=None)
    assert outside.status_code == 422 and "org_unit_id" in outside.json["fields"]
    not_mine = a.post("/tokens", {"name": "x", "role": "street_admin"}, key=None)
    assert not_mine.status_code == 422 and "role" in not_mine.json["fields"]
    not_cashier = a.post("/tokens", {"name": "x", "merchant_id": street.shop.id}, key=None)
    assert not_cashier.status_code == 422


def test_a_cashier_token_for_one_merchant(app, api_as, street, issued_voucher):
    c = ApiClient(app.test_client(), make_token(street.cashier, merchant_id=street.shop.id))
    assert c.post("/redemptions", {"code": issued_voucher.code}).status_code == 201


def test_a_deactivated_owners_tokens_stop_working(app, api_as, street):
    v = api_as("vol_a2")
    assert v.get("/me").status_code == 200
    street.vol_a2.is_active_flag = False
    db.session.commit()
    assert v.get("/me").status_code == 401


def test_a_password_change_or_reset_or_deactivation_revokes_the_persons_tokens(app, api_as, street):
    from pointsapp.domain import people

    def live(user):
        db.session.expire_all()
        return db.session.scalar(select(func.count()).select_from(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)))

    # An admin resets the password (the owner's session, or a token made with it, was stolen).
    v = api_as("vol_a")
    assert v.get("/me").status_code == 200
    people.reset_password(street.admin_a, street.vol_a.id)
    db.session.commit()
    assert v.get("/me").status_code == 401 and live(street.vol_a) == 0
    # Reactivating or setting a new password does not bring an old token back.
    people.set_password(db.session.get(type(street.vol_a), street.vol_a.id), "a-new-long-passphrase-7")
    db.session.commit()
    assert v.get("/me").status_code == 401
    # The owner changes their own password.
    a2 = api_as("vol_a2")
    assert a2.get("/me").status_code == 200
    people.set_password(street.vol_a2, "another-long-passphrase-8")
    db.session.commit()
    assert a2.get("/me").status_code == 401 and live(street.vol_a2) == 0
    # Deactivation, then reactivation.
    b = api_as("vol_b")
    people.set_active(street.admin_b, street.vol_b.id, False)
    db.session.commit()
    people.set_active(street.admin_b, street.vol_b.id, True)
    db.session.commit()
    assert b.get("/me").status_code == 401 and live(street.vol_b) == 0
    # Another person's tokens are untouched.
    assert api_as("staff_a").get("/me").status_code == 200


def test_answers_to_a_token_are_not_kept_by_a_browser_or_proxy(api_as, street):
    resp = api_as("admin_a").get("/people")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"


def test_a_token_is_refused_while_its_owner_must_change_their_password(app, api_as, street):
    v = api_as("vol_a")
    street.vol_a.must_change_password = True
    db.session.commit()
    assert v.get("/me").status_code == 401


def test_a_session_can_read_the_api_but_must_send_csrf_to_write(client, auth, street, issued_voucher):
    auth.login("cashier")
    assert client.get("/api/v1/me").json["username"] == "cashier"
    headers = {"Idempotency-Key": "s-1"}
    refused = client.post("/api/v1/redemptions", json={"code": issued_voucher.code}, headers=headers)
    assert refused.status_code == 400 and refused.json["code"] == "csrf"
    token = auth.csrf("/merchant/")
    done = client.post("/api/v1/redemptions", json={"code": issued_voucher.code}, headers={**headers, "X-CSRFToken": token})
    assert done.status_code == 201


def test_a_bearer_request_needs_no_csrf_token(api_as, street, issued_voucher):
    resp = api_as("cashier").post("/redemptions", {"code": issued_voucher.code})
    assert resp.status_code == 201


def test_the_tokens_page_creates_shows_once_and_revokes(client, auth, street):
    auth.login("vol_a")
    page = client.get("/account/tokens/")
    assert page.status_code == 200
    made = auth.post("/account/tokens/", {"name": "收银机", "role": ""}, token_from="/account/tokens/")
    assert made.status_code == 201
    text = page_text(made)
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == street.vol_a.id))
    secret = next(w for w in text.split() if w.startswith("pts_"))
    assert tokens.hash_secret(secret) == row.token_hash
    assert secret not in page_text(client.get("/account/tokens/"))
    revoked = auth.post(f"/account/tokens/{row.id}/revoke", token_from="/account/tokens/")
    assert revoked.status_code == 302
    db.session.expire_all()
    assert row.revoked_at is not None


def test_nobody_revokes_another_persons_token(client, auth, street):
    _token, _secret = tokens.create_token(street.vol_a, name="mine")
    db.session.commit()
    auth.login("vol_a2")
    resp = auth.post(f"/account/tokens/{_token.id}/revoke", token_from="/account/tokens/")
    assert resp.status_code == 404
    db.session.expire_all()
    assert _token.revoked_at is None


def test_the_docs_page_loads_only_local_assets_and_no_inline_script(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    import re

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.DOTALL)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert "http://" not in page and "https://" not in page and "style=" not in page
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_the_openapi_document_names_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    routes = {r.rule.removeprefix("/api/v1") for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")}
    import re

    documented = {re.sub(r"\{(\w+)\}", r"<int:\1>", p) for p in doc["paths"]}
    assert routes - {"/openapi.json", "/docs"} == documented
    approve = doc["paths"]["/claims/{activity_id}/approve"]["post"]
    assert any(p.get("$ref", "").endswith("IdempotencyKey") for p in approve["parameters"])


def test_a_narrowed_token_cannot_mint_a_wider_token_or_revoke_others(app, street):
    narrowed = ApiClient(app.test_client(), make_token(street.admin_a, org_unit_id=street.unit_a.id))
    resp = narrowed.post("/tokens", {"name": "wider"}, key=None)
    assert resp.status_code == 403
    other, _secret = tokens.create_token(street.admin_a, name="other")
    db.session.commit()
    assert narrowed.delete(f"/tokens/{other.id}").status_code == 403
    db.session.expire_all()
    assert other.revoked_at is None
    assert db.session.query(ApiToken).filter_by(user_id=street.admin_a.id).count() == 2


def test_a_write_records_last_use_in_its_own_transaction_at_most_once_a_minute(app, api_as, street, issued_voucher):
    from sqlalchemy import event

    c = api_as("cashier")
    token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == street.cashier.id))
    db.session.rollback()
    commits = []
    listener = lambda conn: commits.append(1)  # noqa: E731
    event.listen(db.engine, "commit", listener)
    try:
        first = c.post("/redemptions", {"code": issued_voucher.code}, key="sale-1")
    finally:
        event.remove(db.engine, "commit", listener)
    assert first.status_code == 201
    assert len(commits) == 1  # token, idempotency key, redemption and stored answer: one commit
    db.session.expire_all()
    used = db.session.get(ApiToken, token.id).last_used_at
    assert now_utc() - used < timedelta(minutes=1)
    db.session.rollback()
    assert c.post("/redemptions", {"code": issued_voucher.code}, key="sale-1").status_code == 201  # replayed
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).last_used_at == used  # not again within the minute
    assert tokens.token_use_due(used, now=used + timedelta(minutes=1))
    assert not tokens.token_use_due(used, now=used + timedelta(seconds=59))


def test_the_api_guide_names_every_endpoint_and_every_error_code(app):
    """docs/api.md lists each endpoint (``GET/POST /people``, ids as ``{id}``) and each code."""
    import re
    from pathlib import Path

    from pointsapp.domain import errors

    guide = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    listed = {(method, path) for methods, path in re.findall(r"`((?:[A-Z]+/)*[A-Z]+) (/[^`\s]*)`", guide)
              for method in methods.split("/")}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in ("/api/v1/docs", "/api/v1/openapi.json"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{grant_id}" if m.group(1) == "grant_id" else "{id}",
                      rule.rule[len("/api/v1"):])
        missing += [f"{m} {path}" for m in rule.methods - {"HEAD", "OPTIONS"} if (m, path) not in listed]
    assert missing == [], missing

    def every(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from every(sub)

    codes = {c.code for c in every(errors.PointsError)} - {errors.PointsError.code}  # the base: never answered alone
    assert {c for c in codes if f"`{c}`" not in guide} == set()
