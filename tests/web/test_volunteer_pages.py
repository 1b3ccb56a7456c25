"""Volunteer pages: balance, history, claims (with photos), rewards and vouchers."""
from __future__ import annotations

import io
import re
from datetime import timedelta

from PIL import Image
from sqlalchemy import func, select

from pointsapp.domain import claims, rules, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Activity, Reward, Voucher
from pointsapp.web import volunteer as volunteer_views
from tests.factories import balance, give_points, rule_terms, yesterday
from tests.web.conftest import errors_at, hidden_inputs, page_text, use_english


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def claim_form(client):
    """Open the claim form and return its hidden inputs (CSRF token and submission key)."""
    resp = client.get("/volunteer/claim")
    assert resp.status_code == 200
    return hidden_inputs(resp)


def post_claim(client, hidden: dict, **data):
    payload = {"activity_date": yesterday().isoformat(), "note": "", "hours": "", **hidden, **data}
    return client.post("/volunteer/claim", data=payload, content_type="multipart/form-data")


# --- balance and history --------------------------------------------------------------------


def test_home_shows_available_points_first_then_held_and_earned(street, client, login, check_ledger):
    use_english(client)
    give_points(street, street.vol_a, 50)
    vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    login("vol_a")
    resp = client.get("/volunteer/")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert re.search(r'id="available">40<', body)
    assert re.search(r'id="held">10<', body)
    assert re.search(r'id="earned">50<', body)
    assert body.index('id="available"') < body.index('id="held"') < body.index('id="earned"')
    text = page_text(resp)
    assert f"Award 50 on {local_today().isoformat()}" in text
    for link in ("/volunteer/claim", "/volunteer/rewards", "/volunteer/vouchers"):
        assert f'href="{link}"' in body
    check_ledger()


def test_the_home_page_and_history_read_in_three_and_two_statements(street, client, login):
    """Every volunteer opens them: the person (with their roles), then on the home page one
    statement for the balance, expiring points and totals and one for the latest entries, on
    the history page one for a page of entries; however long their history."""
    from sqlalchemy import event

    for amount in (11, 12, 13, 14, 15, 16):
        give_points(street, street.vol_a, amount)
    # Corrections name the entries they correct, from the same statement.
    for amount in (12, 14):
        claims.reverse_transfer(street.street_admin, _credit_of_award(amount).id, "录入错误")
    db.session.commit()
    login("vol_a")

    def selects(path: str) -> tuple[list[str], str]:
        client.get(path)  # the first request of a process fills its caches
        statements = []

        def keep(conn, cursor, statement, params, context, executemany):
            statements.append(statement.lstrip().split()[0].upper())

        event.listen(db.engine, "before_cursor_execute", keep)
        try:
            resp = client.get(path)
        finally:
            event.remove(db.engine, "before_cursor_execute", keep)
        assert resp.status_code == 200
        return [s for s in statements if s in ("SELECT", "WITH")], resp.get_data(as_text=True)

    home, body = selects("/volunteer/")
    assert home == ["SELECT"] * 3 and 'id="available">55<' in body
    history, body = selects("/volunteer/history")
    assert history == ["SELECT"] * 2 and all(f"奖励{n}" in body for n in (11, 16))
    assert all(f"冲正：奖励{n}（{local_today().isoformat()} 获得），原因：录入错误" in body for n in (12, 14))


def _credit_of_award(amount: int):
    """The credit of the ``give_points`` award of ``amount``."""
    from pointsapp.models import PointRuleVersion, Transfer

    return db.session.scalar(
        select(Transfer).join(Activity, Activity.id == Transfer.activity_id)
        .join(PointRuleVersion, PointRuleVersion.id == Activity.rule_version_id)
        .where(Transfer.kind == "credit", PointRuleVersion.name_zh == f"奖励{amount}")
    )


def test_a_correction_in_the_history_names_the_entry_it_corrects(street, client, login, check_ledger):
    from pointsapp.domain import deductions
    from pointsapp.models import Transfer

    today = local_today().isoformat()
    give_points(street, street.vol_a, 50)
    give_points(street, street.vol_a, 30)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, issued.code)
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="乱扔垃圾", name_en="Littering", points=5, kind="deduct"))
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="楼道堆物",
                               submission_key="d1")
    db.session.commit()
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    deduction = db.session.scalar(select(Transfer).where(Transfer.kind == "deduction"))
    for transfer, why in ((_credit_of_award(30), "重复录入"), (capture, "商品未领取"), (deduction, "扣错了人")):
        claims.reverse_transfer(street.street_admin, transfer.id, why)
    db.session.commit()
    login("vol_a")
    text = page_text(client.get("/volunteer/history"))
    assert f"冲正：奖励30（{today} 获得），原因：重复录入" in text
    assert f"冲正：{today} 在友谊慈善超市兑换的大米 5kg，原因：商品未领取" in text
    assert f"冲正：{today} 的扣分（{deduction.reason}），原因：扣错了人" in text
    # The lines corrected still read as they did.
    assert f"{today} 奖励30" in text and "在友谊慈善超市兑换大米 5kg" in text
    use_english(client)
    text = page_text(client.get("/volunteer/history"))
    assert f"Correction of Award 30 (earned {today}): 重复录入" in text
    assert f"Correction of the redemption of 大米 5kg at 友谊慈善超市 on {today}: 商品未领取" in text
    assert f"Correction of the deduction of {today} ({deduction.reason}): 扣错了人" in text
    # The home page's latest entries say the same.
    assert f"Correction of Award 30 (earned {today}): 重复录入" in page_text(client.get("/volunteer/"))
    check_ledger()


def test_history_shows_reasons_signed_amounts_and_balance_after(street, client, login, issued_voucher, check_ledger):
    use_english(client)
    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    login("vol_a")
    text = page_text(client.get("/volunteer/history"))
    assert "Redeemed 大米 5kg at 友谊慈善超市 −10 40" in text
    assert f"Award 50 on {local_today().isoformat()} +50 50" in text
    check_ledger()


def test_history_pages_by_entry_id(street, client, login, monkeypatch):
    monkeypatch.setattr(volunteer_views, "PAGE_SIZE", 2)
    for amount in (11, 12, 13):
        give_points(street, street.vol_a, amount)
    login("vol_a")
    first = client.get("/volunteer/history")
    text = page_text(first)
    assert "奖励13" in text and "奖励12" in text and "奖励11" not in text
    older = re.search(r'href="(/volunteer/history\?before=\d+)"', first.get_data(as_text=True))
    assert older, "no link to older entries"
    second = client.get(older.group(1))
    text = page_text(second)
    assert "奖励11" in text and "奖励12" not in text
    assert 'href="/volunteer/history?before=' not in second.get_data(as_text=True)


def test_history_shows_only_the_volunteers_own_entries(street, client, login):
    give_points(street, street.vol_b, 77)
    login("vol_a")
    assert "奖励77" not in page_text(client.get("/volunteer/history"))


def test_other_roles_cannot_open_volunteer_pages(street, client, login):
    login("staff_a")
    assert client.get("/volunteer/").status_code == 403
    assert client.get("/volunteer/claim").status_code == 403


def test_anonymous_visitor_is_sent_to_login(street, client):
    resp = client.get("/volunteer/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


# --- claims ---------------------------------------------------------------------------------


def test_claim_form_offers_only_the_rules_the_volunteer_can_use(street, client, login):
    use_english(client)
    rules.create_rule(street.street_admin, street.street, rule_terms(name_zh="楼长例会", name_en="Building leaders' meeting", titles=["building_leader"]))
    rules.create_rule(street.admin_b, street.community_b, rule_terms(name_zh="友谊社区活动", name_en="Youyi event"))
    db.session.commit()
    login("vol_a")  # a unit leader in community A
    resp = client.get("/volunteer/claim")
    text = page_text(resp)
    assert "Attend a meeting: 10 points" in text
    assert "Patrol: 2 points per hour" in text
    assert "Building leaders' meeting" not in text and "Youyi event" not in text
    body = resp.get_data(as_text=True)
    assert re.search(rf'data-unit="hour" value="{street.patrol.id}"', body)
    assert hidden_inputs(resp)["submission_key"]


def test_each_render_of_the_claim_form_has_its_own_submission_key(street, client, login):
    login("vol_a")
    assert claim_form(client)["submission_key"] != claim_form(client)["submission_key"]


def test_volunteer_claims_a_meeting_and_sees_it_waiting(street, client, login):
    use_english(client)
    login("vol_a")
    resp = post_claim(client, claim_form(client), rule_id=street.meeting.id, note="楼栋会议")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/volunteer/claims")
    act = db.session.scalar(select(Activity).where(Activity.volunteer_id == street.vol_a.id))
    assert (act.status, act.note, act.points_requested, act.activity_date) == ("pending", "楼栋会议", 10, yesterday())
    text = page_text(client.get("/volunteer/claims"))
    assert "Your claim is waiting for approval" in text
    assert "Attend a meeting" in text and "Waiting for approval" in text


def test_claim_for_a_rule_without_approval_is_credited_at_once(street, client, login, check_ledger):
    use_english(client)
    rule = rules.create_rule(street.street_admin, street.street, rule_terms(name_zh="反映情况", name_en="Report", points=3, needs_approval=False))
    db.session.commit()
    login("vol_a")
    resp = post_claim(client, claim_form(client), rule_id=rule.id)
    assert resp.status_code == 302
    assert balance(street.vol_a).balance == 3
    assert "3 points were credited" in page_text(client.get("/volunteer/claims"))
    check_ledger()


def test_per_hour_claim_needs_hours_shown_at_the_hours_field(street, client, login):
    use_english(client)
    login("vol_a")
    resp = post_claim(client, claim_form(client), rule_id=street.patrol.id, hours="")
    assert resp.status_code == 422
    assert errors_at(resp, "hours") == ["This activity earns points by the hour: enter how many hours, e.g. 1.5."]
    resp = post_claim(client, claim_form(client), rule_id=street.patrol.id, hours="two")
    assert errors_at(resp, "hours") == ["Enter the hours as a number, e.g. 1.5."]
    resp = post_claim(client, claim_form(client), rule_id=street.patrol.id, hours="0.7")
    assert resp.status_code == 422
    assert "half an hour" in errors_at(resp, "hours")[0]
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0
    resp = post_claim(client, claim_form(client), rule_id=street.patrol.id, hours="1.5")
    assert resp.status_code == 302
    assert db.session.scalar(select(Activity.points_requested)) == 3


def test_claim_in_the_future_is_refused_at_the_date_field(street, client, login):
    use_english(client)
    login("vol_a")
    tomorrow = local_today() + timedelta(days=1)
    resp = post_claim(client, claim_form(client), rule_id=street.meeting.id, activity_date=tomorrow.isoformat())
    assert resp.status_code == 422
    assert errors_at(resp, "activity_date") == ["The date cannot be in the future."]
    # The form comes back filled in.
    assert f'selected value="{street.meeting.id}"' in resp.get_data(as_text=True)


def test_claim_for_a_rule_not_offered_is_refused(street, client, login):
    other = rules.create_rule(street.admin_b, street.community_b, rule_terms(name_zh="友谊社区活动", name_en="Youyi event"))
    db.session.commit()
    login("vol_a")
    use_english(client)  # WTForms' own messages come translated
    resp = post_claim(client, claim_form(client), rule_id=other.id)
    assert resp.status_code == 422
    assert errors_at(resp, "rule_id") == ["Not a valid choice."]
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_double_submitting_the_same_claim_form_records_it_once(street, client, login):
    use_english(client)
    login("vol_a")
    hidden = claim_form(client)
    first = post_claim(client, hidden, rule_id=street.meeting.id)
    second = post_claim(client, hidden, rule_id=street.meeting.id)
    assert first.status_code == second.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 1
    assert "nothing was recorded twice" in page_text(client.get(second.headers["Location"]))


def test_claim_without_csrf_token_is_refused(street, client, login):
    use_english(client)
    login("vol_a")
    hidden = claim_form(client)
    del hidden["csrf_token"]
    resp = post_claim(client, hidden, rule_id=street.meeting.id)
    assert resp.status_code == 400
    assert "The form expired" in page_text(resp)
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_claim_with_photo_is_served_to_owner_and_staff_in_scope_only(street, client, login):
    login("vol_a")
    resp = post_claim(client, claim_form(client), rule_id=street.meeting.id, photo=(io.BytesIO(png_bytes()), "meeting.png"))
    assert resp.status_code == 302
    act = db.session.scalar(select(Activity))
    assert act.photo_path and act.photo_path.endswith(".jpg")
    own = client.get(f"/volunteer/claims/{act.id}/photo")
    assert own.status_code == 200
    assert own.mimetype == "image/jpeg"
    assert own.headers["X-Content-Type-Options"] == "nosniff"
    assert own.data[:3] == b"\xff\xd8\xff"  # re-encoded as JPEG
    assert f"/volunteer/claims/{act.id}/photo" in client.get("/volunteer/claims").get_data(as_text=True)

    login("staff_a")
    assert f"/staff/claims/{act.id}/photo" in client.get("/staff/").get_data(as_text=True)
    assert client.get(f"/staff/claims/{act.id}/photo").status_code == 200
    login("staff_b")
    assert client.get(f"/staff/claims/{act.id}/photo").status_code == 404
    login("vol_a2")
    assert client.get(f"/volunteer/claims/{act.id}/photo").status_code == 404


def test_a_file_that_is_not_a_photo_is_refused_at_the_photo_field(street, client, login):
    use_english(client)
    login("vol_a")
    resp = post_claim(
        client, claim_form(client), rule_id=street.meeting.id, photo=(io.BytesIO(b"<script>alert(1)</script>"), "x.png")
    )
    assert resp.status_code == 422
    assert errors_at(resp, "photo") == ["This file is not a photo we can read. Upload a JPEG, PNG, WebP or GIF photo."]
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_a_phone_camera_photo_over_five_megabytes_is_taken_and_one_over_the_limit_keeps_the_note(
        app, street, client, login):
    import os

    # A photo as a phone camera saves it: noise compresses badly, so a 1,400 px PNG is about 6 MB.
    big = io.BytesIO()
    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save(big, "PNG", compress_level=0)
    assert 5 * 1024 * 1024 < len(big.getvalue()) < app.config["PHOTO_MAX_BYTES"]
    login("vol_a")
    page = client.get("/volunteer/claim")
    assert "最大 15 MB" in page_text(page)
    big.seek(0)
    resp = post_claim(client, claim_form(client), rule_id=street.meeting.id, note="楼栋会议", photo=(big, "IMG_2041.png"))
    assert resp.status_code == 302
    assert db.session.scalar(select(Activity.photo_path)).endswith(".jpg")
    # Past the limit (made small here): refused beside the photo, with the note still typed.
    app.config["PHOTO_MAX_BYTES"], before = len(png_bytes()) - 1, app.config["PHOTO_MAX_BYTES"]
    try:
        refused = post_claim(client, claim_form(client), rule_id=street.meeting.id, note="第二次会议",
                             photo=(io.BytesIO(png_bytes()), "p.png"))
    finally:
        app.config["PHOTO_MAX_BYTES"] = before
    assert refused.status_code == 422 and errors_at(refused, "photo")
    assert "第二次会议" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 1


def test_my_claims_show_the_rejection_reason(street, client, login, pending_claim):
    use_english(client)
    claims.reject_claim(street.staff_a, pending_claim.id, "那天没有会议记录")
    db.session.commit()
    login("vol_a")
    text = page_text(client.get("/volunteer/claims"))
    assert "Rejected" in text
    assert "Reason: 那天没有会议记录" in text


# --- rewards and vouchers -------------------------------------------------------------------


def test_rewards_list_shows_price_stock_and_merchant(street, client, login):
    use_english(client)
    far = vouchers.create_merchant(street.admin_b, street.community_b, name="友谊社区小卖部", kind="shop")
    vouchers.create_reward(street.admin_b, far.id, vouchers.RewardTerms(name="酱油", price=5))
    db.session.commit()
    login("vol_a")
    resp = client.get("/volunteer/rewards")
    text = page_text(resp)
    assert "大米 5kg 10 points Stock: 100 left 友谊慈善超市 友谊大街1号" in text
    assert "上门理发 20 points Stock: unlimited 12349便民为老服务平台" in text
    assert "酱油" not in text  # a merchant of the other community
    assert f'action="/volunteer/rewards/{street.rice.id}/redeem"' in resp.get_data(as_text=True)


def test_volunteer_redeems_a_reward_and_sees_the_qr_and_code(street, client, login, auth, check_ledger):
    use_english(client)
    give_points(street, street.vol_a, 30)
    login("vol_a")
    resp = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem")
    assert resp.status_code == 302
    voucher = db.session.scalar(select(Voucher))
    assert resp.headers["Location"].endswith(f"/volunteer/vouchers/{voucher.id}")
    assert (balance(street.vol_a).available, balance(street.vol_a).held) == (20, 10)
    page = client.get(resp.headers["Location"])
    body = page.get_data(as_text=True)
    assert str(volunteer_views.qr_svg(vouchers.token_for(voucher.nonce))) in body
    code = vouchers.format_code(vouchers.code_for(voucher.nonce))
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert f'id="fallback-code">{code}<' in body
    text = page_text(page)
    assert "大米 5kg" in text and "友谊慈善超市" in text and "Ready to use" in text and "Valid until" in text
    assert "大米 5kg" in page_text(client.get("/volunteer/vouchers"))
    check_ledger()


def test_the_redeem_button_sent_again_shows_the_same_voucher_and_holds_once(street, client, login, auth, check_ledger):
    """A lost answer, then Back to the page the browser kept and a second tap: the form's key."""
    give_points(street, street.vol_a, 30)
    login("vol_a")
    page = client.get("/volunteer/rewards").get_data(as_text=True)
    form = page[page.index(f'action="/volunteer/rewards/{street.rice.id}/redeem"'):]
    key = re.search(r'name="issue_key" value="([^"]+)"', form[:form.index("</form>")]).group(1)
    assert key.endswith(f"-{street.rice.id}")
    first = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem", {"issue_key": key})
    again = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem", {"issue_key": key})
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 1
    assert (balance(street.vol_a).available, balance(street.vol_a).held) == (20, 10)
    # The page opened again has new keys: a second voucher is a new tap.
    assert key not in client.get("/volunteer/rewards").get_data(as_text=True)
    check_ledger()


def _redeem_key(client, reward_id: int) -> str:
    page = client.get("/volunteer/rewards").get_data(as_text=True)
    form = page[page.index(f'action="/volunteer/rewards/{reward_id}/redeem"'):]
    return re.search(r'name="issue_key" value="([^"]+)"', form[:form.index("</form>")]).group(1)


def test_a_redeem_tap_whose_answer_was_lost_sent_again_from_the_page_opened_again_finds_its_voucher(
        street, client, login, auth, check_ledger):
    """The answer (and the session it carried) never reached the phone; Back opens the rewards
    page again, and the second tap is the first one's."""
    give_points(street, street.vol_a, 30)
    login("vol_a")
    key = _redeem_key(client, street.rice.id)
    assert _redeem_key(client, street.rice.id) == key  # the page opened again: the same key
    before = client.get_cookie("session").value
    first = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem", {"issue_key": key})
    assert first.status_code == 302
    client.set_cookie("session", before)  # the answer was lost
    again = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem",
                      {"issue_key": _redeem_key(client, street.rice.id)})
    assert again.headers["Location"] == first.headers["Location"]
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 1
    assert balance(street.vol_a).held == 10
    # Once the voucher reached the phone, the page has a new key: another tap is another voucher.
    assert _redeem_key(client, street.rice.id) != key
    check_ledger()


def test_redeeming_without_enough_points_is_refused_with_the_reason(street, client, login, auth):
    use_english(client)
    give_points(street, street.vol_a, 5)
    login("vol_a")
    resp = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem")
    assert resp.status_code == 409
    assert "Not enough points: 10 needed, 5 available." in page_text(resp)
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 0


def test_redeem_without_csrf_token_is_refused(street, client, login):
    give_points(street, street.vol_a, 30)
    login("vol_a")
    assert client.post(f"/volunteer/rewards/{street.rice.id}/redeem").status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 0


def test_volunteer_cannot_see_or_cancel_another_volunteers_voucher(street, client, login, auth, issued_voucher):
    vid = issued_voucher.voucher.id
    login("vol_a2")
    assert client.get(f"/volunteer/vouchers/{vid}").status_code == 404
    assert auth.post(f"/volunteer/vouchers/{vid}/cancel").status_code == 404
    assert issued_voucher.code not in client.get("/volunteer/vouchers").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Voucher, vid).status == "issued"


def test_cancelling_a_voucher_gives_back_the_points_and_the_stock(street, client, login, auth, issued_voucher, check_ledger):
    use_english(client)
    vid = issued_voucher.voucher.id
    login("vol_a")
    open_page = client.get(f"/volunteer/vouchers/{vid}").get_data(as_text=True)
    assert f'action="/volunteer/vouchers/{vid}/cancel"' in open_page and 'class="qr"' in open_page
    resp = auth.post(f"/volunteer/vouchers/{vid}/cancel")
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Voucher, vid).status == "cancelled"
    assert (balance(street.vol_a).available, balance(street.vol_a).held) == (50, 0)
    assert db.session.get(Reward, street.rice.id).stock == 100
    page = client.get(f"/volunteer/vouchers/{vid}")
    assert "Cancelled" in page_text(page)
    assert 'class="qr"' not in page.get_data(as_text=True) and "/cancel" not in page.get_data(as_text=True)
    check_ledger()


def test_cancelling_a_voucher_the_till_has_just_redeemed_leads_back_to_it_saying_so(
        street, client, login, auth, issued_voucher, check_ledger):
    use_english(client)
    vid = issued_voucher.voucher.id
    login("vol_a")
    client.get(f"/volunteer/vouchers/{vid}")  # the page with its cancel button is open
    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    resp = auth.post(f"/volunteer/vouchers/{vid}/cancel")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/volunteer/vouchers/{vid}")
    text = page_text(client.get(resp.headers["Location"]))
    assert "This voucher was already redeemed at" in text and "so it cannot be cancelled" in text
    assert "Redeemed" in text
    check_ledger()


def test_claim_for_a_day_before_the_rule_started_is_refused_with_the_reason(street, client, login):
    use_english(client)
    rule = rules.create_rule(
        street.street_admin, street.street, rule_terms(name_zh="新活动", name_en="New event", active_from=local_today())
    )
    db.session.commit()
    login("vol_a")
    resp = post_claim(client, claim_form(client), rule_id=rule.id, activity_date=yesterday().isoformat())
    assert resp.status_code == 422
    assert errors_at(resp, "rule_id") == ["This activity type does not apply: it is not in force on that date"]
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_when_the_server_cannot_store_photos_the_claim_comes_back_with_its_note_and_nothing_is_recorded(
        app, street, client, login):
    from pathlib import Path

    blocked = Path(app.instance_path) / "uploads"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a folder")  # as a full or read-only disk would refuse
    login("vol_a")
    resp = post_claim(client, claim_form(client), rule_id=street.meeting.id, note="楼栋会议记录",
                      photo=(io.BytesIO(png_bytes()), "p.png"))
    assert resp.status_code == 503
    body = resp.get_data(as_text=True)
    assert "服务器现在无法保存照片" in page_text(resp) and "楼栋会议记录" in body
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_a_reversed_redemption_is_said_so_on_the_voucher_the_vouchers_list_the_statement_and_its_api(
        street, client, login, auth):
    from pointsapp.models import Transfer

    use_english(client)
    give_points(street, street.vol_a, 30)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    voucher_id = issued.voucher.id
    login("vol_a")
    note = "Reversed by an admin: the points were returned."
    assert note not in page_text(client.get(f"/volunteer/vouchers/{voucher_id}"))
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    claims.reverse_transfer(street.street_admin, capture.id, "商品未领取")
    db.session.commit()
    page = client.get(f"/volunteer/vouchers/{voucher_id}")
    assert note in page_text(page) and 'class="status status-reversed"' in page.get_data(as_text=True)
    assert "Redeemed" not in page_text(page).split("大米 5kg")[0]  # the state says reversed, not redeemed
    listed = client.get("/volunteer/vouchers")
    assert note in page_text(listed) and "badge status-reversed" in listed.get_data(as_text=True)
    statement = page_text(client.get("/volunteer/statement"))
    assert re.search(r"大米 5kg Reversed by an admin: the points were returned\. 友谊慈善超市 10", statement)
    [line] = client.get("/api/v1/me/statement").get_json()["redemptions"]
    assert line["reversed"] is True and line["points"] == 10


def test_the_history_says_how_many_points_open_vouchers_hold(street, client, login, auth):
    use_english(client)
    give_points(street, street.vol_a, 30)
    login("vol_a")
    assert 'id="held-note"' not in client.get("/volunteer/history").get_data(as_text=True)
    vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    text = page_text(client.get("/volunteer/history"))
    assert '"Balance after" counts 10 points held by your open vouchers: you can spend 20. My vouchers' in text
