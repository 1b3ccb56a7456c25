"""Refusals that stop people crediting, redeeming or locking out beyond their office."""
import pytest
from sqlalchemy import func, select, text

from pointsapp.domain import claims, ledger, people, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import Forbidden, InvalidInput, NotFound, RewardUnavailable
from pointsapp.extensions import db
from pointsapp.models import Reward, User
from pointsapp.models.user import ROLE_MERCHANT_STAFF, ROLE_VOLUNTEER
from tests.conftest import BACKEND
from tests.factories import balance, person
from tests.unit.helpers import award, credit_of, ledger_state


def test_grid_staff_cannot_record_points_for_themselves(street, check_ledger):
    people.grant_role(None, street.staff_a, ROLE_VOLUNTEER, unit=street.grid_a)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(Forbidden):
        claims.record_attendance(
            street.staff_a,
            rule_id=street.meeting.id,
            activity_date=local_today(),
            volunteer_ids=[street.vol_a.id, street.staff_a.id],
            batch_key="self-credit",
        )
    db.session.rollback()
    assert ledger_state() == before
    check_ledger()


def test_a_community_admin_cannot_deactivate_a_street_admin_or_a_peer(street):
    boss = person("boss", street.community_a, roles=("street_admin",), full_name="王主任")
    peer = person("peer_a", street.community_a, roles=("community_admin",), full_name="李同事")
    db.session.commit()
    for target in (boss, peer):
        with pytest.raises(Forbidden):
            people.set_active(street.admin_a, target.id, False)
        db.session.rollback()
        assert db.session.get(User, target.id).is_active
    # A volunteer of the community can be switched off by its admin, and back on.
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    assert not db.session.get(User, street.vol_a.id).is_active


def test_a_community_admin_cannot_reverse_a_redemption_at_a_street_level_merchant(street, check_ledger):
    award(street, street.vol_a, 10)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    capture = vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    from pointsapp.models import Transfer

    t = db.session.scalar(db.select(Transfer).where(Transfer.voucher_id == capture.id))
    before = ledger_state()
    with pytest.raises(NotFound):
        claims.reverse_transfer(street.admin_a, t.id, "wrong reward")
    db.session.rollback()
    assert ledger_state() == before
    claims.reverse_transfer(street.street_admin, t.id, "wrong reward")
    db.session.commit()
    assert balance(street.vol_a).available == 10
    check_ledger()


def test_a_community_admin_can_still_reverse_a_credit_in_their_community(street, check_ledger):
    act = award(street, street.vol_a, 10)
    claims.reverse_transfer(street.admin_a, credit_of(act).id, "recorded twice")
    db.session.commit()
    assert (balance(street.vol_a).balance, balance(street.vol_a).earned) == (0, 0)
    check_ledger()


def test_a_cashier_cannot_redeem_their_own_voucher(street, check_ledger):
    people.grant_role(None, street.cashier, ROLE_VOLUNTEER, unit=street.unit_a)
    db.session.commit()
    cashier = db.session.get(User, street.cashier.id)
    cashier.org_unit_id = street.unit_a.id
    db.session.commit()
    award(street, cashier, 10)
    issued = vouchers.issue_voucher(cashier, street.rice.id)
    db.session.commit()
    with pytest.raises(Forbidden):
        vouchers.confirm_redemption(cashier, issued.code)
    db.session.rollback()
    other = person("cashier3", None, roles=(ROLE_MERCHANT_STAFF,), merchant=street.shop)
    db.session.commit()
    assert vouchers.confirm_redemption(other, issued.code).status == "redeemed"
    db.session.commit()
    check_ledger()


def test_a_deactivated_merchant_cannot_redeem_vouchers_issued_before(street, check_ledger):
    award(street, street.vol_a, 10)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    street.shop.is_active = False
    db.session.commit()
    with pytest.raises(Forbidden):
        vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.rollback()
    assert balance(street.vol_a).held == 10
    check_ledger()


def test_a_price_change_committed_during_a_redemption_refuses_it_and_changes_nothing(
    street, monkeypatch, check_ledger
):
    if BACKEND != "postgresql":
        pytest.skip("SQLite runs one writer at a time: an admin's edit cannot land mid-redemption")
    award(street, street.vol_a, 50)
    rice_id = street.rice.id
    before = ledger_state()
    real_hold = ledger.hold

    def hold_then_an_admin_changes_the_price(account_id, amount):
        real_hold(account_id, amount)
        with db.engine.begin() as other:  # another connection: the admin's request, committed
            other.execute(text("UPDATE reward SET price = 30 WHERE id = :id"), {"id": rice_id})

    monkeypatch.setattr(ledger, "hold", hold_then_an_admin_changes_the_price)
    with pytest.raises(RewardUnavailable):
        vouchers.issue_voucher(street.vol_a, rice_id)
    db.session.rollback()
    assert ledger_state() == before
    assert db.session.get(Reward, rice_id).stock == 100
    check_ledger()


@pytest.mark.parametrize("path", [
    "/volunteer/history?before=100000000000000000000",
    "/volunteer/vouchers/100000000000000000000",
    "/admin/people?after=99999999999",
    "/admin/rules/100000000000000000000",
])
def test_numbers_too_large_for_the_database_are_not_a_server_error(street, auth, client, path):
    who = "vol_a" if path.startswith("/volunteer") else "street_admin"
    auth.login(who)
    resp = client.get(path)
    assert resp.status_code in (200, 404), resp.status_code


def test_an_admin_corrects_a_persons_details_only_where_they_could_give_the_persons_roles(street):
    from pointsapp.models import AuditRecord

    boss = person("boss", street.community_a, roles=("street_admin",), full_name="王主任")
    db.session.commit()
    with pytest.raises(Forbidden):
        people.update_details(street.admin_a, boss.id, full_name="改名", phone=None, title=None)
    db.session.rollback()
    with pytest.raises(NotFound):  # another community's volunteer is out of sight
        people.update_details(street.admin_a, street.vol_b.id, full_name="改名", phone=None, title=None)
    db.session.rollback()
    for bad, field in ((" ", "full_name"), ("名" * 101, "full_name")):
        with pytest.raises(InvalidInput) as exc:
            people.update_details(street.admin_a, street.vol_a.id, full_name=bad, phone=None, title=None)
        assert exc.value.field == field
        db.session.rollback()
    with pytest.raises(InvalidInput) as exc:
        people.update_details(street.admin_a, street.vol_a.id, full_name="张秀华", phone="1" * 33, title=None)
    assert exc.value.field == "phone"
    db.session.rollback()
    with pytest.raises(InvalidInput) as exc:
        people.update_details(street.admin_a, street.vol_a.id, full_name="张秀华", phone=None, title="chef")
    assert exc.value.field == "title"
    db.session.rollback()
    assert db.session.get(User, street.vol_a.id).full_name == "张秀华"

    people.update_details(street.admin_a, street.vol_a.id, full_name=" 张秀花 ", phone=" 13900000001 ",
                          title="unit_leader")
    db.session.commit()
    vol = db.session.get(User, street.vol_a.id)
    assert (vol.full_name, vol.phone, vol.title, vol.username) == ("张秀花", "13900000001", "unit_leader", "vol_a")
    record = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "person.changed"))
    assert '"before"' in record.summary and "张秀华" in record.summary and "张秀花" in record.summary
    # Sending the same details again writes nothing more.
    people.update_details(street.admin_a, street.vol_a.id, full_name="张秀花", phone="13900000001",
                          title="unit_leader")
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(AuditRecord).where(
        AuditRecord.action == "person.changed")) == 1
