"""Honour rolls and lifetime figures: ranking with ties, periods, what counts, privacy and scope."""
from __future__ import annotations

import secrets
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import delete, event, select

from pointsapp.domain import activity_totals, claims, deductions, honours, rules, vouchers
from pointsapp.domain.clock import local_today
from pointsapp.domain.errors import Forbidden, InvalidInput, NotFound
from pointsapp.extensions import db
from pointsapp.models import Account, Activity, Transfer
from tests.factories import person, rule_terms, yesterday


def credit(s, volunteer, points: int, *, day: date | None = None, now: datetime | None = None,
           hours: str | None = None, recorder=None) -> Activity:
    """Credit a volunteer through a one-off recorded activity (per hour when ``hours``); commit."""
    terms = dict(name_zh=f"活动{points}", name_en=f"Activity {points}", points=points)
    if hours:
        terms.update(unit="hour", category="patrol")
    rule = rules.create_rule(s.street_admin, s.street, rule_terms(**terms))
    [act] = claims.record_attendance(
        recorder or s.street_admin, rule_id=rule.id, activity_date=day or local_today(),
        volunteer_ids=[volunteer.id], hours=hours, batch_key=secrets.token_hex(8), now=now,
    )
    db.session.commit()
    return act


def hours_only(s, volunteer, hours: str, day: date | None = None) -> Activity:
    """An approved activity with hours and no points (back-filled attendance): no transfer."""
    version = s.patrol.current
    act = Activity(
        volunteer_id=volunteer.id, org_unit_id=volunteer.org_unit_id, rule_id=s.patrol.id,
        rule_version_id=version.id, activity_date=day or local_today(), hours=Decimal(hours),
        source="recorded", status="approved", points_requested=0, points_credited=0,
        created_by_id=s.staff_a.id,
    )
    db.session.add(act)
    db.session.flush()
    activity_totals.add([act])  # as a check-in event's close does for hours-only attendance
    db.session.commit()
    return act


def this_year() -> honours.Period:
    return honours.parse_period(None)


def board(r: honours.Roll, which: str = "points") -> list[tuple]:
    places = r.by_points if which == "points" else r.by_hours
    return [(p.place, p.name, p.points if which == "points" else p.hours) for p in places]


@pytest.fixture
def grid_people(street):
    """Four more volunteers in grid A (community A), named for reading the boards."""
    names = ["王一", "李二", "赵三", "钱四"]
    people = [person(f"grid_vol{i}", street.building_a, full_name=n) for i, n in enumerate(names)]
    db.session.commit()
    return people


def test_equal_points_share_a_place_and_the_next_place_is_skipped(street, grid_people, check_ledger):
    a, b, c, d = grid_people
    for vol, points in ((a, 30), (b, 30), (c, 20), (d, 10)):
        credit(street, vol, points)
    r = honours.roll(street.staff_a, street.grid_a, this_year())
    assert board(r) == [(1, "王一", 30), (1, "李二", 30), (3, "赵三", 20), (4, "钱四", 10)]
    # Within a place, the order is stable: by volunteer id.
    assert [p.volunteer_id for p in r.by_points[:2]] == sorted([a.id, b.id])
    # The cut keeps everyone tied at the last place shown.
    assert board(honours.roll(street.staff_a, street.grid_a, this_year(), top=1)) == [(1, "王一", 30), (1, "李二", 30)]
    assert [n for _, n, _ in board(honours.roll(street.staff_a, street.grid_a, this_year(), top=3))] == [
        "王一", "李二", "赵三"]
    check_ledger()


def test_a_second_ranking_orders_by_hours(street, grid_people):
    a, b, c, _ = grid_people
    credit(street, a, 2, hours="1.5")  # 3 points
    credit(street, b, 1, hours="4")  # 4 points
    credit(street, c, 1, hours="1.5")
    r = honours.roll(street.admin_a, street.community_a, this_year())
    assert board(r, "hours") == [(1, "李二", Decimal("4")), (2, "王一", Decimal("1.5")), (2, "赵三", Decimal("1.5"))]
    assert board(r) == [(1, "李二", 4), (2, "王一", 3), (3, "赵三", 2)]  # 1.5 h x 1 rounds half up


def test_december_31_counts_for_its_year_and_month_and_january_1_for_the_next(street, grid_people):
    a, b, _, _ = grid_people
    early_january = datetime(2025, 1, 5, 4, 0, tzinfo=timezone.utc)
    credit(street, a, 7, day=date(2024, 12, 31), now=early_january)
    credit(street, b, 9, day=date(2025, 1, 1), now=early_january)

    def names(period: str) -> list[str]:
        return [p.name for p in honours.roll(street.street_admin, street.street, honours.parse_period(period)).by_points]

    assert names("2024") == ["王一"]
    assert names("2024-12") == ["王一"]
    assert names("2025") == ["李二"]
    assert names("2025-01") == ["李二"]
    assert names("2024-11") == [] and names("2025-02") == []


def test_only_approved_activities_count(street, grid_people):
    a, b, c, d = grid_people
    credit(street, a, 5)
    claims.submit_claim(b, rule_id=street.meeting.id, activity_date=yesterday(), note="开会")  # pending
    rejected = claims.submit_claim(c, rule_id=street.meeting.id, activity_date=yesterday(), note="开会")
    claims.reject_claim(street.staff_a, rejected.id, "重复申报")
    reversed_act = credit(street, d, 50)
    credit_transfer = db.session.scalar(select(Transfer).where(Transfer.activity_id == reversed_act.id))
    claims.reverse_transfer(street.street_admin, credit_transfer.id, "记错了人")
    db.session.commit()
    r = honours.roll(street.staff_a, street.grid_a, this_year())
    assert board(r) == [(1, "王一", 5)]
    assert [p.name for p in r.by_hours] == []


def test_hours_only_activities_count_for_hours_but_not_points(street, grid_people):
    a, b, _, _ = grid_people
    hours_only(street, a, "3")
    credit(street, b, 4)
    r = honours.roll(street.staff_a, street.grid_a, this_year())
    assert board(r) == [(1, "李二", 4)]
    assert board(r, "hours") == [(1, "王一", Decimal("3"))]
    totals = honours.volunteer_totals(a)
    assert (totals.earned, totals.hours, totals.year_earned, totals.year_hours) == (0, Decimal("3"), 0, Decimal("3"))


def test_lifetime_points_and_hours_stay_when_points_are_spent(street, check_ledger):
    vol = street.vol_a
    credit(street, vol, 15)
    credit(street, vol, 1, hours="2.5")  # 3 points: 2.5 h x 1, rounded half up
    credit(street, vol, 4, day=date(local_today().year - 1, 12, 31),
           now=datetime(local_today().year, 1, 2, 4, tzinfo=timezone.utc))
    earned = 15 + 3 + 4
    issued = vouchers.issue_voucher(vol, street.rice.id)  # 10 points
    db.session.commit()
    vouchers.confirm_redemption(street.cashier, issued.code)
    db.session.commit()
    totals = honours.volunteer_totals(vol)
    assert totals.earned == earned
    assert totals.hours == Decimal("2.5")
    assert totals.year == local_today().year
    assert totals.year_earned == earned - 4
    assert totals.year_hours == Decimal("2.5")
    account = db.session.scalar(select(Account).where(Account.user_id == vol.id))
    assert account.balance == earned - 10  # spending lowered the balance only
    check_ledger()


def test_a_volunteer_shown_by_initials_is_masked_for_everyone_but_themselves(street):
    credit(street, street.vol_a, 8)
    credit(street, street.vol_a2, 6)
    honours.set_honour_display(street.vol_a, "initials")
    db.session.commit()
    for viewer in (street.vol_a2, street.staff_a, street.admin_a, street.street_admin):
        r = honours.roll(viewer, street.grid_a, this_year())
        assert [p.name for p in r.by_points] == ["张**", "刘建国"], viewer.username
    mine = honours.roll(street.vol_a, street.grid_a, this_year())
    assert [(p.name, p.is_me) for p in mine.by_points] == [("张秀华", True), ("刘建国", False)]
    # The notice-board sheet and downloads are public: the choice holds there for the volunteer too.
    posted = honours.roll(street.vol_a, street.grid_a, this_year(), public=True)
    assert [(p.name, p.is_me) for p in posted.by_points] == [("张**", False), ("刘建国", False)]
    headers, rows = honours.roll_table(posted)
    assert all("张秀华" not in map(str, row) for row in rows)


def test_the_display_choice_is_checked(street):
    with pytest.raises(InvalidInput) as exc:
        honours.set_honour_display(street.vol_a, "nickname")
    assert exc.value.field == "honour_display"
    with pytest.raises(Forbidden):
        honours.set_honour_display(street.staff_a, "initials")
    assert street.vol_a.honour_display == "name"


def test_who_sees_which_roll(street):
    s = street
    # A volunteer: their grid, community and street; no other community, no building's roll.
    assert [u.id for u in honours.roll_units(s.vol_a)] == [s.street.id, s.community_a.id, s.grid_a.id]
    assert honours.roll_unit(s.vol_a, None).id == s.grid_a.id
    for unit in (s.community_b, s.grid_b, s.building_a):
        with pytest.raises(NotFound):
            honours.roll_unit(s.vol_a, unit.id)
    # Grid staff: their grid only; never another community's roll.
    assert [u.id for u in honours.roll_units(s.staff_a)] == [s.grid_a.id]
    for unit in (s.community_b, s.grid_b, s.community_a, s.street):
        with pytest.raises(NotFound):
            honours.roll_unit(s.staff_a, unit.id)
        with pytest.raises(NotFound):
            honours.roll(s.staff_a, unit, this_year())
    # A community admin: the community and its grids; the street admin: everything.
    assert [u.id for u in honours.roll_units(s.admin_a)] == [s.community_a.id, s.grid_a.id]
    assert {u.id for u in honours.roll_units(s.street_admin)} == {
        s.street.id, s.community_a.id, s.community_b.id, s.grid_a.id, s.grid_b.id}
    with pytest.raises(NotFound):
        honours.roll_unit(s.admin_a, 2**31 - 1)


def test_a_roll_counts_only_activities_in_its_subtree(street):
    credit(street, street.vol_a, 5)
    credit(street, street.vol_b, 9)
    assert [p.name for p in honours.roll(street.admin_a, street.community_a, this_year()).by_points] == ["张秀华"]
    assert [p.name for p in honours.roll(street.admin_b, street.community_b, this_year()).by_points] == ["孙丽"]
    assert [p.name for p in honours.roll(street.street_admin, street.street, this_year()).by_points] == ["孙丽", "张秀华"]


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26", "2026-1", "abcd", "1999", "2101-01", "2026/09", "２０２６"])
def test_a_bad_period_is_refused_with_a_message(text):
    with pytest.raises(InvalidInput) as exc:
        honours.parse_period(text)
    assert exc.value.field == "period"
    assert "2026-09" in exc.value.message


@pytest.mark.parametrize("text", ["0", "101", "-1", "ten", "1.5", "２０"])
def test_a_bad_number_of_places_is_refused(text):
    with pytest.raises(InvalidInput) as exc:
        honours.parse_top(text)
    assert exc.value.field == "top"


def test_periods_parse():
    assert honours.parse_period("2026") == honours.Period(date(2026, 1, 1), date(2027, 1, 1), "2026")
    assert honours.parse_period(" 2026-12 ") == honours.Period(date(2026, 12, 1), date(2027, 1, 1), "2026-12")
    assert honours.parse_top(None) == 20 and honours.parse_top("100") == 100


def test_a_roll_is_a_fixed_number_of_queries_however_many_volunteers(street):
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def queries_for_roll() -> int:
        db.session.expire_all()
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            honours.roll(street.street_admin, street.street, this_year())
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    credit(street, street.vol_a, 3)
    few = queries_for_roll()
    for i in range(8):
        credit(street, person(f"more{i}", street.unit_a, full_name=f"周{i}"), 1 + i)
    db.session.commit()
    # The viewer's grants and the node are read once, then one query per ranking.
    assert queries_for_roll() == few <= 8


def test_deductions_in_the_period_lower_points_earned_until_reversed(street, grid_people, check_ledger):
    a, b, _, _ = grid_people
    credit(street, a, 30)
    credit(street, b, 20)
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="楼道堆物", name_en="Clutter", points=15, kind="deduct"))
    db.session.commit()
    done = deductions.apply_deduction(street.staff_a, volunteer_id=a.id, rule_id=rule.id, reason="楼道堆物",
                                      submission_key="honours-deduct")
    db.session.commit()
    assert board(honours.roll(street.staff_a, street.grid_a, this_year())) == [(1, "李二", 20), (2, "王一", 15)]
    assert honours.volunteer_totals(a).year_earned == 15
    # An admin reverses the deduction: the points come back and no longer count against a.
    claims.reverse_transfer(street.street_admin, done.transfer.id, "误扣，已核实")
    db.session.commit()
    assert board(honours.roll(street.staff_a, street.grid_a, this_year())) == [(1, "王一", 30), (2, "李二", 20)]
    assert honours.volunteer_totals(a).year_earned == 30
    check_ledger()


def test_a_volunteers_totals_read_their_yearly_rows_not_their_activities(street, check_ledger):
    """The lifetime and yearly sums read the volunteer's few ``volunteer_year`` rows (by their
    primary key), never the activities, whose number grows with the volunteer's history."""
    vol = street.vol_a
    credit(street, vol, 5)
    credit(street, vol, 1, hours="2")
    credit(street, vol, 4, day=date(local_today().year - 1, 12, 31),
           now=datetime(local_today().year, 1, 2, 4, tzinfo=timezone.utc))
    hours_only(street, vol, "1.5")
    hours_only(street, vol, "0.5", day=date(local_today().year - 1, 6, 1))
    statements = []

    def keep(conn, cursor, statement, params, context, executemany):
        statements.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        totals = honours.volunteer_totals(vol)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    assert [sql for sql, _ in statements if "FROM activity" in sql] == []
    [(sql, params)] = [(sql, p) for sql, p in statements if "FROM volunteer_year" in sql]
    assert (totals.earned, totals.hours, totals.year_earned, totals.year_hours) == (11, Decimal("4"), 7, Decimal("3.5"))
    check_ledger()
    raw = db.session.connection().connection.dbapi_connection.cursor()
    if db.engine.dialect.name == "postgresql":
        raw.execute("SET LOCAL enable_seqscan = off")  # a test table is tiny: see whether the key serves
        raw.execute("EXPLAIN " + sql, params)
        plan = "\n".join(r[0] for r in raw.fetchall())
        assert "pk_volunteer_year" in plan, plan
    db.session.rollback()


def test_a_volunteers_figures_are_one_statement_and_what_each_figure_read_alone_gives(street, check_ledger):
    """The home page's balance, expiring points and totals come from one statement; each figure
    is what the function that reads it alone gives, with and without an account, held points,
    points expiring inside and outside the warning window and deductions (one reversed)."""
    from datetime import timedelta

    from pointsapp.domain import ledger

    vol = street.vol_a
    other = person("no_account", street.unit_a)
    # People get their account when created; one from before that (or whose creation a data
    # repair undid) has none until their first credit.
    db.session.execute(delete(Account).where(Account.user_id == other.id))
    db.session.commit()
    hours_only(street, other, "1.5")
    hours_only(street, other, "2", day=date(local_today().year - 1, 6, 1))
    figures = honours.volunteer_figures(other.id)
    assert figures.account_id is None
    b = figures.balance
    assert (b.balance, b.held, b.available, b.earned) == (0, 0, 0, 0)
    assert (figures.expiring.points, figures.expiring.first_date) == (0, None)
    assert (figures.totals.earned, figures.totals.hours, figures.totals.year_earned, figures.totals.year_hours) == (
        0, Decimal("3.5"), 0, Decimal("1.5"))

    today = local_today()
    account = ledger.account_for_volunteer(vol)
    issuance = ledger.issuance_account(street.street)
    for points, expires in ((7, today + timedelta(days=5)), (9, today + timedelta(days=29)),
                            (6, today + timedelta(days=31)), (20, None)):
        ledger.credit(issuance, account, points, reason="测试", cause_key=f"test:{secrets.token_hex(6)}",
                      expires_on=expires)
    db.session.commit()
    credit(street, vol, 4, hours="2")  # 8 points, 2 hours, this year
    vouchers.issue_voucher(vol, street.rice.id)  # holds 10 points
    db.session.commit()
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="楼道堆物", name_en="Clutter", points=3, kind="deduct"))
    db.session.commit()
    deductions.apply_deduction(street.staff_a, volunteer_id=vol.id, rule_id=rule.id, reason="楼道堆物", submission_key="f1")
    undone = deductions.apply_deduction(street.staff_a, volunteer_id=vol.id, rule_id=rule.id, reason="楼道堆放杂物",
                                        submission_key="f2")
    db.session.commit()
    claims.reverse_transfer(street.street_admin, undone.transfer.id, "误扣")
    db.session.commit()

    vol_id, statements = vol.id, []

    def keep(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        figures = honours.volunteer_figures(vol_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 1
    assert figures.account_id == account.id
    assert figures.balance == ledger.balance_of(account.id)
    assert (figures.balance.balance, figures.balance.held) == (7 + 9 + 6 + 20 + 8 - 3, 10)
    assert figures.expiring == ledger.expiring_soon(account.id)
    # The voucher reserved its 10 in the earliest lots (all 7 of the first, 3 of the second), the
    # deduction then took 3 of the second's free points: what expires soon and is free is the
    # rest of the second lot, on its last day.
    assert (figures.expiring.points, figures.expiring.first_date) == (9 - 3 - 3, today + timedelta(days=29))
    assert (figures.totals.earned, figures.totals.hours, figures.totals.year_earned, figures.totals.year_hours) == (
        7 + 9 + 6 + 20 + 8, Decimal("2"), 8 - 3, Decimal("2"))
    assert honours.volunteer_totals(vol) == figures.totals
    check_ledger()
