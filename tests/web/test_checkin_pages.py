"""Check-in pages: the staff's event pages and QR code, and the volunteer's scanned URL."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from pointsapp.domain import checkin, rules
from pointsapp.domain.clock import now_utc, to_local
from pointsapp.extensions import db
from pointsapp.models import Activity, CheckinAttendance, CheckinEvent
from tests.factories import PASSWORD, balance, rule_terms
from tests.web.conftest import hidden_inputs, page_text, use_english


def _rule(s, **terms):
    base = dict(name_zh="社区服务", name_en="Community service", category="helping", unit="hour", points=10,
                needs_approval=False, checkin_hours_cap=Decimal("2"))
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(**{**base, **terms}))
    db.session.commit()
    return rule


def _event(s, start=None, **terms):
    start = start or now_utc() - timedelta(minutes=5)
    event = checkin.create_event(s.staff_a, title="楼道清洁", rule_id=_rule(s, **terms).id, org_unit_id=s.grid_a.id,
                                 place="1号楼下", starts_at=start, ends_at=start + timedelta(hours=2),
                                 now=start - timedelta(hours=1))
    db.session.commit()
    return event


def test_staff_create_an_event_and_its_page_shows_a_qr_code_of_an_absolute_check_in_url(
    street, client, login, monkeypatch
):
    use_english(client)
    rule = _rule(street)
    auth = login("staff_a")
    resp = client.get("/staff/events/new")
    assert resp.status_code == 200
    # The places of a grid worker's grid, each named by its path from the grid down.
    node_select = re.search(r'<select[^>]*id="org_unit_id".*?</select>', resp.get_data(as_text=True), re.S).group(0)
    options = re.findall(r'<option[^>]*value="(\d+)"[^>]*>([^<]*)</option>', node_select)
    places = {int(v): label for v, label in options}
    assert places[street.grid_a.id] == "第一网格" and places[street.unit_a.id] == "第一网格 › 1号楼 › 1单元"
    start = to_local(now_utc()).replace(tzinfo=None, second=0, microsecond=0)
    resp = auth.post("/staff/events/new", {
        "title": "楼道清洁", "rule_id": rule.id, "org_unit_id": street.grid_a.id, "place": "1号楼下",
        "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
    }, token_from="/staff/events/new")
    assert resp.status_code == 302
    event = db.session.scalar(select(CheckinEvent))
    assert resp.headers["Location"].endswith(f"/staff/events/{event.id}")
    # The page and its code.json are seen at one moment: the code changes every 30 seconds, and
    # a change between the two requests would make the same code look like two.
    moment = now_utc()
    monkeypatch.setattr(checkin, "now_utc", lambda: moment)
    page = client.get(f"/staff/events/{event.id}")
    body = page.get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in body and "js/checkin.js" in body
    url = re.search(r'id="checkin-url" href="([^"]+)"', body).group(1)
    assert url.startswith("http://localhost/checkin/") and checkin.token_is_valid(event.id, url.rsplit("/", 1)[1])
    code = client.get(f"/staff/events/{event.id}/code.json").get_json()
    assert code["open"] and code["url"] == url and code["qr"].startswith("data:image/svg+xml")
    assert (code["present"], code["total"]) == (0, 0) and 1 <= code["refresh_in"] <= 30
    assert "楼道清洁" in page_text(client.get("/staff/events"))


def test_event_pages_are_hidden_from_staff_of_another_subtree(street, client, login):
    event = _event(street)
    auth = login("staff_b")
    assert client.get(f"/staff/events/{event.id}").status_code == 404
    assert client.get(f"/staff/events/{event.id}/code.json").status_code == 404
    assert auth.post(f"/staff/events/{event.id}/close").status_code == 404
    assert "楼道清洁" not in page_text(client.get("/staff/events"))


def test_a_logged_out_scan_goes_to_login_and_comes_back_to_sign_in(street, client, auth, check_ledger, monkeypatch):
    event = _event(street)
    start = now_utc()
    token = checkin.current_token(event.id, start)
    resp = client.get(f"/checkin/{event.id}/{token}")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    back = parse_qs(urlsplit(resp.headers["Location"]).query)["next"][0]
    assert back == f"/checkin/{event.id}/{token}"  # the scan's pass is in this browser's session, not the link
    auth.login("vol_a")
    # The login took two minutes: the code has changed four times, the scan's pass still holds.
    monkeypatch.setattr(checkin, "now_utc", lambda: start + timedelta(minutes=2))
    page = client.get(back)
    assert page.status_code == 200 and "签到" in page_text(page)
    assert db.session.scalar(select(func.count()).select_from(CheckinAttendance)) == 0  # GET changes nothing
    hidden = hidden_inputs(page)
    assert hidden["action"] == "in"
    resp = client.post(back, data=hidden)
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"])
    assert "签到成功" in page_text(page) and "签退" in page_text(page)
    # A double tap of the same sign-in button: still one row, nothing else changes.
    assert client.post(back, data=hidden).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(CheckinAttendance)) == 1
    out = hidden_inputs(page)
    assert out["action"] == "out"
    client.post(back, data=out)
    db.session.expire_all()
    row = db.session.scalar(select(CheckinAttendance))
    assert row.signed_in_at is not None and row.signed_out_at is not None


def test_a_link_forwarded_after_a_scan_dies_with_its_code(app, street, client, login, monkeypatch):
    event = _event(street)
    start = now_utc()
    token = checkin.current_token(event.id, start)
    login("vol_a")
    page = client.get(f"/checkin/{event.id}/{token}")
    assert page.status_code == 200
    back = client.post(f"/checkin/{event.id}/{token}", data=hidden_inputs(page)).headers["Location"]
    assert "pass" not in back  # the link the scanner's phone shows carries no pass to forward
    # Two slots later the code is stale: the scanner's own browser still has its pass ...
    monkeypatch.setattr(checkin, "now_utc", lambda: start + timedelta(seconds=2 * checkin.SLOT_SECONDS + 1))
    assert client.get(back).status_code == 200
    # ... but the link, forwarded to someone at home who logs in as themselves, is refused.
    friend = app.test_client()
    assert friend.post("/login", data={**hidden_inputs(friend.get("/login")), "username": "vol_a2",
                                       "password": PASSWORD}).status_code == 302
    refused = friend.get(back)
    assert refused.status_code == 409 and "二维码已过期" in page_text(refused)
    assert db.session.scalar(select(func.count()).select_from(CheckinAttendance)) == 1


def test_an_expired_code_is_refused_with_a_clear_page(street, client, login):
    event = _event(street)
    login("vol_a")
    old = checkin.token_for(event.id, checkin.slot_of(now_utc()) - 2)
    resp = client.get(f"/checkin/{event.id}/{old}")
    assert resp.status_code == 409
    assert "二维码已过期，请重新扫描现场二维码" in page_text(resp)
    resp = client.get(f"/checkin/{event.id}/{old}")  # also for a logged-out friend at home
    client.get("/login")
    assert db.session.scalar(select(func.count()).select_from(CheckinAttendance)) == 0


def test_the_scan_refuses_volunteers_of_another_subtree_and_closed_events(street, client, login, auth):
    event = _event(street)
    token = checkin.current_token(event.id)
    login("vol_b")
    resp = client.get(f"/checkin/{event.id}/{token}")
    assert resp.status_code == 403 and "第一网格" in page_text(resp)
    checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    client.post("/logout", data={"csrf_token": auth.csrf("/volunteer/")})
    login("vol_a")
    resp = client.get(f"/checkin/{event.id}/{token}")
    assert resp.status_code == 409 and "本次活动已结束" in page_text(resp)


def test_staff_backfill_and_close_from_the_event_page(street, client, login, check_ledger):
    event = _event(street, start=now_utc() - timedelta(hours=3))
    checkin.sign_in(street.vol_a, event.id, now=event.starts_at)
    db.session.commit()
    auth = login("staff_a")
    page = client.get(f"/staff/events/{event.id}")
    assert 'value="%d"' % street.vol_a2.id in page.get_data(as_text=True)
    resp = auth.post(f"/staff/events/{event.id}/attendees", {"volunteer_id": street.vol_a2.id, "hours": "1"},
                     token_from=f"/staff/events/{event.id}")
    assert resp.status_code == 302
    resp = auth.post(f"/staff/events/{event.id}/close", token_from=f"/staff/events/{event.id}")
    assert resp.status_code == 302
    assert auth.post(f"/staff/events/{event.id}/close", token_from=f"/staff/events/{event.id}").status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Activity).where(Activity.source == "checkin")) == 2
    assert balance(street.vol_a).available == 20 and balance(street.vol_a2).available == 10
    assert "已结束" in page_text(client.get(f"/staff/events/{event.id}"))
    check_ledger()


def test_the_api_creates_lists_checks_in_and_closes(street, client, login, auth, check_ledger):
    rule = _rule(street)
    login("staff_a")
    token = auth.csrf("/staff/events")
    start = now_utc() - timedelta(minutes=5)
    headers = {"X-CSRFToken": token, "Idempotency-Key": "event-1"}
    resp = client.post("/api/v1/events", json={
        "title": "巡逻", "rule_id": rule.id, "org_unit_id": street.grid_a.id, "place": "北门",
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    event_id = resp.get_json()["id"]
    assert [e["id"] for e in client.get("/api/v1/events").get_json()["items"]] == [event_id]
    resp = client.post(f"/api/v1/events/{event_id}/attendees", json={"volunteer_id": street.vol_a2.id, "hours": 1},
                       headers={"X-CSRFToken": token, "Idempotency-Key": "att-1"})
    assert resp.status_code == 201 and resp.get_json()["backfilled"] is True
    client.post("/logout", data={"csrf_token": token})
    login("vol_a")
    token = auth.csrf("/volunteer/")
    expired = checkin.token_for(event_id, checkin.slot_of(now_utc()) - 2)
    resp = client.post(f"/api/v1/events/{event_id}/checkin", json={"token": expired, "action": "in"},
                       headers={"X-CSRFToken": token})
    assert resp.status_code == 409 and resp.get_json()["code"] == "checkin_code_expired"
    resp = client.post(f"/api/v1/events/{event_id}/checkin",
                       json={"token": checkin.current_token(event_id), "action": "in"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 200 and resp.get_json()["changed"] is True
    client.post("/logout", data={"csrf_token": token})
    login("staff_a")
    token = auth.csrf("/staff/events")
    resp = client.post(f"/api/v1/events/{event_id}/close", headers={"X-CSRFToken": token, "Idempotency-Key": "close-1"})
    body = resp.get_json()
    assert resp.status_code == 200 and body["closed_now"] is True and len(body["items"]) == 2
    resp = client.post(f"/api/v1/events/{event_id}/close", headers={"X-CSRFToken": token, "Idempotency-Key": "close-2"})
    assert resp.get_json()["closed_now"] is False
    check_ledger()


# --- the volunteer's events -----------------------------------------------------------------


def test_a_volunteer_sees_their_events_without_a_way_around_the_qr_code(street, client, login):
    rule = _rule(street)
    ongoing = _event(street)
    start = now_utc() + timedelta(days=1)
    checkin.create_event(street.admin_a, title="社区大扫除", rule_id=rule.id, org_unit_id=street.community_a.id,
                         place="社区广场", starts_at=start, ends_at=start + timedelta(hours=2))
    checkin.create_event(street.staff_b, title="别的网格", rule_id=rule.id, org_unit_id=street.grid_b.id,
                         place="9号楼", starts_at=start, ends_at=start + timedelta(hours=2))
    checkin.sign_in(street.vol_a, ongoing.id, now=ongoing.starts_at)
    db.session.commit()
    login("vol_a")
    assert 'href="/volunteer/events"' in client.get("/volunteer/").get_data(as_text=True)
    resp = client.get("/volunteer/events")
    assert resp.status_code == 200
    text = page_text(resp)
    assert text.index("楼道清洁") < text.index("社区大扫除") and "别的网格" not in text
    signed_at = to_local(ongoing.starts_at).strftime("%H:%M")
    assert f"已于 {signed_at} 签到" in text and "尚未签到" in text and "我参加过的活动" in text
    assert "/checkin/" not in resp.get_data(as_text=True)  # signing in is by the code at the event only
    use_english(client)
    text = page_text(client.get("/volunteer/events"))
    assert "My events" in text and f"Signed in at {signed_at}" in text and "Not signed in yet" in text
    assert "Events you attended" in text and "Still open" in text


# --- staff edit an event --------------------------------------------------------------------


def _edit_form(event, **changes):
    local = {k: to_local(getattr(event, k)).strftime("%Y-%m-%dT%H:%M") for k in ("starts_at", "ends_at")}
    return {"title": event.title, "place": event.place, **local, **changes}


def test_staff_edit_an_open_event_from_its_page(street, client, login):
    event = _event(street, start=now_utc() + timedelta(hours=1))
    auth = login("admin_a")
    page = client.get(f"/staff/events/{event.id}")
    assert f'href="/staff/events/{event.id}/edit"' in page.get_data(as_text=True)
    form = client.get(f"/staff/events/{event.id}/edit")
    assert form.status_code == 200
    assert "修改活动" in page_text(form) and "保存修改" in page_text(form) and 'name="rule_id"' not in form.get_data(as_text=True)
    new_end = to_local(event.ends_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    resp = auth.post(f"/staff/events/{event.id}/edit", _edit_form(event, title="楼道大扫除", ends_at=new_end),
                     token_from=f"/staff/events/{event.id}/edit")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/staff/events/{event.id}")
    db.session.expire_all()
    assert (event.title, to_local(event.ends_at).strftime("%Y-%m-%dT%H:%M")) == ("楼道大扫除", new_end)
    # A bad window is shown on the form, in Chinese, and changes nothing.
    resp = auth.post(f"/staff/events/{event.id}/edit", _edit_form(event, ends_at=_edit_form(event)["starts_at"]),
                     token_from=f"/staff/events/{event.id}/edit")
    assert resp.status_code == 422
    db.session.expire_all()
    assert to_local(event.ends_at).strftime("%Y-%m-%dT%H:%M") == new_end
    # Without the CSRF token: refused, nothing changed.
    resp = client.post(f"/staff/events/{event.id}/edit", data=_edit_form(event, title="无令牌"))
    assert resp.status_code == 400
    db.session.expire_all()
    assert event.title == "楼道大扫除"


def test_saving_a_new_title_keeps_a_start_with_seconds_after_someone_signed_in(street, client, login):
    """The form shows times to the minute; an event made through the API may start at 09:00:30.
    Left as shown, the times keep their seconds: a title change is not refused as a new start."""
    event = _event(street, start=(now_utc() - timedelta(minutes=5)).replace(second=30, microsecond=123000))
    starts_at, ends_at = event.starts_at, event.ends_at
    checkin.sign_in(street.vol_a, event.id)
    db.session.commit()
    auth = login("staff_a")
    resp = auth.post(f"/staff/events/{event.id}/edit", _edit_form(event, title="楼道大扫除"),
                     token_from=f"/staff/events/{event.id}/edit")
    assert resp.status_code == 302, page_text(resp)
    db.session.expire_all()
    assert (event.title, event.starts_at, event.ends_at) == ("楼道大扫除", starts_at, ends_at)
    # A start really changed is still refused once someone has signed in.
    moved = to_local(starts_at + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    resp = auth.post(f"/staff/events/{event.id}/edit", _edit_form(event, starts_at=moved),
                     token_from=f"/staff/events/{event.id}/edit")
    assert resp.status_code == 422
    db.session.expire_all()
    assert event.starts_at == starts_at


def test_the_edit_page_is_for_staff_of_the_events_subtree_and_open_events(street, client, login, auth):
    event = _event(street)
    login("staff_b")
    assert client.get(f"/staff/events/{event.id}/edit").status_code == 404
    assert auth.post(f"/staff/events/{event.id}/edit", _edit_form(event, title="别人改的")).status_code == 404
    client.post("/logout", data={"csrf_token": auth.csrf("/staff/events")})
    login("vol_a")
    assert client.get(f"/staff/events/{event.id}/edit").status_code == 403
    assert auth.post(f"/staff/events/{event.id}/edit", _edit_form(event, title="志愿者改的")).status_code == 403
    client.post("/logout", data={"csrf_token": auth.csrf("/volunteer/")})
    checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    login("staff_a")
    page = client.get(f"/staff/events/{event.id}")
    assert "/edit" not in page.get_data(as_text=True)
    resp = client.get(f"/staff/events/{event.id}/edit", follow_redirects=True)
    assert "不能再修改" in page_text(resp)
    db.session.expire_all()
    assert event.title == "楼道清洁"


def test_the_api_changes_an_event(street, client, login, auth):
    event = _event(street)
    login("staff_a")
    token = auth.csrf("/staff/events")
    body = {"title": "楼道大扫除", "place": event.place, "starts_at": event.starts_at.isoformat(),
            "ends_at": (event.ends_at + timedelta(hours=1)).isoformat()}
    resp = client.put(f"/api/v1/events/{event.id}", json=body, headers={"X-CSRFToken": token, "Idempotency-Key": "e1"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["title"] == "楼道大扫除"
    checkin.sign_in(street.vol_a, event.id)
    db.session.commit()
    moved = {**body, "starts_at": (event.starts_at + timedelta(minutes=10)).isoformat()}
    resp = client.put(f"/api/v1/events/{event.id}", json=moved, headers={"X-CSRFToken": token, "Idempotency-Key": "e2"})
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid_input"
    checkin.close_event(street.staff_a, event.id)
    db.session.commit()
    resp = client.put(f"/api/v1/events/{event.id}", json=body, headers={"X-CSRFToken": token, "Idempotency-Key": "e3"})
    assert resp.status_code == 409 and resp.get_json()["code"] == "event_not_editable"


def test_a_grid_worker_who_volunteers_is_told_their_own_work_waits_for_another_verifier(street, client, login, auth):
    from pointsapp.domain import people
    from pointsapp.models.user import ROLE_VOLUNTEER

    people.grant_role(street.street_admin, street.staff_a, ROLE_VOLUNTEER, unit=street.grid_a)
    db.session.commit()
    # A claim on a rule without approval: not credited, and the flash says why.
    quick = rules.create_rule(street.street_admin, street.street, rule_terms(
        name_zh="反映情况", name_en="Report", category="reporting", points=3, needs_approval=False))
    db.session.commit()
    login("staff_a")
    form = hidden_inputs(client.get("/volunteer/claim"))
    sent = client.post("/volunteer/claim", data={**form, "rule_id": str(quick.id),
                                                 "activity_date": (now_utc().date() - timedelta(days=1)).isoformat(),
                                                 "note": "", "hours": ""}, content_type="multipart/form-data")
    assert sent.status_code == 302
    assert "您是这里的审核人员，您自己的申请需由其他网格员或管理员审核" in page_text(client.get(sent.headers["Location"]))
    # In the queue, their own claim has no buttons they may not use, and says who decides.
    queue = client.get("/staff/").get_data(as_text=True)
    own = queue[queue.index('id="own-'):][:400]
    assert "这是您自己的申请" in own and 'action="/staff/claims/' not in own.split("</li>")[0]
    # Their own attendance at an event they close.
    event = _event(street)
    checkin.sign_in(street.staff_a, event.id)
    db.session.commit()
    closed = auth.post(f"/staff/events/{event.id}/close", {}, token_from=f"/staff/events/{event.id}")
    assert "您自己的参加记录需由其他网格员或管理员审核" in page_text(client.get(closed.headers["Location"]))
    assert "已结束，等待审核" in page_text(client.get("/volunteer/events"))
