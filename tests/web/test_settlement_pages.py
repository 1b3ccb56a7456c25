"""Settlement pages: statements for cashiers and admins, XLSX and print, close, pay, rates."""
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from pointsapp.domain import settlement
from pointsapp.domain.clock import local_today
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import PointsRate
from pointsapp.models.user import ROLE_STREET_ADMIN
from tests.factories import person
from tests.unit.helpers import award
from tests.unit.test_settlement import months_ago, redeem_at
from tests.web.conftest import field_errors, hidden_inputs, page_text


def _two_months_ago(street):
    award(street, street.vol_a, 100)
    award(street, street.vol_b, 100)
    when = settlement.utc_start_of(months_ago(2)) + timedelta(days=3)
    redeem_at(street, street.vol_a, street.rice, when)
    redeem_at(street, street.vol_b, street.rice, when + timedelta(hours=1))
    return months_ago(2).strftime("%Y-%m")


def test_a_cashier_sees_the_statement_of_their_merchant_only(client, street, login):
    month = _two_months_ago(street)
    login("cashier")
    resp = client.get(f"/settlement/{street.shop.id}?month={month}")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "青山社区" in text and "友谊社区" in text
    # A cashier sees volunteers' names masked, as at the till, never in full.
    assert "张*华" in text and "孙*" in text
    assert "张秀华" not in text and "孙丽" not in text
    assert "记录付款" not in text  # no payment form for a cashier
    assert client.get(f"/settlement/{street.other_shop.id}").status_code == 404
    for bad in ("2026-13", "9999-12", "0001-01", "next"):
        resp = client.get(f"/settlement/{street.shop.id}?month={bad}")
        assert resp.status_code == 422, bad
        assert "2026-09" in page_text(resp)  # the refusal shows how to write a month
    printed = client.get(f"/settlement/{street.shop.id}/print?month={month}")
    assert printed.status_code == 200
    assert "张*华" in page_text(printed) and "张秀华" not in printed.get_data(as_text=True)
    xlsx = client.get(f"/settlement/{street.shop.id}/statement.xlsx?month={month}")
    assert xlsx.status_code == 200
    cells = [c for ws in load_workbook(io.BytesIO(xlsx.data)) for row in ws.iter_rows(values_only=True) for c in row]
    assert "张*华" in cells and "孙*" in cells
    assert not any(isinstance(c, str) and ("张秀华" in c or "孙丽" in c) for c in cells)


def test_the_statement_downloads_as_xlsx_with_its_numbers(client, street, login):
    month = _two_months_ago(street)
    login("street_admin")
    resp = client.get(f"/settlement/{street.shop.id}/statement.xlsx?month={month}")
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = load_workbook(io.BytesIO(resp.data))
    assert wb.sheetnames == ["汇总", "兑换明细", "按社区", "付款"]
    summary = {row[0]: row[1:] for row in wb["汇总"].iter_rows(min_row=2, values_only=True)}
    assert summary["已兑换"][0] == 20
    assert summary["应付余额"][0] == 20
    rows = list(wb["兑换明细"].iter_rows(min_row=2, values_only=True))
    assert [(r[3], r[4], r[5], r[6]) for r in rows] == [("张秀华", "青山社区", 10, 10), ("孙丽", "友谊社区", 10, 10)]
    by_community = list(wb["按社区"].iter_rows(min_row=2, values_only=True))
    assert sorted(by_community) == [("友谊社区", 10, 10), ("青山社区", 10, 10)]


def test_the_printable_statement_uses_the_print_stylesheet_and_no_inline_script(client, street, login):
    month = _two_months_ago(street)
    login("street_admin")
    resp = client.get(f"/settlement/{street.shop.id}/print?month={month}")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "/static/print.css" in body
    assert "<script" not in body and "style=" not in body
    assert client.get("/static/print.css").status_code == 200


def test_an_admin_closes_a_period_and_records_a_payment(client, street, login):
    month = _two_months_ago(street)
    login("street_admin")
    page = client.get(f"/settlement/{street.shop.id}?month={month}")
    assert "关闭 " + month in page_text(page)
    resp = client.post(f"/settlement/{street.shop.id}/close", data=hidden_inputs(page))
    assert resp.status_code == 302
    assert [p.period_start.strftime("%Y-%m") for p in settlement.closed_periods(street.shop.id)] == [month]

    page = client.get(f"/settlement/{street.shop.id}")
    form = hidden_inputs(page)
    too_much = {**form, "points": "21", "paid_on": local_today().isoformat(), "reference": "转账 01"}
    resp = client.post(f"/settlement/{street.shop.id}/payments", data=too_much)
    assert resp.status_code == 409
    assert any("21" in e and "20" in e for e in field_errors(resp))
    ok = {**too_much, "points": "15"}
    assert client.post(f"/settlement/{street.shop.id}/payments", data=ok).status_code == 302
    # The same form sent again records nothing twice.
    assert client.post(f"/settlement/{street.shop.id}/payments", data=ok).status_code == 409
    db.session.expire_all()
    assert settlement.owed(street.shop.id) == 5


def test_a_community_admin_and_a_volunteer_cannot_open_the_street_merchants_statements(client, street, login):
    _two_months_ago(street)
    login("admin_b")
    assert client.get(f"/settlement/{street.shop.id}").status_code == 404
    page = client.get("/settlement/")
    assert "友谊慈善超市" not in page_text(page)
    client.post("/logout", data=hidden_inputs(page))
    login("vol_a")
    assert client.get("/settlement/").status_code == 403


def test_the_street_admin_sets_a_rate_from_tomorrow(client, street, login):
    login("street_admin")
    page = client.get("/settlement/rates")
    tomorrow = (local_today() + timedelta(days=1)).isoformat()
    assert f'value="{tomorrow}"' in page.get_data(as_text=True)  # the form proposes tomorrow
    form = hidden_inputs(page)
    today = client.post("/settlement/rates", data={**form, "effective_from": local_today().isoformat(), "yuan_per_point": "0.50"})
    assert today.status_code == 422
    assert any("明天" in e for e in field_errors(today))
    ok = client.post("/settlement/rates", data={**form, "effective_from": tomorrow, "yuan_per_point": "0.50"})
    assert ok.status_code == 302
    table = settlement.rate_table(street.street.id)
    assert table == [(local_today() + timedelta(days=1), 50)]
    assert settlement.rate_on(local_today(), table) == 100
    assert settlement.rate_on(local_today() + timedelta(days=1), table) == 50


@pytest.mark.parametrize("text", ["Infinity", "NaN", "1e9", "0", "-1", "0.001", "abc", "1_0", "٣", "1e1"])
def test_a_bad_rate_is_refused_with_a_field_message_and_nothing_is_written(client, street, login, text):
    login("street_admin")
    form = hidden_inputs(client.get("/settlement/rates"))
    tomorrow = (local_today() + timedelta(days=1)).isoformat()
    resp = client.post("/settlement/rates", data={**form, "effective_from": tomorrow, "yuan_per_point": text})
    assert resp.status_code == 422
    assert any("1000" in e and "0.50" in e for e in field_errors(resp)), field_errors(resp)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(PointsRate)) == 0


def test_the_rates_page_shows_only_the_admins_own_street(client, street, login):
    other = add_unit("青年街道", "street")
    person("street_admin_2", other, roles=(ROLE_STREET_ADMIN,))
    db.session.commit()
    tomorrow = local_today() + timedelta(days=1)
    settlement.set_rate(street.street_admin, street.street, tomorrow, 50)
    db.session.commit()
    login("street_admin_2")
    page = client.get("/settlement/rates")
    text = page_text(page)
    assert "青年街道" in text and "0.50" not in text
    form = hidden_inputs(page)
    resp = client.post("/settlement/rates", data={**form, "effective_from": tomorrow.isoformat(), "yuan_per_point": "0.20"})
    assert resp.status_code == 302
    assert settlement.rate_table(other.id) == [(tomorrow, 20)]
    assert settlement.rate_table(street.street.id) == [(tomorrow, 50)]


def test_a_merchant_with_no_redemptions_yet_has_an_empty_open_statement(client, street, login):
    login("street_admin")
    resp = client.get(f"/settlement/{street.other_shop.id}")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "本期没有兑换" in text and "当前应付积分：0" in text
    assert "关闭本结算期" not in text  # the running month cannot be closed yet
    index = page_text(client.get("/settlement/"))
    assert "友谊慈善超市" in index and "12349便民为老服务平台" in index
