"""Claims with evidence photos (multipart/form-data), who may see a photo, and a merchant's cashiers."""
import io

from PIL import Image
from sqlalchemy import func, select

from pointsapp.domain import people, rules, uploads
from pointsapp.extensions import db
from pointsapp.models import Activity
from tests.factories import rule_terms, yesterday


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _photo_rule(street):
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="清理楼道", name_en="Clean the stairs", requires_photo=True))
    db.session.commit()
    return rule


def _claims() -> int:
    return db.session.scalar(select(func.count()).select_from(Activity))


def test_a_volunteer_claims_with_a_photo_and_owner_and_staff_in_scope_see_it(api_as, street):
    rule = _photo_rule(street)
    v = api_as("vol_a")
    resp = v.post_form("/me/claims", {"rule_id": str(rule.id), "activity_date": yesterday().isoformat(),
                                      "note": "楼道", "photo": (io.BytesIO(png_bytes()), "stairs.png")})
    assert resp.status_code == 201, resp.json
    assert resp.json["status"] == "pending" and resp.json["note"] == "楼道"
    act = db.session.get(Activity, resp.json["id"])
    assert act.photo_path.endswith(".jpg") and uploads.photo_path(act.photo_path) is not None

    own = v.get(f"/me/claims/{act.id}/photo")
    assert own.status_code == 200 and own.mimetype == "image/jpeg"
    assert own.data[:2] == b"\xff\xd8"  # re-encoded as JPEG
    assert own.headers["Cache-Control"] == "private, no-store"
    staff = api_as("staff_a").get(f"/claims/{act.id}/photo")
    assert staff.status_code == 200 and staff.data == own.data
    assert api_as("admin_a").get(f"/claims/{act.id}/photo").status_code == 200

    # Another volunteer, staff of another community, a cashier: nothing.
    assert api_as("vol_a2").get(f"/me/claims/{act.id}/photo").status_code == 404
    other = api_as("staff_b").get(f"/claims/{act.id}/photo")
    assert other.status_code == 404 and other.json["code"] == "not_found"
    assert api_as("cashier").get(f"/claims/{act.id}/photo").status_code == 403
    assert api_as("vol_a").get(f"/claims/{act.id}/photo").status_code == 403


def test_the_same_multipart_claim_sent_twice_with_one_key_is_recorded_once(api_as, street):
    rule = _photo_rule(street)
    v = api_as("vol_a")
    before = _claims()
    body = lambda: {"rule_id": str(rule.id), "activity_date": yesterday().isoformat(),  # noqa: E731
                    "photo": (io.BytesIO(png_bytes()), "a.png")}
    first = v.post_form("/me/claims", body(), key="photo-claim-1")
    again = v.post_form("/me/claims", body(), key="photo-claim-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.json["id"] == first.json["id"]
    assert _claims() == before + 1
    different = {**body(), "note": "别的"}
    assert v.post_form("/me/claims", different, key="photo-claim-1").status_code == 422


def test_a_claim_without_the_photo_its_rule_needs_or_with_a_bad_file_is_refused(api_as, street):
    rule = _photo_rule(street)
    v = api_as("vol_a")
    before = _claims()
    stored_before = set(uploads.upload_dir().glob("*.jpg"))
    no_photo = v.post("/me/claims", {"rule_id": rule.id, "activity_date": yesterday().isoformat()})
    assert no_photo.status_code == 422 and no_photo.json["code"] == "invalid_input"
    assert "photo" in no_photo.json["fields"]
    missing = v.post_form("/me/claims", {"rule_id": str(rule.id), "activity_date": yesterday().isoformat()})
    assert missing.status_code == 422 and "photo" in missing.json["fields"]
    as_text = v.post_form("/me/claims", {"rule_id": str(rule.id), "activity_date": yesterday().isoformat(),
                                         "photo": "not a file"})
    assert as_text.status_code == 422 and "photo" in as_text.json["fields"]
    not_image = v.post_form("/me/claims", {"rule_id": str(rule.id), "activity_date": yesterday().isoformat(),
                                           "photo": (io.BytesIO(b"%PDF-1.4 nope"), "x.pdf")})
    assert not_image.status_code == 422 and "photo" in not_image.json["fields"]
    # A refused claim leaves no photo behind: the rule's date check fails after the photo is stored.
    future = v.post_form("/me/claims", {"rule_id": str(rule.id), "activity_date": "2999-01-01",
                                        "photo": (io.BytesIO(png_bytes()), "a.png")})
    assert future.status_code == 422, future.json
    assert _claims() == before
    assert set(uploads.upload_dir().glob("*.jpg")) == stored_before


def test_a_claim_without_a_photo_answers_404_for_its_photo(api_as, pending_claim):
    resp = api_as("vol_a").get(f"/me/claims/{pending_claim.id}/photo")
    assert resp.status_code == 404 and resp.json["code"] == "not_found"


def test_admins_over_a_merchant_list_its_cashiers(api_as, street):
    resp = api_as("street_admin").get(f"/merchants/{street.shop.id}/cashiers")
    assert resp.status_code == 200
    assert [(p["username"], p["full_name"]) for p in resp.json] == [("cashier", "钱收银")]
    assert resp.json[0]["roles"] == [{"role": "merchant_staff", "org_unit_id": None, "merchant_id": street.shop.id}]
    added = api_as("street_admin").post(f"/merchants/{street.shop.id}/cashiers",
                                        {"username": "cashier3", "full_name": "郑收银", "password": "correct-horse-3"}, key=None)
    assert added.status_code == 201
    again = api_as("street_admin").get(f"/merchants/{street.shop.id}/cashiers")
    assert [p["username"] for p in again.json] == ["cashier", "cashier3"]
    # A community admin does not manage the street-level merchant; others are not admins at all.
    assert api_as("admin_a").get(f"/merchants/{street.shop.id}/cashiers").status_code == 404
    assert api_as("cashier").get(f"/merchants/{street.shop.id}/cashiers").status_code == 403
    assert api_as("vol_a").get(f"/merchants/{street.shop.id}/cashiers").status_code == 403
    assert api_as("street_admin").get("/merchants/999999/cashiers").status_code == 404


def test_an_admin_sets_a_rewards_picture_and_everyone_can_see_it(api_as, street):
    a = api_as("street_admin")
    assert a.get(f"/rewards/{street.rice.id}/picture").status_code == 404  # none yet
    resp = a.client.put(f"/api/v1/rewards/{street.rice.id}/picture", content_type="multipart/form-data",
                        data={"picture": (io.BytesIO(png_bytes()), "rice.png")}, headers=a._headers())
    assert resp.status_code == 200, resp.json
    assert resp.json["id"] == street.rice.id and resp.json["name"] == "大米 5kg"
    seen = api_as("vol_a").get(f"/rewards/{street.rice.id}/picture")
    assert seen.status_code == 200 and seen.mimetype == "image/jpeg" and seen.data[:2] == b"\xff\xd8"
    as_json = a.client.put(f"/api/v1/rewards/{street.rice.id}/picture", json={}, headers=a._headers())
    assert as_json.status_code == 422 and "picture" in as_json.json["fields"]
    bad = a.client.put(f"/api/v1/rewards/{street.rice.id}/picture", content_type="multipart/form-data",
                       data={"picture": (io.BytesIO(b"GIF89a-not-really"), "x.gif")}, headers=a._headers())
    assert bad.status_code == 422 and bad.json["code"] == "invalid_input"
    other = api_as("admin_a")  # not over the street's merchant
    refused = other.client.put(f"/api/v1/rewards/{street.rice.id}/picture", content_type="multipart/form-data",
                               data={"picture": (io.BytesIO(png_bytes()), "x.png")}, headers=other._headers())
    assert refused.status_code == 404
    cashier = api_as("cashier")
    assert cashier.client.put(f"/api/v1/rewards/{street.rice.id}/picture", content_type="multipart/form-data",
                              data={"picture": (io.BytesIO(png_bytes()), "x.png")},
                              headers=cashier._headers()).status_code == 403


def test_an_admin_takes_a_role_away_and_resets_a_password(api_as, street):
    a = api_as("admin_a")
    grant = next(g for g in street.vol_a2.roles)
    gave = a.post(f"/people/{street.vol_a2.id}/roles", {"role": "grid_staff", "org_unit_id": street.grid_a.id}, key=None)
    assert gave.status_code == 201
    staff_grant = next(g for g in db.session.get(type(street.vol_a2), street.vol_a2.id).roles if g.role == "grid_staff")
    taken = a.delete(f"/people/{street.vol_a2.id}/roles/{staff_grant.id}")
    assert taken.status_code == 200, taken.json
    assert [r["role"] for r in taken.json["roles"]] == ["volunteer"]
    assert grant.role == "volunteer"
    assert api_as("admin_b").delete(f"/people/{street.vol_a2.id}/roles/{grant.id}").status_code == 404
    assert api_as("staff_a").delete(f"/people/{street.vol_a2.id}/roles/{grant.id}").status_code == 403

    reset = a.post(f"/people/{street.vol_a2.id}/password", key=None)
    assert reset.status_code == 201, reset.json
    assert reset.json["person"]["id"] == street.vol_a2.id and len(reset.json["temporary_password"]) >= 8
    db.session.expire_all()
    assert people.authenticate("vol_a2", reset.json["temporary_password"]).id == street.vol_a2.id
    assert street.vol_a2.must_change_password is True
    assert api_as("admin_b").post(f"/people/{street.vol_a2.id}/password", key=None).status_code == 404
    assert api_as("vol_a").post(f"/people/{street.vol_a2.id}/password", key=None).status_code == 403


def test_an_admin_pages_through_the_audit_log_of_their_subtree(api_as, street, pending_claim):
    api_as("staff_a").post(f"/claims/{pending_claim.id}/approve")
    a = api_as("admin_a")
    resp = a.get("/audit", limit=100)
    assert resp.status_code == 200
    actions = [r["action"] for r in resp.json["items"]]
    assert "claim.approved" in actions
    ids = [r["id"] for r in resp.json["items"]]
    assert ids == sorted(ids, reverse=True)
    assert all(r["org_path"].startswith(street.community_a.path) for r in resp.json["items"])
    b_actions = [r for r in api_as("admin_b").get("/audit", limit=100).json["items"] if r["action"] == "claim.approved"]
    assert b_actions == []
    assert api_as("staff_a").get("/audit").status_code == 403
