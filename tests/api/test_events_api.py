"""Check-in events through the API: created and changed by staff with any offset and answered in
UTC, signed in to by a volunteer with the QR code's token, closed to credit the attendees."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pointsapp.domain import checkin, rules
from pointsapp.extensions import db
from tests.factories import balance, rule_terms


def _hour_rule(s):
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(
        name_zh="社区服务", name_en="Community service", category="helping", unit="hour", points=10,
        needs_approval=False))
    db.session.commit()
    return rule


def test_staff_create_change_and_close_an_event_a_volunteer_signs_in_to(api_as, street, check_ledger):
    staff = api_as("staff_a")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    beijing = timezone(timedelta(hours=8))
    start, end = (now - timedelta(minutes=10)).astimezone(beijing), (now + timedelta(hours=2)).astimezone(beijing)
    body = {"title": "楼道清洁", "place": "1号楼下", "rule_id": _hour_rule(street).id, "org_unit_id": street.grid_a.id,
            "starts_at": start.isoformat(), "ends_at": end.isoformat()}
    made = staff.post("/events", body)
    assert made.status_code == 201, made.json
    # Answered in UTC, as every time the API gives, and as the list gives it.
    assert made.json["starts_at"] == (now - timedelta(minutes=10)).isoformat()
    listed = staff.get("/events").json["items"][0]
    assert (listed["starts_at"], listed["ends_at"]) == (made.json["starts_at"], made.json["ends_at"])
    event_id = made.json["id"]
    changed = staff.put(f"/events/{event_id}", {"title": "楼道大扫除", "place": "1号楼下",
                                                "starts_at": start.isoformat(), "ends_at": end.isoformat()})
    assert changed.status_code == 200 and changed.json["ends_at"] == made.json["ends_at"]
    assert changed.json["title"] == "楼道大扫除"

    volunteer = api_as("vol_a")
    token = checkin.current_token(event_id)
    signed = volunteer.post(f"/events/{event_id}/checkin", {"token": token, "action": "in"}, key=None)
    assert signed.status_code == 200 and signed.json["changed"] is True
    stale = volunteer.post(f"/events/{event_id}/checkin", {"token": "AAAAAAAAAA", "action": "out"}, key=None)
    assert stale.status_code == 409 and stale.json["code"] == "checkin_code_expired"

    closed = staff.post(f"/events/{event_id}/close")
    assert closed.status_code == 200 and closed.json["closed_now"] is True
    # Never signed out: counted to the event's end, rounded down and capped by the rule.
    [credited] = closed.json["items"]
    assert credited["points_credited"] > 0 and balance(street.vol_a).available == credited["points_credited"]
    check_ledger()


def test_an_event_time_past_the_years_the_app_keeps_is_refused_wherever_its_offset(api_as, street):
    staff = api_as("staff_a")
    body = {"title": "跨年", "place": "广场", "rule_id": _hour_rule(street).id, "org_unit_id": street.grid_a.id,
            # 2999-12-31 23:00 at UTC-14 is 3000-01-01 13:00 in UTC, where it would be stored.
            "starts_at": "2999-12-31T22:00:00-14:00", "ends_at": "2999-12-31T23:00:00-14:00"}
    refused = staff.post("/events", body)
    assert refused.status_code == 422 and "starts_at" in refused.json["fields"]
    extreme = staff.post("/events", {**body, "starts_at": "9999-12-31T23:00:00-14:00"})
    assert extreme.status_code == 422 and "starts_at" in extreme.json["fields"]
