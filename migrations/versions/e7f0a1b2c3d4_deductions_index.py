"""an index of each account's deductions, for the lifetime and yearly totals on the volunteer's pages

Revision ID: e7f0a1b2c3d4
Revises: e6f0a1b2c3d4
Create Date: 2026-11-22 20:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e7f0a1b2c3d4"
down_revision = "e6f0a1b2c3d4"
branch_labels = None
depends_on = None

DEDUCTIONS = sa.text("kind = 'deduction'")


def upgrade():
    # Partial: deductions are a sliver of the transfers, so the index stays small, and a
    # volunteer's deductions of a year are read without walking every entry of their account.
    op.create_index(
        "ix_transfer_deductions_from", "transfer", ["from_account_id", "created_at"], unique=False,
        postgresql_where=DEDUCTIONS, sqlite_where=DEDUCTIONS,
    )


def downgrade():
    op.drop_index("ix_transfer_deductions_from", table_name="transfer")
