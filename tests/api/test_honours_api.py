"""Honour rolls and the display choice over the API."""
from __future__ import annotations

from pointsapp.domain.clock import local_today
from tests.factories import give_points
from tests.unit.test_honours import hours_only


def test_balance_shows_lifetime_and_this_years_points_and_hours(api_as, street):
    give_points(street, street.vol_a, 40)
    hours_only(street, street.vol_a, "1.5")
    resp = api_as("vol_a").get("/me/balance")
    assert resp.status_code == 200
    assert resp.json["earned"] == 40
    assert resp.json["lifetime_hours"] == "1.5"
    assert (resp.json["year"], resp.json["year_earned"], resp.json["year_hours"]) == (local_today().year, 40, "1.5")


def test_a_roll_ranks_and_masks_as_chosen(api_as, street):
    give_points(street, street.vol_a, 10)
    give_points(street, street.vol_a2, 10)
    hours_only(street, street.vol_a2, "3")
    vol = api_as("vol_a")
    put = vol.put("/me/honour-display", {"honour_display": "initials"})
    assert put.status_code == 200, put.json
    assert put.json == {"honour_display": "initials", "shown_as": "张**"}
    assert vol.get("/me/honour-display").json["honour_display"] == "initials"

    mine = vol.get("/honours", top=5)
    assert mine.status_code == 200, mine.json
    assert mine.json["org_unit_id"] == street.grid_a.id and mine.json["period"] == str(local_today().year)
    assert [(p["place"], p["name"], p["points"], p["is_me"]) for p in mine.json["by_points"]] == [
        (1, "张秀华", 10, True), (1, "刘建国", 10, False)]
    assert [(p["place"], p["name"], p["hours"]) for p in mine.json["by_hours"]] == [(1, "刘建国", "3")]

    theirs = api_as("admin_a").get("/honours", org_unit_id=street.grid_a.id, period=local_today().strftime("%Y-%m"))
    assert theirs.status_code == 200
    assert [p["name"] for p in theirs.json["by_points"]] == ["张**", "刘建国"]


def test_scope_and_bad_input(api_as, street):
    staff = api_as("staff_a")
    assert staff.get("/honours").json["org_unit_id"] == street.grid_a.id
    for unit in (street.community_b, street.street):
        assert staff.get("/honours", org_unit_id=unit.id).status_code == 404
    bad = staff.get("/honours", period="2026-13")
    assert bad.status_code == 422
    assert "2026-09" in bad.json["message"]
    assert staff.get("/honours", top=101).status_code == 422
    assert api_as("cashier").get("/honours").status_code == 403
    assert staff.put("/me/honour-display", {"honour_display": "initials"}).status_code == 403
    assert api_as("vol_a").put("/me/honour-display", {"honour_display": "nick"}).status_code == 422
