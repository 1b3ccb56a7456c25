"""approval votes (N of M verifiers) and public notice with objections

Revision ID: e4f0a1b2c3d4
Revises: a4c1e2f3a4b5
Create Date: 2026-11-22 15:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e4f0a1b2c3d4"
down_revision = "e3f0a1b2c3d4"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('pending', 'approved', 'rejected', 'reversed')"
NEW_STATUSES = "status IN ('pending', 'approved', 'rejected', 'reversed', 'on_notice', 'withheld')"
NOTICE_HAS_END = "status <> 'on_notice' OR notice_until IS NOT NULL"


def _sqlite_rebuild_activity(old: str, new: str, extra_check: str | None) -> None:
    """Rebuild SQLite's ``activity`` table with its status CHECK changed (as the settlement
    migration does for ``transfer``): the DDL is read back and edited, rows wait in a copy,
    foreign keys (transfers, votes, objections point here) are deferred to the commit."""
    bind = op.get_bind()
    ddl = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'activity'").scalar()
    if old not in ddl:
        raise RuntimeError("unexpected activity table definition")
    ddl = ddl.replace(old, new)
    marker = ", CONSTRAINT ck_activity_notice_has_end CHECK (" + NOTICE_HAS_END + ")"
    if extra_check:
        body = ddl.rstrip()
        ddl = body[:-1].rstrip() + marker + "\n)"
    else:
        ddl = ddl.replace(marker, "")
    indexes = [
        r[0]
        for r in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activity' AND sql IS NOT NULL"
        )
    ]
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE activity_copy AS SELECT * FROM activity")
    op.execute("DROP TABLE activity")
    op.execute(ddl)
    op.execute("INSERT INTO activity SELECT * FROM activity_copy ORDER BY id")
    op.execute("DROP TABLE activity_copy")
    for sql in indexes:
        op.execute(sql)


def upgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite adds a column with its CHECK in place (no table rebuild).
        op.execute(
            "ALTER TABLE point_rule_version ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 1 "
            "CONSTRAINT ck_point_rule_version_approvals_required_range CHECK (approvals_required BETWEEN 1 AND 5)"
        )
        op.execute(
            "ALTER TABLE org_unit ADD COLUMN notice_days INTEGER "
            "CONSTRAINT ck_org_unit_notice_days_range CHECK (notice_days IS NULL OR notice_days BETWEEN 1 AND 15)"
        )
        op.execute("ALTER TABLE activity ADD COLUMN notice_until DATETIME")
        _sqlite_rebuild_activity(OLD_STATUSES, NEW_STATUSES, NOTICE_HAS_END)
    else:
        op.add_column("point_rule_version", sa.Column("approvals_required", sa.Integer(), nullable=False, server_default="1"))
        op.create_check_constraint(
            op.f("ck_point_rule_version_approvals_required_range"), "point_rule_version", "approvals_required BETWEEN 1 AND 5"
        )
        op.add_column("org_unit", sa.Column("notice_days", sa.Integer(), nullable=True))
        op.create_check_constraint(
            op.f("ck_org_unit_notice_days_range"), "org_unit", "notice_days IS NULL OR notice_days BETWEEN 1 AND 15"
        )
        op.add_column("activity", sa.Column("notice_until", sa.DateTime(), nullable=True))
        op.drop_constraint(op.f("ck_activity_status_known"), "activity", type_="check")
        op.create_check_constraint(op.f("ck_activity_status_known"), "activity", NEW_STATUSES)
        op.create_check_constraint(op.f("ck_activity_notice_has_end"), "activity", NOTICE_HAS_END)

    op.create_table(
        "approval_vote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("voter_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name=op.f("ck_approval_vote_decision_known")),
        sa.CheckConstraint("decision <> 'reject' OR comment IS NOT NULL", name=op.f("ck_approval_vote_rejection_has_reason")),
        sa.ForeignKeyConstraint(["activity_id"], ["activity.id"], name=op.f("fk_approval_vote_activity_id_activity")),
        sa.ForeignKeyConstraint(["voter_id"], ["user_account.id"], name=op.f("fk_approval_vote_voter_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_vote")),
        sa.UniqueConstraint("activity_id", "voter_id", name="uq_approval_vote_activity_id_voter_id"),
    )
    with op.batch_alter_table("approval_vote", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approval_vote_activity_id"), ["activity_id"], unique=False)

    op.create_table(
        "notice_objection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=100), nullable=True),
        sa.Column("filed_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'upheld', 'dismissed')", name=op.f("ck_notice_objection_status_known")),
        sa.CheckConstraint(
            "status = 'open' OR resolved_by_id IS NOT NULL", name=op.f("ck_notice_objection_resolution_has_resolver")
        ),
        sa.ForeignKeyConstraint(["activity_id"], ["activity.id"], name=op.f("fk_notice_objection_activity_id_activity")),
        sa.ForeignKeyConstraint(["filed_by_id"], ["user_account.id"], name=op.f("fk_notice_objection_filed_by_id_user_account")),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"], ["user_account.id"], name=op.f("fk_notice_objection_resolved_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_objection")),
    )
    with op.batch_alter_table("notice_objection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notice_objection_activity_id"), ["activity_id"], unique=False)


def downgrade():
    with op.batch_alter_table("notice_objection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_objection_activity_id"))
    op.drop_table("notice_objection")
    with op.batch_alter_table("approval_vote", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approval_vote_activity_id"))
    op.drop_table("approval_vote")
    # The older schema knows neither state: an activity on notice goes back to the queue, a
    # withheld one becomes a rejection (it keeps its reason).
    op.execute("UPDATE activity SET status = 'pending', notice_until = NULL WHERE status = 'on_notice'")
    op.execute("UPDATE activity SET status = 'rejected' WHERE status = 'withheld'")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild_activity(NEW_STATUSES, OLD_STATUSES, None)
        op.execute("ALTER TABLE activity DROP COLUMN notice_until")
        op.execute("ALTER TABLE org_unit DROP COLUMN notice_days")
        op.execute("ALTER TABLE point_rule_version DROP COLUMN approvals_required")
    else:
        op.drop_constraint(op.f("ck_activity_notice_has_end"), "activity", type_="check")
        op.drop_constraint(op.f("ck_activity_status_known"), "activity", type_="check")
        op.create_check_constraint(op.f("ck_activity_status_known"), "activity", OLD_STATUSES)
        op.drop_column("activity", "notice_until")
        op.drop_constraint(op.f("ck_org_unit_notice_days_range"), "org_unit", type_="check")
        op.drop_column("org_unit", "notice_days")
        op.drop_constraint(op.f("ck_point_rule_version_approvals_required_range"), "point_rule_version", type_="check")
        op.drop_column("point_rule_version", "approvals_required")
