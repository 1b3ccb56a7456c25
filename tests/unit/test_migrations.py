"""The one migration goes down to nothing and back up again on the test database."""
import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from pointsapp.extensions import db
from tests.factories import build_street
from tests.unit.helpers import award

TABLES = {
    "org_level", "org_unit", "user_account", "role_grant", "merchant", "reward", "point_rule",
    "point_rule_version", "activity", "account", "transfer", "entry", "voucher",
    "audit_record", "audit_chain_head",
    "points_rate", "settlement_period", "settlement_line", "settlement_payment",
    "api_token", "idempotency_key",
    "point_lot", "lot_use", "voucher_lot",
    "budget", "budget_funding", "budget_charge",
    "checkin_event", "checkin_attendance",
    "approval_vote", "notice_objection",
    "account_month", "volunteer_year",
    "app_setting",
}


def table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_downgrade_to_base_and_upgrade_to_head_bring_the_schema_back(app):
    db.session.remove()
    assert TABLES <= table_names()
    downgrade(revision="base")
    assert table_names() & TABLES == set()
    upgrade()
    assert TABLES <= table_names()
    assert set(db.metadata.tables) == TABLES
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() is not None


def test_the_append_only_guard_comes_back_with_the_upgrade(app):
    db.session.remove()
    downgrade(revision="base")
    upgrade()
    s = build_street()
    award(s, s.vol_a, 10)
    with pytest.raises(DBAPIError) as exc:
        db.session.execute(text("DELETE FROM entry"))
    assert "append-only" in str(exc.value)
    db.session.rollback()


def test_the_security_migration_steps_down_and_up_with_people_and_audit_records_in_place(app):
    s = build_street()
    award(s, s.vol_a, 10)
    db.session.commit()
    vol_id = s.vol_a.id
    db.session.remove()
    downgrade(revision="09d413df3395")
    assert "audit_record" not in table_names()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT username FROM user_account WHERE id = :id"), {"id": vol_id}).scalar() == "vol_a"
    upgrade()
    with db.engine.connect() as conn:
        row = conn.execute(
            text("SELECT session_version, must_change_password FROM user_account WHERE id = :id"), {"id": vol_id}
        ).one()
    assert (row[0], bool(row[1])) == (0, False)
    assert "audit_record" in table_names()


def test_the_unique_username_migration_names_case_twins_and_changes_nothing_until_they_are_renamed(app, capfd):
    s = build_street()
    db.session.commit()
    twin_id = s.vol_a2.id
    db.session.remove()
    downgrade(revision="ebf0a1b2c3d4")  # usernames unique only as typed
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE user_account SET username = 'VOL_A' WHERE id = :id"), {"id": twin_id})
    with pytest.raises(SystemExit):  # Flask-Migrate prints the migration's error and exits
        upgrade()
    said = capfd.readouterr().err
    assert "when case is ignored: vol_a." in said and "rename their usernames" in said
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "ebf0a1b2c3d4"
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE user_account SET username = 'vol_a2' WHERE id = :id"), {"id": twin_id})
    upgrade()
    with pytest.raises(DBAPIError):  # now the database refuses a twin itself
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE user_account SET username = 'Vol_A' WHERE id = :id"), {"id": twin_id})
