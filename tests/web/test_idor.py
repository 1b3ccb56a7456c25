"""Insecure direct object references: changing an id in a URL or a form never reaches someone
else's people, claims, vouchers, history or photos."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from pointsapp.domain import claims, uploads, vouchers
from pointsapp.extensions import db
from pointsapp.models import Activity, Transfer, User, Voucher
from tests.factories import give_points, yesterday
from tests.unit.helpers import ledger_state
from tests.web.conftest import page_text


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def b_side(street):
    """Community B's things: vol_b's pending claim with a photo, points, a voucher and a credit."""
    give_points(street, street.vol_b, 40)
    credit = db.session.scalar(select(Transfer).order_by(Transfer.id.desc()))
    claim = claims.submit_claim(
        street.vol_b, rule_id=street.meeting.id, activity_date=yesterday(), photo_name=uploads.store_photo(jpeg())
    )
    issued = vouchers.issue_voucher(street.vol_b, street.rice.id)
    db.session.commit()
    return {"claim": claim.id, "credit": credit.id, "voucher": issued.voucher.id, "code": issued.code, "token": issued.token}


def test_staff_of_community_a_cannot_see_or_decide_community_bs_claims(street, client, login, b_side, check_ledger):
    for who in ("staff_a", "admin_a"):
        auth = login(who)
        assert f"/staff/claims/{b_side['claim']}/" not in client.get("/staff/").get_data(as_text=True)
        assert client.get(f"/staff/claims/{b_side['claim']}/photo").status_code == 404
        before = ledger_state()
        assert auth.post(f"/staff/claims/{b_side['claim']}/approve").status_code == 404
        assert auth.post(f"/staff/claims/{b_side['claim']}/reject", {"reason": "not here"}).status_code == 404
        assert ledger_state() == before
        assert db.session.get(Activity, b_side["claim"]).status == "pending"
    check_ledger()


def test_staff_of_community_a_cannot_record_points_for_community_bs_volunteers(street, client, login):
    auth = login("staff_a")
    before = ledger_state()
    resp = auth.post(
        "/staff/attendance",
        {"rule_id": street.meeting.id, "activity_date": yesterday().isoformat(), "volunteer_ids": [street.vol_b.id],
         "batch_key": "idor-batch"},
        token_from="/staff/attendance",
    )
    assert resp.status_code == 422  # vol_b is not among the choices offered
    assert ledger_state() == before


def test_admin_of_community_a_cannot_see_or_act_on_community_bs_people(street, client, login, b_side, check_ledger):
    auth = login("admin_a")
    vol_b = street.vol_b.id
    assert "孙丽" not in page_text(client.get("/admin/people?q=孙"))
    for path in (f"/admin/people/{vol_b}", f"/admin/people/{vol_b}/ledger"):
        assert client.get(path).status_code == 404, path
    before = ledger_state()
    for path, data in (
        (f"/admin/people/{vol_b}/active", {"active": "0"}),
        (f"/admin/people/{vol_b}/password", {}),
        (f"/admin/people/{vol_b}/roles", {"role": "grid_staff", "org_unit_id": street.grid_a.id}),
        (f"/admin/people/{vol_b}/transfers/{b_side['credit']}/reverse", {"reason": "taken back"}),
        # vol_a's URL with vol_b's transfer: the transfer must belong to the person in the URL
        (f"/admin/people/{street.vol_a.id}/transfers/{b_side['credit']}/reverse", {"reason": "taken back"}),
    ):
        assert auth.post(path, data).status_code == 404, path
    db.session.expire_all()
    person = db.session.get(User, vol_b)
    assert person.is_active and not person.must_change_password and len(person.roles) == 1
    assert ledger_state() == before
    check_ledger()


def test_merchant_a_cannot_look_up_or_confirm_merchant_bs_voucher(street, client, login, b_side, check_ledger):
    auth = login("cashier2")  # works at the 12349 platform; the voucher is for the charity supermarket
    before = ledger_state()
    for path in ("/merchant/lookup", "/merchant/confirm"):
        for text in (b_side["code"], b_side["token"]):
            resp = auth.post(path, {"code": text}, token_from="/merchant/")
            assert resp.status_code == 403, (path, resp.status_code)
        # Naming the other merchant in the form does not help: it is not theirs.
        resp = auth.post(path, {"code": b_side["code"], "merchant_id": street.shop.id}, token_from="/merchant/")
        assert resp.status_code in (403, 422)
    assert ledger_state() == before
    assert db.session.get(Voucher, b_side["voucher"]).status == "issued"
    check_ledger()


def test_a_volunteer_cannot_see_another_volunteers_history_vouchers_qr_or_photos(street, client, login, b_side):
    auth = login("vol_a")
    v = b_side["voucher"]
    assert client.get(f"/volunteer/vouchers/{v}").status_code == 404
    assert client.get(f"/volunteer/claims/{b_side['claim']}/photo").status_code == 404
    assert auth.post(f"/volunteer/vouchers/{v}/cancel").status_code == 404
    assert db.session.get(Voucher, v).status == "issued"
    for path in ("/volunteer/", "/volunteer/history", "/volunteer/vouchers", "/volunteer/claims"):
        body = client.get(path).get_data(as_text=True)
        assert f"/volunteer/vouchers/{v}" not in body and f"/claims/{b_side['claim']}/" not in body, path
    history = page_text(client.get("/volunteer/history"))
    assert "奖励40" not in history  # vol_b's credit


def test_photos_are_sent_as_inline_jpeg_with_a_safe_name_and_no_sniffing(street, client, login, b_side):
    login("vol_b")
    resp = client.get(f"/volunteer/claims/{b_side['claim']}/photo")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"] == f"inline; filename=claim-{b_side['claim']}.jpg"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'"
    assert "no-store" in resp.headers["Cache-Control"]
    assert resp.data[:3] == b"\xff\xd8\xff"
