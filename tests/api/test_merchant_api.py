"""The till integration: look a voucher up, confirm it once, list today's redemptions."""
from tests.factories import balance


def test_cashier_looks_up_and_confirms_a_voucher_seeing_only_the_masked_name(api_as, street, issued_voucher, check_ledger):
    c = api_as("cashier")
    looked = c.post("/redemptions/lookup", {"code": issued_voucher.code}, key=None)
    assert looked.status_code == 200
    assert looked.json["status"] == "issued"
    assert looked.json["volunteer_name"] == "张*华"
    body = looked.get_data(as_text=True)
    assert "张秀华" not in body and "phone" not in body and "volunteer_id" not in body
    confirmed = c.post("/redemptions", {"code": issued_voucher.token})
    assert confirmed.status_code == 201
    assert confirmed.json["status"] == "redeemed"
    assert confirmed.json["redeemed_at"]
    assert balance(street.vol_a).balance == 40
    today = c.get("/redemptions/today")
    assert [(v["id"], v["reversed"]) for v in today.json] == [(confirmed.json["id"], False)]
    check_ledger()


def test_a_reversed_redemption_is_marked_in_todays_list(api_as, street, issued_voucher, check_ledger):
    from pointsapp.domain import claims
    from pointsapp.extensions import db
    from pointsapp.models import Transfer

    c = api_as("cashier")
    confirmed = c.post("/redemptions", {"code": issued_voucher.code})
    assert confirmed.status_code == 201
    capture = db.session.scalar(db.select(Transfer).where(Transfer.voucher_id == confirmed.json["id"]))
    claims.reverse_transfer(street.street_admin, capture.id, "收银错误，未交货")
    db.session.commit()
    today = c.get("/redemptions/today")
    assert [(v["id"], v["reversed"]) for v in today.json] == [(confirmed.json["id"], True)]
    check_ledger()


def test_confirming_twice_with_new_keys_is_refused_as_already_redeemed(api_as, issued_voucher):
    c = api_as("cashier")
    assert c.post("/redemptions", {"code": issued_voucher.code}).status_code == 201
    second = c.post("/redemptions", {"code": issued_voucher.code})
    assert second.status_code == 409
    assert second.json["code"] == "voucher_already_redeemed"


def test_a_voucher_for_another_merchant_is_refused_with_wrong_merchant(api_as, issued_voucher):
    resp = api_as("other_cashier").post("/redemptions", {"code": issued_voucher.code})
    assert resp.status_code == 403
    assert resp.json["code"] == "wrong_merchant"


def test_an_unknown_code_is_404_and_wrong_codes_are_rate_limited(app, api_as, street):
    app.config["FALLBACK_CODE_LIMIT"] = "3 per minute"
    c = api_as("cashier")
    statuses = [c.post("/redemptions/lookup", {"code": "AAAA-AAAA"}, key=None).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    assert c.post("/redemptions/lookup", {"code": "AAAA-AAAA"}, key=None).json["code"] == "http_429"


def test_a_volunteer_cannot_use_the_till(api_as, issued_voucher):
    resp = api_as("vol_a2").post("/redemptions", {"code": issued_voucher.code})
    assert resp.status_code == 403
