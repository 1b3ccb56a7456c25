"""Lists read on a phone (the till's redemptions of the day, a volunteer's claims and the
redemptions of their yearly statement) are tables that a narrow screen shows as one card per row
(``table.cards`` in app.css): each cell names its column in ``data-label``, as the head does."""
from __future__ import annotations

import re

import pytest

from pointsapp.domain import vouchers
from pointsapp.extensions import db
from tests.web.conftest import use_english


def cards(body: str, table_id: str) -> tuple[list[str], list[list[str]]]:
    """The head of table ``table_id`` (a ``cards`` table) and its rows' cell labels."""
    table = re.search(rf'<table class="cards" id="{table_id}">(.*?)</table>', body, re.S)
    assert table, f"no cards table {table_id}"
    head, rows = table.group(1).split("</thead>")
    return (re.findall(r"<th>([^<]+)</th>", head),
            [re.findall(r'<td[^>]* data-label="([^"]+)"', row) for row in rows.split("</tr>") if "<td" in row])


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_cell_of_a_card_names_its_column(street, client, login, auth, pending_claim, issued_voucher, language):
    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    if language == "en":
        use_english(client)
    pages = {
        ("cashier", "/merchant/today", "redemptions"): {
            "zh": ["时间", "兑换券", "兑换商品", "积分", "志愿者", "收银员"],
            "en": ["Time", "Voucher", "Reward", "Points", "Volunteer", "Cashier"]},
        ("vol_a", "/volunteer/claims", "claims"): {
            "zh": ["日期", "积分事项", "积分", "状态"], "en": ["Date", "Activity", "Points", "Status"]},
        ("vol_a", "/volunteer/statement", "redemptions"): {
            "zh": ["时间", "兑换商品", "商户", "积分"], "en": ["Time", "Reward", "Merchant", "Points"]},
    }
    for (username, path, table_id), heads in pages.items():
        auth.logout()
        login(username)
        head, rows = cards(client.get(path).get_data(as_text=True), table_id)
        assert head == heads[language], path
        assert rows and all(labels == head for labels in rows), (path, rows)
