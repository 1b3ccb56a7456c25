"""Admin pages: rules, merchants and rewards, people and roles, reversals, the org tree."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from pointsapp.domain import claims
from pointsapp.domain.clock import local_today
from pointsapp.extensions import db
from pointsapp.models import (
    Activity,
    Merchant,
    OrgUnit,
    PointRule,
    Reward,
    Transfer,
    User,
)
from tests.factories import balance, give_points, yesterday
from tests.web.conftest import errors_at, page_text, use_english

RULE_FORM = {
    "name_zh": "调解纠纷",
    "name_en": "Mediate a dispute",
    "category": "mediation",
    "unit": "occurrence",
    "points": "5",
    "daily_cap": "",
    "monthly_cap": "",
    "needs_approval": "y",
    "active_from": "",
    "active_to": "",
    "is_active": "y",
}


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/rules", "/admin/rules/new", "/admin/merchants", "/admin/people", "/admin/people/new", "/admin/org"],
)
@pytest.mark.parametrize("username", ["vol_a", "staff_a", "cashier"])
def test_only_admins_open_admin_pages(street, client, login, path, username):
    login(username)
    assert client.get(path).status_code == 403


def test_volunteer_cannot_post_admin_forms(street, client, login, auth):
    login("vol_a")
    assert auth.post("/admin/rules/new", {**RULE_FORM, "org_unit_id": street.street.id}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(PointRule)) == 2


def test_admin_form_without_csrf_token_is_refused(street, client, login):
    login("admin_a")
    resp = client.post("/admin/rules/new", data={**RULE_FORM, "org_unit_id": street.community_a.id})
    assert resp.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(PointRule)) == 2


def test_admin_home_links_every_section_and_counts_waiting_claims(street, client, login, pending_claim):
    use_english(client)
    login("admin_a")
    resp = client.get("/admin/")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    for link in ("/admin/rules", "/admin/merchants", "/admin/people", "/admin/org"):
        assert f'href="{link}"' in body
    assert "1 claim is waiting for approval." in page_text(resp)
    login("admin_b")
    assert "No claims are waiting for approval." in page_text(client.get("/admin/"))


# --- rules ----------------------------------------------------------------------------------


def test_admin_creates_a_rule_for_some_titles(street, client, login, auth):
    login("admin_a")
    form = client.get("/admin/rules/new").get_data(as_text=True)
    assert 'name="titles" type="checkbox" value="building_leader"' in form
    assert 'value="mediation"' in form
    resp = auth.post(
        "/admin/rules/new", {**RULE_FORM, "org_unit_id": street.community_a.id, "titles": ["building_leader", "unit_leader"]}
    )
    assert resp.status_code == 302
    rule = db.session.scalar(select(PointRule).order_by(PointRule.id.desc()))
    v = rule.current
    assert (rule.org_unit_id, v.name_zh, v.points, v.titles, v.needs_approval) == (
        street.community_a.id, "调解纠纷", 5, ["building_leader", "unit_leader"], True
    )
    assert "调解纠纷" in page_text(client.get("/admin/rules"))


def test_rule_form_errors_are_shown_at_their_fields(street, client, login, auth):
    use_english(client)
    login("admin_a")
    resp = auth.post(
        "/admin/rules/new",
        {**RULE_FORM, "org_unit_id": street.community_a.id, "daily_cap": "50", "monthly_cap": "10"},
    )
    assert resp.status_code == 422
    assert errors_at(resp, "daily_cap") == ["The daily cap cannot exceed the monthly cap."]
    resp = auth.post("/admin/rules/new", {**RULE_FORM, "org_unit_id": street.community_a.id, "name_en": ""})
    assert resp.status_code == 422
    assert errors_at(resp, "name_en") == ["This field is required."]
    assert db.session.scalar(select(func.count()).select_from(PointRule)) == 2


def test_community_admin_cannot_define_rules_outside_the_community(street, client, login, auth):
    login("admin_a")
    use_english(client)
    resp = auth.post("/admin/rules/new", {**RULE_FORM, "org_unit_id": street.community_b.id})
    assert resp.status_code == 422
    assert errors_at(resp, "org_unit_id") == ["Not a valid choice."]
    assert client.get(f"/admin/rules/{street.meeting.id}").status_code == 404  # a street rule


def test_editing_a_rule_adds_a_version_and_keeps_credited_points(street, client, login, auth, check_ledger):
    use_english(client)
    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    claims.approve_claim(street.staff_a, act.id)
    db.session.commit()
    login("street_admin")
    page = client.get(f"/admin/rules/{street.meeting.id}")
    assert 'value="Attend a meeting"' in page.get_data(as_text=True)  # filled in from the current terms
    resp = auth.post(f"/admin/rules/{street.meeting.id}", {**RULE_FORM, "name_zh": "参加会议", "name_en": "Attend a meeting", "category": "meeting", "points": "15"})
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"])
    text = page_text(page)
    assert "Saved as version 2." in text
    history = page.get_data(as_text=True).split('id="versions"')[1]
    assert history.index("<td>2</td>") < history.index("<td>1</td>")
    assert "15 per occurrence" in page_text(client.get(f"/admin/rules/{street.meeting.id}")).split("Version history")[1]
    db.session.expire_all()
    assert db.session.get(Activity, act.id).points_credited == 10
    assert db.session.get(Activity, act.id).rule_version.version == 1
    assert balance(street.vol_a).balance == 10
    check_ledger()


# --- merchants, cashiers, rewards -----------------------------------------------------------


def test_admin_adds_a_merchant_and_a_cashier_who_can_then_redeem(street, client, login, auth):
    login("admin_a")
    resp = auth.post(
        "/admin/merchants/new",
        {"name": "青山汽修街", "kind": "shop", "address": "青山路8号", "phone": "", "org_unit_id": street.community_a.id},
    )
    assert resp.status_code == 302
    merchant = db.session.scalar(select(Merchant).where(Merchant.name == "青山汽修街"))
    assert merchant.org_unit_id == street.community_a.id
    assert "青山汽修街" in page_text(client.get("/admin/merchants"))

    resp = auth.post(
        f"/admin/merchants/{merchant.id}/cashiers",
        {"username": "mechanic", "full_name": "马师傅", "phone": "", "password": "correct-horse-1"},
    )
    assert resp.status_code == 302
    assert "马师傅" in page_text(client.get(f"/admin/merchants/{merchant.id}"))
    login("mechanic")
    resp = client.get("/merchant/")
    assert resp.status_code == 200
    assert f'name="merchant_id" value="{merchant.id}"' in resp.get_data(as_text=True)


def test_cashier_form_errors_are_shown(street, client, login, auth):
    use_english(client)
    login("street_admin")
    resp = auth.post(
        f"/admin/merchants/{street.shop.id}/cashiers",
        {"username": "cashier", "full_name": "重名", "phone": "", "password": "correct-horse-1"},
    )
    assert resp.status_code == 422
    assert errors_at(resp, "username") == ["The username cashier is taken."]


def test_admin_of_another_community_cannot_see_the_merchant(street, client, login):
    login("admin_b")
    assert client.get(f"/admin/merchants/{street.shop.id}").status_code == 404  # a street merchant
    assert "友谊慈善超市" not in page_text(client.get("/admin/merchants"))
    login("street_admin")
    assert "友谊慈善超市" in page_text(client.get("/admin/merchants"))


def test_admin_lists_a_reward_with_unlimited_stock(street, client, login, auth):
    use_english(client)
    login("street_admin")
    resp = auth.post(
        f"/admin/merchants/{street.shop.id}/rewards/new",
        {"name": "食用油 1L", "description": "", "price": "25", "stock": "", "per_volunteer_limit": "2", "is_active": "y"},
    )
    assert resp.status_code == 302
    reward = db.session.scalar(select(Reward).where(Reward.name == "食用油 1L"))
    assert (reward.price, reward.stock, reward.per_volunteer_limit) == (25, None, 2)
    assert "食用油 1L 25 unlimited" in page_text(client.get(f"/admin/merchants/{street.shop.id}"))


def test_reward_stock_changes_by_a_delta_and_never_below_zero(street, client, login, auth):
    use_english(client)
    login("street_admin")
    page = client.get(f"/admin/rewards/{street.rice.id}")
    assert "Stock now: 100 left." in page_text(page)
    base = {"name": "大米 5kg", "description": "", "price": "10", "per_volunteer_limit": "", "is_active": "y"}
    resp = auth.post(f"/admin/rewards/{street.rice.id}", {**base, "stock_mode": "limited", "stock_change": "-30"})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Reward, street.rice.id).stock == 70
    resp = auth.post(f"/admin/rewards/{street.rice.id}", {**base, "stock_mode": "limited", "stock_change": "-71"})
    assert resp.status_code == 422
    assert errors_at(resp, "stock_change") == ["Stock must stay between 0 and 1,000,000."]
    resp = auth.post(f"/admin/rewards/{street.rice.id}", {**base, "price": "12", "stock_mode": "unlimited", "stock_change": "0"})
    assert resp.status_code == 302
    db.session.expire_all()
    assert (db.session.get(Reward, street.rice.id).stock, db.session.get(Reward, street.rice.id).price) == (None, 12)


# --- people ---------------------------------------------------------------------------------


def test_people_list_is_scoped_to_the_admins_subtree(street, client, login):
    login("admin_a")
    text = page_text(client.get("/admin/people"))
    assert "张秀华" in text and "刘建国" in text and "陈网格" in text
    assert "孙丽" not in text and "周网格" not in text and "王街道" not in text
    assert "张秀华" in page_text(client.get("/admin/people?q=张"))
    assert "刘建国" not in page_text(client.get("/admin/people?q=张"))
    assert client.get(f"/admin/people/{street.vol_b.id}").status_code == 404


def test_admin_creates_a_volunteer_with_a_title(street, client, login, auth):
    login("admin_a")
    form = client.get("/admin/people/new").get_data(as_text=True)
    assert "青山社区" in form and "友谊社区" not in form  # nodes limited to the subtree
    resp = auth.post(
        "/admin/people/new",
        {
            "username": "new_vol",
            "full_name": "黄小梅",
            "phone": "13800000000",
            "org_unit_id": street.unit_a.id,
            "title": "unit_leader",
            "roles": ["volunteer"],
            "password": "correct-horse-2",
        },
    )
    assert resp.status_code == 302
    person = db.session.scalar(select(User).where(User.username == "new_vol"))
    assert (person.org_unit_id, person.title, [g.role for g in person.roles]) == (street.unit_a.id, "unit_leader", ["volunteer"])
    assert balance(person).balance == 0  # a ledger account was opened


def test_person_form_refuses_a_node_outside_the_subtree_and_a_short_password(street, client, login, auth):
    login("admin_a")
    use_english(client)
    data = {"username": "x_vol", "full_name": "某人", "phone": "", "title": "", "roles": ["volunteer"]}
    resp = auth.post("/admin/people/new", {**data, "org_unit_id": street.building_b.id, "password": "correct-horse-2"})
    assert resp.status_code == 422
    assert errors_at(resp, "org_unit_id") == ["Not a valid choice."]
    resp = auth.post("/admin/people/new", {**data, "org_unit_id": street.unit_a.id, "password": "short"})
    assert resp.status_code == 422
    assert errors_at(resp, "password")
    assert db.session.scalar(select(User).where(User.username == "x_vol")) is None


def test_deactivating_stops_login_and_reactivating_restores_it(street, client, login, auth):
    use_english(client)
    login("admin_a")
    resp = auth.post(f"/admin/people/{street.vol_a.id}/active", {"active": "0"})
    assert resp.status_code == 302
    assert "was deactivated" in page_text(client.get(resp.headers["Location"]))
    auth.logout()
    assert auth.login("vol_a").status_code == 422
    login("admin_a")
    assert auth.post(f"/admin/people/{street.vol_a.id}/active", {"active": "1"}).status_code == 302
    assert auth.login("vol_a").status_code == 302


def test_admin_corrects_a_volunteers_phone_and_title_and_a_refusal_keeps_what_was_typed(street, client, login, auth):
    login("admin_a")
    page = client.get(f"/admin/people/{street.vol_a.id}")
    assert "更正姓名、电话或职务" in page_text(page)
    path = f"/admin/people/{street.vol_a.id}/details"
    refused = auth.post(path, {"full_name": "", "phone": "13911112222", "title": "unit_leader"})
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert 'value="13911112222"' in body and "<details id=\"edit-details\" open>" in body
    assert db.session.get(User, street.vol_a.id).phone != "13911112222"
    done = auth.post(path, {"full_name": "张秀华", "phone": "13911112222", "title": "unit_leader"})
    assert done.status_code == 302
    after = page_text(client.get(done.headers["Location"]))
    assert "已保存 张秀华 的信息。" in after and "13911112222" in after and "单元长" in after
    db.session.expire_all()
    vol = db.session.get(User, street.vol_a.id)
    assert (vol.phone, vol.title) == ("13911112222", "unit_leader")
    # Another community's admin cannot.
    login("admin_b")
    assert auth.post(path, {"full_name": "别人", "phone": "", "title": ""}).status_code == 404
    db.session.expire_all()
    assert db.session.get(User, street.vol_a.id).full_name == "张秀华"


def test_admin_moves_a_volunteer_to_another_node_of_their_community(street, client, login, auth, pending_claim):
    login("admin_a")
    page = page_text(client.get(f"/admin/people/{street.vol_a.id}"))
    assert "调到其他组织" in page
    assert "适用范围" in page and "地点" not in page  # where a role applies, in the role form
    # Each place to move to is named by its path: many buildings share a name.
    body = client.get(f"/admin/people/{street.vol_a.id}").get_data(as_text=True)
    move_form = body[body.index('id="move-person"'):body.index("</details>", body.index('id="move-person"'))]
    assert f'<option selected value="{street.unit_a.id}">青山社区 › 第一网格 › 1号楼 › 1单元</option>' in move_form
    path = f"/admin/people/{street.vol_a.id}/node"
    # Community B's building is not among the choices: refused beside the field, nothing moves.
    refused = auth.post(path, {"org_unit_id": str(street.building_b.id)})
    assert refused.status_code == 422 and '<details id="move-person" open>' in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, street.vol_a.id).org_unit_id == street.unit_a.id
    done = auth.post(path, {"org_unit_id": str(street.building_a.id)})
    assert done.status_code == 302
    after = page_text(client.get(done.headers["Location"]))
    assert "张秀华 已调到 青山社区 › 第一网格 › 1号楼，积分和记录随人转移。" in after
    assert "其还有 1 条申请仍由原所在组织的工作人员审核。" in after
    assert "青山社区 › 第一网格 › 1号楼" in page_text(client.get(f"/admin/people/{street.vol_a.id}"))
    db.session.expire_all()
    assert db.session.get(User, street.vol_a.id).org_unit_id == street.building_a.id
    # The audit log names what happened.
    assert "人员调到其他组织" in page_text(client.get("/admin/audit"))
    # An admin's own page has no such form, and another community's admin cannot move them.
    own = page_text(client.get(f"/admin/people/{street.admin_a.id}"))
    assert "调到其他组织" not in own and "分配角色" not in own
    assert auth.post(f"/admin/people/{street.admin_a.id}/roles",
                     {"role": "volunteer", "org_unit_id": str(street.community_a.id)}).status_code == 403
    login("admin_b")
    assert auth.post(path, {"org_unit_id": str(street.building_b.id)}).status_code == 404


def test_admin_cannot_deactivate_people_of_another_community(street, client, login, auth):
    login("admin_a")
    assert auth.post(f"/admin/people/{street.vol_b.id}/active", {"active": "0"}).status_code == 404
    db.session.expire_all()
    assert db.session.get(User, street.vol_b.id).is_active


def test_admin_grants_a_role_within_the_subtree(street, client, login, auth):
    use_english(client)
    login("admin_a")
    resp = auth.post(f"/admin/people/{street.vol_a2.id}/roles", {"role": "grid_staff", "org_unit_id": street.grid_a.id})
    assert resp.status_code == 302
    db.session.expire_all()
    assert sorted(g.role for g in db.session.get(User, street.vol_a2.id).roles) == ["grid_staff", "volunteer"]
    assert "Grid staff · 第一网格" in page_text(client.get(f"/admin/people/{street.vol_a2.id}"))


def test_admin_takes_a_role_away_from_the_person_page(street, client, login, auth):
    use_english(client)
    login("admin_a")
    grant = street.vol_a2.roles[0]
    page = client.get(f"/admin/people/{street.vol_a2.id}").get_data(as_text=True)
    action = f"/admin/people/{street.vol_a2.id}/roles/{grant.id}/revoke"
    assert action in page
    resp = auth.post(action)
    assert resp.status_code == 302
    assert "The role Volunteer was taken away." in page_text(client.get(resp.headers["Location"]))
    db.session.expire_all()
    assert db.session.get(User, street.vol_a2.id).roles == []


def test_community_admin_cannot_make_a_street_admin(street, client, login, auth):
    use_english(client)
    login("admin_a")
    resp = auth.post(f"/admin/people/{street.vol_a2.id}/roles", {"role": "street_admin", "org_unit_id": street.community_a.id})
    assert resp.status_code == 403
    assert "You are not allowed to do this here." in page_text(resp)
    db.session.expire_all()
    assert [g.role for g in db.session.get(User, street.vol_a2.id).roles] == ["volunteer"]


# --- reversals ------------------------------------------------------------------------------


def test_admin_reverses_a_credit_with_a_reason_the_volunteer_sees(street, client, login, auth, check_ledger):
    use_english(client)
    give_points(street, street.vol_a, 30)
    credit = db.session.scalar(select(Transfer).where(Transfer.kind == "credit"))
    login("admin_a")
    page = client.get(f"/admin/people/{street.vol_a.id}/ledger")
    assert page.status_code == 200 and "+30" in page_text(page)
    path = f"/admin/people/{street.vol_a.id}/transfers/{credit.id}/reverse"

    resp = auth.post(path, {"reason": ""})
    assert resp.status_code == 422
    assert balance(street.vol_a).balance == 30

    resp = auth.post(path, {"reason": "重复登记"})
    assert resp.status_code == 302
    b = balance(street.vol_a)
    assert (b.balance, b.earned) == (0, 0)
    reversal = db.session.scalar(select(Transfer).where(Transfer.kind == "reversal"))
    ledger_page = client.get(resp.headers["Location"]).get_data(as_text=True)
    ledger_text = page_text(client.get(resp.headers["Location"]))
    # Each entry names its number, and the correction and the entry it corrects name each other,
    # each linking to the page that starts with the other.
    assert f"Reversed by entry no. {reversal.id}" in ledger_text
    assert f"Correction of entry no. {credit.id}" in ledger_text and f"Entry no. {credit.id}" in ledger_text
    assert f'href="/admin/people/{street.vol_a.id}/ledger?before={credit.id + 1}#transfer-{credit.id}"' in ledger_page
    assert f'href="/admin/people/{street.vol_a.id}/ledger?before={reversal.id + 1}#transfer-{reversal.id}"' in ledger_page

    again = auth.post(path, {"reason": "再点一次"})
    assert again.status_code == 409
    assert "This entry cannot be reversed: it was already reversed" in page_text(again)
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.kind == "reversal")) == 1

    login("vol_a")
    assert f"Correction of Award 30 (earned {local_today().isoformat()}): 重复登记" in page_text(
        client.get("/volunteer/history"))
    check_ledger()


def test_admin_of_another_community_cannot_reverse(street, client, login, auth):
    give_points(street, street.vol_a, 30)
    credit = db.session.scalar(select(Transfer).where(Transfer.kind == "credit"))
    login("admin_b")
    assert client.get(f"/admin/people/{street.vol_a.id}/ledger").status_code == 404
    resp = auth.post(f"/admin/people/{street.vol_a.id}/transfers/{credit.id}/reverse", {"reason": "越权"})
    assert resp.status_code == 404
    assert balance(street.vol_a).balance == 30


def test_an_admin_who_volunteers_cannot_reverse_their_own_entries(street, client, login, auth, check_ledger):
    from pointsapp.domain import people
    from pointsapp.models.user import ROLE_VOLUNTEER

    people.grant_role(street.street_admin, street.admin_a, ROLE_VOLUNTEER, unit=street.community_a)
    db.session.commit()
    give_points(street, street.admin_a, 30)
    credit = db.session.scalar(select(Transfer).where(Transfer.kind == "credit"))
    login("admin_a")
    page = client.get(f"/admin/people/{street.admin_a.id}/ledger")
    assert page.status_code == 200
    assert "本人积分，须由其他管理员更正" in page_text(page)
    assert f"/transfers/{credit.id}/reverse" not in page.get_data(as_text=True)
    resp = auth.post(f"/admin/people/{street.admin_a.id}/transfers/{credit.id}/reverse", {"reason": "自己改"})
    assert resp.status_code == 403
    assert "不能更正自己的积分记录，请由其他管理员更正。" in page_text(resp)
    assert balance(street.admin_a).balance == 30
    # Another admin over them sees the form and may.
    login("street_admin")
    page = client.get(f"/admin/people/{street.admin_a.id}/ledger")
    assert f"/transfers/{credit.id}/reverse" in page.get_data(as_text=True)
    check_ledger()


# --- the org tree ---------------------------------------------------------------------------


def test_admin_sees_the_tree_and_adds_a_building(street, client, login, auth):
    login("admin_a")
    page = client.get("/admin/org")
    text = page_text(page)
    assert "青山社区" in text and "1号楼" in text and "友谊社区" not in text
    resp = auth.post("/admin/org", {"parent_id": street.grid_a.id, "level": "building", "name": "2号楼"})
    assert resp.status_code == 302
    unit = db.session.scalar(select(OrgUnit).where(OrgUnit.name == "2号楼"))
    assert unit.parent_id == street.grid_a.id and unit.path == f"{street.grid_a.path}{unit.id}/"
    assert "2号楼" in page_text(client.get("/admin/org"))


def test_adding_a_node_outside_the_subtree_or_at_a_wrong_level_is_refused(street, client, login, auth):
    login("admin_a")
    use_english(client)
    resp = auth.post("/admin/org", {"parent_id": street.grid_b.id, "level": "building", "name": "越界楼"})
    assert resp.status_code == 422
    assert errors_at(resp, "parent_id") == ["Not a valid choice."]
    resp = auth.post("/admin/org", {"parent_id": street.building_a.id, "level": "grid", "name": "倒挂网格"})
    assert resp.status_code == 422
    assert errors_at(resp, "level") == ["A node must sit below its parent's level."]
    assert db.session.scalar(select(func.count()).select_from(OrgUnit).where(OrgUnit.name.in_(["越界楼", "倒挂网格"]))) == 0
