"""Honour roll pages: the volunteer's figures and link, the roll, its print sheet, downloads, privacy."""
from __future__ import annotations

import csv
import io
import re

from pointsapp.extensions import db
from tests.factories import give_points
from tests.unit.test_honours import hours_only
from tests.web.conftest import hidden_inputs, page_text, use_english
from tests.web.inline import inline_code


def test_home_shows_spendable_lifetime_and_this_years_points_and_hours_and_links_the_roll(street, client, login):
    use_english(client)
    give_points(street, street.vol_a, 30)
    hours_only(street, street.vol_a, "2.5")
    login("vol_a")
    resp = client.get("/volunteer/")
    body = resp.get_data(as_text=True)
    assert re.search(r'id="available">30<', body)
    assert re.search(r'id="earned">30<', body)
    assert re.search(r'id="hours">2.5<', body)
    assert re.search(r'id="year-earned">30<', body)
    assert re.search(r'id="year-hours">2.5<', body)
    assert 'href="/honours/"' in body


def test_a_volunteer_sees_their_grids_roll_and_may_pick_community_and_street(street, client, login):
    use_english(client)
    give_points(street, street.vol_a, 12)
    give_points(street, street.vol_b, 20)
    login("vol_a")
    resp = client.get("/honours/")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "第一网格" in text and "张秀华" in text and "孙丽" not in text
    body = resp.get_data(as_text=True)
    options = re.findall(r'<option value="(\d+)"', body.split('id="unit"')[1].split("</select>")[0])
    assert options == [str(street.street.id), str(street.community_a.id), str(street.grid_a.id)]
    street_roll = page_text(client.get(f"/honours/?unit={street.street.id}"))
    assert street_roll.index("孙丽") < street_roll.index("张秀华")
    assert client.get(f"/honours/?unit={street.community_b.id}").status_code == 404
    assert not inline_code(body)


def test_grid_staff_cannot_open_another_communitys_roll(street, client, login):
    login("staff_a")
    assert client.get("/honours/").status_code == 200
    for unit in (street.community_b, street.grid_b, street.street):
        assert client.get(f"/honours/?unit={unit.id}").status_code == 404
        assert client.get(f"/honours/print?unit={unit.id}").status_code == 404
        assert client.get(f"/honours/roll.csv?unit={unit.id}").status_code == 404
    assert client.get("/honours/?unit=abc").status_code == 404


def test_a_bad_period_or_number_of_places_gets_422_with_a_message(street, client, login):
    use_english(client)
    login("admin_a")
    for query in ("period=2026-13", "period=20", "period=next", "top=0", "top=500"):
        resp = client.get(f"/honours/?{query}")
        assert resp.status_code == 422, query
    assert "2026-09" in page_text(client.get("/honours/?period=2026-13"))
    assert "between 1 and 100" in page_text(client.get("/honours/?top=0"))


def test_the_volunteer_chooses_initials_and_others_see_only_the_surname(street, client, login, auth):
    use_english(client)
    give_points(street, street.vol_a, 12)
    login("vol_a")
    page = client.get("/honours/")
    assert "张秀华" in page_text(page)
    resp = client.post("/honours/display", data={"honour_display": "initials", **hidden_inputs(page)})
    assert resp.status_code == 302
    db.session.expire_all()
    assert street.vol_a.honour_display == "initials"
    mine = page_text(client.get("/honours/"))
    assert "张秀华 (you, others see 张**)" in mine
    # The notice-board sheet is posted: it shows the choice, the volunteer's own too.
    sheet = client.get("/honours/print")
    assert sheet.status_code == 200 and "张**" in page_text(sheet) and "张秀华" not in page_text(sheet)
    assert not inline_code(sheet.get_data(as_text=True))
    assert "print.css" in sheet.get_data(as_text=True)
    bad = client.post("/honours/display", data={"honour_display": "nick", **hidden_inputs(page)})
    assert bad.status_code == 422
    auth.logout()
    login("admin_a")
    text = page_text(client.get(f"/honours/?unit={street.grid_a.id}"))
    assert "张**" in text and "张秀华" not in text
    download = client.get(f"/honours/roll.csv?unit={street.grid_a.id}")
    assert download.status_code == 200
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["Ranking", "Place", "Name", "Points", "Hours"]
    assert rows[1] == ["By points", "1", "张**", "12", "0.0"]
    assert client.get(f"/honours/roll.xlsx?unit={street.grid_a.id}").status_code == 200
    assert client.get(f"/honours/roll.pdf?unit={street.grid_a.id}").status_code == 404


def test_a_cashier_has_no_honour_roll(street, client, login):
    login("cashier")
    assert client.get("/honours/").status_code == 403


def test_the_roll_says_place_name_and_period_as_a_notice_board_does_and_staff_find_it_in_the_menu(
        street, client, login):
    give_points(street, street.vol_a, 12)
    login("admin_a")
    home = client.get("/admin/").get_data(as_text=True)
    assert 'href="/honours/"' in home  # in the main menu
    page = page_text(client.get("/honours/"))
    assert "名次 姓名" in page and "统计期间" in page
    assert "地点" not in page and "结算期" not in page and "名称" not in page
    download = client.get(f"/honours/roll.csv?unit={street.community_a.id}")
    header = next(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert header[1:3] == ["名次", "姓名"]
