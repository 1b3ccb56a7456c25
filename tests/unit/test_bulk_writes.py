"""Rows written in bulk (``database.insert_rows``): every value as given, keys in the rows' order,
and a meeting's statements do not grow with its attendees."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from pointsapp.database import among, dialect, insert_rows, update_rows
from pointsapp.domain import claims, ledger, org
from pointsapp.domain.errors import InvalidInput
from pointsapp.extensions import db
from pointsapp.models import Activity, OrgUnit, PointRuleVersion
from tests.factories import person, yesterday


def test_rows_are_written_as_given_and_their_keys_come_back_in_the_rows_order(street):
    s = street
    version = db.session.scalar(select(PointRuleVersion).where(PointRuleVersion.rule_id == s.patrol.id))
    at = datetime(2026, 3, 31, 16, 30, 5, 123000, tzinfo=timezone.utc)
    rows = [
        dict(volunteer_id=v.id, org_unit_id=v.org_unit_id, rule_id=s.patrol.id, rule_version_id=version.id,
             activity_date=yesterday() - timedelta(days=i), hours=Decimal(f"{i}.25") if i % 2 else None,
             note=None if i == 3 else f"第{i}次 'quoted' \"and\" {{braced}}", source="recorded", status="pending",
             points_requested=i + 1, points_credited=0, batch_key=f"bulk-{i}", created_by_id=s.staff_a.id,
             created_at=at + timedelta(minutes=i), notice_until=None if i else at)
        for i, v in enumerate([s.vol_a, s.vol_b, s.vol_a2, s.vol_a, s.vol_b])
    ]
    ids = insert_rows(Activity.__table__, rows, returning=Activity.__table__.c.id)
    assert len(ids) == 5 and ids == sorted(ids)
    db.session.commit()
    db.session.expire_all()
    for key, row in zip(ids, rows):
        act = db.session.get(Activity, key)
        for name, value in row.items():
            assert getattr(act, name) == value, (name, getattr(act, name), value)
    assert insert_rows(Activity.__table__, [], returning=Activity.__table__.c.id) == []


def test_a_meetings_statements_and_their_parameters_do_not_grow_with_its_attendees(street, check_ledger):
    """Recording 3 attendees and 37 takes the same statements on PostgreSQL, and no write carries
    more parameters for 37 (each column's values go as one array); SQLite runs the same kinds."""
    s = street
    crowd = [person(f"crowd{i}", s.unit_a, title="resident") for i in range(40)]
    ledger.issuance_account(s.street)  # made at the street's first credit, once
    db.session.commit()

    def record(volunteers, key):
        seen, ids = [], [v.id for v in volunteers]
        staff = db.session.get(type(s.staff_a), s.staff_a.id)
        staff.roles  # noqa: B018  (the actor's own rows, loaded per request anyway)

        def keep(conn, cursor, statement, params, context, executemany):
            seen.append((statement.split("(")[0].split(" WHERE")[0].strip(), len(params) if isinstance(params, dict) else 1,
                         executemany))

        event.listen(db.engine, "before_cursor_execute", keep)
        try:
            claims.record_attendance(staff, rule_id=s.meeting.id, activity_date=yesterday(), volunteer_ids=ids,
                                     batch_key=key)
        finally:
            event.remove(db.engine, "before_cursor_execute", keep)
        db.session.commit()
        return seen

    few, many = record(crowd[:3], "few"), record(crowd[3:], "many")
    statements = lambda seen: [statement for statement, _, _ in seen]  # noqa: E731
    assert set(statements(few)) == set(statements(many))
    if db.engine.dialect.name == "postgresql":
        assert statements(few) == statements(many)
        writes = lambda seen: [n for statement, n, _ in seen if statement.startswith(("INSERT", "UPDATE"))]  # noqa: E731
        assert writes(few) == writes(many)
    # SQLite writes rows whose keys it must return one statement each (it does not promise the
    # order of a multi-row RETURNING); in process, each costs microseconds, not a round trip.
    assert all(ledger.balance_of(ledger.account_for_volunteer(v).id).balance == 10 for v in crowd)
    check_ledger()


def test_a_value_too_long_for_its_column_is_refused_not_cut_short(street):
    """On PostgreSQL the arrays are cast without the columns' lengths, so writing a 65-character
    key into ``batch_key`` (64) is refused, as a plain INSERT refuses it."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce the length of a text column")
    s = street
    version = db.session.scalar(select(PointRuleVersion).where(PointRuleVersion.rule_id == s.meeting.id))
    row = dict(volunteer_id=s.vol_a.id, org_unit_id=s.vol_a.org_unit_id, rule_id=s.meeting.id,
               rule_version_id=version.id, activity_date=yesterday(), source="recorded", status="pending",
               points_requested=10, points_credited=0, batch_key="k" * 65, created_by_id=s.staff_a.id,
               created_at=datetime.now(timezone.utc))
    with pytest.raises(DBAPIError, match="too long"):
        insert_rows(Activity.__table__, [row], returning=Activity.__table__.c.id)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_recording_with_a_submission_key_longer_than_its_column_is_refused_with_a_message(street):
    s = street
    with pytest.raises(InvalidInput) as exc:
        claims.record_attendance(s.staff_a, rule_id=s.meeting.id, activity_date=yesterday(),
                                 volunteer_ids=[s.vol_a.id], batch_key="k" * 65)
    assert "reload the page" in exc.value.message
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_nodes_written_in_bulk_get_their_own_ids_and_paths_in_order(street):
    """``org.insert_units`` (an import's new nodes): each node's id and path, as returned, is the
    row written for it, and ``update_rows`` set each path on its own row."""
    s = street
    grid_level = s.grid_a.level_id
    parents = [s.community_a, s.community_b, s.community_a, s.street]
    units = [(f"网格{i}", grid_level, parents[i % len(parents)]) for i in range(30)]
    written = org.insert_units(units)
    db.session.commit()
    db.session.expire_all()
    assert len(written) == 30
    for (name, level_id, parent), (unit_id, path) in zip(units, written):
        unit = db.session.get(OrgUnit, unit_id)
        assert (unit.name, unit.level_id, unit.parent_id, unit.path) == (name, level_id, parent.id, path)
        assert path == f"{parent.path}{unit_id}/"


def test_update_rows_sets_each_rows_own_values(street):
    s = street
    units = [s.community_a, s.community_b, s.grid_a, s.grid_b]
    update_rows(OrgUnit.__table__, [{"id": u.id, "name": f"改名{i}"} for i, u in enumerate(units)])
    db.session.commit()
    db.session.expire_all()
    assert [db.session.get(OrgUnit, u.id).name for u in units] == ["改名0", "改名1", "改名2", "改名3"]
    assert update_rows(OrgUnit.__table__, []) is None


def test_columns_with_one_value_in_every_row_are_written_into_every_row(street):
    """A meeting's rule, date, author and time are the same in each of its rows: they travel once
    (see ``database._split_constant``), and each row still gets them, beside its own values."""
    s = street
    version = db.session.scalar(select(PointRuleVersion).where(PointRuleVersion.rule_id == s.meeting.id))
    at = datetime(2026, 5, 1, 1, 2, 3, 456000, tzinfo=timezone.utc)
    same = dict(rule_id=s.meeting.id, rule_version_id=version.id, activity_date=yesterday(), hours=None,
                note="第3次 'quoted' {braced}", source="recorded", status="approved", points_requested=10,
                created_by_id=s.staff_a.id, created_at=at)
    people = [s.vol_a, s.vol_b, s.vol_a2, s.vol_a]
    rows = [dict(volunteer_id=v.id, org_unit_id=v.org_unit_id, batch_key=f"same-{i}",
                 points_credited=10 if i != 2 else 0, **same) for i, v in enumerate(people)]
    sent = []
    keep = lambda conn, cursor, statement, params, *rest: sent.append(params)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        ids = insert_rows(Activity.__table__, rows, returning=Activity.__table__.c.id)
        one = insert_rows(Activity.__table__, [dict(rows[0], batch_key="alone")], returning=Activity.__table__.c.id)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    if db.engine.dialect.name == "postgresql":
        assert {k for k in sent[0] if k.startswith("rows_")} == {
            "rows_volunteer_id", "rows_org_unit_id", "rows_batch_key", "rows_points_credited"}
        assert "one_created_at" in sent[0] and sent[0]["one_note"] == same["note"]
    db.session.commit()
    db.session.expire_all()
    for key, row in zip(ids + one, rows + [dict(rows[0], batch_key="alone")]):
        act = db.session.get(Activity, key)
        for name, value in row.items():
            assert getattr(act, name) == value, (name, getattr(act, name), value)
    assert [db.session.get(Activity, key).batch_key for key in ids] == [f"same-{i}" for i in range(4)]


def test_a_value_the_same_in_every_row_and_too_long_for_its_column_is_refused(street):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce the length of a text column")
    s = street
    version = db.session.scalar(select(PointRuleVersion).where(PointRuleVersion.rule_id == s.meeting.id))
    rows = [dict(volunteer_id=v.id, org_unit_id=v.org_unit_id, rule_id=s.meeting.id, rule_version_id=version.id,
                 activity_date=yesterday(), source="recorded", status="pending", points_requested=10,
                 points_credited=0, cap_note="长" * 256, batch_key=f"long-{i}", created_by_id=s.staff_a.id,
                 created_at=datetime.now(timezone.utc)) for i, v in enumerate([s.vol_a, s.vol_b])]
    assert Activity.__table__.c.cap_note.type.length == 255
    with pytest.raises(DBAPIError, match="too long"):
        insert_rows(Activity.__table__, rows, returning=Activity.__table__.c.id)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


@pytest.mark.parametrize("wanted", [[], [0], "all", "some"])
def test_a_list_of_values_selects_the_same_rows_as_in(street, wanted):
    """``database.among`` (``= ANY(array)`` on PostgreSQL) selects exactly what ``IN`` selects,
    for numbers and texts, with an empty list selecting nothing."""
    units = list(db.session.scalars(select(OrgUnit).order_by(OrgUnit.id)))
    chosen = {"all": units, "some": units[1::2]}.get(wanted) if isinstance(wanted, str) else [u for u in units if u.id in wanted]
    on = dialect()
    ids = [u.id for u in chosen]
    paths = [u.path for u in chosen] + ["/0/no-such-node/"]
    by_id = db.session.scalars(select(OrgUnit.id).where(among(OrgUnit.id, "ids", on)).order_by(OrgUnit.id), {"ids": ids})
    by_path = db.session.scalars(select(OrgUnit.id).where(among(OrgUnit.path, "paths", on)).order_by(OrgUnit.id),
                                 {"paths": paths})
    expected = sorted(ids)
    assert list(by_id) == expected and list(by_path) == expected
    if wanted == "all":
        assert len(expected) > 3


def test_texts_with_every_kind_of_punctuation_go_in_and_are_found_as_given(street):
    """Array parameters carry each text exactly: quotes, backslashes, commas, braces, newlines,
    the word NULL, an empty text and a missing one (on PostgreSQL, in the binary array format,
    where nothing is escaped)."""
    s = street
    texts = ['{"a": "b,c"}', "back\\slash \\\\ two", "NULL", "", None, "line\nbreak\ttab", 'say "hi", {x}',
             "全角，标点“引号”", "  spaced  "]
    version = db.session.scalar(select(PointRuleVersion).where(PointRuleVersion.rule_id == s.patrol.id))
    rows = [
        dict(volunteer_id=s.vol_a.id, org_unit_id=s.vol_a.org_unit_id, rule_id=s.patrol.id,
             rule_version_id=version.id, activity_date=yesterday(), hours=None, note=text, source="recorded",
             status="pending", points_requested=1, points_credited=0, batch_key=f"punct-{i}",
             created_by_id=s.staff_a.id, created_at=datetime(2026, 3, 31, tzinfo=timezone.utc), notice_until=None)
        for i, text in enumerate(texts)
    ]
    ids = insert_rows(Activity.__table__, rows, returning=Activity.__table__.c.id)
    db.session.commit()
    notes = dict(db.session.execute(select(Activity.id, Activity.note).where(Activity.id.in_(ids))).all())
    assert [notes[i] for i in ids] == texts
    wanted = [t for t in texts if t is not None]
    found = db.session.scalars(select(Activity.note).where(among(Activity.note, "notes", dialect()),
                                                           Activity.id.in_(ids)), {"notes": wanted})
    assert sorted(found) == sorted(wanted)
    if dialect() == "postgresql":
        from psycopg.adapt import PyFormat
        from psycopg.types.array import ListBinaryDumper

        adapters = db.session.connection().connection.dbapi_connection.adapters
        assert adapters.get_dumper(list, PyFormat.AUTO) is ListBinaryDumper
