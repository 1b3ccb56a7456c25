"""usernames unique ignoring case, in the database

Two people added at once as ``Li9`` and ``li9`` both passed the application's case-insensitive
check; the login then finds only one of them. The index on ``lower(username)`` becomes unique.

Revision ID: ecf0a1b2c3d4
Revises: ebf0a1b2c3d4
Create Date: 2026-12-07 15:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "ecf0a1b2c3d4"
down_revision = "ebf0a1b2c3d4"
branch_labels = None
depends_on = None


def upgrade():
    twins = op.get_bind().execute(sa.text(
        "SELECT lower(username) FROM user_account GROUP BY lower(username) HAVING count(*) > 1 ORDER BY 1"
    )).scalars().all()
    if twins:
        raise RuntimeError(
            "These usernames belong to more than one person when case is ignored: " + ", ".join(twins)
            + ". Only one of each can log in. Deactivate the extra people, rename their usernames "
            "(UPDATE user_account SET username = ... WHERE id = ...), then run the upgrade again."
        )
    op.drop_index("ix_user_account_username_lower", table_name="user_account")
    op.create_index("ix_user_account_username_lower", "user_account", [sa.text("lower(username)")], unique=True)


def downgrade():
    op.drop_index("ix_user_account_username_lower", table_name="user_account")
    op.create_index("ix_user_account_username_lower", "user_account", [sa.text("lower(username)")], unique=False)
