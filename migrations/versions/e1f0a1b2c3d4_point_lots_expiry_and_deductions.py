"""point lots with expiry dates, the expiry account and transfers, deductions

Revision ID: e1f0a1b2c3d4
Revises: a4c1e2f3a4b5
Create Date: 2026-11-22 15:30:00

"""
from datetime import date

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'e1f0a1b2c3d4'
down_revision = 'a4c1e2f3a4b5'
branch_labels = None
depends_on = None

OLD_TRANSFER_KINDS = "kind IN ('credit', 'capture', 'reversal', 'settlement')"
NEW_TRANSFER_KINDS = "kind IN ('credit', 'capture', 'reversal', 'settlement', 'expiry', 'deduction')"
OLD_ACCOUNT_KINDS = "kind IN ('issuance', 'volunteer', 'merchant')"
NEW_ACCOUNT_KINDS = "kind IN ('issuance', 'volunteer', 'merchant', 'expiry')"
MERCHANT_OWNER = "(kind = 'merchant' AND merchant_id IS NOT NULL AND org_unit_id IS NULL AND user_id IS NULL)"
EXPIRY_OWNER = " OR (kind = 'expiry' AND org_unit_id IS NOT NULL AND user_id IS NULL AND merchant_id IS NULL)"
OLD_OWNER = (
    "(kind = 'issuance' AND org_unit_id IS NOT NULL AND user_id IS NULL AND merchant_id IS NULL)"
    " OR (kind = 'volunteer' AND user_id IS NOT NULL AND org_unit_id IS NULL AND merchant_id IS NULL)"
    " OR " + MERCHANT_OWNER
)
NEW_OWNER = OLD_OWNER + EXPIRY_OWNER
RULE_CHECKS = {
    "ck_point_rule_version_expiry_policy_known": "expiry_policy IN ('never', 'months', 'next_year_end')",
    "ck_point_rule_version_expiry_months_with_policy": (
        "(expiry_policy = 'months') = (expiry_months IS NOT NULL)"
        " AND (expiry_months IS NULL OR (expiry_months >= 1 AND expiry_months <= 120))"
    ),
    "ck_point_rule_version_kind_known": "kind IN ('earn', 'deduct')",
}
RULE_COLUMNS = ("expiry_policy", "expiry_months", "kind")


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _sqlite_rebuild(table: str, edit, keep_columns=None) -> None:
    """Rebuild a SQLite table from its own DDL, edited by ``edit`` (SQLite cannot alter a CHECK).

    The rows wait in a plain copy while the table is made again; foreign keys are deferred to the
    commit, so tables that refer to this one keep their rows. Indexes are made again, and the
    append-only triggers of ``transfer`` too.
    """
    bind = op.get_bind()
    ddl = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar()
    new_ddl = edit(ddl)
    if new_ddl == ddl:
        raise RuntimeError(f"unexpected {table} table definition")
    indexes = [
        r[0]
        for r in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
        )
    ]
    columns = [r[1] for r in bind.exec_driver_sql(f"PRAGMA table_info({table})")]
    if keep_columns is not None:
        columns = [c for c in columns if c in keep_columns]
    cols = ", ".join(columns)
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TABLE {table}_copy AS SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(new_ddl)
    op.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {table}_copy ORDER BY id")
    op.execute(f"DROP TABLE {table}_copy")
    for sql in indexes:
        op.execute(sql)
    if table == "transfer":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS transfer_no_{action.lower()}")
            op.execute(
                f"CREATE TRIGGER transfer_no_{action.lower()} BEFORE {action} ON transfer "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table transfer is append-only'); END"
            )


def _replace(old: str, new: str):
    def edit(ddl: str) -> str:
        if old not in ddl:
            raise RuntimeError(f"constraint not found: {old}")
        return ddl.replace(old, new)

    return edit


def _swap_check(table: str, name: str, old: str, new: str) -> None:
    if _is_pg():
        op.drop_constraint(op.f(name), table, type_="check")
        op.create_check_constraint(op.f(name), table, new)
    else:
        _sqlite_rebuild(table, _replace(old, new))


def _append_only_lot_use(create: bool) -> None:
    if _is_pg():
        if create:
            op.execute(
                "CREATE TRIGGER lot_use_append_only BEFORE UPDATE OR DELETE ON lot_use "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
        else:
            op.execute("DROP TRIGGER IF EXISTS lot_use_append_only ON lot_use")
        return
    for action in ("UPDATE", "DELETE"):
        if create:
            op.execute(
                f"CREATE TRIGGER lot_use_no_{action.lower()} BEFORE {action} ON lot_use "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table lot_use is append-only'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS lot_use_no_{action.lower()}")


def upgrade():
    _swap_check("transfer", "ck_transfer_kind_known", OLD_TRANSFER_KINDS, NEW_TRANSFER_KINDS)
    if _is_pg():
        _swap_check("account", "ck_account_kind_known", OLD_ACCOUNT_KINDS, NEW_ACCOUNT_KINDS)
        _swap_check("account", "ck_account_owner_matches_kind", OLD_OWNER, NEW_OWNER)
    else:
        _sqlite_rebuild(
            "account",
            lambda ddl: _replace(MERCHANT_OWNER, MERCHANT_OWNER + EXPIRY_OWNER)(
                _replace(OLD_ACCOUNT_KINDS, NEW_ACCOUNT_KINDS)(ddl)
            ),
        )

    op.add_column("point_rule_version", sa.Column("expiry_policy", sa.String(length=16), server_default="never", nullable=False))
    op.add_column("point_rule_version", sa.Column("expiry_months", sa.Integer(), nullable=True))
    op.add_column("point_rule_version", sa.Column("kind", sa.String(length=16), server_default="earn", nullable=False))
    if _is_pg():
        for name, sql in RULE_CHECKS.items():
            op.create_check_constraint(op.f(name), "point_rule_version", sql)
    else:
        checks = "".join(f", CONSTRAINT {name} CHECK ({sql})" for name, sql in RULE_CHECKS.items())
        _sqlite_rebuild("point_rule_version", lambda ddl: ddl.rstrip()[:-1] + checks + "\n)")

    op.create_table('point_lot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('transfer_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('earned_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_point_lot_amount_positive')),
    sa.CheckConstraint('remaining >= 0 AND remaining <= amount', name=op.f('ck_point_lot_remaining_within_amount')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_point_lot_account_id_account')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfer.id'], name=op.f('fk_point_lot_transfer_id_transfer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_point_lot')),
    sa.UniqueConstraint('transfer_id', name=op.f('uq_point_lot_transfer_id'))
    )
    with op.batch_alter_table('point_lot', schema=None) as batch_op:
        batch_op.create_index('ix_point_lot_account_id_expires_on', ['account_id', 'expires_on'], unique=False)

    op.create_table('lot_use',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('transfer_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_lot_use_amount_not_zero')),
    sa.ForeignKeyConstraint(['lot_id'], ['point_lot.id'], name=op.f('fk_lot_use_lot_id_point_lot')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfer.id'], name=op.f('fk_lot_use_transfer_id_transfer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lot_use'))
    )
    with op.batch_alter_table('lot_use', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lot_use_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_use_transfer_id'), ['transfer_id'], unique=False)
    _append_only_lot_use(create=True)

    # Balances from before lots: one never-expiring opening lot per volunteer account, so that
    # each volunteer's lots add up to their balance from the first day.
    op.get_bind().execute(
        sa.text(
            "INSERT INTO point_lot (account_id, transfer_id, amount, remaining, earned_on, expires_on) "
            "SELECT id, NULL, balance, balance, :today, NULL FROM account "
            "WHERE kind = 'volunteer' AND balance > 0 ORDER BY id"
        ),
        {"today": date.today()},
    )


def downgrade():
    # Expiries and deductions are ledger history: the downgrade refuses rather than lose them.
    bind = op.get_bind()
    n = bind.exec_driver_sql("SELECT count(*) FROM transfer WHERE kind IN ('expiry', 'deduction')").scalar()
    if n:
        raise RuntimeError(f"{n} expiry or deduction transfers exist; this migration cannot be undone without losing them")
    if bind.exec_driver_sql("SELECT count(*) FROM account WHERE kind = 'expiry'").scalar():
        op.execute("DELETE FROM account WHERE kind = 'expiry'")
    _append_only_lot_use(create=False)
    with op.batch_alter_table('lot_use', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lot_use_transfer_id'))
        batch_op.drop_index(batch_op.f('ix_lot_use_lot_id'))
    op.drop_table('lot_use')
    with op.batch_alter_table('point_lot', schema=None) as batch_op:
        batch_op.drop_index('ix_point_lot_account_id_expires_on')
    op.drop_table('point_lot')

    if _is_pg():
        for name in RULE_CHECKS:
            op.drop_constraint(op.f(name), "point_rule_version", type_="check")
        for column in reversed(RULE_COLUMNS):
            op.drop_column("point_rule_version", column)
    else:
        keep = [
            r[1] for r in bind.exec_driver_sql("PRAGMA table_info(point_rule_version)") if r[1] not in RULE_COLUMNS
        ]

        def strip(ddl: str) -> str:
            for name, sql in RULE_CHECKS.items():
                ddl = ddl.replace(f", CONSTRAINT {name} CHECK ({sql})", "")
            for line in (
                "expiry_policy VARCHAR(16) DEFAULT 'never' NOT NULL",
                "expiry_months INTEGER",
                "kind VARCHAR(16) DEFAULT 'earn' NOT NULL",
            ):
                ddl = ddl.replace(f", {line}", "")
            return ddl

        _sqlite_rebuild("point_rule_version", strip, keep_columns=keep)

    if _is_pg():
        _swap_check("account", "ck_account_owner_matches_kind", NEW_OWNER, OLD_OWNER)
        _swap_check("account", "ck_account_kind_known", NEW_ACCOUNT_KINDS, OLD_ACCOUNT_KINDS)
    else:
        _sqlite_rebuild(
            "account",
            lambda ddl: _replace(MERCHANT_OWNER + EXPIRY_OWNER, MERCHANT_OWNER)(
                _replace(NEW_ACCOUNT_KINDS, OLD_ACCOUNT_KINDS)(ddl)
            ),
        )
    _swap_check("transfer", "ck_transfer_kind_known", NEW_TRANSFER_KINDS, OLD_TRANSFER_KINDS)
