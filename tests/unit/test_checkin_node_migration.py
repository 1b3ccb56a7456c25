"""Migration f1f0a1b2c3d4 on a database with check-in attendance: each row is given its activity's
node, else its volunteer's current node, else the event's; the column is NOT NULL with its foreign
key, and the table keeps its constraints and indexes, on both databases."""
from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from pointsapp.domain import checkin
from pointsapp.domain.clock import now_utc
from pointsapp.extensions import db
from tests.factories import build_street
from tests.unit.test_checkin import hour_rule, make_event


def test_attendance_rows_are_given_the_node_they_were_recorded_at(app, check_ledger):
    s = build_street()
    rule = hour_rule(s)
    closed = make_event(s, rule, start=now_utc() - timedelta(hours=4))
    checkin.sign_in(s.vol_a, closed.id, now=closed.starts_at)
    checkin.sign_out(s.vol_a, closed.id, now=closed.starts_at + timedelta(minutes=60))  # an activity
    checkin.sign_in(s.vol_a2, closed.id, now=closed.starts_at)
    checkin.sign_out(s.vol_a2, closed.id, now=closed.starts_at + timedelta(minutes=20))  # 0 h: none
    checkin.close_event(s.staff_a, closed.id)
    open_ = make_event(s, rule)
    checkin.sign_in(s.vol_a, open_.id)
    checkin.add_attendee(s.staff_a, open_.id, s.vol_a2.id)
    db.session.commit()
    ids = {(e.id, v.id): checkin.attendance_of(e.id, v.id).id for e in (closed, open_) for v in (s.vol_a, s.vol_a2)}
    units = {name: getattr(s, name).id for name in ("unit_a", "building_b", "grid_a")}
    vol_a, vol_a2 = s.vol_a.id, s.vol_a2.id
    closed, open_ = closed.id, open_.id
    db.session.remove()
    downgrade(revision="f0f0a1b2c3d4")
    assert "org_unit_id" not in {c["name"] for c in inspect(db.engine).get_columns("checkin_attendance")}
    with db.engine.begin() as conn:
        # Since then, vol_a moved to community B, and vol_a2 lost their node.
        conn.execute(text("UPDATE user_account SET org_unit_id = :u WHERE id = :v"),
                     {"u": units["building_b"], "v": vol_a})
        conn.execute(text("UPDATE user_account SET org_unit_id = NULL WHERE id = :v"), {"v": vol_a2})
    upgrade()
    with db.engine.connect() as conn:
        nodes = dict(conn.execute(text("SELECT id, org_unit_id FROM checkin_attendance")).all())
    assert nodes == {
        ids[closed, vol_a]: units["unit_a"],  # its activity's node, not where vol_a is now
        ids[closed, vol_a2]: units["grid_a"],  # no activity, no node of the volunteer: the event's
        ids[open_, vol_a]: units["building_b"],  # no activity yet: the volunteer's node
        ids[open_, vol_a2]: units["grid_a"],
    }
    insp = inspect(db.engine)
    column = next(c for c in insp.get_columns("checkin_attendance") if c["name"] == "org_unit_id")
    assert column["nullable"] is False
    fks = {f["name"]: (f["constrained_columns"], f["referred_table"])
           for f in insp.get_foreign_keys("checkin_attendance")}
    assert fks["fk_checkin_attendance_org_unit_id_org_unit"] == (["org_unit_id"], "org_unit")
    assert len(fks) == 5
    checks = sorted(c["name"] for c in insp.get_check_constraints("checkin_attendance"))
    assert checks == ["ck_checkin_attendance_hours_not_negative", "ck_checkin_attendance_out_after_in"]
    uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("checkin_attendance")}
    assert uniques == {"uq_checkin_attendance_event_id_volunteer_id": ["event_id", "volunteer_id"]}
    indexes = {i["name"] for i in insp.get_indexes("checkin_attendance")}
    assert {"ix_checkin_attendance_event_id", "ix_checkin_attendance_volunteer_id"} <= indexes
    with pytest.raises(DBAPIError):
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE checkin_attendance SET org_unit_id = NULL WHERE id = :id"),
                         {"id": ids[open_, vol_a]})
    check_ledger()
