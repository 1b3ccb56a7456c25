"""voucher issue key: a tap on "redeem" sent twice (a lost answer, then Back and a second tap)
issues one voucher

Revision ID: eef0a1b2c3d4
Revises: edf0a1b2c3d4
Create Date: 2026-12-07 18:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "eef0a1b2c3d4"
down_revision = "edf0a1b2c3d4"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("voucher", sa.Column("issue_key", sa.String(length=64), nullable=True))
    op.create_index("uq_voucher_volunteer_id_issue_key", "voucher", ["volunteer_id", "issue_key"], unique=True)


def downgrade():
    op.drop_index("uq_voucher_volunteer_id_issue_key", table_name="voucher")
    op.drop_column("voucher", "issue_key")
