"""budgets: funding records, budget counters, and what each credit charged

Revision ID: e2f0a1b2c3d4
Revises: a4c1e2f3a4b5
Create Date: 2026-11-22 15:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "e2f0a1b2c3d4"
down_revision = "e1f0a1b2c3d4"
branch_labels = None
depends_on = None

# Funding records and charges are records, never edited (the budget row is the counter).
APPEND_ONLY_TABLES = ("budget_funding", "budget_charge")


def _append_only(create: bool) -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY_TABLES:
        if bind.dialect.name == "postgresql":
            if create:
                op.execute(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
                )
            else:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for action in ("UPDATE", "DELETE"):
                if create:
                    op.execute(
                        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only'); END"
                    )
                else:
                    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action.lower()}")


def upgrade():
    op.create_table(
        "budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_unit_id", sa.Integer(), nullable=False),
        sa.Column("funded_fen", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("funded_fen >= 0", name=op.f("ck_budget_funded_not_negative")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_budget_used_not_negative")),
        sa.ForeignKeyConstraint(["org_unit_id"], ["org_unit.id"], name=op.f("fk_budget_org_unit_id_org_unit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget")),
        sa.UniqueConstraint("org_unit_id", name=op.f("uq_budget_org_unit_id")),
    )
    op.create_table(
        "budget_funding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("fen", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("funded_on", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("fen <> 0", name=op.f("ck_budget_funding_fen_not_zero")),
        sa.CheckConstraint(
            "fen BETWEEN -1000000000 AND 1000000000", name=op.f("ck_budget_funding_fen_within_limit")
        ),
        sa.CheckConstraint("fen > 0 OR note IS NOT NULL", name=op.f("ck_budget_funding_correction_has_reason")),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"], name=op.f("fk_budget_funding_budget_id_budget")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user_account.id"], name=op.f("fk_budget_funding_created_by_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_funding")),
        sa.UniqueConstraint("key", name=op.f("uq_budget_funding_key")),
    )
    with op.batch_alter_table("budget_funding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_funding_budget_id"), ["budget_id"], unique=False)
    op.create_table(
        "budget_charge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.CheckConstraint("points <> 0", name=op.f("ck_budget_charge_points_not_zero")),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"], name=op.f("fk_budget_charge_budget_id_budget")),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfer.id"], name=op.f("fk_budget_charge_transfer_id_transfer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_charge")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_budget_charge_transfer_id")),
    )
    with op.batch_alter_table("budget_charge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_charge_budget_id"), ["budget_id"], unique=False)
    _append_only(create=True)


def downgrade():
    _append_only(create=False)
    with op.batch_alter_table("budget_charge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_charge_budget_id"))
    op.drop_table("budget_charge")
    with op.batch_alter_table("budget_funding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_funding_budget_id"))
    op.drop_table("budget_funding")
    op.drop_table("budget")
