"""activation codes for people imported without a password; case-insensitive username index

Revision ID: e6f0a1b2c3d4
Revises: a4c1e2f3a4b5
Create Date: 2026-11-22 15:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e6f0a1b2c3d4"
down_revision = "e5f0a1b2c3d4"
branch_labels = None
depends_on = None

COLUMNS = ("activation_expires_at", "activation_hash")


def upgrade():
    # Plain ALTER TABLE, no batch: a batch copy of user_account would drop the table every other
    # table refers to, which SQLite's foreign keys forbid once people exist.
    op.add_column("user_account", sa.Column("activation_hash", sa.String(length=64), nullable=True))
    op.add_column("user_account", sa.Column("activation_expires_at", sa.DateTime(), nullable=True))
    op.create_index("ix_user_account_username_lower", "user_account", [sa.text("lower(username)")], unique=False)


def downgrade():
    op.drop_index("ix_user_account_username_lower", table_name="user_account")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops these plain columns in place (see the security migration).
        for column in COLUMNS:
            op.execute(f"ALTER TABLE user_account DROP COLUMN {column}")
    else:
        for column in COLUMNS:
            op.drop_column("user_account", column)
