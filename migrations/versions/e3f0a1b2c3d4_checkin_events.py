"""check-in events and attendance; check-in terms on rule versions; activity source 'checkin'

Revision ID: e3f0a1b2c3d4
Revises: a4c1e2f3a4b5
Create Date: 2026-11-22 15:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e3f0a1b2c3d4"
down_revision = "e2f0a1b2c3d4"
branch_labels = None
depends_on = None

OLD_SOURCES = "source IN ('claim', 'recorded')"
NEW_SOURCES = "source IN ('claim', 'recorded', 'checkin')"
CAP_CHECK = ("ck_point_rule_version_checkin_hours_cap_positive", "checkin_hours_cap IS NULL OR checkin_hours_cap > 0")
ROUNDING_CHECK = ("ck_point_rule_version_hours_rounding_minutes_range", "hours_rounding_minutes BETWEEN 1 AND 60")


def _sqlite_swap_activity_check(old: str, new: str) -> None:
    """Rebuild SQLite's ``activity`` table with its source CHECK changed (SQLite cannot alter one).

    As for ``transfer`` in d7a1c0e5f3b2: the table's own DDL is edited, the rows wait in a copy,
    foreign keys (transfers point at activities) are checked at the commit. ``activity`` has no
    triggers; its indexes are made again.
    """
    bind = op.get_bind()
    ddl = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'activity'").scalar()
    if old not in ddl:
        raise RuntimeError("unexpected activity table definition")
    indexes = [
        r[0]
        for r in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activity' AND sql IS NOT NULL"
        )
    ]
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE activity_copy AS SELECT * FROM activity")
    op.execute("DROP TABLE activity")
    op.execute(ddl.replace(old, new))
    op.execute("INSERT INTO activity SELECT * FROM activity_copy ORDER BY id")
    op.execute("DROP TABLE activity_copy")
    for sql in indexes:
        op.execute(sql)


def _swap_activity_check(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_activity_source_known"), "activity", type_="check")
        op.create_check_constraint(op.f("ck_activity_source_known"), "activity", new)
    else:
        _sqlite_swap_activity_check(old, new)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("point_rule_version", sa.Column("checkin_hours_cap", sa.Numeric(5, 2), nullable=True))
        op.add_column(
            "point_rule_version",
            sa.Column("hours_rounding_minutes", sa.Integer(), server_default="30", nullable=False),
        )
        op.add_column(
            "point_rule_version",
            sa.Column("backfill_earns_points", sa.Boolean(), server_default=sa.true(), nullable=False),
        )
        op.create_check_constraint(CAP_CHECK[0], "point_rule_version", CAP_CHECK[1])
        op.create_check_constraint(ROUNDING_CHECK[0], "point_rule_version", ROUNDING_CHECK[1])
    else:
        # SQLite adds a column with its own named CHECK in place (no rebuild of a referenced table).
        op.execute(
            "ALTER TABLE point_rule_version ADD COLUMN checkin_hours_cap NUMERIC(5, 2) "
            f"CONSTRAINT {CAP_CHECK[0]} CHECK ({CAP_CHECK[1]})"
        )
        op.execute(
            "ALTER TABLE point_rule_version ADD COLUMN hours_rounding_minutes INTEGER DEFAULT '30' NOT NULL "
            f"CONSTRAINT {ROUNDING_CHECK[0]} CHECK ({ROUNDING_CHECK[1]})"
        )
        op.execute("ALTER TABLE point_rule_version ADD COLUMN backfill_earns_points BOOLEAN DEFAULT 1 NOT NULL")
    _swap_activity_check(OLD_SOURCES, NEW_SOURCES)

    op.create_table(
        "checkin_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("org_unit_id", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_checkin_event_status_known")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_checkin_event_window_order")),
        sa.ForeignKeyConstraint(["rule_id"], ["point_rule.id"], name=op.f("fk_checkin_event_rule_id_point_rule")),
        sa.ForeignKeyConstraint(["org_unit_id"], ["org_unit.id"], name=op.f("fk_checkin_event_org_unit_id_org_unit")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user_account.id"], name=op.f("fk_checkin_event_created_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_id"], ["user_account.id"], name=op.f("fk_checkin_event_closed_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_event")),
    )
    op.create_index(op.f("ix_checkin_event_org_unit_id"), "checkin_event", ["org_unit_id"], unique=False)
    op.create_table(
        "checkin_attendance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("volunteer_id", sa.Integer(), nullable=False),
        sa.Column("signed_in_at", sa.DateTime(), nullable=True),
        sa.Column("signed_out_at", sa.DateTime(), nullable=True),
        sa.Column("backfilled", sa.Boolean(), nullable=False),
        sa.Column("added_by_id", sa.Integer(), nullable=True),
        sa.Column("hours", sa.Numeric(5, 2), nullable=True),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("hours IS NULL OR hours >= 0", name=op.f("ck_checkin_attendance_hours_not_negative")),
        sa.CheckConstraint(
            "signed_out_at IS NULL OR signed_out_at >= signed_in_at", name=op.f("ck_checkin_attendance_out_after_in")
        ),
        sa.ForeignKeyConstraint(["event_id"], ["checkin_event.id"], name=op.f("fk_checkin_attendance_event_id_checkin_event")),
        sa.ForeignKeyConstraint(
            ["volunteer_id"], ["user_account.id"], name=op.f("fk_checkin_attendance_volunteer_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["added_by_id"], ["user_account.id"], name=op.f("fk_checkin_attendance_added_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(["activity_id"], ["activity.id"], name=op.f("fk_checkin_attendance_activity_id_activity")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_attendance")),
        sa.UniqueConstraint("event_id", "volunteer_id", name="uq_checkin_attendance_event_id_volunteer_id"),
    )
    op.create_index(op.f("ix_checkin_attendance_event_id"), "checkin_attendance", ["event_id"], unique=False)
    op.create_index(op.f("ix_checkin_attendance_volunteer_id"), "checkin_attendance", ["volunteer_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_checkin_attendance_volunteer_id"), table_name="checkin_attendance")
    op.drop_index(op.f("ix_checkin_attendance_event_id"), table_name="checkin_attendance")
    op.drop_table("checkin_attendance")
    op.drop_index(op.f("ix_checkin_event_org_unit_id"), table_name="checkin_event")
    op.drop_table("checkin_event")
    # Check-in activities cannot stay under the old CHECK: they become recorded attendance.
    op.execute("UPDATE activity SET source = 'recorded' WHERE source = 'checkin'")
    _swap_activity_check(NEW_SOURCES, OLD_SOURCES)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(ROUNDING_CHECK[0], "point_rule_version", type_="check")
        op.drop_constraint(CAP_CHECK[0], "point_rule_version", type_="check")
    op.drop_column("point_rule_version", "backfill_earns_points")
    op.drop_column("point_rule_version", "hours_rounding_minutes")
    op.drop_column("point_rule_version", "checkin_hours_cap")
