"""Grid staff and admins: the queue, approvals, attendance, people, rules, merchants, reversals."""
from pointsapp.extensions import db
from pointsapp.models import Activity, Transfer
from tests.factories import balance, give_points, yesterday


def test_staff_approves_a_claim_in_their_grid_and_the_points_arrive(api_as, street, pending_claim, check_ledger):
    s = api_as("staff_a")
    queue = s.get("/claims/pending")
    assert queue.status_code == 200
    assert [c["id"] for c in queue.json["items"]] == [pending_claim.id]
    assert queue.json["items"][0]["volunteer_name"] == "张秀华"
    resp = s.post(f"/claims/{pending_claim.id}/approve")
    assert resp.status_code == 200
    assert resp.json["status"] == "approved" and resp.json["points_credited"] == 10
    assert balance(street.vol_a).balance == 10
    again = s.post(f"/claims/{pending_claim.id}/approve")
    assert again.status_code == 409 and again.json["code"] == "already_decided"
    check_ledger()


def test_staff_of_another_community_neither_sees_nor_approves_the_claim(api_as, pending_claim):
    s = api_as("staff_b")
    assert s.get("/claims/pending").json["items"] == []
    resp = s.post(f"/claims/{pending_claim.id}/approve")
    assert resp.status_code == 404
    assert db.session.get(Activity, pending_claim.id).status == "pending"


def test_staff_approves_the_selected_claims_in_one_request(api_as, street, check_ledger):
    from pointsapp.domain import claims, notice

    notice.set_notice_days(street.admin_b, street.community_b, 5)
    db.session.commit()
    ids = [claims.submit_claim(v, rule_id=street.meeting.id, activity_date=yesterday()).id
           for v in (street.vol_a, street.vol_a2, street.vol_b)]
    db.session.commit()
    s = api_as("street_admin")
    resp = s.post("/claims/approve", {"activity_ids": list(reversed(ids)), "comment": "核实无误"})
    assert resp.status_code == 200, resp.json
    assert [c["id"] for c in resp.json["items"]] == ids
    assert [c["status"] for c in resp.json["items"]] == ["approved", "approved", "on_notice"]
    assert (resp.json["approved"], resp.json["on_notice"], resp.json["pending"], resp.json["total_points"]) == (2, 1, 0, 20)
    assert (balance(street.vol_a).balance, balance(street.vol_a2).balance, balance(street.vol_b).balance) == (10, 10, 0)
    again = s.post("/claims/approve", {"activity_ids": ids[:1]})
    assert again.status_code == 409 and again.json["code"] == "already_decided"
    assert "张秀华" in again.json["message"]
    check_ledger()


def test_approving_selected_claims_refuses_bad_input_and_changes_nothing(api_as, street, pending_claim):
    s = api_as("staff_a")
    for body in ({}, {"activity_ids": []}, {"activity_ids": list(range(1, 102))}, {"activity_ids": ["x"]}):
        resp = s.post("/claims/approve", body)
        assert resp.status_code == 422 and any(f.startswith("activity_ids") for f in resp.json["fields"]), (body, resp.json)
    assert s.post("/claims/approve", {"activity_ids": [pending_claim.id, 10 ** 9]}).status_code == 404
    assert api_as("staff_b").post("/claims/approve", {"activity_ids": [pending_claim.id]}).status_code == 404
    assert api_as("vol_a2").post("/claims/approve", {"activity_ids": [pending_claim.id]}).status_code == 403
    assert db.session.get(Activity, pending_claim.id).status == "pending"


def test_staff_rejects_with_a_reason_and_an_empty_reason_is_422(api_as, pending_claim):
    s = api_as("staff_a")
    empty = s.post(f"/claims/{pending_claim.id}/reject", {"reason": ""}, key=None)
    assert empty.status_code == 422 and "reason" in empty.json["fields"]
    resp = s.post(f"/claims/{pending_claim.id}/reject", {"reason": "照片不清楚"}, key=None)
    assert resp.status_code == 200
    assert resp.json["status"] == "rejected" and resp.json["reject_reason"] == "照片不清楚"


def test_staff_records_attendance_for_two_volunteers(api_as, street, check_ledger):
    resp = api_as("staff_a").post("/attendance", {
        "rule_id": street.meeting.id, "activity_date": yesterday().isoformat(),
        "volunteer_ids": [street.vol_a.id, street.vol_a2.id],
    })
    assert resp.status_code == 201, resp.json
    assert resp.json["total_points"] == 20
    assert {a["volunteer_id"] for a in resp.json["items"]} == {street.vol_a.id, street.vol_a2.id}
    assert balance(street.vol_a2).balance == 10
    check_ledger()


def test_a_volunteer_cannot_approve_or_record(api_as, street, pending_claim):
    v = api_as("vol_a2")
    assert v.post(f"/claims/{pending_claim.id}/approve").status_code == 403
    assert v.post("/attendance", {"rule_id": street.meeting.id, "activity_date": yesterday().isoformat(),
                                  "volunteer_ids": [street.vol_a.id]}).status_code == 403


def test_admin_lists_people_in_their_community_with_phones_and_filters_by_node(api_as, street):
    a = api_as("admin_a")
    resp = a.get("/people")
    assert resp.status_code == 200
    names = {p["username"] for p in resp.json["items"]}
    assert {"vol_a", "vol_a2", "staff_a"} <= names and "vol_b" not in names
    assert "phone" in resp.json["items"][0]
    unit = a.get("/people", org_unit_id=street.unit_a.id).json["items"]
    assert [p["username"] for p in unit] == ["vol_a"]
    outside = a.get("/people", org_unit_id=street.building_b.id)
    assert outside.status_code == 404


def test_people_pages_follow_the_cursor_without_gaps_or_repeats(api_as, street):
    a = api_as("street_admin")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = a.get("/people", **params).json
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everyone = [p["id"] for p in a.get("/people", limit=100).json["items"]]
    assert seen == everyone and len(seen) == len(set(seen)) >= 8


def test_a_forged_cursor_is_422(api_as):
    resp = api_as("street_admin").get("/people", cursor="bm90IGEgY3Vyc29y")
    assert resp.status_code == 422 and resp.json["code"] == "invalid_cursor"


def test_a_cursor_of_another_list_or_out_of_range_is_422_not_500(api_as, street):
    import base64
    import json

    def cursor(*parts):
        return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")

    for n in (10, 20, 30):
        give_points(street, street.vol_a, n)
    v = api_as("vol_a")
    history = v.get("/me/history", limit=1).json["next_cursor"]  # a list sorted by number
    assert v.get("/me/history", limit=1, cursor=history).status_code == 200
    for path, bad in (("/me/claims", history),  # sorted by time
                      ("/me/claims", cursor("d", "2026-11-01", 5)),
                      ("/me/claims", cursor("t", "0001-01-01T00:00:00+14:00", 5)),
                      ("/me/claims", cursor("t", "9999-12-31T23:59:59-14:00", 5)),
                      ("/me/history", cursor("t", "2026-11-01T00:00:00+00:00", 5)),
                      ("/me/history", cursor("d", "2026-11-01", 5)),
                      ("/me/history", cursor("i", True, 5))):
        resp = v.get(path, cursor=bad)
        assert (resp.status_code, resp.json["code"]) == (422, "invalid_cursor"), (path, bad, resp.json)


def test_admin_creates_a_person_and_gives_a_role(api_as, street):
    a = api_as("admin_a")
    resp = a.post("/people", {"username": "new_vol", "full_name": "新志愿者", "password": "correct-horse-2",
                              "org_unit_id": street.building_a.id, "title": "resident"}, key=None)
    assert resp.status_code == 201, resp.json
    assert resp.json["roles"] == [{"role": "volunteer", "org_unit_id": street.building_a.id, "merchant_id": None}]
    assert "password" not in resp.json
    granted = a.post(f"/people/{resp.json['id']}/roles", {"role": "grid_staff", "org_unit_id": street.grid_a.id}, key=None)
    assert granted.status_code == 201
    assert {r["role"] for r in granted.json["roles"]} == {"volunteer", "grid_staff"}
    outside = a.post("/people", {"username": "far_vol", "full_name": "远", "password": "correct-horse-2",
                                 "org_unit_id": street.building_b.id}, key=None)
    assert outside.status_code == 404


def test_admin_defines_and_changes_a_rule(api_as, street):
    a = api_as("street_admin")
    made = a.post("/rules", {"org_unit_id": street.community_a.id, "name_zh": "调解纠纷", "name_en": "Mediation",
                             "category": "mediation", "unit": "occurrence", "points": 5}, key=None)
    assert made.status_code == 201, made.json
    assert made.json["version"] == 1
    changed = a.put(f"/rules/{made.json['id']}", {"name_zh": "调解纠纷", "name_en": "Mediation", "category": "mediation",
                                                  "unit": "occurrence", "points": 8}, key=None)
    assert changed.status_code == 200 and changed.json["version"] == 2 and changed.json["points"] == 8
    assert made.json["id"] in [r["id"] for r in a.get("/rules").json]
    # Another community's admin learns nothing of it, whatever the body: 404, not a 422 about fields.
    assert api_as("admin_b").put(f"/rules/{made.json['id']}", {"points": "many"}, key=None).status_code == 404


def test_admin_lists_a_reward_and_changes_its_stock(api_as, street):
    a = api_as("street_admin")
    made = a.post(f"/merchants/{street.shop.id}/rewards", {"name": "食用油", "price": 30, "stock": 5})
    assert made.status_code == 201 and made.json["stock"] == 5
    body = {"name": "食用油", "price": 30, "stock_change": -2}
    changed = a.put(f"/rewards/{made.json['id']}", body)
    assert changed.status_code == 200 and changed.json["stock"] == 3
    too_far = a.put(f"/rewards/{made.json['id']}", {**body, "stock_change": -4})
    assert too_far.status_code == 422 and "stock_change" in too_far.json["fields"]


def test_admin_corrects_a_persons_details(api_as, street):
    a = api_as("admin_a")
    resp = a.put(f"/people/{street.vol_a.id}", {"full_name": "张秀花", "phone": "13900000001", "title": "unit_leader"})
    assert resp.status_code == 200, resp.json
    assert (resp.json["full_name"], resp.json["phone"], resp.json["title"]) == ("张秀花", "13900000001", "unit_leader")
    bad = a.put(f"/people/{street.vol_a.id}", {"full_name": "", "phone": None, "title": None})
    assert bad.status_code == 422 and "full_name" in bad.json["fields"]
    assert api_as("admin_b").put(f"/people/{street.vol_a.id}", {"full_name": "别人"}).status_code == 404
    assert a.get(f"/people/{street.vol_a.id}").json["full_name"] == "张秀花"


def test_admin_moves_a_person_to_another_node(api_as, street, check_ledger):
    give_points(street, street.vol_a, 30)
    # A community admin cannot move someone into another community, nor move someone of another.
    assert api_as("admin_a").post(f"/people/{street.vol_a.id}/node", {"org_unit_id": street.building_b.id}).status_code == 404
    assert api_as("admin_b").post(f"/people/{street.vol_a.id}/node", {"org_unit_id": street.building_b.id}).status_code == 404
    a = api_as("street_admin")
    bad = a.post(f"/people/{street.vol_a.id}/node", {"org_unit_id": "9号楼"})
    assert bad.status_code == 422 and "org_unit_id" in bad.json["fields"]
    assert a.get(f"/people/{street.vol_a.id}").json["org_unit_id"] == street.unit_a.id
    resp = a.post(f"/people/{street.vol_a.id}/node", {"org_unit_id": street.building_b.id})
    assert resp.status_code == 200, resp.json
    assert resp.json["org_unit_id"] == street.building_b.id
    assert [(g["role"], g["org_unit_id"]) for g in resp.json["roles"]] == [("volunteer", street.building_b.id)]
    # Now community B's admin has them, with their points.
    assert api_as("admin_b").get(f"/people/{street.vol_a.id}/balance").json["balance"] == 30
    assert api_as("admin_a").get(f"/people/{street.vol_a.id}").status_code == 404
    cashier = a.post(f"/people/{street.cashier.id}/node", {"org_unit_id": street.unit_a.id})
    assert cashier.status_code == 422 and "org_unit_id" in cashier.json["fields"]
    check_ledger()


def test_admin_reverses_a_credit_once(api_as, street, check_ledger):
    give_points(street, street.vol_a, 30)
    a = api_as("street_admin")
    transfers = a.get(f"/people/{street.vol_a.id}/transfers").json["items"]
    assert [t["amount"] for t in transfers] == [30]
    resp = a.post(f"/transfers/{transfers[0]['id']}/reverse", {"reason": "重复登记"})
    assert resp.status_code == 201
    assert resp.json["kind"] == "reversal" and resp.json["reverses_id"] == transfers[0]["id"]
    assert balance(street.vol_a).balance == 0
    again = a.post(f"/transfers/{transfers[0]['id']}/reverse", {"reason": "重复登记"})
    assert again.status_code == 409 and again.json["code"] == "cannot_reverse"
    assert db.session.query(Transfer).count() == 2
    check_ledger()


def test_a_community_admin_cannot_reverse_in_another_community(api_as, street):
    give_points(street, street.vol_b, 30)
    tid = api_as("street_admin").get(f"/people/{street.vol_b.id}/transfers").json["items"][0]["id"]
    resp = api_as("admin_a").post(f"/transfers/{tid}/reverse", {"reason": "错误"})
    assert resp.status_code == 404
    assert balance(street.vol_b).balance == 30


def test_admin_adds_a_node_and_a_merchant_with_a_cashier(api_as, street):
    a = api_as("admin_a")
    unit = a.post("/org-units", {"parent_id": street.building_a.id, "name": "2单元", "level": "unit"}, key=None)
    assert unit.status_code == 201 and unit.json["path"].endswith(f"/{unit.json['id']}/")
    assert unit.json["id"] in [u["id"] for u in a.get("/org-units").json]
    shop = a.post("/merchants", {"org_unit_id": street.community_a.id, "name": "青山便民店", "kind": "shop"}, key=None)
    assert shop.status_code == 201
    cashier = a.post(f"/merchants/{shop.json['id']}/cashiers",
                     {"username": "qs_cashier", "full_name": "青山收银", "password": "correct-horse-2"}, key=None)
    assert cashier.status_code == 201
    assert cashier.json["roles"] == [{"role": "merchant_staff", "org_unit_id": None, "merchant_id": shop.json["id"]}]


def test_admin_deactivates_a_person(api_as, street):
    resp = api_as("admin_a").post(f"/people/{street.vol_a2.id}/active", {"active": False}, key=None)
    assert resp.status_code == 200 and resp.json["is_active"] is False
    assert api_as("admin_a").get(f"/people/{street.vol_a2.id}/balance").json["balance"] == 0


def test_admin_endpoints_refuse_volunteers_and_cashiers(api_as):
    for who in ("vol_a", "cashier"):
        c = api_as(who)
        assert c.get("/people").status_code == 403
        assert c.get("/rules").status_code == 403
        assert c.get("/merchants").status_code == 403
