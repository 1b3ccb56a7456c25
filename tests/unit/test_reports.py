"""Reports: every total agrees with the ledger, scoped to the chosen subtree."""
import io
import json
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from pointsapp.domain import claims, reports, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import InvalidInput, NotFound
from pointsapp.extensions import db
from pointsapp.models import Account, Transfer
from tests.factories import person, yesterday
from tests.unit.helpers import award, credit_of


def this_month():
    return local_today().replace(day=1)


def full_range(s, unit=None):
    return reports.make_range(s.street_admin, unit or s.street, reports.add_months(this_month(), -2), this_month())


@pytest.fixture
def activity(street):
    """vol_a earns 40 and 12 (the 12 reversed), vol_b 25; vol_a spends 10 at the shop; a claim is pending."""
    award(street, street.vol_a, 40)
    wrong = award(street, street.vol_a, 12)
    claims.reverse_transfer(street.street_admin, credit_of(wrong).id, "重复登记")
    award(street, street.vol_b, 25)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, issued.code)
    claims.submit_claim(street.vol_b, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    return street


def ledger_sum(kind):
    return db.session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0)).where(Transfer.kind == kind))


def test_monthly_points_equal_the_ledgers_totals(activity):
    r = full_range(activity)
    t = reports.points_by_month(r)
    assert [row[0] for row in t.rows] == r.months and len(r.months) == 3
    assert sum(row[1] for row in t.rows) == ledger_sum("credit") == 77
    assert sum(row[2] for row in t.rows) == ledger_sum("capture") == 10
    assert sum(row[3] for row in t.rows) == -12
    assert t.rows[-1][1:] == [77, 10, -12]  # all of it this month


def test_the_corrections_column_says_it_nets_reversals_of_credits_and_of_redemptions(activity):
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    claims.reverse_transfer(activity.street_admin, capture.id, "退货")
    db.session.commit()
    t = reports.points_by_month(full_range(activity))
    # 12 taken back from vol_a, 10 given back to them: one net figure, and the header says so.
    assert t.rows[-1][1:] == [77, 10, -2]
    assert t.headers[3] == "Corrections, net (+ returned to volunteers, − taken back)"


def test_per_community_totals_add_up_to_the_monthly_totals_and_follow_the_subtree(activity):
    t = reports.points_by_community(full_range(activity))
    assert sorted(t.rows) == [["友谊社区", 25, 0], ["青山社区", 52, 10]]
    only_a = reports.points_by_community(full_range(activity, activity.community_a))
    assert only_a.rows == [["青山社区", 52, 10]]


def test_the_monthly_and_community_reports_are_sums_of_one_read_and_street_level_comes_last(activity, monkeypatch):
    """The page reads the month's ledger legs once for both reports; a volunteer who sits at the
    street itself (above every community) is counted on a "street level" row, last."""
    at_street = person("jiedao_vol", activity.street)
    db.session.commit()
    award(activity, at_street, 9)
    reads = []
    real = reports._points_by_month_and_community
    monkeypatch.setattr(reports, "_points_by_month_and_community", lambda r: reads.append(r) or real(r))
    by_month, by_community = reports.build(full_range(activity), zh=True, only=None)[:2]
    assert len(reads) == 1
    assert by_community.rows == [["友谊社区", 25, 0], ["青山社区", 52, 10], ["Street level", 9, 0]]
    assert by_month.rows[-1][1:] == [86, 10, -12] == [sum(r[1] for r in by_community.rows), 10, -12]
    assert sum(r[1] for r in by_month.rows) == ledger_sum("credit") == 86


def test_category_active_volunteers_and_top_activities(activity):
    r = full_range(activity)
    cats = reports.points_by_category(r, zh=True)
    assert sum(row[2] for row in cats.rows) == 65  # approved activities (the reversed one is not approved)
    active = reports.active_volunteers(r)
    assert active.rows[-1] == [this_month().strftime("%Y-%m"), 2]
    top = reports.top_activities(r, zh=True)
    assert sum(row[1] for row in top.rows) == 2


def test_claims_rewards_stock_and_liability(activity):
    r = full_range(activity)
    assert reports.claims(r).rows[0][0] == 1
    assert reports.rewards_redeemed(r).rows == [["大米 5kg", "友谊慈善超市", 1, 10]]
    vouchers.update_reward(activity.street_admin, activity.rice.id, vouchers.RewardTerms(name="大米 5kg", price=10),
                           stock_change=-96)
    db.session.commit()
    assert reports.low_stock(r).rows == [["大米 5kg", "友谊慈善超市", 3]]
    liability = reports.liability(r).rows[0]
    volunteers = db.session.scalar(select(func.sum(Account.balance)).where(Account.kind == "volunteer"))
    merchants = db.session.scalar(select(func.sum(Account.balance)).where(Account.kind == "merchant"))
    issuance = db.session.scalar(select(func.sum(Account.balance)).where(Account.kind == "issuance"))
    assert liability == [volunteers, 0, merchants, volunteers + merchants]
    assert liability[3] == -issuance == 65


def test_a_range_is_checked(activity):
    with pytest.raises(InvalidInput):
        reports.make_range(activity.street_admin, activity.street, this_month(), reports.add_months(this_month(), -1))
    with pytest.raises(InvalidInput):
        reports.make_range(activity.street_admin, activity.street, reports.add_months(this_month(), -40), this_month())
    with pytest.raises(NotFound):
        reports.make_range(activity.admin_a, activity.community_b, this_month(), this_month())


def test_the_report_page_has_data_blocks_tables_and_no_inline_code(client, activity, auth):
    auth.login("street_admin")
    resp = client.get("/reports/")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "/static/vendor/chartjs/chart.umd.min.js" in body and "/static/reports.js" in body
    blocks = re.findall(r'<script type="application/json" id="chart-data-points_by_month">(.*?)</script>', body, re.S)
    data = json.loads(blocks[0])
    assert sum(data["datasets"][0]["data"]) == 77 and sum(data["datasets"][1]["data"]) == 10
    # Every other script is an external file: nothing inline for the CSP to refuse.
    for tag in re.findall(r"<script[^>]*>", body):
        assert 'type="application/json"' in tag or "src=" in tag
    assert " style=" not in body and "onclick" not in body
    assert client.get("/static/vendor/chartjs/chart.umd.min.js").status_code == 200


def test_each_chart_downloads_exactly_its_numbers(client, activity, auth):
    auth.login("street_admin")
    first = reports.add_months(this_month(), -2).strftime("%Y-%m")
    resp = client.get(f"/reports/points_by_community.xlsx?first={first}")
    wb = load_workbook(io.BytesIO(resp.data))
    rows = [list(r) for r in wb.active.iter_rows(values_only=True)]
    assert rows[0] == ["社区", "发放积分", "兑换积分"]
    assert sorted(rows[1:]) == [["友谊社区", 25, 0], ["青山社区", 52, 10]]
    csv = client.get(f"/reports/points_by_month.csv?first={first}")
    assert csv.data.startswith(b"\xef\xbb\xbf")
    assert csv.data.decode("utf-8-sig").splitlines()[-1].endswith(",77,10,-12")
    assert client.get("/reports/?first=2026-99").status_code == 422
    assert client.get("/reports/nothing.csv").status_code == 404


def test_a_community_admin_reports_only_on_their_community(client, activity, auth):
    auth.login("admin_a")
    assert client.get(f"/reports/?unit={activity.community_b.id}").status_code == 404
    resp = client.get("/reports/points_by_community.csv")
    assert "友谊社区" not in resp.data.decode("utf-8-sig")
    auth.logout()
    auth.login("vol_a")
    assert client.get("/reports/").status_code == 403


def test_a_month_outside_2000_to_2100_or_misspelt_is_refused_with_a_message(client, activity, auth):
    auth.login("street_admin")
    for query in ("last=9999-12", "first=0001-01", "last=2026-13", "first=soon"):
        resp = client.get(f"/reports/?{query}")
        assert resp.status_code == 422, query
        assert "2026-09" in resp.get_data(as_text=True)
    assert client.get("/reports/?first=2026-01&last=2026-03").status_code == 200


def test_category_and_top_activities_sum_each_rules_versions_and_read_the_activities_once(street, monkeypatch):
    """Two rules in two categories, one of them renamed (a second version) between its
    activities: the category report sums by category, the top activities by rule (named by its
    newest version), ranked by activities then points; the page reads
    the activities once for both; the active volunteers are counted per month."""
    import secrets

    from pointsapp.domain import rules
    from tests.factories import rule_terms

    s = street
    patrol = rules.create_rule(s.street_admin, s.street, rule_terms(name_zh="巡逻", name_en="Patrol", category="patrol", points=4))
    meet = rules.create_rule(s.street_admin, s.street, rule_terms(name_zh="开会", name_en="Meeting", category="meeting", points=7))

    def record(rule, people, day):
        claims.record_attendance(s.street_admin, rule_id=rule.id, activity_date=day,
                                 volunteer_ids=[p.id for p in people], batch_key=secrets.token_hex(8))

    last_month = reports.add_months(this_month(), -1)
    record(patrol, [s.vol_a, s.vol_b], last_month)  # 2 activities, 8 points, last month
    rules.update_rule(s.street_admin, patrol.id, rule_terms(name_zh="夜间巡逻", name_en="Night patrol",
                                                          category="patrol", points=5))
    record(patrol, [s.vol_a], this_month())  # +1 activity, 5 points, under the new name
    record(meet, [s.vol_a, s.vol_b], this_month())  # 2 activities, 14 points
    db.session.commit()
    r = full_range(s)
    assert reports.points_by_category(r, zh=False).rows == [["Attending meetings", 2, 14], ["Patrol and duty", 3, 13]]
    # A renamed rule goes by its newest version's name.
    assert reports.top_activities(r, zh=True).rows == [["夜间巡逻", 3, 13], ["开会", 2, 14]]
    assert reports.top_activities(r, zh=False).rows == [["Night patrol", 3, 13], ["Meeting", 2, 14]]
    assert reports.active_volunteers(r).rows == [
        [reports.add_months(this_month(), -2).strftime("%Y-%m"), 0],
        [last_month.strftime("%Y-%m"), 2],
        [this_month().strftime("%Y-%m"), 2],
    ]
    reads = []
    real = reports._activities_by_version
    monkeypatch.setattr(reports, "_activities_by_version", lambda r: reads.append(r) or real(r))
    tables = {t.key: t for t in reports.build(r, zh=False)}
    assert len(reads) == 1
    assert tables["points_by_category"].rows[0] == ["Attending meetings", 2, 14]
    assert tables["top_activities"].rows[0] == ["Night patrol", 3, 13]


def test_months_that_make_no_range_bring_the_form_back_with_the_message_beside_the_field(client, activity, auth):
    auth.login("street_admin")
    resp = client.get(f"/reports/?unit={activity.street.id}&first=2026-11&last=2026-09")
    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert 'id="report-range"' in body  # the form, not a dead end
    assert 'name="first" type="month" value="2026-11"' in body and 'name="last" type="month" value="2026-09"' in body
    field = body[body.index('id="last"'):]
    assert field.index('class="field-error"') < field.index("</form>")
    assert "结束月份早于起始月份" in body or "The last month comes before the first." in body
    assert 'id="report-points_by_month"' not in body  # no figures for a range that is not one
    too_long = client.get("/reports/?first=2020-01&last=2026-09")
    assert too_long.status_code == 422 and 'id="report-range"' in too_long.get_data(as_text=True)
    auth.logout()
    # Another community's node stays out of sight, whatever the months.
    auth.login("admin_a")
    assert client.get(f"/reports/?unit={activity.community_b.id}&first=2026-11&last=2026-09").status_code == 404


def test_a_closed_months_rewards_report_stays_when_a_redemption_is_reversed_in_a_later_month(street):
    """Redeemed last month, its period closed, reversed this month: last month's table still
    counts it (as its points redeemed do); this month's corrections carry the reversal. A
    reversal in the same month leaves the redemption out of that month's table."""
    from datetime import timedelta

    from pointsapp.domain import settlement
    from pointsapp.domain.clock import utc_start_of

    award(street, street.vol_a, 50)
    this_month = local_today().replace(day=1)
    last_month = reports.add_months(this_month, -1)
    when = utc_start_of(last_month) + timedelta(days=3)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id, now=when)
    vouchers.confirm_redemption(street.cashier, issued.code, now=when + timedelta(minutes=5))
    db.session.commit()
    last = reports.make_range(street.street_admin, street.street, last_month, last_month)
    before = {t.key: t.rows for t in reports.build(last, True)}
    assert before["rewards_redeemed"] == [["大米 5kg", "友谊慈善超市", 1, 10]]
    period = settlement.close_period(street.street_admin, street.shop.id)
    db.session.commit()
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    claims.reverse_transfer(street.street_admin, capture.id, "未领取")
    db.session.commit()
    after = {t.key: t.rows for t in reports.build(last, True)}
    assert after["rewards_redeemed"] == before["rewards_redeemed"]
    assert after["points_by_month"][0][2] == 10 == period.redeemed
    # Over both months the reversal is inside the range: the redemption is left out.
    both = reports.make_range(street.street_admin, street.street, last_month, this_month)
    assert {t.key: t.rows for t in reports.build(both, True)}["rewards_redeemed"] == []
