"""budget charges per budget: points leaving a volunteer give budget back to the budget that paid
for them, lot by lot, so one transfer may give back to more than one budget (a volunteer moved
to another community, or points credited before a budget existed)

Revision ID: eff0a1b2c3d4
Revises: eef0a1b2c3d4
Create Date: 2026-12-07 18:30:00

"""
from alembic import op

revision = "eff0a1b2c3d4"
down_revision = "eef0a1b2c3d4"
branch_labels = None
depends_on = None


def _sqlite_append_only(create: bool) -> None:
    # A table rebuilt by batch mode on SQLite loses its triggers: put the append-only guard back.
    for action in ("UPDATE", "DELETE"):
        if create:
            op.execute(
                f"CREATE TRIGGER budget_charge_no_{action.lower()} BEFORE {action} ON budget_charge "
                "BEGIN SELECT RAISE(ABORT, 'ledger table budget_charge is append-only'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS budget_charge_no_{action.lower()}")


def _swap(drop: str, create: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_append_only(create=False)
        with op.batch_alter_table("budget_charge", recreate="always", reflect_kwargs={"resolve_fks": False}) as batch:
            batch.drop_constraint(drop, type_="unique")
            batch.create_unique_constraint(create, columns)
        _sqlite_append_only(create=True)
    else:
        op.drop_constraint(drop, "budget_charge", type_="unique")
        op.create_unique_constraint(create, "budget_charge", columns)


def upgrade():
    _swap("uq_budget_charge_transfer_id", "uq_budget_charge_transfer_id_budget_id", ["transfer_id", "budget_id"])


def downgrade():
    _swap("uq_budget_charge_transfer_id_budget_id", "uq_budget_charge_transfer_id", ["transfer_id"])
