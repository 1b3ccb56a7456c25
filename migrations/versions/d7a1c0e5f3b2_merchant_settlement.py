"""merchant settlement: periods, lines, payments, points rate; settlement transfers

Revision ID: d7a1c0e5f3b2
Revises: b5a1c0de5ec1
Create Date: 2026-11-22 12:50:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'd7a1c0e5f3b2'
down_revision = 'b5a1c0de5ec1'
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('credit', 'capture', 'reversal')"
NEW_KINDS = "kind IN ('credit', 'capture', 'reversal', 'settlement')"
# Closed periods, the entries they took and payments are records, never edited.
APPEND_ONLY_TABLES = ("settlement_period", "settlement_line", "settlement_payment")


def _sqlite_swap_transfer_check(old: str, new: str) -> None:
    """Rebuild SQLite's ``transfer`` table with one CHECK changed (SQLite cannot alter a CHECK).

    The table's own DDL is taken from sqlite_master and edited, so every other column and
    constraint stays exactly as it was. The rows wait in a plain copy while the table is made
    again; foreign keys are deferred to the commit, and re-inserting the rows under the table's
    own name gives ``entry`` (and reversals) their parents back before then. The append-only
    triggers go with the old table and are made again.
    """
    bind = op.get_bind()
    ddl = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'transfer'").scalar()
    if old not in ddl:
        raise RuntimeError("unexpected transfer table definition")
    indexes = [
        r[0]
        for r in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transfer' AND sql IS NOT NULL"
        )
    ]
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE transfer_copy AS SELECT * FROM transfer")
    op.execute("DROP TABLE transfer")
    op.execute(ddl.replace(old, new))
    op.execute("INSERT INTO transfer SELECT * FROM transfer_copy ORDER BY id")
    op.execute("DROP TABLE transfer_copy")
    for sql in indexes:
        op.execute(sql)
    for action in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS transfer_no_{action.lower()}")
        op.execute(
            f"CREATE TRIGGER transfer_no_{action.lower()} BEFORE {action} ON transfer "
            f"BEGIN SELECT RAISE(ABORT, 'ledger table transfer is append-only'); END"
        )


def _swap_transfer_check(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_transfer_kind_known"), "transfer", type_="check")
        op.create_check_constraint(op.f("ck_transfer_kind_known"), "transfer", new)
    else:
        _sqlite_swap_transfer_check(old, new)


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
    _swap_transfer_check(OLD_KINDS, NEW_KINDS)
    op.create_table('points_rate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_unit_id', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('fen_per_point', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('fen_per_point > 0', name=op.f('ck_points_rate_fen_positive')),
    sa.CheckConstraint('fen_per_point <= 100000', name=op.f('ck_points_rate_fen_at_most_1000_yuan')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_points_rate_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_points_rate_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_rate')),
    sa.UniqueConstraint('org_unit_id', 'effective_from', name='uq_points_rate_street_from')
    )
    op.create_table('settlement_period',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('opening_balance', sa.Integer(), nullable=False),
    sa.Column('redeemed', sa.Integer(), nullable=False),
    sa.Column('corrected', sa.Integer(), nullable=False),
    sa.Column('paid', sa.Integer(), nullable=False),
    sa.Column('closing_balance', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('closing_balance = opening_balance + redeemed + corrected - paid', name=op.f('ck_settlement_period_closing_adds_up')),
    sa.CheckConstraint('closing_balance >= 0', name=op.f('ck_settlement_period_closing_not_negative')),
    sa.CheckConstraint('period_end > period_start', name=op.f('ck_settlement_period_dates_ordered')),
    sa.CheckConstraint('redeemed >= 0 AND paid >= 0 AND corrected <= 0', name=op.f('ck_settlement_period_totals_signed')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['user_account.id'], name=op.f('fk_settlement_period_closed_by_id_user_account')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], name=op.f('fk_settlement_period_merchant_id_merchant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_period')),
    sa.UniqueConstraint('merchant_id', 'period_start', name='uq_settlement_period_merchant_start')
    )
    with op.batch_alter_table('settlement_period', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settlement_period_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('settlement_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entry.id'], name=op.f('fk_settlement_line_entry_id_entry')),
    sa.ForeignKeyConstraint(['period_id'], ['settlement_period.id'], name=op.f('fk_settlement_line_period_id_settlement_period')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_line')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_settlement_line_entry_id'))
    )
    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settlement_line_period_id'), ['period_id'], unique=False)

    op.create_table('settlement_payment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('fen', sa.Integer(), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=False),
    sa.Column('transfer_id', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('fen >= 0', name=op.f('ck_settlement_payment_fen_not_negative')),
    sa.CheckConstraint('points > 0', name=op.f('ck_settlement_payment_points_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_settlement_payment_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], name=op.f('fk_settlement_payment_merchant_id_merchant')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfer.id'], name=op.f('fk_settlement_payment_transfer_id_transfer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_payment')),
    sa.UniqueConstraint('transfer_id', name=op.f('uq_settlement_payment_transfer_id'))
    )
    with op.batch_alter_table('settlement_payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settlement_payment_merchant_id'), ['merchant_id'], unique=False)
    _append_only(create=True)


def downgrade():
    # The ledger is append-only: once merchants have been paid, their settlement transfers
    # cannot be dropped, so the downgrade refuses rather than lose them.
    paid = op.get_bind().exec_driver_sql("SELECT count(*) FROM transfer WHERE kind = 'settlement'").scalar()
    if paid:
        raise RuntimeError(f"{paid} settlement transfers exist; this migration cannot be undone without losing them")
    _append_only(create=False)
    with op.batch_alter_table('settlement_payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settlement_payment_merchant_id'))
    op.drop_table('settlement_payment')
    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settlement_line_period_id'))
    op.drop_table('settlement_line')
    with op.batch_alter_table('settlement_period', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settlement_period_merchant_id'))
    op.drop_table('settlement_period')
    op.drop_table('points_rate')
    _swap_transfer_check(NEW_KINDS, OLD_KINDS)
