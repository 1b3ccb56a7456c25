"""Races: many requests at the same moment, each in its own thread, session and connection.

Every worker loads what it needs by id in its own session, calls one domain function and
commits, or lets the refusal propagate. ``run_in_parallel`` releases them together and collects
results and exceptions; the tests count both exactly, so a stray ``OperationalError``
("database is locked", a deadlock) or ``IntegrityError`` fails the test by showing up in the tally.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from pointsapp.domain import activity_totals, claims, ledger, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.extensions import db
from pointsapp.models import Activity, PointLot, Reward, Transfer, User, VolunteerYear, Voucher, VoucherLot
from tests.conftest import run_in_parallel
from tests.factories import balance, person, yesterday
from tests.unit.helpers import award, award_many, credit_of


def race(app, n, fn, *args):
    """End the main thread's transaction (on SQLite it would hold the write lock), then race."""
    db.session.commit()
    results = run_in_parallel(app, n, fn, *args)
    db.session.expire_all()
    return results


def tally(results) -> Counter:
    """Count outcomes by name: 'ok' for a result, the class name for an exception."""
    return Counter("ok" if not isinstance(r, BaseException) else type(r).__name__ for r in results)


def unexpected(results, *allowed) -> list:
    """Return the exceptions other than the allowed refusals (shown when a tally is off)."""
    return [r for r in results if isinstance(r, BaseException) and type(r).__name__ not in allowed]


def new_reward(s, **terms):
    reward = vouchers.create_reward(s.street_admin, s.shop.id, vouchers.RewardTerms(**{"name": "鸡蛋一盒", "price": 10, **terms}))
    db.session.commit()
    return reward


def count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery()))


def test_fifty_redemptions_at_once_from_100_points_let_exactly_ten_through(app, street, check_ledger):
    reward = new_reward(street, stock=None)
    award(street, street.vol_a, 100)
    vol_id, reward_id = street.vol_a.id, reward.id

    def redeem(i):
        issued = vouchers.issue_voucher(db.session.get(User, vol_id), reward_id)
        db.session.commit()
        return issued.voucher.id

    results = race(app, 50, redeem)
    assert tally(results) == {"ok": 10, "InsufficientPoints": 40}, unexpected(results, "InsufficientPoints")
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.available) == (100, 100, 0)
    assert count(select(Voucher.id).where(Voucher.status == "issued")) == 10
    check_ledger()


def test_one_voucher_confirmed_fifty_times_at_once_is_redeemed_once(app, street, check_ledger):
    award(street, street.vol_a, 100)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    code, cashier_id, voucher_id = issued.code, street.cashier.id, issued.voucher.id

    def confirm(i):
        vouchers.confirm_redemption(db.session.get(User, cashier_id), code)
        db.session.commit()

    results = race(app, 50, confirm)
    # The same cashier's other 49: told it was theirs a moment ago (a subclass of "already redeemed").
    assert tally(results) == {"ok": 1, "VoucherJustRedeemed": 49}, unexpected(results, "VoucherJustRedeemed")
    assert count(select(Transfer.id).where(Transfer.kind == "capture", Transfer.voucher_id == voucher_id)) == 1
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (90, 0)
    assert db.session.get(Voucher, voucher_id).status == "redeemed"
    check_ledger()


def test_the_last_item_in_stock_goes_to_exactly_one_of_twenty_volunteers(app, street, check_ledger):
    last = new_reward(street, stock=1)
    crowd = [person(f"crowd{i}", street.unit_a, title="resident") for i in range(20)]
    db.session.commit()
    award_many(street, crowd, 10)
    ids, reward_id = [v.id for v in crowd], last.id

    def redeem(i):
        vouchers.issue_voucher(db.session.get(User, ids[i]), reward_id)
        db.session.commit()

    results = race(app, 20, redeem)
    assert tally(results) == {"ok": 1, "OutOfStock": 19}, unexpected(results, "OutOfStock")
    assert db.session.scalar(select(Reward.stock).where(Reward.id == reward_id)) == 0
    assert count(select(Voucher.id).where(Voucher.reward_id == reward_id)) == 1
    assert sum(balance(v).held for v in crowd) == 10
    assert all(balance(v).balance == 10 for v in crowd)
    check_ledger()


def test_twenty_approvals_of_the_same_claim_at_once_credit_it_once(app, street, check_ledger):
    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
    db.session.commit()
    act_id = act.id
    approvers = [street.staff_a.id, street.admin_a.id, street.street_admin.id]

    def approve(i):
        claims.approve_claim(db.session.get(User, approvers[i % 3]), act_id)
        db.session.commit()

    results = race(app, 20, approve)
    assert tally(results) == {"ok": 1, "AlreadyDecided": 19}, unexpected(results, "AlreadyDecided")
    assert count(select(Transfer.id).where(Transfer.activity_id == act_id)) == 1
    b = balance(street.vol_a)
    assert (b.balance, b.earned) == (10, 10)
    check_ledger()


def confirm_or_cancel(i, cashier_id, vol_id, code, voucher_id):
    if i == 0:
        vouchers.confirm_redemption(db.session.get(User, cashier_id), code)
    else:
        vouchers.cancel_voucher(db.session.get(User, vol_id), voucher_id)
    db.session.commit()
    return "redeemed" if i == 0 else "cancelled"


def test_confirm_racing_cancel_lets_exactly_one_win_every_time(app, street, check_ledger):
    award(street, street.vol_a, 100)
    vol_id, cashier_id, rice_id = street.vol_a.id, street.cashier.id, street.rice.id
    wins = Counter()
    for _ in range(10):
        issued = vouchers.issue_voucher(db.session.get(User, vol_id), rice_id)
        db.session.commit()
        voucher_id = issued.voucher.id
        results = race(app, 2, confirm_or_cancel, cashier_id, vol_id, issued.code, voucher_id)
        winners = [r for r in results if isinstance(r, str)]
        assert len(winners) == 1, results
        loser = next(r for r in results if not isinstance(r, str))
        assert type(loser).__name__ == ("VoucherCancelled" if winners == ["cancelled"] else "VoucherAlreadyRedeemed")
        assert db.session.get(Voucher, voucher_id).status == winners[0]
        wins[winners[0]] += 1
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (100 - 10 * wins["redeemed"], 0)
    assert db.session.scalar(select(Reward.stock).where(Reward.id == rice_id)) == 100 - wins["redeemed"]
    check_ledger()


def confirm_or_expire(i, cashier_id, code, sweep_time):
    if i == 0:
        vouchers.confirm_redemption(db.session.get(User, cashier_id), code)  # still valid now
        db.session.commit()
        return 1
    n = vouchers.expire_vouchers(now=sweep_time)  # the sweep's clock is past expiry
    db.session.commit()
    return n


def test_expiry_racing_confirm_lets_exactly_one_win_every_time(app, street, check_ledger):
    award(street, street.vol_a, 100)
    vol_id, cashier_id, rice_id = street.vol_a.id, street.cashier.id, street.rice.id
    redeemed = 0
    for _ in range(10):
        issued = vouchers.issue_voucher(db.session.get(User, vol_id), rice_id)
        db.session.commit()
        voucher_id, sweep_time = issued.voucher.id, issued.voucher.expires_at + timedelta(minutes=1)
        confirmed, swept = race(app, 2, confirm_or_expire, cashier_id, issued.code, sweep_time)
        status = db.session.get(Voucher, voucher_id).status
        if confirmed == 1:
            assert (swept, status) == (0, "redeemed")
            redeemed += 1
        else:
            assert type(confirmed).__name__ == "VoucherExpired", confirmed
            assert (swept, status) == (1, "expired")
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (100 - 10 * redeemed, 0)
    check_ledger()


def test_the_same_attendance_batch_submitted_ten_times_at_once_is_recorded_once(app, street, check_ledger):
    attendees = [street.vol_a, street.vol_a2] + [person(f"att{i}", street.unit_a, title="resident") for i in range(6)]
    db.session.commit()
    ids, staff_id, rule_id = [v.id for v in attendees], street.staff_a.id, street.meeting.id
    day = yesterday()

    def record(i):
        claims.record_attendance(
            db.session.get(User, staff_id), rule_id=rule_id, activity_date=day, volunteer_ids=ids, batch_key="meeting-42"
        )
        db.session.commit()

    results = race(app, 10, record)
    assert tally(results) == {"ok": 1, "AlreadyRecorded": 9}, unexpected(results, "AlreadyRecorded")
    assert count(select(Activity.id).where(Activity.batch_key == "meeting-42")) == len(ids)
    assert all(balance(v).balance == 10 for v in attendees)
    check_ledger()


def test_simultaneous_approvals_beyond_the_daily_cap_credit_exactly_the_cap(app, street, check_ledger):
    # Patrol: 2 points an hour, 8 a day. Ten claims of 2 hours (4 points each) for the same day.
    acts = [
        claims.submit_claim(street.vol_a, rule_id=street.patrol.id, activity_date=yesterday(), hours="2")
        for _ in range(10)
    ]
    db.session.commit()
    act_ids = [a.id for a in acts]
    approvers = [street.staff_a.id, street.admin_a.id, street.street_admin.id]

    def approve(i):
        claims.approve_claim(db.session.get(User, approvers[i % 3]), act_ids[i])
        db.session.commit()

    results = race(app, 10, approve)
    assert tally(results) == {"ok": 10}, unexpected(results)
    credited = [db.session.get(Activity, i).points_credited for i in act_ids]
    assert sum(credited) == 8 and sorted(credited) == [0] * 8 + [4, 4]
    assert balance(street.vol_a).balance == 8
    check_ledger()


def test_a_meeting_recorded_while_its_attendees_claims_are_approved_and_they_redeem(app, street, check_ledger):
    """Writers that lock the same accounts in different combinations must not deadlock."""
    group = [person(f"grp{i}", street.unit_a, title="resident") for i in range(6)]
    db.session.commit()
    award_many(street, group, 30)
    pending = [claims.submit_claim(v, rule_id=street.patrol.id, activity_date=yesterday(), hours="1") for v in group]
    db.session.commit()
    ids, act_ids = [v.id for v in group], [a.id for a in pending]
    staff_id, admin_id, rule_id, rice_id = street.staff_a.id, street.admin_a.id, street.meeting.id, street.rice.id
    day = yesterday()

    def work(i):
        if i == 0:
            claims.record_attendance(
                db.session.get(User, staff_id), rule_id=rule_id, activity_date=day,
                volunteer_ids=list(reversed(ids)), batch_key="mixed-1",
            )
        elif i <= 6:
            claims.approve_claim(db.session.get(User, admin_id), act_ids[i - 1])
        else:
            vouchers.issue_voucher(db.session.get(User, ids[(i - 7) % 6]), rice_id)
        db.session.commit()

    results = race(app, 19, work)
    assert tally(results) == {"ok": 19}, unexpected(results)
    for v in group:
        b = balance(v)
        assert (b.balance, b.held, b.earned) == (30 + 10 + 2, 20, 42)
    check_ledger()


def test_the_expiry_sweep_running_while_volunteers_redeem_the_same_reward_does_not_deadlock(app, street, check_ledger):
    """The sweep releases many vouchers of one reward while their owners redeem it again."""
    group = [person(f"sweep{i}", street.unit_a, title="resident") for i in range(8)]
    db.session.commit()
    award_many(street, group, 20)
    past = now_utc() - timedelta(days=8)
    for v in group:
        vouchers.issue_voucher(v, street.rice.id, now=past)
    db.session.commit()
    ids, rice_id = [v.id for v in group], street.rice.id

    def work(i):
        if i == 0:
            n = vouchers.expire_vouchers()
            db.session.commit()
            return n
        vouchers.issue_voucher(db.session.get(User, ids[i - 1]), rice_id)
        db.session.commit()
        return None

    results = race(app, 9, work)
    assert tally(results) == {"ok": 9}, unexpected(results)
    assert results[0] == 8
    for v in group:
        b = balance(v)
        assert (b.balance, b.held) == (20, 10)
    assert db.session.scalar(select(Reward.stock).where(Reward.id == rice_id)) == 100 - 8
    check_ledger()


def test_the_first_credits_of_a_new_street_at_the_same_moment_all_succeed(app, street, check_ledger):
    """The street's issuance account is made on first use; two first uses at once must not collide."""
    from pointsapp.domain import rules
    from pointsapp.domain.org import add_unit
    from pointsapp.models.user import ROLE_STREET_ADMIN
    from tests.factories import rule_terms

    new_street = add_unit("新城街道", "street")
    boss = person("new_boss", new_street, roles=(ROLE_STREET_ADMIN,))
    helpers = [person(f"new{i}", new_street, title="resident") for i in range(8)]
    rule = rules.create_rule(boss, new_street, rule_terms())
    db.session.commit()
    boss_id, rule_id, ids = boss.id, rule.id, [v.id for v in helpers]
    today = local_today()

    def record(i):
        claims.record_attendance(
            db.session.get(User, boss_id), rule_id=rule_id, activity_date=today, volunteer_ids=[ids[i]], batch_key=f"first-{i}"
        )
        db.session.commit()

    results = race(app, 8, record)
    assert tally(results) == {"ok": 8}, unexpected(results)
    assert all(balance(v).balance == 10 for v in helpers)
    assert ledger.balance_of(ledger.issuance_account(new_street).id).balance == -80
    check_ledger()


def test_ten_redemptions_at_once_of_a_once_per_person_reward_give_one_voucher(app, street, check_ledger):
    once = new_reward(street, per_volunteer_limit=1)
    award(street, street.vol_a, 100)
    vol_id, reward_id = street.vol_a.id, once.id

    def redeem(i):
        vouchers.issue_voucher(db.session.get(User, vol_id), reward_id)
        db.session.commit()

    results = race(app, 10, redeem)
    assert tally(results) == {"ok": 1, "LimitReached": 9}, unexpected(results, "LimitReached")
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (100, 10)
    check_ledger()


def test_ten_copies_of_one_redeem_tap_at_once_give_one_voucher_and_hold_once(app, street, check_ledger):
    """A double tap, or a tap sent again after a lost answer: the same form key each time."""
    award(street, street.vol_a, 100)
    vol_id, reward_id = street.vol_a.id, street.rice.id

    def redeem(i):
        issued = vouchers.issue_voucher(db.session.get(User, vol_id), reward_id, key="rewards-page-1")
        db.session.commit()
        return issued.voucher.id

    results = race(app, 10, redeem)
    assert tally(results) == {"ok": 10}, unexpected(results)
    assert len(set(results)) == 1  # every copy was answered with the same voucher
    assert count(select(Voucher.id).where(Voucher.volunteer_id == vol_id)) == 1
    # Its points are reserved once too: one reservation row, and the lot reserves what is held.
    assert count(select(VoucherLot.id)) == 1
    assert db.session.scalar(select(func.sum(PointLot.reserved))) == 10
    b = balance(street.vol_a)
    assert (b.balance, b.held) == (100, 10)
    check_ledger()


def approve_or_reject(i, staff_id, admin_id, act_id):
    if i % 2:
        claims.reject_claim(db.session.get(User, admin_id), act_id, "重复提交 duplicate")
    else:
        claims.approve_claim(db.session.get(User, staff_id), act_id)
    db.session.commit()


def test_approve_racing_reject_of_the_same_claim_decides_it_once(app, street, check_ledger):
    outcomes = Counter()
    for _ in range(5):
        act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday())
        db.session.commit()
        act_id = act.id
        results = race(app, 6, approve_or_reject, street.staff_a.id, street.admin_a.id, act_id)
        assert tally(results) == {"ok": 1, "AlreadyDecided": 5}, unexpected(results, "AlreadyDecided")
        outcomes[db.session.get(Activity, act_id).status] += 1
    assert balance(street.vol_a).balance == 10 * outcomes["approved"]
    check_ledger()


def reverse_or_spend(i, admin_id, credit_id, vol_id, reward_id):
    if i == 0:
        claims.reverse_transfer(db.session.get(User, admin_id), credit_id, "credited in error")
    else:
        vouchers.issue_voucher(db.session.get(User, vol_id), reward_id)
    db.session.commit()
    return "reversed" if i == 0 else "spent"


def test_reversing_a_credit_while_the_volunteer_spends_it_lets_exactly_one_happen(app, street, check_ledger):
    wins = Counter()
    for _ in range(6):
        act = award(street, street.vol_a, 10)
        args = (street.street_admin.id, credit_of(act).id, street.vol_a.id, street.rice.id)
        results = race(app, 2, reverse_or_spend, *args)
        winners = [r for r in results if isinstance(r, str)]
        assert len(winners) == 1, results
        loser = next(r for r in results if not isinstance(r, str))
        assert type(loser).__name__ == ("InsufficientPoints" if winners == ["reversed"] else "CannotReverse"), loser
        wins[winners[0]] += 1
    b = balance(street.vol_a)
    assert (b.balance, b.held, b.available) == (10 * wins["spent"], 10 * wins["spent"], 0)
    assert b.earned == 10 * wins["spent"]
    check_ledger()


def test_two_admins_reversing_the_same_redemption_at_once_reverse_it_once(app, street, check_ledger):
    award(street, street.vol_a, 30)
    first = vouchers.issue_voucher(street.vol_a, street.rice.id)
    second = vouchers.issue_voucher(street.vol_a, street.rice.id)
    vouchers.confirm_redemption(street.cashier, first.code)
    vouchers.confirm_redemption(street.cashier, second.code)  # the merchant holds 20: enough for two reversals
    db.session.commit()
    capture_id = db.session.scalar(
        select(Transfer.id).where(Transfer.kind == "capture", Transfer.voucher_id == first.voucher.id)
    )
    # Two street admins: a community admin may not take points back from a street-level merchant.
    deputy = person("deputy", street.street, roles=("street_admin",), full_name="副主任")
    db.session.commit()
    admins = [street.street_admin.id, deputy.id]

    def reverse(i):
        claims.reverse_transfer(db.session.get(User, admins[i % 2]), capture_id, "till error")
        db.session.commit()

    results = race(app, 6, reverse)
    assert tally(results) == {"ok": 1, "CannotReverse": 5}, unexpected(results, "CannotReverse")
    assert count(select(Transfer.id).where(Transfer.reverses_id == capture_id)) == 1
    assert balance(street.vol_a).balance == 20
    check_ledger()


def test_overlapping_meetings_recorded_at_once_beside_deductions_credit_each_attendee_once(app, street, check_ledger):
    """Set-based credits of batches sharing attendees (in opposite orders) racing each other and
    deductions from the same accounts: no deadlock, every credit and deduction lands once."""
    from pointsapp.domain import deductions, rules
    from tests.factories import rule_terms

    group = [person(f"ovl{i}", street.unit_a, title="resident") for i in range(8)]
    db.session.commit()
    award_many(street, group, 30)
    fine = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="罚3", name_en="Fine 3", points=3, kind="deduct"))
    db.session.commit()
    ids, fine_id = [v.id for v in group], fine.id
    staff_id, rule_id, day = street.staff_a.id, street.meeting.id, yesterday()
    batches = [ids[0:6], list(reversed(ids[2:8])), ids[1:7][::2] + ids[1:7][1::2], list(reversed(ids))]

    def work(i):
        staff = db.session.get(User, staff_id)
        if i < len(batches):
            claims.record_attendance(staff, rule_id=rule_id, activity_date=day, volunteer_ids=batches[i],
                                     batch_key=f"overlap-{i}")
        else:
            deductions.apply_deduction(staff, volunteer_id=ids[i - len(batches)], rule_id=fine_id, reason="违规",
                                       submission_key=f"fine-{i}")
        db.session.commit()

    results = race(app, len(batches) + len(ids), work)
    assert tally(results) == {"ok": len(batches) + len(ids)}, unexpected(results)
    for v in group:
        meetings = sum(v.id in b for b in batches)
        b = balance(v)
        assert (b.balance, b.earned) == (30 + 10 * meetings - 3, 30 + 10 * meetings), v.username
    check_ledger()


def test_monthly_totals_rebuilt_while_meetings_are_recorded_count_every_leg_once(app, street, check_ledger):
    """A rebuild of the monthly totals among ten meetings being recorded at once: every meeting
    is credited, and afterwards every month's totals equal the transfers (no leg lost to the
    rebuild, none counted by both the rebuild and its meeting)."""
    crowd = [person(f"rebuild{i}", street.unit_a, title="resident") for i in range(6)]
    db.session.commit()
    ids, staff_id, rule_id = [v.id for v in crowd], street.staff_a.id, street.meeting.id

    def work(i):
        if i == 5:
            ledger.rebuild_month_totals()
        else:
            claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=local_today(),
                                     volunteer_ids=ids, batch_key=f"rebuild-{i}")
        db.session.commit()

    results = race(app, 11, work)
    assert tally(results) == {"ok": 11}, unexpected(results)
    assert all(balance(v).balance == 100 for v in crowd)
    check_ledger()


def year_rows() -> dict:
    """{(volunteer id, year): (points, hundredths of hours, activities)}, read fresh."""
    db.session.expire_all()
    return {
        (r.volunteer_id, r.year): (r.points, r.centi_hours, r.activities) for r in db.session.scalars(select(VolunteerYear))
    }


def test_claims_approved_and_meetings_recorded_at_once_for_the_same_volunteers_add_up_in_their_years(
        app, street, check_ledger):
    """Each volunteer's yearly row is written by many transactions at once (their claims approved
    by three verifiers, meetings recorded for all of them in different orders): every activity is
    added once, and no upsert of the same row deadlocks or is lost."""
    group = [street.vol_a, street.vol_a2] + [person(f"yr{i}", street.unit_a, title="resident") for i in range(2)]
    db.session.commit()
    days = [yesterday() - timedelta(days=k) for k in range(3)]
    pending = [  # patrol: 2 points an hour; one claim a day, under the daily cap
        claims.submit_claim(v, rule_id=street.patrol.id, activity_date=d, hours="1.5") for v in group for d in days
    ]
    db.session.commit()
    ids, act_ids = [v.id for v in group], [a.id for a in pending]
    approvers = [street.staff_a.id, street.admin_a.id, street.street_admin.id]
    staff_id, rule_id, today = street.staff_a.id, street.meeting.id, local_today()
    orders = [ids, list(reversed(ids)), ids[1:] + ids[:1], ids[2:] + ids[:2]]

    def work(i):
        if i < len(act_ids):
            claims.approve_claim(db.session.get(User, approvers[i % 3]), act_ids[i])
        else:
            claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=today,
                                     volunteer_ids=orders[i - len(act_ids)], batch_key=f"year-{i}")
        db.session.commit()

    results = race(app, len(act_ids) + len(orders), work)
    assert tally(results) == {"ok": len(act_ids) + len(orders)}, unexpected(results)
    expected: dict = {}
    for v in group:
        for day, points, centi in [(d, 3, 150) for d in days] + [(today, 10, 0)] * len(orders):
            p, h, n = expected.get((v.id, day.year), (0, 0, 0))
            expected[(v.id, day.year)] = (p + points, h + centi, n + 1)
    assert year_rows() == expected
    assert sum(n for _, _, n in expected.values()) == 4 * (3 + 4)
    assert all(balance(v).balance == 3 * 3 + 10 * 4 for v in group)
    check_ledger()


def test_yearly_totals_rebuilt_while_meetings_are_recorded_count_every_activity_once(app, street, check_ledger):
    """A rebuild of the yearly totals among ten meetings being recorded at once: every meeting is
    counted, and afterwards every row equals the approved activities (none lost to the rebuild,
    none counted by both the rebuild and its meeting)."""
    crowd = [person(f"yrebuild{i}", street.unit_a, title="resident") for i in range(6)]
    db.session.commit()
    ids, staff_id, rule_id, today = [v.id for v in crowd], street.staff_a.id, street.meeting.id, local_today()

    def work(i):
        if i == 5:
            activity_totals.rebuild_year_totals()
        else:
            claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=today,
                                     volunteer_ids=ids, batch_key=f"year-rebuild-{i}")
        db.session.commit()

    results = race(app, 11, work)
    assert tally(results) == {"ok": 11}, unexpected(results)
    assert year_rows() == {(v, today.year): (100, 0, 10) for v in ids}
    check_ledger()


def test_the_same_batch_of_approvals_sent_ten_times_at_once_credits_each_claim_once(app, street, check_ledger):
    group = [person(f"tap{i}", street.unit_a, title="resident") for i in range(8)]
    db.session.commit()
    act_ids = [claims.submit_claim(v, rule_id=street.meeting.id, activity_date=yesterday()).id for v in group]
    db.session.commit()
    staff_id = street.staff_a.id

    def approve_all(i):
        claims.approve_claims(db.session.get(User, staff_id), act_ids)
        db.session.commit()

    results = race(app, 10, approve_all)
    assert tally(results) == {"ok": 1, "AlreadyDecided": 9}, unexpected(results, "AlreadyDecided")
    assert count(select(Transfer.id).where(Transfer.activity_id.in_(act_ids))) == 8
    assert [balance(v).balance for v in group] == [10] * 8
    check_ledger()


def test_overlapping_batches_single_approvals_a_meeting_and_redemptions_at_once_approve_each_claim_once(
        app, street, check_ledger):
    """Batches of claims in different orders and overlapping sets, single approvals and
    rejections of the same claims, a meeting recorded for the same volunteers and their
    redemptions: no deadlock, each claim decided once, the daily cap counted across all of them."""
    group = [person(f"mix{i}", street.unit_a, title="resident") for i in range(6)]
    db.session.commit()
    award_many(street, group, 30)
    # Two patrol claims of 3 hours (6 points each) per volunteer on the same day: the cap is 8.
    pending = [claims.submit_claim(v, rule_id=street.patrol.id, activity_date=yesterday(), hours="3")
               for v in group for _ in range(2)]
    db.session.commit()
    act_ids, ids = [a.id for a in pending], [v.id for v in group]
    staff_id, admin_id, top_id = street.staff_a.id, street.admin_a.id, street.street_admin.id
    rule_id, rice_id, day = street.meeting.id, street.rice.id, yesterday()
    batches = [act_ids[:8], act_ids[4:], list(reversed(act_ids)), act_ids[::2], act_ids[1::3]]

    def work(i):
        if i < len(batches):
            claims.approve_claims(db.session.get(User, (staff_id, admin_id, top_id)[i % 3]), batches[i])
        elif i < 11:
            act_id = act_ids[11 - i]
            if i % 2:
                claims.approve_claim(db.session.get(User, admin_id), act_id)
            else:
                claims.reject_claim(db.session.get(User, staff_id), act_id, "重复申报")
        elif i == 11:
            claims.record_attendance(db.session.get(User, staff_id), rule_id=rule_id, activity_date=day,
                                     volunteer_ids=list(reversed(ids)), batch_key="mix-meeting")
        else:
            vouchers.issue_voucher(db.session.get(User, ids[i - 12]), rice_id)
        db.session.commit()

    results = race(app, 18, work)
    outcomes = tally(results)
    assert set(outcomes) <= {"ok", "AlreadyDecided"}, unexpected(results, "AlreadyDecided")
    assert outcomes["ok"] >= 1 + 6 + 1  # one batch at least, the meeting and the redemptions
    acts = {a.id: a for a in db.session.scalars(select(Activity).where(Activity.id.in_(act_ids)))}
    credits = Counter(db.session.scalars(select(Transfer.activity_id).where(Transfer.activity_id.in_(act_ids))))
    assert all(n == 1 for n in credits.values())
    for v in group:
        mine = [a for a in acts.values() if a.volunteer_id == v.id]
        approved = [a for a in mine if a.status == "approved"]
        assert {a.status for a in mine} <= {"approved", "rejected", "pending"}
        assert sum(a.points_credited for a in approved) == min(8, 6 * len(approved))
        assert sorted(a.id for a in approved if a.points_credited) == sorted(a.id for a in approved if credits[a.id])
        b = balance(v)
        assert (b.balance, b.held) == (30 + 10 + sum(a.points_credited for a in approved), 10)
    check_ledger()
