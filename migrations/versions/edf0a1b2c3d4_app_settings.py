"""app settings: the fingerprint of the voucher key the database's vouchers were made with

Revision ID: edf0a1b2c3d4
Revises: ecf0a1b2c3d4
Create Date: 2026-12-07 16:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "edf0a1b2c3d4"
down_revision = "ecf0a1b2c3d4"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "app_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_setting")),
    )


def downgrade():
    op.drop_table("app_setting")
