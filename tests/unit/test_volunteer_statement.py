"""A volunteer's yearly statement agrees with the ledger."""
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from pointsapp.domain import claims, ledger, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.domain.errors import InvalidInput
from pointsapp.domain.statements import volunteer_year
from pointsapp.extensions import db
from tests.factories import balance
from tests.unit.helpers import award, credit_of


def patrol(s, volunteer, hours, day):
    [act] = claims.record_attendance(
        s.street_admin, rule_id=s.patrol.id, activity_date=day, volunteer_ids=[volunteer.id],
        hours=hours, batch_key=f"patrol-{volunteer.id}-{day}-{hours}",
    )
    db.session.commit()
    return act


def test_the_yearly_statement_adds_up_to_the_balance(street):
    today = local_today()
    patrol(street, street.vol_a, "2.5", today)  # 2 points per hour: 5
    award(street, street.vol_a, 40)
    wrong = award(street, street.vol_a, 7)
    ledger.reverse(credit_of(wrong), reason="重复登记", created_by_id=street.street_admin.id)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, issued.code)
    lapsed = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    vouchers.expire_vouchers(now=now_utc() + timedelta(days=8))
    db.session.commit()

    st = volunteer_year(street.vol_a, today.year)
    assert (st.opening, st.earned, st.corrected, st.spent) == (0, 52, -7, 10)
    assert st.closing == balance(street.vol_a).balance == 35
    assert st.hours == 2.5
    assert ("patrol", 1, 2.5, 5) in [(c, n, float(h), p) for c, n, h, p in st.by_category]
    assert [r[1] for r in st.redemptions] == ["大米 5kg"]
    assert (st.expired_vouchers, st.expired_points) == (1, 10)
    assert lapsed is not None

    last_year = volunteer_year(street.vol_a, today.year - 1)
    assert (last_year.earned, last_year.closing) == (0, 0)
    next_year = volunteer_year(street.vol_a, today.year + 1)
    assert next_year.opening == 35


def test_a_year_out_of_range_is_refused(street):
    with pytest.raises(InvalidInput):
        volunteer_year(street.vol_a, 1900)


def test_a_volunteer_views_and_downloads_their_statement(client, street, auth):
    award(street, street.vol_a, 30)
    auth.login("vol_a")
    resp = client.get("/volunteer/statement")
    assert resp.status_code == 200
    assert 'id="earned">30<' in resp.get_data(as_text=True)
    resp = client.get(f"/volunteer/statement.xlsx?year={local_today().year}")
    wb = load_workbook(io.BytesIO(resp.data))
    summary = {row[0]: row[1] for row in wb.worksheets[0].iter_rows(min_row=2, values_only=True)}
    assert summary["获得积分"] == 30
    assert summary["年末余额"] == 30
    assert client.get("/volunteer/statement?year=abc").status_code == 404
    # A cashier has no volunteer statement.
    auth.logout()
    auth.login("cashier")
    assert client.get("/volunteer/statement").status_code == 403
