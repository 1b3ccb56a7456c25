"""Merchant pages: look up and confirm vouchers at the till, wrong-code limits, today's list."""
from __future__ import annotations

import re

from pointsapp.domain import people, vouchers
from pointsapp.extensions import db
from pointsapp.models import Voucher
from pointsapp.models.user import ROLE_MERCHANT_STAFF
from tests.factories import balance, give_points, person
from tests.web.conftest import hidden_inputs, page_text, use_english


def status_of(voucher_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Voucher, voucher_id).status


def test_cashier_looks_up_a_code_and_sees_reward_points_and_masked_name(street, client, login, auth, issued_voucher):
    use_english(client)
    login("cashier")
    typed = vouchers.format_code(issued_voucher.code).lower()  # as read aloud, in any case
    resp = auth.post("/merchant/lookup", {"code": typed})
    assert resp.status_code == 200
    text = page_text(resp)
    assert "Valid voucher" in text and "大米 5kg" in text and "10 points · for 张*华" in text
    assert "张秀华" not in text
    body = resp.get_data(as_text=True)
    confirm_form = body[body.index('action="/merchant/confirm"'):]
    assert f'name="code" value="{typed}"' in confirm_form
    assert status_of(issued_voucher.voucher.id) == "issued"  # looking up changes nothing


def test_the_qr_token_works_like_the_typed_code(street, client, login, auth, issued_voucher):
    use_english(client)
    login("cashier")
    resp = auth.post("/merchant/lookup", {"code": issued_voucher.token})
    assert resp.status_code == 200 and "Valid voucher" in page_text(resp)


def test_confirming_redeems_once_and_a_second_confirm_is_refused(
    street, client, login, auth, issued_voucher, check_ledger
):
    use_english(client)
    login("cashier")
    resp = auth.post("/merchant/confirm", {"code": issued_voucher.code})
    assert resp.status_code == 302
    assert "Redeemed: hand over 大米 5kg to 张*华. 10 points taken." in page_text(client.get(resp.headers["Location"]))
    assert status_of(issued_voucher.voucher.id) == "redeemed"
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (40, 0, 50)

    # The same cashier again (the answer to their confirm was lost): told it was theirs, a
    # moment ago, and that the goods may still be on the counter. Nothing is taken twice.
    again = auth.post("/merchant/confirm", {"code": issued_voucher.code})
    assert again.status_code == 409
    text = verdict(again)
    assert "Already redeemed by you" in text and "Do not hand over" not in text
    assert re.search(r"You redeemed this voucher at \d{2}:\d{2}: 大米 5kg for 张\*华; points taken: 10\. "
                     r"If you have not handed the goods over yet, hand them over now\. Do not redeem it again\.", text)
    scanned = auth.post("/merchant/lookup", {"code": issued_voucher.token})  # scanned again: the same
    assert scanned.status_code == 409 and "Already redeemed by you" in page_text(scanned)
    assert balance(street.vol_a).balance == 40

    # Another cashier of the same shop (a second till): do not hand over.
    person("cashier_b", None, roles=(ROLE_MERCHANT_STAFF,), merchant=street.shop, full_name="郑收银")
    db.session.commit()
    auth.logout()
    login("cashier_b")
    other = auth.post("/merchant/confirm", {"code": issued_voucher.code})
    text = verdict(other)
    assert other.status_code == 409, text
    assert "Do not hand over" in text and "Already redeemed by you" not in text, text
    assert re.search(r"Already redeemed at \d{4}-\d{2}-\d{2} \d{2}:\d{2} by 友谊慈善超市 \(cashier: 钱收银\)", text)
    assert balance(street.vol_a).balance == 40
    check_ledger()


def test_cashier_of_another_merchant_cannot_confirm_the_voucher(street, client, login, auth, issued_voucher, check_ledger):
    use_english(client)
    login("cashier2")
    resp = auth.post("/merchant/confirm", {"code": issued_voucher.code})
    assert resp.status_code == 403
    assert "This voucher is for 友谊慈善超市, not for this merchant." in page_text(resp)
    assert status_of(issued_voucher.voucher.id) == "issued"
    assert balance(street.vol_a).held == 10
    check_ledger()


def test_unknown_code_is_refused_with_404(street, client, login, auth, issued_voucher):
    use_english(client)
    login("cashier")
    resp = auth.post("/merchant/lookup", {"code": "ZZZZ-ZZZZ"})
    assert resp.status_code == 404
    assert "Unknown code." in page_text(resp)
    # The typed code stays in its box, to be checked and corrected.
    assert code_box(resp) == "ZZZZ-ZZZZ"


def verdict(resp) -> str:
    """The text of the till's verdict (the result section), without the rest of the page."""
    match = re.search(r'<section class="result[^"]*" id="result".*?</section>', resp.get_data(as_text=True), re.S)
    return page_text_of(match.group(0)) if match else ""


def page_text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def code_box(resp) -> str:
    """The value of the page's code input (the one the cashier types into)."""
    box = re.search(r'<input[^>]*id="code"[^>]*>', resp.get_data(as_text=True)).group(0)
    return re.search(r'value="([^"]*)"', box).group(1)


def test_a_refused_scan_leaves_the_code_box_empty(street, client, login, auth, issued_voucher, check_ledger):
    use_english(client)
    login("cashier")
    assert auth.post("/merchant/confirm", {"code": issued_voucher.token}).status_code == 302
    again = auth.post("/merchant/lookup", {"code": issued_voucher.token})
    assert again.status_code == 409 and "Already redeemed by you" in page_text(again)
    assert code_box(again) == ""  # a scanned token is no use to correct by hand
    check_ledger()


def test_empty_code_is_a_field_error(street, client, login, auth):
    use_english(client)
    login("cashier")
    resp = auth.post("/merchant/lookup", {"code": ""})
    assert resp.status_code == 422
    assert "Scan or type a code." in page_text(resp)


def test_the_eleventh_wrong_code_in_a_minute_is_refused_but_right_codes_work_before(
    street, client, login, auth, issued_voucher
):
    use_english(client)
    login("cashier")
    token = auth.csrf()
    wrong = [f"ZZZZ-ZZ{c}{d}" for c in "ABC" for d in "0123"]

    def post(path, code, who_token=token):
        return client.post(path, data={"code": code, "csrf_token": who_token})

    for code in wrong[:9]:
        assert post("/merchant/lookup", code).status_code == 404
    # Right codes are not counted: the cashier keeps working.
    assert post("/merchant/lookup", issued_voucher.code).status_code == 200
    assert post("/merchant/lookup", issued_voucher.code).status_code == 200
    assert post("/merchant/confirm", wrong[9]).status_code == 404  # the tenth, at confirm: one budget
    blocked = post("/merchant/lookup", wrong[10])
    assert blocked.status_code == 429
    # Said on the till itself, which still scans.
    assert ("Too many unknown codes were typed in a minute. Wait a minute before typing a code again; "
            "scanning QR codes still works.") in verdict(blocked)
    assert "Please wait" in verdict(blocked) and "Do not hand over" not in verdict(blocked)
    assert 'id="code"' in blocked.get_data(as_text=True)
    assert post("/merchant/confirm", issued_voucher.code).status_code == 429
    assert status_of(issued_voucher.voucher.id) == "issued"
    # A scanned QR token cannot be guessed: it is never held back.
    assert post("/merchant/lookup", issued_voucher.token).status_code == 200
    assert post("/merchant/confirm", issued_voucher.token).status_code == 302
    assert status_of(issued_voucher.voucher.id) == "redeemed"

    # The limit is per cashier account, not per merchant or per address.
    login("cashier2")
    assert auth.post("/merchant/lookup", {"code": wrong[11]}).status_code == 404


def test_todays_redemptions_list_what_was_redeemed(street, client, login, auth, issued_voucher):
    use_english(client)
    login("cashier")
    assert auth.post("/merchant/confirm", {"code": issued_voucher.code}).status_code == 302
    resp = client.get("/merchant/today")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "1 voucher, 10 points." in text
    assert f"{issued_voucher.voucher.id} 大米 5kg 10 张*华 钱收银" in text  # the number to quote
    assert "Redeemed one by mistake? Note its voucher number and ask the street or community office" in text
    login("cashier2")
    assert "0 vouchers, 0 points." in page_text(client.get("/merchant/today"))
    assert client.get(f"/merchant/today?merchant_id={street.shop.id}").status_code == 200
    assert "大米 5kg" not in page_text(client.get(f"/merchant/today?merchant_id={street.shop.id}"))


def test_a_reversed_redemption_is_marked_and_left_out_of_the_days_total(
    street, client, login, auth, issued_voucher, check_ledger
):
    from pointsapp.domain import claims
    from pointsapp.models import Transfer

    use_english(client)
    give_points(street, street.vol_a, 20)
    second = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    login("cashier")
    for code in (issued_voucher.code, second.code):
        assert auth.post("/merchant/confirm", {"code": code}).status_code == 302
    capture = db.session.scalar(db.select(Transfer).where(Transfer.voucher_id == issued_voucher.voucher.id))
    claims.reverse_transfer(street.street_admin, capture.id, "收银错误，未交货")
    db.session.commit()
    text = page_text(client.get("/merchant/today"))
    assert "1 voucher, 10 points." in text  # the reversed one is not counted
    assert text.count("张*华 钱收银") == 2  # both listed
    assert text.count("Reversed by an admin: the points went back to the volunteer") == 1
    check_ledger()


def test_cashier_of_two_merchants_chooses_where_they_are(street, client, login, auth, issued_voucher, check_ledger):
    people.grant_role(None, street.cashier, ROLE_MERCHANT_STAFF, merchant=street.other_shop)
    db.session.commit()
    login("cashier")
    page = client.get("/merchant/")
    body = page.get_data(as_text=True)
    assert '<select id="merchant_id" name="merchant_id"' in body
    assert "友谊慈善超市" in body and "12349便民为老服务平台" in body

    at_other = auth.post("/merchant/confirm", {"code": issued_voucher.code, "merchant_id": street.other_shop.id})
    assert at_other.status_code == 403
    assert status_of(issued_voucher.voucher.id) == "issued"
    at_shop = auth.post("/merchant/confirm", {"code": issued_voucher.code, "merchant_id": street.shop.id})
    assert at_shop.status_code == 302
    assert status_of(issued_voucher.voucher.id) == "redeemed"
    check_ledger()


def test_cashier_cannot_pretend_to_work_at_a_merchant_that_is_not_theirs(street, client, login, auth, issued_voucher):
    login("cashier2")
    resp = auth.post("/merchant/confirm", {"code": issued_voucher.code, "merchant_id": street.shop.id})
    assert resp.status_code == 422
    assert status_of(issued_voucher.voucher.id) == "issued"


def test_single_merchant_cashier_gets_no_selector(street, client, login):
    login("cashier")
    resp = client.get("/merchant/")
    assert "<select" not in resp.get_data(as_text=True)
    assert hidden_inputs(resp)["merchant_id"] == str(street.shop.id)


def test_voucher_of_a_deactivated_volunteer_is_refused(street, client, login, auth, issued_voucher):
    use_english(client)
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    login("cashier")
    resp = auth.post("/merchant/confirm", {"code": issued_voucher.code})
    assert resp.status_code == 403
    assert ("This volunteer's account is deactivated, so the voucher cannot be used. Do not hand over goods; "
            "the volunteer can ask their community office.") in page_text(resp)
    assert status_of(issued_voucher.voucher.id) == "issued"


def test_confirm_without_csrf_token_is_refused(street, client, login, issued_voucher):
    login("cashier")
    assert client.post("/merchant/confirm", data={"code": issued_voucher.code}).status_code == 400
    assert status_of(issued_voucher.voucher.id) == "issued"


def test_volunteers_cannot_open_the_till(street, client, login, auth):
    give_points(street, street.vol_a, 10)
    login("vol_a")
    assert client.get("/merchant/").status_code == 403
    assert auth.post("/merchant/lookup", {"code": "ABCD-EFGH"}).status_code == 403


def test_without_scripts_the_till_offers_only_the_typed_code_no_dead_camera_button(street, client, login):
    login("cashier")
    body = client.get("/merchant/").get_data(as_text=True)
    scanner = re.search(r'<section class="scanner" id="scanner"[^>]*>', body).group(0)
    assert re.search(r"\shidden\s", scanner)  # scan.js shows it; no script, no button that does nothing
    assert 'id="lookup-form"' in body
    assert '<h2 id="manual-title" data-with-camera="或输入兑换码">输入兑换码</h2>' in body  # not "or": it is the only way


def test_the_voucher_number_on_todays_list_is_found_on_the_volunteers_ledger(street, client, login, auth, issued_voucher):
    """The cashier notes it; the office finds the redemption to reverse by it."""
    use_english(client)
    login("cashier")
    assert auth.post("/merchant/confirm", {"code": issued_voucher.code}).status_code == 302
    auth.logout()
    login("street_admin")
    ledger_page = page_text(client.get(f"/admin/people/{street.vol_a.id}/ledger"))
    assert f"Voucher no. {issued_voucher.voucher.id}" in ledger_page
