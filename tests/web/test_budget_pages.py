"""Budget pages: the liability view, recording funding, refusals shown at the field, CSV."""
from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from pointsapp.domain import budgets, settlement, vouchers
from pointsapp.extensions import db
from pointsapp.models import Budget, BudgetFunding
from tests.unit.helpers import award, two_rates
from tests.web.conftest import errors_at, field_errors, hidden_inputs, page_text


def _form(client, **values):
    page = client.get("/budgets/")
    assert page.status_code == 200
    data = {**hidden_inputs(page), "source": "street_grant", "funded_on": "2026-01-05", "note": "", **values}
    return client.post("/budgets/funding", data=data)


def test_the_street_admin_records_funding_and_the_page_shows_the_budget(client, street, login):
    login("street_admin")
    resp = _form(client, org_unit_id=street.street.id, amount="350000", note="年度积分经费")
    assert resp.status_code == 302
    award(street, street.vol_a, 120)
    text = page_text(client.get("/budgets/"))
    assert "友谊街道" in text and "350000.00" in text
    assert "350000" in text and "120" in text and "349880" in text  # budget points, used, left
    assert "年度积分经费" in text


def test_bad_funding_input_is_refused_with_a_message_and_nothing_written(client, street, login):
    login("street_admin")
    for amount in ("0", "-0.001", "abc", "99999999999"):
        resp = _form(client, org_unit_id=street.street.id, amount=amount)
        assert resp.status_code == 422, amount
        assert errors_at(resp, "amount"), amount
    resp = _form(client, org_unit_id=street.street.id, amount="100", funded_on="2999-01-01")
    assert resp.status_code == 422 and errors_at(resp, "funded_on")
    resp = _form(client, org_unit_id=street.street.id, amount="100", funded_on="not a date")
    assert resp.status_code == 422 and errors_at(resp, "funded_on")
    resp = _form(client, org_unit_id=street.street.id, amount="-100", note="")
    assert resp.status_code == 422 and field_errors(resp)
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 0
    assert db.session.scalar(select(func.count()).select_from(Budget)) == 0


def test_a_community_admin_is_not_offered_funding_and_a_sent_form_is_refused(client, street, login):
    login("admin_a")
    page = client.get("/budgets/")
    text = page_text(page)
    assert "友谊社区" not in text
    assert 'action="/budgets/funding"' not in page.get_data(as_text=True)  # no form to fill
    assert "经费由上级录入" in text  # the page says who records it
    # A form sent all the same (its own community, another, the street) is refused; nothing is written.
    resp = _form(client, org_unit_id=street.community_a.id, amount="100", source="partner")
    assert resp.status_code == 403
    assert "青山社区的积分经费由上一级录入" in page_text(resp)
    resp = _form(client, org_unit_id=street.community_b.id, amount="100", source="partner")
    assert resp.status_code == 404
    resp = _form(client, org_unit_id=street.street.id, amount="100", source="partner")
    assert resp.status_code == 404
    assert db.session.scalar(select(func.count()).select_from(BudgetFunding)) == 0
    assert db.session.scalar(select(func.count()).select_from(Budget)) == 0


def test_the_street_admin_funds_a_community_and_its_admin_sees_the_budget(client, street, login):
    login("street_admin")
    page = client.get("/budgets/").get_data(as_text=True)
    assert f'<option value="{street.community_a.id}">青山社区</option>' in page
    assert _form(client, org_unit_id=street.community_a.id, amount="100", source="partner").status_code == 302
    assert db.session.scalar(select(Budget.org_unit_id)) == street.community_a.id
    login("street_admin").logout()
    login("admin_a")
    text = page_text(client.get("/budgets/"))
    assert "青山社区" in text and "100.00" in text


def test_the_liability_view_downloads_as_csv(client, street, login):
    login("street_admin")
    _form(client, org_unit_id=street.street.id, amount="500")
    award(street, street.vol_a, 30)
    resp = client.get("/budgets/liability.csv")
    assert resp.status_code == 200
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[1][0] == "友谊街道"
    assert rows[1][2] == "30"  # points issued
    assert rows[0][0] == "单位" and rows[0][-1] == "预算剩余"
    # issued 30 (no yuan of its own), held by volunteers 30 (¥30), outstanding 30 (¥30);
    # funded ¥500 = 500 points, 30 used, 470 left
    assert rows[1][2:4] == ["30", ""] and rows[1][10:12] == ["30", "30"] and rows[1][14:16] == ["30", "30"]
    assert rows[1][-4:] == ["500", "500", "30", "470"]
    assert client.get("/budgets/liability.pdf").status_code == 404


def test_liability_csv_values_redemptions_as_the_page_does(client, street, login):
    two_back, this_month = two_rates(street)  # ¥0.70 a point two months back, ¥0.40 from this month
    award(street, street.vol_a, 50, day=two_back)
    when = settlement.utc_start_of(two_back) + timedelta(hours=10)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id, now=when)
    vouchers.confirm_redemption(street.cashier, issued.code, now=when)  # 10 points at ¥0.70
    db.session.commit()

    whole = budgets.liability(street.street)
    figures = {name: fen for name, _p, fen in whole.figures()}
    assert figures["redeemed"] == 700 and figures["owed"] == 700  # the page's and the API's figures

    login("street_admin")
    api = client.get("/api/v1/budgets").get_json()
    assert api[0]["fen"]["redeemed"] == 700
    rows = list(csv.reader(io.StringIO(client.get("/budgets/liability.csv").get_data(as_text=True).lstrip("\ufeff"))))
    line = rows[1]
    # columns: unit, yuan/point, issued, ¥, redeemed, ¥, expired, ¥, deducted, ¥, held, ¥, owed, ¥, ...
    assert (line[4], Decimal(line[5])) == ("10", Decimal("7.00")), line   # redeemed ¥7.00 as on the page
    assert (line[12], Decimal(line[13])) == ("10", Decimal("7.00")), line  # owed ¥7.00 as on the page
    assert line[2] == "50" and line[3] == ""  # issued: points, and no yuan of its own
