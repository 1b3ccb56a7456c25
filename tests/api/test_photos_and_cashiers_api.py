"""Claims with evidence photos (multipart/form-data), who may see a photo, and a merchant's cashiers."""
import io

from PIL import Image
from sqlalchemy import func, select

from pointsapp.domain import rules, uploads
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
