"""A volunteer's API: balance, history, claims, rewards and vouchers."""
from sqlalchemy import select

from pointsapp.domain import vouchers
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import Activity
from tests.factories import balance, give_points, yesterday


def test_volunteer_sees_balance_and_history_of_their_own_account(api_as, street, check_ledger):
    give_points(street, street.vol_a, 50)
    v = api_as("vol_a")
    resp = v.get("/me/balance")
    assert resp.status_code == 200
    assert resp.json == {"balance": 50, "held": 0, "available": 50, "earned": 50, "expiring_soon": 0,
                         "expiring_first_date": None, "lifetime_hours": "0",
                         "year": local_today().year, "year_earned": 50, "year_hours": "0"}
    history = v.get("/me/history")
    assert history.status_code == 200
    assert [(e["amount"], e["balance_after"], e["kind"]) for e in history.json["items"]] == [(50, 50, "credit")]
    assert history.json["next_cursor"] is None
    check_ledger()


def test_history_pages_through_every_entry_once_each_with_its_own_transfer(api_as, street, issued_voucher):
    """Entries and their transfers come from one joined statement: each item carries its own
    transfer's kind and ids, and cursors walk the pages without a gap or a repeat."""
    # issued_voucher credited 50 and holds 10 for rice; three more credits, then the redemption.
    for amount in (7, 11, 13):
        give_points(street, street.vol_a, amount)
    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    v = api_as("vol_a")
    items, cursor, pages = [], None, 0
    while True:
        page = v.get("/me/history", limit=2, **({"cursor": cursor} if cursor else {})).json
        pages += 1
        assert len(page["items"]) <= 2
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [e["amount"] for e in items] == [-10, 13, 11, 7, 50]
    assert [e["kind"] for e in items] == ["capture", "credit", "credit", "credit", "credit"]
    assert [e["balance_after"] for e in items] == [71, 81, 68, 57, 50]
    assert items[0]["activity_id"] is None and items[0]["voucher_id"] is not None
    credited = {a.id: a.points_credited for a in db.session.scalars(select(Activity))}
    assert [credited[e["activity_id"]] for e in items[1:]] == [13, 11, 7, 50]
    assert all(e["voucher_id"] is None for e in items[1:])
    assert len({e["transfer_id"] for e in items}) == 5
    assert all(e["reverses"] is None for e in items)



def test_a_correction_in_the_history_names_the_transfer_it_reverses(api_as, street, issued_voucher, check_ledger):
    from pointsapp.domain import claims
    from pointsapp.models import Transfer

    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    claims.reverse_transfer(street.street_admin, capture.id, "商品未领取")
    db.session.commit()
    correction, redemption, credit = api_as("vol_a").get("/me/history").json["items"]
    assert (correction["kind"], correction["amount"], correction["reason"]) == ("reversal", 10, "商品未领取")
    assert correction["reverses"] == {"transfer_id": capture.id, "kind": "capture", "reason": capture.reason,
                                      "created_at": redemption["created_at"]}
    assert correction["voucher_id"] == redemption["voucher_id"] == issued_voucher.voucher.id
    assert redemption["reverses"] is None and credit["reverses"] is None
    # Admins' list of ledger entries says the same.
    [listed] = [e for e in api_as("street_admin").get("/ledger-entries").json["items"] if e["kind"] == "reversal"]
    assert listed["reverses"] == correction["reverses"]
    check_ledger()


def test_staff_without_a_volunteer_role_gets_403_for_a_balance(api_as):
    resp = api_as("staff_a").get("/me/balance")
    assert resp.status_code == 403
    assert resp.json["code"] == "forbidden"


def test_volunteer_submits_a_claim_that_waits_for_approval(api_as, street):
    v = api_as("vol_a")
    resp = v.post("/me/claims", {"rule_id": street.meeting.id, "activity_date": yesterday().isoformat(), "note": "楼栋会议"})
    assert resp.status_code == 201, resp.json
    assert resp.json["status"] == "pending"
    assert resp.json["points_requested"] == 10
    assert resp.json["rule_name_en"] == "Attend a meeting"
    listed = v.get("/me/claims").json["items"]
    assert [c["id"] for c in listed] == [resp.json["id"]]


def test_a_claim_with_a_bad_field_gets_422_with_a_message_per_field(api_as, street):
    resp = api_as("vol_a").post("/me/claims", {"rule_id": "ten", "activity_date": "yesterday", "colour": "red"})
    assert resp.status_code == 422
    assert resp.json["code"] == "validation_error"
    assert set(resp.json["fields"]) == {"rule_id", "activity_date", "colour"}
    assert db.session.query(Activity).count() == 0


def test_a_claim_the_domain_refuses_names_the_field(api_as, street):
    resp = api_as("vol_a").post("/me/claims", {"rule_id": street.patrol.id, "activity_date": yesterday().isoformat(), "hours": 0.7})
    assert resp.status_code == 422
    assert resp.json["code"] == "invalid_input"
    assert "hours" in resp.json["fields"]


def test_a_body_that_is_not_json_gets_400(api_as, street):
    v = api_as("vol_a")
    resp = v.client.post("/api/v1/vouchers", data="{nope", content_type="application/json",
                         headers={"Authorization": f"Bearer {v.secret}", "Idempotency-Key": "k1"})
    assert resp.status_code == 400
    assert resp.json["code"] == "invalid_json"


def test_json_nested_past_any_sensible_depth_gets_400_not_500(api_as, street):
    v = api_as("vol_a")
    deep = "[" * 1000 + "]" * 1000  # 2 KB
    for path in ("/vouchers", "/me/claims"):  # idempotent: the body is hashed before it is read
        resp = v.client.post("/api/v1" + path, data=deep, content_type="application/json",
                             headers={"Authorization": f"Bearer {v.secret}", "Idempotency-Key": f"deep{path}"})
        assert (resp.status_code, resp.json["code"]) == (400, "invalid_json"), resp.json
    resp = api_as("cashier").client.post("/api/v1/redemptions/lookup", data=deep, content_type="application/json",
                                         headers={"Authorization": f"Bearer {api_as('cashier').secret}"})
    assert (resp.status_code, resp.json["code"]) == (400, "invalid_json")


def test_volunteer_redeems_a_reward_and_cancels_the_voucher(api_as, street, check_ledger):
    give_points(street, street.vol_a, 50)
    v = api_as("vol_a")
    rewards = v.get("/rewards").json
    assert {r["name"] for r in rewards} == {"大米 5kg", "上门理发"}
    issued = v.post("/vouchers", {"reward_id": street.rice.id})
    assert issued.status_code == 201
    assert issued.json["status"] == "issued" and issued.json["points"] == 10
    assert issued.json["token"].startswith("PV1-") and len(issued.json["code"]) == 9
    assert v.get("/me/balance").json.items() >= {"balance": 50, "held": 10, "available": 40, "earned": 50,
                                                 "expiring_soon": 0, "expiring_first_date": None}.items()
    shown = v.get(f"/vouchers/{issued.json['id']}")
    assert shown.json["code"] == issued.json["code"]
    cancelled = v.post(f"/vouchers/{issued.json['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "cancelled"
    assert cancelled.json["token"] is None and cancelled.json["code"] is None
    assert balance(street.vol_a).available == 50
    again = v.post(f"/vouchers/{issued.json['id']}/cancel")
    assert again.status_code == 409
    assert again.json["code"] == "voucher_cancelled"
    check_ledger()


def test_redeeming_without_enough_points_is_refused_with_a_code(api_as, street):
    resp = api_as("vol_a").post("/vouchers", {"reward_id": street.rice.id})
    assert resp.status_code == 409
    assert resp.json["code"] == "insufficient_points"
    assert resp.json["message"]


def test_another_volunteers_voucher_is_not_found(api_as, street):
    give_points(street, street.vol_a, 50)
    issued = api_as("vol_a").post("/vouchers", {"reward_id": street.rice.id}).json
    resp = api_as("vol_b").get(f"/vouchers/{issued['id']}")
    assert resp.status_code == 404
    assert api_as("vol_b").post(f"/vouchers/{issued['id']}/cancel").status_code == 404


def test_rules_for_me_lists_the_rules_that_apply_today(api_as, street):
    resp = api_as("vol_a").get("/me/rules")
    assert resp.status_code == 200
    assert {r["name_en"] for r in resp.json} == {"Attend a meeting", "Patrol"}


def test_error_messages_follow_accept_language(api_as, street):
    v = api_as("vol_a")
    zh = v.post("/vouchers", {"reward_id": street.rice.id})
    en = v.client.post("/api/v1/vouchers", json={"reward_id": street.rice.id},
                       headers={"Authorization": f"Bearer {v.secret}", "Idempotency-Key": "en-1", "Accept-Language": "en"})
    assert zh.json["code"] == en.json["code"] == "insufficient_points"
    assert en.json["message"].startswith("Not enough points") and zh.json["message"] != en.json["message"]


def test_claims_filter_by_date_range(api_as, street):
    from datetime import timedelta

    v = api_as("vol_a")
    made = v.post("/me/claims", {"rule_id": street.meeting.id, "activity_date": yesterday().isoformat()}).json
    today = local_today()
    assert [c["id"] for c in v.get("/me/claims", **{"from": today.isoformat()}).json["items"]] == [made["id"]]
    assert v.get("/me/claims", to=(today - timedelta(days=1)).isoformat()).json["items"] == []
    bad = v.get("/me/claims", **{"from": today.isoformat(), "to": (today - timedelta(days=3)).isoformat()})
    assert bad.status_code == 422 and "to" in bad.json["fields"]


def test_dates_far_outside_the_calendar_are_422_not_500(api_as, street):
    v = api_as("vol_a")
    for params in ({"to": "9999-12-31"}, {"from": "0001-01-01"}):
        resp = v.get("/me/claims", **params)
        assert resp.status_code == 422, params
        assert resp.json["code"] == "validation_error"


def test_a_volunteer_without_an_account_yet_reads_zero_and_no_entries_and_nothing_is_written(app, street):
    """The balance and history GETs only read (READ ONLY on PostgreSQL): for a volunteer whose
    account does not exist yet (data from before accounts were made with the role) they answer
    zeros and an empty page instead of creating the account."""
    from sqlalchemy import func, select

    from pointsapp.models import Account
    from tests.api.conftest import ApiClient, make_token
    from tests.factories import person

    newcomer = person("no_account_yet", street.unit_a)
    db.session.commit()
    db.session.execute(Account.__table__.delete().where(Account.__table__.c.user_id == newcomer.id))
    db.session.commit()
    api = ApiClient(app.test_client(), make_token(newcomer))
    balance = api.get("/me/balance")
    assert balance.status_code == 200, balance.get_json()
    body = balance.get_json()
    assert (body["balance"], body["held"], body["available"], body["earned"], body["expiring_soon"]) == (0, 0, 0, 0, 0)
    history = api.get("/me/history")
    assert history.status_code == 200, history.get_json()
    assert history.get_json()["items"] == []
    assert db.session.scalar(select(func.count()).select_from(Account).where(Account.user_id == newcomer.id)) == 0


def test_field_messages_are_in_the_requests_language(api_as, street):
    v = api_as("vol_a")
    missing = v.post("/vouchers", {})
    assert missing.status_code == 422 and missing.json["fields"] == {"reward_id": ["缺少必填数据。"]}
    wrong = v.post("/vouchers", {"reward_id": "大米", "extra": 1})
    assert wrong.json["fields"] == {"reward_id": ["不是有效的整数。"], "extra": ["未知字段。"]}
    out_of_range = v.post("/vouchers", {"reward_id": 0})
    assert out_of_range.json["fields"] == {"reward_id": ["必须在 1 到 2147483647 之间。"]}
    english = v.client.post("/api/v1/vouchers", json={"reward_id": 0}, headers={
        "Authorization": f"Bearer {v.secret}", "Idempotency-Key": "en-1", "Accept-Language": "en"})
    assert english.json["fields"] == {"reward_id": ["Must be from 1 to 2147483647."]}


def test_every_listed_field_message_is_what_marshmallow_writes():
    from marshmallow import Schema, fields, validate

    from pointsapp.api.field_messages import FIXED, PATTERNS

    written = set(Schema._default_error_messages.values())
    for cls in (fields.Field, fields.String, fields.Integer, fields.Number, fields.Boolean, fields.Date,
                fields.List, fields.Nested, fields.Dict, fields.Decimal):
        written |= {m for m in cls.default_error_messages.values() if "{" not in m}
    written |= {fields.DateTime.default_error_messages["invalid"].format(obj_type="datetime"),
                fields.AwareDateTime.default_error_messages["invalid_awareness"].format(
                    awareness="aware", obj_type="datetime")}
    assert written <= set(FIXED), sorted(written - set(FIXED))
    said = [validate.Range(1, 9)._format_error(5, validate.Range(1, 9).message_all),
            validate.Range(1)._format_error(0, validate.Range(1).message_min),
            validate.Range(max=9)._format_error(10, validate.Range(max=9).message_max),
            validate.Length(2, 9)._format_error("x", validate.Length.message_all),
            validate.Length(equal=3)._format_error("x", validate.Length.message_equal),
            validate.Length(max=9)._format_error("x", validate.Length.message_max),
            validate.Length(min=2)._format_error("x", validate.Length.message_min),
            validate.OneOf(["a", "b"])._format_error("c")]
    for message in said:
        assert any(p.fullmatch(message) for p, _ in PATTERNS), message
