"""indexes for a month's reports over the whole street: approved activities by date, claims by decision time

Revision ID: e9f0a1b2c3d4
Revises: e8f0a1b2c3d4
Create Date: 2026-11-22 22:45:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e9f0a1b2c3d4"
down_revision = "e8f0a1b2c3d4"
branch_labels = None
depends_on = None

CLAIMS = sa.text("source = 'claim'")


def upgrade():
    # A street's (or any large subtree's) reports read a month of approved activities: by status
    # and date, the read grows with the month, not with every activity ever recorded. It starts
    # with status, so the single-column index on status has nothing left to do.
    op.create_index("ix_activity_status_activity_date", "activity", ["status", "activity_date"], unique=False)
    op.drop_index("ix_activity_status", table_name="activity")
    # "Claims decided this month": partial, as recorded attendance is never decided.
    op.create_index(
        "ix_activity_claims_decided_at", "activity", ["decided_at"], unique=False,
        postgresql_where=CLAIMS, sqlite_where=CLAIMS,
    )


def downgrade():
    op.drop_index("ix_activity_claims_decided_at", table_name="activity")
    op.create_index("ix_activity_status", "activity", ["status"], unique=False)
    op.drop_index("ix_activity_status_activity_date", table_name="activity")
