"""Settlement (owed, statements, closing, payments, rates), reports and the yearly statement by API."""
from datetime import timedelta

from sqlalchemy import func, select

from pointsapp.domain import settlement
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import PointsRate, SettlementPayment
from tests.unit.helpers import award
from tests.unit.test_settlement import months_ago, redeem_at


def _two_months_ago(street) -> str:
    """vol_a (青山社区) and vol_b (友谊社区) each redeem rice (10 points) two months ago."""
    award(street, street.vol_a, 100)
    award(street, street.vol_b, 100)
    when = settlement.utc_start_of(months_ago(2)) + timedelta(days=3)
    redeem_at(street, street.vol_a, street.rice, when)
    redeem_at(street, street.vol_b, street.rice, when + timedelta(hours=1))
    return months_ago(2).strftime("%Y-%m")


def test_merchants_with_what_is_owed_each_reader_sees_their_own(api_as, street):
    _two_months_ago(street)
    admin = api_as("street_admin").get("/settlement/merchants")
    assert admin.status_code == 200
    assert [(m["id"], m["owed"], m["owed_fen"]) for m in admin.json] == [
        (street.shop.id, 20, 2000), (street.other_shop.id, 0, 0)]
    cashier = api_as("cashier").get("/settlement/merchants")
    assert [(m["id"], m["owed"]) for m in cashier.json] == [(street.shop.id, 20)]
    assert api_as("admin_b").get("/settlement/merchants").json == []  # no merchant in community B
    assert api_as("vol_a").get("/settlement/merchants").status_code == 403
    assert api_as("staff_a").get("/settlement/merchants").status_code == 403


def test_the_cashier_sees_masked_names_and_the_admin_full_names(api_as, street):
    month = _two_months_ago(street)
    path = f"/settlement/merchants/{street.shop.id}/statement"
    cashier = api_as("cashier").get(path, month=month)
    assert cashier.status_code == 200, cashier.json
    body = cashier.json
    assert (body["month"], body["closed"], body["closable"]) == (month, False, True)
    assert (body["opening"], body["redeemed"], body["paid"], body["closing"], body["closing_fen"]) == (0, 20, 0, 20, 2000)
    assert [(line["volunteer"], line["community"], line["points"], line["fen"]) for line in body["lines"]] == [
        ("张*华", "青山社区", 10, 1000), ("孙*", "友谊社区", 10, 1000)]
    assert "张秀华" not in cashier.get_data(as_text=True) and "孙丽" not in cashier.get_data(as_text=True)
    assert sorted((c["community"], c["points"]) for c in body["by_community"]) == [("友谊社区", 10), ("青山社区", 10)]
    assert month in body["months"]
    admin = api_as("street_admin").get(path, month=month)
    assert [line["volunteer"] for line in admin.json["lines"]] == ["张秀华", "孙丽"]
    # Another merchant's cashier, an admin elsewhere, a volunteer; and months that are not months.
    assert api_as("other_cashier").get(path).status_code == 404
    assert api_as("admin_b").get(path).status_code == 404
    assert api_as("vol_a").get(path).status_code == 403
    for bad in ("2026-13", "next", "9999-01"):
        resp = api_as("cashier").get(path, month=bad)
        assert resp.status_code == 422 and resp.json["fields"] == {"month": [resp.json["message"]]}, bad


def test_an_admin_closes_the_period_and_pays_once_per_key(api_as, street, check_ledger):
    month = _two_months_ago(street)
    a = api_as("street_admin")
    base = f"/settlement/merchants/{street.shop.id}"
    assert api_as("cashier").post(base + "/close").status_code == 403
    assert a.post(base + "/close", key=None).json["code"] == "idempotency_key_required"
    closed = a.post(base + "/close", key="close-1")
    assert closed.status_code == 201, closed.json
    assert closed.json["period_start"] == months_ago(2).isoformat() and closed.json["closing_balance"] == 20
    replay = a.post(base + "/close", key="close-1")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert [p.period_start for p in settlement.closed_periods(street.shop.id)] == [months_ago(2)]
    assert a.get(base + "/statement", month=month).json["closed"] is True

    pay = {"points": 15, "paid_on": local_today().isoformat(), "reference": "转账 01"}
    too_much = a.post(base + "/payments", {**pay, "points": 21})
    assert too_much.status_code == 409 and too_much.json["code"] == "payment_exceeds_owed"
    assert a.post(base + "/payments", pay, key=None).status_code == 400
    future = a.post(base + "/payments", {**pay, "paid_on": (local_today() + timedelta(days=1)).isoformat()})
    assert future.status_code == 422 and "paid_on" in future.json["fields"]
    assert a.post(base + "/payments", {**pay, "points": 0}).status_code == 422
    first = a.post(base + "/payments", pay, key="pay-1")
    assert first.status_code == 201, first.json
    assert (first.json["points"], first.json["fen"], first.json["reference"]) == (15, 1500, "转账 01")
    again = a.post(base + "/payments", pay, key="pay-1")
    assert again.status_code == 201 and again.json == first.json
    assert a.post(base + "/payments", {**pay, "points": 5}, key="pay-1").status_code == 422
    assert db.session.scalar(select(func.count()).select_from(SettlementPayment)) == 1
    db.session.expire_all()
    assert settlement.owed(street.shop.id) == 5
    assert api_as("admin_a").post(base + "/payments", pay).status_code == 404  # not over the street's merchant
    assert api_as("cashier").post(base + "/payments", pay).status_code == 403
    check_ledger()


def test_the_street_admin_lists_and_sets_the_rate_from_tomorrow(api_as, street):
    a = api_as("street_admin")
    rates = a.get("/settlement/rates")
    assert rates.status_code == 200
    assert rates.json == {"street_id": street.street.id, "street_name": "友谊街道", "current_fen_per_point": 100,
                          "rates": []}
    tomorrow = local_today() + timedelta(days=1)
    today = a.post("/settlement/rates", {"effective_from": local_today().isoformat(), "yuan_per_point": "0.50"})
    assert today.status_code == 422 and "effective_from" in today.json["fields"]
    bad = a.post("/settlement/rates", {"effective_from": tomorrow.isoformat(), "yuan_per_point": "abc"})
    assert bad.status_code == 422 and bad.json["code"] == "invalid_input"
    ok = a.post("/settlement/rates", {"effective_from": tomorrow.isoformat(), "yuan_per_point": "0.50"})
    assert ok.status_code == 201, ok.json
    assert ok.json["rates"] == [{"effective_from": tomorrow.isoformat(), "fen_per_point": 50}]
    assert ok.json["current_fen_per_point"] == 100  # today keeps its value
    assert db.session.scalar(select(func.count()).select_from(PointsRate)) == 1
    assert api_as("admin_a").get("/settlement/rates").status_code == 403
    assert api_as("admin_a").post("/settlement/rates", {"effective_from": tomorrow.isoformat(),
                                                        "yuan_per_point": "2"}).status_code == 403
    # A street admin's token narrowed to a community is not over the street.
    narrowed = api_as("street_admin", org_unit_id=street.community_a.id)
    assert narrowed.get("/settlement/rates").status_code == 403


def test_reports_as_json_for_a_subtree_and_months(api_as, street):
    _two_months_ago(street)
    a = api_as("street_admin")
    first, last = months_ago(2).strftime("%Y-%m"), local_today().strftime("%Y-%m")
    resp = a.get("/reports", org_unit_id=street.street.id, first=first, last=last)
    assert resp.status_code == 200, resp.json
    tables = {t["key"]: t for t in resp.json["tables"]}
    assert list(tables) == list(settlement_report_keys())
    assert (resp.json["first"], resp.json["last"]) == (first, last)
    by_month = tables["points_by_month"]
    assert [row[0] for row in by_month["rows"]] == [months_ago(2).strftime("%Y-%m"), months_ago(1).strftime("%Y-%m"), last]
    assert len(by_month["headers"]) == len(by_month["rows"][0])
    rewards = a.get("/reports", org_unit_id=street.street.id, first=first, last=last, key="rewards_redeemed")
    assert [t["key"] for t in rewards.json["tables"]] == ["rewards_redeemed"]
    assert any("大米 5kg" in row and 2 in row for row in rewards.json["tables"][0]["rows"])
    # A community admin reports on their community only; the range is checked.
    assert api_as("admin_a").get("/reports", org_unit_id=street.street.id).status_code == 404
    assert api_as("admin_a").get("/reports").json["org_unit_id"] == street.community_a.id
    backwards = a.get("/reports", first=last, last=first)
    assert backwards.status_code == 422 and "last" in backwards.json["fields"]
    assert a.get("/reports", first="2026-1x").status_code == 422
    assert a.get("/reports", key="nope").status_code == 422
    assert api_as("staff_a").get("/reports").status_code == 403
    assert api_as("cashier").get("/reports").status_code == 403


def settlement_report_keys():
    from pointsapp.domain.reports import REPORT_KEYS

    return REPORT_KEYS


def test_the_volunteer_reads_their_yearly_statement(api_as, street):
    _two_months_ago(street)
    v = api_as("vol_a")
    year = months_ago(2).year
    resp = v.get("/me/statement", year=year)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["year"] == year and body["spent"] == 10
    assert body["opening"] + body["earned"] + body["corrected"] - body["spent"] - body["points_expired"] \
        - body["deducted"] == body["closing"]
    assert [(r["reward"], r["merchant"], r["points"]) for r in body["redemptions"]] == [("大米 5kg", "友谊慈善超市", 10)]
    this_year = v.get("/me/statement")
    assert this_year.json["year"] == local_today().year
    empty = v.get("/me/statement", year=2001).json
    assert (empty["opening"], empty["earned"], empty["closing"], empty["redemptions"]) == (0, 0, 0, [])
    assert v.get("/me/statement", year=1999).status_code == 422
    assert api_as("cashier").get("/me/statement").status_code == 403


def test_the_yearly_statement_adds_up_with_deducted_and_expired_points(api_as, street, check_ledger):
    """Every figure that moves the balance is in the answer: the closing balance follows from them."""
    import secrets

    from pointsapp.cli import expire_points
    from pointsapp.domain import deductions, ledger, rules
    from tests.factories import balance, rule_terms

    today = local_today()
    award(street, street.vol_a, 50)
    ledger.credit(ledger.issuance_account(street.street), ledger.account_for_volunteer(street.vol_a), 7,
                  reason="旧积分", cause_key="old", earned_on=today, expires_on=today)
    db.session.commit()
    assert expire_points(today + timedelta(days=1)).points == 7
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="楼道堆物", name_en="Clutter", points=20, kind="deduct"))
    db.session.commit()
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="楼道堆物",
                               submission_key=secrets.token_hex(8))
    body = api_as("vol_a").get("/me/statement").json
    assert (body["deducted"], body["points_expired"], body["expired_points"]) == (20, 7, 0)
    assert body["closing"] == balance(street.vol_a).balance == 30
    assert body["opening"] + body["earned"] + body["corrected"] - body["spent"] - body["points_expired"] \
        - body["deducted"] == body["closing"]
    check_ledger()


def test_a_reversed_redemption_is_marked_in_the_list_and_the_export_and_left_out_of_the_report(
        api_as, client, auth, street, check_ledger):
    import io

    from openpyxl import load_workbook

    from pointsapp.domain import claims, reports, vouchers
    from pointsapp.models import Transfer

    award(street, street.vol_a, 100)
    for _ in range(2):
        issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
        vouchers.confirm_redemption(street.cashier, issued.code)
        db.session.commit()
    undone = db.session.scalar(select(Transfer).where(Transfer.kind == "capture").order_by(Transfer.id.desc()))
    claims.reverse_transfer(street.street_admin, undone.id, "收银误操作")
    db.session.commit()

    items = api_as("street_admin").get("/redemptions").json["items"]
    assert sorted((r["voucher_id"], r["reversed"]) for r in items) == sorted(
        [(undone.voucher_id, True), (next(r["voucher_id"] for r in items if r["voucher_id"] != undone.voucher_id), False)])
    r = reports.make_range(street.street_admin, street.street, local_today(), local_today())
    assert reports.rewards_redeemed(r).rows == [["大米 5kg", "友谊慈善超市", 1, 10]]
    auth.login("street_admin")
    wb = load_workbook(io.BytesIO(client.get("/sheets/export/redemptions.xlsx").data))
    rows = [list(row) for row in wb.active.iter_rows(values_only=True)]
    assert rows[0][-1] == "更正时间"
    reversed_at = {row[0]: row[-1] for row in rows[1:]}
    assert reversed_at[undone.voucher_id] is not None and sum(v is None for v in reversed_at.values()) == 1
    check_ledger()


def test_admins_page_through_the_ledger_entries_and_redemptions_of_their_subtree(api_as, street):
    _two_months_ago(street)
    a = api_as("admin_a")
    entries = a.get("/ledger-entries")
    assert entries.status_code == 200, entries.json
    assert {e["volunteer_name"] for e in entries.json["items"]} == {"张秀华"}  # community A only
    assert sorted(e["amount"] for e in entries.json["items"]) == [-10, 100]
    ids = [e["id"] for e in entries.json["items"]]
    assert ids == sorted(ids, reverse=True)
    street_wide = api_as("street_admin").get("/ledger-entries", limit=1)
    seen, cursor = [], None
    while True:
        page = api_as("street_admin").get("/ledger-entries", limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page.json["items"]]
        cursor = page.json["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 4 and street_wide.json["items"][0]["id"] == seen[0]
    assert api_as("street_admin").get("/ledger-entries", org_unit_id=street.community_b.id).json["items"][0][
        "volunteer_name"] == "孙丽"
    assert a.get("/ledger-entries", org_unit_id=street.community_b.id).status_code == 404

    reds = api_as("street_admin").get("/redemptions")
    assert reds.status_code == 200
    assert [(r["volunteer_name"], r["reward_name"], r["merchant_name"], r["points"]) for r in reds.json["items"]] == [
        ("孙丽", "大米 5kg", "友谊慈善超市", 10), ("张秀华", "大米 5kg", "友谊慈善超市", 10)]
    mine = a.get("/redemptions")
    assert [r["volunteer_name"] for r in mine.json["items"]] == ["张秀华"]
    later = api_as("street_admin").get("/redemptions", **{"from": local_today().isoformat()})
    assert later.json["items"] == []
    assert api_as("cashier").get("/redemptions").status_code == 403
    assert api_as("staff_a").get("/ledger-entries").status_code == 403


def test_closing_goes_month_by_month_and_refuses_the_running_month(api_as, street):
    _two_months_ago(street)
    a = api_as("street_admin")
    base = f"/settlement/merchants/{street.shop.id}"
    assert a.post(base + "/close").json["period_start"] == months_ago(2).isoformat()
    assert a.post(base + "/close").json["period_start"] == months_ago(1).isoformat()
    running = a.post(base + "/close")
    assert running.status_code == 409 and running.json["code"] == "period_not_ended"
    assert [p.period_start for p in settlement.closed_periods(street.shop.id)] == [months_ago(1), months_ago(2)]
    statement = a.get(base + "/statement").json
    assert statement["month"] == local_today().strftime("%Y-%m") and statement["closable"] is False
    assert a.get(base + "/statement", month=months_ago(3).strftime("%Y-%m")).status_code == 404  # before the first
