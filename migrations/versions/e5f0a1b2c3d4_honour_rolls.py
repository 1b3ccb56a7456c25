"""honour rolls: how a person is shown on them, and an index for a subtree's approved activities by date

Revision ID: e5f0a1b2c3d4
Revises: a4c1e2f3a4b5
Create Date: 2026-11-22 15:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e5f0a1b2c3d4"
down_revision = "e4f0a1b2c3d4"
branch_labels = None
depends_on = None

CHECK = "honour_display IN ('name', 'initials')"
CHECK_NAME = "ck_user_account_honour_display_known"


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        # A column constraint added in place: a batch copy of user_account would have to drop the
        # table every other table refers to, which foreign keys forbid once people exist.
        op.execute(
            "ALTER TABLE user_account ADD COLUMN honour_display VARCHAR(16) DEFAULT 'name' NOT NULL"
            f" CONSTRAINT {CHECK_NAME} CHECK ({CHECK})"
        )
    else:
        op.add_column(
            "user_account", sa.Column("honour_display", sa.String(length=16), server_default="name", nullable=False)
        )
        op.create_check_constraint(op.f(CHECK_NAME), "user_account", CHECK)
    op.create_index("ix_activity_org_unit_id_status_activity_date", "activity", ["org_unit_id", "status", "activity_date"])


def downgrade():
    op.drop_index("ix_activity_org_unit_id_status_activity_date", table_name="activity")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops the column with its column constraint in place.
        op.execute("ALTER TABLE user_account DROP COLUMN honour_display")
    else:
        op.drop_constraint(op.f(CHECK_NAME), "user_account", type_="check")
        op.drop_column("user_account", "honour_display")
