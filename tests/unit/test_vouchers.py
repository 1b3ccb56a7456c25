"""Rewards and vouchers: redeem (hold), confirm at the till (capture), cancel, expire."""
import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from pointsapp.domain import people, vouchers
from pointsapp.domain.clock import local_today, now_utc, to_local
from pointsapp.domain.errors import (
    AccountInactive,
    Forbidden,
    InsufficientPoints,
    InvalidInput,
    LimitReached,
    NotFound,
    OutOfStock,
    RewardUnavailable,
    VoucherAlreadyRedeemed,
    VoucherCancelled,
    VoucherExpired,
    VoucherKeyMismatch,
    VoucherNotFound,
    WrongMerchant,
)
from pointsapp.extensions import db
from pointsapp.models import Reward, Transfer, User, Voucher
from tests.factories import balance
from tests.unit.helpers import award, ledger_state

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
LATER = timedelta(days=8)  # past the default 7-day lifetime


def stock(reward) -> int | None:
    return db.session.scalar(select(Reward.stock).where(Reward.id == reward.id))


def redeem(volunteer, reward, **kw):
    issued = vouchers.issue_voucher(volunteer, reward.id, **kw)
    db.session.commit()
    return issued


def new_reward(s, merchant=None, **terms):
    reward = vouchers.create_reward(
        s.street_admin, (merchant or s.shop).id, vouchers.RewardTerms(**{"name": "食用油 1L", "price": 10, **terms})
    )
    db.session.commit()
    return reward


# --- issuing ---------------------------------------------------------------------------------


def test_redeeming_holds_the_points_and_reserves_one_unit_of_stock(street, check_ledger):
    award(street, street.vol_a, 25)
    issued = redeem(street.vol_a, street.rice)
    v = issued.voucher
    assert (v.status, v.points, v.merchant_id, v.volunteer_id) == ("issued", 10, street.shop.id, street.vol_a.id)
    assert v.expires_at - v.issued_at == timedelta(days=7)
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.available, b.earned) == (25, 10, 15, 25)
    assert stock(street.rice) == 99
    assert db.session.scalar(select(Transfer.id).where(Transfer.voucher_id == v.id)) is None  # no points moved yet
    check_ledger()


def test_the_same_redeem_tap_sent_twice_issues_one_voucher_and_holds_once(street, check_ledger):
    """The answer to the first was lost; the volunteer went Back and tapped again."""
    award(street, street.vol_a, 25)
    first = vouchers.issue_voucher(street.vol_a, street.rice.id, key="page1-7")
    db.session.commit()
    again = vouchers.issue_voucher(street.vol_a, street.rice.id, key="page1-7")
    db.session.commit()
    assert again.voucher.id == first.voucher.id and (again.code, again.token) == (first.code, first.token)
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (25, 10) and stock(street.rice) == 99
    # Another tap (another key) is another voucher.
    other = vouchers.issue_voucher(street.vol_a, street.rice.id, key="page2-7")
    db.session.commit()
    assert other.voucher.id != first.voucher.id and balance(street.vol_a).held == 20
    # The key is the volunteer's own: another volunteer's same key is theirs.
    award(street, street.vol_b, 10)
    theirs = vouchers.issue_voucher(street.vol_b, street.rice.id, key="page1-7")
    db.session.commit()
    assert theirs.voucher.volunteer_id == street.vol_b.id
    with pytest.raises(InvalidInput):
        vouchers.issue_voucher(street.vol_a, street.rice.id, key="x" * 65)
    db.session.rollback()
    check_ledger()


def test_a_reversed_redemption_gives_its_unit_back_to_the_stock(street, check_ledger):
    """The goods were not handed over: the unit is on the shelf again, as for a cancelled voucher."""
    from pointsapp.domain import claims

    award(street, street.vol_a, 25)
    issued = redeem(street.vol_a, street.rice)
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    assert stock(street.rice) == 99
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture"))
    claims.reverse_transfer(street.street_admin, capture.id, "商品未领取")
    db.session.commit()
    assert stock(street.rice) == 100
    # Scanned again at the same till minutes later: not "hand the goods over now".
    with pytest.raises(VoucherAlreadyRedeemed) as refused:
        vouchers.look_up_for_redemption(street.cashier, issued.code)
    db.session.rollback()
    assert type(refused.value) is VoucherAlreadyRedeemed
    assert refused.value.message == ("An admin reversed this voucher's redemption: its points went back to the "
                                     "volunteer. Do not hand over goods for it.")
    # A reward without a stock count stays without one.
    unlimited = vouchers.create_reward(street.street_admin, street.shop.id, vouchers.RewardTerms(name="理发", price=5))
    db.session.commit()
    issued = redeem(street.vol_a, unlimited)
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    capture = db.session.scalar(select(Transfer).where(Transfer.kind == "capture").order_by(Transfer.id.desc()))
    claims.reverse_transfer(street.street_admin, capture.id, "商品未领取")
    db.session.commit()
    assert stock(unlimited) is None
    check_ledger()


def test_a_till_reads_the_voucher_once_with_its_reward_and_volunteer_and_no_role_grants(street, check_ledger):
    """Look-up and confirm each read the voucher in one statement (its reward and volunteer
    joined); the volunteer's role grants are not read; after the confirm the voucher says what
    the conditional UPDATE wrote, without reading it back."""
    from sqlalchemy import event

    award(street, street.vol_a, 25)
    issued = redeem(street.vol_a, street.rice)
    cashier_id, voucher_id, rice_name = street.cashier.id, issued.voucher.id, street.rice.name
    db.session.expunge_all()
    cashier = db.session.get(User, cashier_id)
    cashier.roles  # the cashier's own grants, as authentication loads them
    seen = []
    listen = lambda conn, cur, statement, params, ctx, many: seen.append(statement.split("FROM")[1].split()[0]  # noqa: E731
                                                                         if "FROM" in statement else statement.split()[0])
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        looked = vouchers.look_up_for_redemption(cashier, issued.code)
        assert (looked.reward.name, looked.volunteer.is_active) == (rice_name, True)
        after_lookup = list(seen)
        done = vouchers.confirm_redemption(cashier, issued.code)
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    assert after_lookup == ["voucher"]
    assert seen.count("voucher") == 2 and "role_grant" not in seen
    assert (done.status, done.redeemed_by_id) == ("redeemed", cashier_id)
    redeemed_at = done.redeemed_at
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Voucher, voucher_id)
    assert (stored.status, stored.redeemed_by_id, stored.redeemed_at) == ("redeemed", cashier_id, redeemed_at)
    check_ledger()


def test_the_voucher_lifetime_is_configurable(app, street):
    app.config["VOUCHER_TTL"] = timedelta(hours=2)
    award(street, street.vol_a, 10)
    v = redeem(street.vol_a, street.rice).voucher
    assert v.expires_at - v.issued_at == timedelta(hours=2)


def test_redeeming_without_enough_points_is_refused_and_nothing_changes(street, check_ledger):
    award(street, street.vol_a, 15)
    redeem(street.vol_a, street.rice)
    before = ledger_state()
    with pytest.raises(InsufficientPoints) as exc:
        vouchers.issue_voucher(street.vol_a, street.rice.id)
    assert exc.value.params == {"needed": 10, "available": 5}
    db.session.rollback()
    assert ledger_state() == before
    assert stock(street.rice) == 99
    check_ledger()


def test_the_last_unit_goes_to_one_volunteer_and_then_the_reward_is_out_of_stock(street, check_ledger):
    last = new_reward(street, stock=1)
    award(street, street.vol_a, 10)
    award(street, street.vol_a2, 10)
    redeem(street.vol_a, last)
    assert stock(last) == 0
    before = ledger_state()
    with pytest.raises(OutOfStock):
        vouchers.issue_voucher(street.vol_a2, last.id)
    db.session.rollback()
    assert ledger_state() == before
    assert balance(street.vol_a2).held == 0
    check_ledger()


def test_unlimited_stock_stays_unlimited(street, check_ledger):
    award(street, street.vol_a, 40)
    for _ in range(2):
        redeem(street.vol_a, street.oil)
    assert stock(street.oil) is None
    check_ledger()


def test_a_volunteer_may_redeem_a_reward_only_up_to_its_limit(street, check_ledger):
    limited = new_reward(street, per_volunteer_limit=2)
    award(street, street.vol_a, 50)
    award(street, street.vol_a2, 50)
    first = redeem(street.vol_a, limited)
    second = redeem(street.vol_a, limited)
    vouchers.confirm_redemption(street.cashier, second.code)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(LimitReached) as exc:
        vouchers.issue_voucher(street.vol_a, limited.id)
    assert exc.value.params == {"limit": 2}
    db.session.rollback()
    assert ledger_state() == before
    redeem(street.vol_a2, limited)  # the limit is per volunteer
    # A cancelled voucher gives its turn back.
    vouchers.cancel_voucher(street.vol_a, first.voucher.id)
    db.session.commit()
    redeem(street.vol_a, limited)
    check_ledger()


@pytest.mark.parametrize(
    "terms",
    [
        lambda: dict(is_active=False),
        # Dates taken when the test runs, not when it is collected: a run that passes midnight
        # in between would otherwise make "tomorrow" today.
        lambda: dict(active_to=local_today() - timedelta(days=1)),
        lambda: dict(active_from=local_today() + timedelta(days=1)),
    ],
    ids=["inactive", "ended", "not_yet_started"],
)
def test_an_inactive_or_out_of_date_reward_cannot_be_redeemed(street, check_ledger, terms):
    reward = new_reward(street, **terms())
    award(street, street.vol_a, 50)
    before = ledger_state()
    with pytest.raises(RewardUnavailable):
        vouchers.issue_voucher(street.vol_a, reward.id)
    db.session.rollback()
    assert ledger_state() == before
    visible = [r.id for r in db.session.scalars(vouchers.visible_rewards_query(street.vol_a))]
    assert reward.id not in visible and street.rice.id in visible
    check_ledger()


def test_a_reward_of_a_closed_merchant_cannot_be_redeemed(street):
    award(street, street.vol_a, 50)
    street.shop.is_active = False
    db.session.commit()
    with pytest.raises(RewardUnavailable):
        vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.rollback()


def test_a_reward_of_a_merchant_in_another_community_is_not_offered(street):
    shop_b = vouchers.create_merchant(street.street_admin, street.community_b, name="友谊社区小卖部", kind="shop")
    reward_b = new_reward(street, merchant=shop_b)
    award(street, street.vol_a, 50)
    with pytest.raises(NotFound):
        vouchers.issue_voucher(street.vol_a, reward_b.id)
    db.session.rollback()
    assert reward_b.id not in [r.id for r in db.session.scalars(vouchers.visible_rewards_query(street.vol_a))]
    assert reward_b.id in [r.id for r in db.session.scalars(vouchers.visible_rewards_query(street.vol_b))]


def test_a_deactivated_volunteer_cannot_redeem_and_keeps_their_points(street, check_ledger):
    award(street, street.vol_a, 50)
    open_voucher = redeem(street.vol_a, street.rice)
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(AccountInactive):
        vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.rollback()
    with pytest.raises(AccountInactive):
        vouchers.confirm_redemption(street.cashier, open_voucher.code)
    db.session.rollback()
    assert ledger_state() == before
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (50, 10, 50)
    # Reactivated, the same voucher works again.
    people.set_active(street.admin_a, street.vol_a.id, True)
    vouchers.confirm_redemption(street.cashier, open_voucher.code)
    db.session.commit()
    assert balance(street.vol_a).balance == 40
    check_ledger()


def test_staff_without_the_volunteer_role_cannot_redeem(street):
    with pytest.raises(Forbidden):
        vouchers.issue_voucher(street.staff_a, street.rice.id)
    db.session.rollback()


def test_reward_terms_are_validated(street):
    for terms, field in [
        (dict(price=0), "price"),
        (dict(stock=-1), "stock"),
        (dict(per_volunteer_limit=0), "per_volunteer_limit"),
        (dict(name=""), "name"),
        (dict(active_from=local_today(), active_to=local_today() - timedelta(days=1)), "active_to"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            vouchers.create_reward(street.street_admin, street.shop.id, vouchers.RewardTerms(**{"name": "x", "price": 5, **terms}))
        assert exc.value.field == field
        db.session.rollback()


def test_changing_stock_by_a_delta_keeps_reservations_made_meanwhile(street, check_ledger):
    award(street, street.vol_a, 20)
    redeem(street.vol_a, street.rice)  # 100 -> 99
    terms = vouchers.RewardTerms(name="大米 5kg", price=10)
    vouchers.update_reward(street.street_admin, street.rice.id, terms, stock_change=5)
    db.session.commit()
    assert stock(street.rice) == 104
    with pytest.raises(InvalidInput):
        vouchers.update_reward(street.street_admin, street.rice.id, terms, stock_change=-105)
    db.session.rollback()
    assert stock(street.rice) == 104
    check_ledger()


# --- tokens and codes ------------------------------------------------------------------------


def test_the_qr_token_is_opaque_and_carries_at_least_128_random_bits(street):
    award(street, street.vol_a, 20)
    one, two = redeem(street.vol_a, street.rice), redeem(street.vol_a, street.rice)
    for issued in (one, two):
        body = issued.token.removeprefix(vouchers.TOKEN_PREFIX)
        assert set(body) <= CROCKFORD and len(body) * 5 >= 128
        assert len(bytes.fromhex(issued.voucher.nonce)) * 8 == 128  # the random seed of both
        assert len(issued.code) == 8 and set(issued.code) <= CROCKFORD
    assert one.token != two.token and one.code != two.code
    # The volunteer's page can show the same QR again: the token is derived, not stored.
    assert vouchers.token_for(one.voucher.nonce) == one.token
    assert vouchers.code_for(one.voucher.nonce) == one.code


def test_only_hashes_of_the_token_and_code_are_stored(street):
    award(street, street.vol_a, 10)
    issued = redeem(street.vol_a, street.rice)
    row = db.session.execute(text("SELECT * FROM voucher WHERE id = :id"), {"id": issued.voucher.id}).mappings().one()
    stored = " ".join(str(value) for value in row.values())
    body = issued.token.removeprefix(vouchers.TOKEN_PREFIX)
    for secret in (body, issued.code, vouchers.format_code(issued.code), issued.code.lower()):
        assert secret not in stored
    assert row["token_hash"] == hashlib.sha256(issued.token.encode()).hexdigest()
    # The 40-bit code is kept keyed: from a copy of the database its hash cannot be searched for.
    assert row["code_hash"] == vouchers.code_digest(issued.code)
    assert row["code_hash"] != hashlib.sha256(issued.code.encode()).hexdigest()


def test_a_voucher_issued_before_codes_were_keyed_is_still_found_by_its_code(street, check_ledger):
    award(street, street.vol_a, 10)
    issued = redeem(street.vol_a, street.rice)
    # As a voucher of the release before kept its code: a plain SHA-256.
    db.session.execute(text("UPDATE voucher SET code_hash = :h WHERE id = :id"),
                       {"h": hashlib.sha256(issued.code.encode()).hexdigest(), "id": issued.voucher.id})
    db.session.commit()
    assert vouchers.confirm_redemption(street.cashier, vouchers.format_code(issued.code)).status == "redeemed"
    db.session.commit()
    check_ledger()


def test_the_token_depends_on_the_voucher_key_and_not_on_the_session_key(app, street):
    award(street, street.vol_a, 10)
    issued = redeem(street.vol_a, street.rice)
    app.config["SECRET_KEY"] = "a-rotated-session-key"
    assert vouchers.token_for(issued.voucher.nonce) == issued.token
    assert vouchers.find_voucher(issued.code).id == issued.voucher.id
    app.config["VOUCHER_KEY"] = "another-voucher-key"
    assert vouchers.token_for(issued.voucher.nonce) != issued.token
    assert vouchers.code_for(issued.voucher.nonce) != issued.code


def test_a_voucher_is_found_by_its_token_or_its_code(street):
    award(street, street.vol_a, 10)
    issued = redeem(street.vol_a, street.rice)
    assert vouchers.find_voucher(issued.token).id == issued.voucher.id
    assert vouchers.find_voucher(" " + issued.token.lower() + "\n").id == issued.voucher.id
    assert vouchers.find_voucher(issued.code).id == issued.voucher.id
    assert vouchers.find_voucher(vouchers.format_code(issued.code).lower()).id == issued.voucher.id
    assert vouchers.find_voucher(" ".join(issued.code)).id == issued.voucher.id


def test_a_typed_code_tolerates_o_for_zero_and_i_or_l_for_one(street):
    award(street, street.vol_a, 300)
    # Codes are random: redeem until one has a 0 or a 1 in it (each does with p > 0.4).
    for _ in range(30):
        issued = redeem(street.vol_a, street.rice)
        if re.search("[01]", issued.code):
            break
    else:  # pragma: no cover
        pytest.fail("no code with a 0 or 1 in 30 vouchers")
    for one in ("I", "L", "i", "l"):
        typed = issued.code.replace("0", "o").replace("1", one)
        typed = f"{typed[:4]}-{typed[4:]}"
        assert vouchers.find_voucher(typed).id == issued.voucher.id, typed
    assert vouchers.normalise_code("oIl0-abcd") == "0110ABCD"
    assert vouchers.normalise_code("ABCD-EFG") is None  # too short
    assert vouchers.normalise_code("ABCD-EFGU") is None  # U is not a Crockford digit


def test_a_tampered_or_truncated_token_or_code_is_not_found(street):
    award(street, street.vol_a, 10)
    issued = redeem(street.vol_a, street.rice)
    last = issued.token[-1]
    tampered = issued.token[:-1] + ("A" if last != "A" else "B")
    flipped_code = ("A" if issued.code[0] != "A" else "B") + issued.code[1:]
    for text_ in (tampered, issued.token[:-1], issued.token[:20], vouchers.TOKEN_PREFIX, issued.code[:7],
                  flipped_code, "", "PV1-" + issued.code, str(issued.voucher.id), issued.voucher.nonce):
        with pytest.raises(VoucherNotFound):
            vouchers.find_voucher(text_)
        with pytest.raises(VoucherNotFound):
            vouchers.confirm_redemption(street.cashier, text_)
        db.session.rollback()
    assert db.session.get(Voucher, issued.voucher.id).status == "issued"


# --- confirming at the till ------------------------------------------------------------------


def test_the_cashier_confirms_once_and_the_points_go_to_the_merchant(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    found = vouchers.look_up_for_redemption(street.cashier, issued.code)
    assert found.volunteer.masked_name == "张*华" and found.reward.name == "大米 5kg"
    v = vouchers.confirm_redemption(street.cashier, issued.token)
    db.session.commit()
    assert v.status == "redeemed" and v.redeemed_by_id == street.cashier.id and v.redeemed_at is not None
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.earned) == (20, 0, 30)
    assert balance_of_merchant(street.shop) == 10
    assert [x.id for x in vouchers.todays_redemptions(street.cashier, street.shop.id)] == [v.id]
    check_ledger()


def balance_of_merchant(merchant) -> int:
    from pointsapp.domain import ledger

    return ledger.balance_of(ledger.account_for_merchant(merchant.id).id).balance


def test_confirming_twice_is_refused_naming_when_and_where_it_was_redeemed(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    v = vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(VoucherAlreadyRedeemed) as exc:  # later than a lost answer's retry
        vouchers.confirm_redemption(street.cashier, issued.token, now=now_utc() + vouchers.JUST_REDEEMED + timedelta(minutes=1))
    assert type(exc.value) is VoucherAlreadyRedeemed
    when = to_local(v.redeemed_at).strftime("%Y-%m-%d %H:%M")
    assert exc.value.params == {"when": when, "merchant": "友谊慈善超市", "cashier": "钱收银"}
    assert when in exc.value.message and "友谊慈善超市" in exc.value.message
    db.session.rollback()
    assert ledger_state() == before
    assert db.session.query(Transfer).filter_by(kind="capture").count() == 1
    check_ledger()


def test_a_cashier_of_another_merchant_is_refused_and_nothing_changes(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    before = ledger_state()
    with pytest.raises(WrongMerchant) as exc:
        vouchers.confirm_redemption(street.other_cashier, issued.code)
    assert exc.value.params == {"merchant": "友谊慈善超市"}
    db.session.rollback()
    with pytest.raises(Forbidden):  # claiming to work at a merchant one does not work at
        vouchers.confirm_redemption(street.other_cashier, issued.code, merchant_id=street.shop.id)
    db.session.rollback()
    for not_a_cashier in (street.vol_a2, street.street_admin):
        with pytest.raises(Forbidden):
            vouchers.confirm_redemption(not_a_cashier, issued.code)
        db.session.rollback()
    assert ledger_state() == before
    check_ledger()


def test_a_cashier_of_two_merchants_confirms_at_the_one_named(street, check_ledger):
    from pointsapp.models.user import ROLE_MERCHANT_STAFF

    people.grant_role(street.street_admin, street.cashier, ROLE_MERCHANT_STAFF, merchant=street.other_shop)
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    with pytest.raises(WrongMerchant):
        vouchers.confirm_redemption(street.cashier, issued.code, merchant_id=street.other_shop.id)
    db.session.rollback()
    vouchers.confirm_redemption(street.cashier, issued.code, merchant_id=street.shop.id)
    db.session.commit()
    assert balance_of_merchant(street.shop) == 10
    check_ledger()


# --- cancelling and expiry -------------------------------------------------------------------


def test_cancelling_releases_the_hold_and_the_stock(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    v = vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.commit()
    assert v.status == "cancelled" and v.closed_at is not None
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.available) == (30, 0, 30)
    assert stock(street.rice) == 100
    with pytest.raises(VoucherCancelled):
        vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.rollback()
    with pytest.raises(VoucherCancelled):
        vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.rollback()
    assert balance(street.vol_a).balance == 30
    check_ledger()


def test_a_redeemed_voucher_cannot_be_cancelled(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    before = ledger_state()
    with pytest.raises(VoucherAlreadyRedeemed) as exc:
        vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.rollback()
    # Told as the volunteer needs it, not as the cashier's warning about goods.
    assert "cannot be cancelled" in exc.value.message
    assert street.shop.name in exc.value.message and "hand over" not in exc.value.message
    assert ledger_state() == before
    check_ledger()


def test_only_the_owner_may_cancel_a_voucher(street):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    with pytest.raises(NotFound):
        vouchers.cancel_voucher(street.vol_a2, issued.voucher.id)
    db.session.rollback()
    assert db.session.get(Voucher, issued.voucher.id).status == "issued"


def test_expiry_releases_the_hold_and_the_stock_and_runs_once(street, check_ledger):
    award(street, street.vol_a, 30)
    old = redeem(street.vol_a, street.rice)
    fresh = redeem(street.vol_a, street.rice, now=now_utc() + timedelta(days=5))
    later = now_utc() + LATER
    assert vouchers.expire_vouchers(now=later) == 1
    db.session.commit()
    assert db.session.get(Voucher, old.voucher.id).status == "expired"
    assert db.session.get(Voucher, fresh.voucher.id).status == "issued"
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (30, 10)
    assert stock(street.rice) == 99
    assert vouchers.expire_vouchers(now=later) == 0
    db.session.commit()
    assert balance(street.vol_a).held == 10
    check_ledger()


def test_a_voucher_is_void_at_the_moment_it_expires_even_before_the_sweep(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    before = ledger_state()
    with pytest.raises(VoucherExpired) as exc:
        vouchers.confirm_redemption(street.cashier, issued.code, now=issued.voucher.expires_at)
    assert exc.value.params["when"] == to_local(issued.voucher.expires_at).strftime("%Y-%m-%d %H:%M")
    db.session.rollback()
    assert ledger_state() == before
    # One second earlier it still works.
    vouchers.confirm_redemption(street.cashier, issued.code, now=issued.voucher.expires_at - timedelta(seconds=1))
    db.session.commit()
    check_ledger()


def test_an_expired_voucher_cannot_be_confirmed_after_the_sweep(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    vouchers.expire_vouchers(now=now_utc() + LATER)
    db.session.commit()
    with pytest.raises(VoucherExpired):
        vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.rollback()
    with pytest.raises(VoucherExpired):
        vouchers.cancel_voucher(street.vol_a, issued.voucher.id)
    db.session.rollback()
    assert balance(street.vol_a).available == 30
    check_ledger()


def test_cancelling_an_overdue_voucher_closes_it_as_expired_and_returns_the_points(street, check_ledger):
    award(street, street.vol_a, 30)
    issued = redeem(street.vol_a, street.rice)
    v = vouchers.cancel_voucher(street.vol_a, issued.voucher.id, now=now_utc() + LATER)
    db.session.commit()
    assert v.status == "expired"
    assert (balance(street.vol_a).held, balance(street.vol_a).available) == (0, 30)
    assert db.session.get(Reward, street.rice.id).stock == 100
    check_ledger()


def test_the_expire_vouchers_command_expires_overdue_vouchers(street, runner, check_ledger):
    award(street, street.vol_a, 30)
    past = now_utc() - LATER
    overdue = [redeem(street.vol_a, street.rice, now=past) for _ in range(2)]
    current = redeem(street.vol_a, street.rice)
    result = runner.invoke(args=["points", "expire-vouchers"])
    assert result.exit_code == 0, result.output
    assert "expired 2 voucher(s)" in result.output
    db.session.expire_all()
    assert [db.session.get(Voucher, i.voucher.id).status for i in overdue] == ["expired", "expired"]
    assert db.session.get(Voucher, current.voucher.id).status == "issued"
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (30, 10)
    assert stock(street.rice) == 99
    again = runner.invoke(args=["points", "expire-vouchers"])
    assert again.exit_code == 0 and "expired 0 voucher(s)" in again.output
    check_ledger()


def test_the_voucher_keys_fingerprint_is_trusted_only_once_committed(app, street):
    from pointsapp.models import AppSetting

    award(street, street.vol_a, 20)
    vouchers._key_agreed.clear()
    vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.rollback()  # the first voucher, and the fingerprint it recorded, never happened
    assert db.session.get(AppSetting, vouchers.KEY_FINGERPRINT) is None
    # Another machine, with a key of its own, records its fingerprint first.
    db.session.add(AppSetting(name=vouchers.KEY_FINGERPRINT, value="0" * 32))
    db.session.commit()
    with pytest.raises(VoucherKeyMismatch):
        vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.rollback()
