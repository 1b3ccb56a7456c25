"""voucher lot reservations: an issued voucher reserves particular lots (``voucher_lot``, and each
lot's ``reserved``), which its capture takes and nothing else spends or expires; open vouchers'
holds are given the lots they covered until now, the earliest-expiring points in voucher order

Revision ID: f0f0a1b2c3d4
Revises: eff0a1b2c3d4
Create Date: 2026-12-07 21:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "f0f0a1b2c3d4"
down_revision = "eff0a1b2c3d4"
branch_labels = None
depends_on = None


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _append_only(create: bool) -> None:
    if _is_pg():
        if create:
            op.execute(
                "CREATE TRIGGER voucher_lot_append_only BEFORE UPDATE OR DELETE ON voucher_lot "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
        else:
            op.execute("DROP TRIGGER IF EXISTS voucher_lot_append_only ON voucher_lot")
        return
    for action in ("UPDATE", "DELETE"):
        if create:
            op.execute(
                f"CREATE TRIGGER voucher_lot_no_{action.lower()} BEFORE {action} ON voucher_lot "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table voucher_lot is append-only'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS voucher_lot_no_{action.lower()}")


def _reserve_open_vouchers() -> None:
    """Give each issued voucher the lots its hold covered: an account's holds reserved its
    earliest-expiring points (never-expiring last, ties by lot), taken here voucher by voucher
    in the order they were issued."""
    bind = op.get_bind()
    vouchers = bind.execute(sa.text(
        "SELECT id, account_id, points FROM voucher WHERE status = 'issued' ORDER BY account_id, id"
    )).all()
    by_account: dict[int, list[tuple[int, int]]] = {}
    for vid, account_id, points in vouchers:
        by_account.setdefault(account_id, []).append((vid, points))
    for account_id, wanted in by_account.items():
        lots = [list(row) for row in bind.execute(sa.text(
            "SELECT id, remaining FROM point_lot WHERE account_id = :a AND remaining > 0 "
            "ORDER BY expires_on IS NULL, expires_on, id"
        ), {"a": account_id})]
        reserved: dict[int, int] = {}
        rows = []
        i = 0
        for vid, points in wanted:
            left = points
            while left:
                if i == len(lots):
                    raise RuntimeError(f"account {account_id}: its lots do not cover its open vouchers")
                lot_id, free = lots[i]
                take = min(free, left)
                rows.append({"v": vid, "l": lot_id, "p": take})
                reserved[lot_id] = reserved.get(lot_id, 0) + take
                lots[i][1] -= take
                left -= take
                if not lots[i][1]:
                    i += 1
        if rows:
            bind.execute(sa.text("INSERT INTO voucher_lot (voucher_id, lot_id, points) VALUES (:v, :l, :p)"), rows)
            bind.execute(sa.text("UPDATE point_lot SET reserved = :r WHERE id = :l"),
                         [{"l": lot_id, "r": r} for lot_id, r in reserved.items()])


def upgrade():
    if _is_pg():
        op.add_column("point_lot", sa.Column("reserved", sa.Integer(), server_default=sa.text("0"), nullable=False))
        op.create_check_constraint(
            op.f("ck_point_lot_reserved_within_remaining"), "point_lot", "reserved >= 0 AND reserved <= remaining"
        )
    else:
        # SQLite adds a column with its own CHECK, which goes with the column when it is dropped.
        op.execute(
            "ALTER TABLE point_lot ADD COLUMN reserved INTEGER DEFAULT 0 NOT NULL "
            "CONSTRAINT ck_point_lot_reserved_within_remaining CHECK (reserved >= 0 AND reserved <= remaining)"
        )
    op.create_table(
        "voucher_lot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("voucher_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.CheckConstraint("points <> 0", name=op.f("ck_voucher_lot_points_not_zero")),
        sa.ForeignKeyConstraint(["lot_id"], ["point_lot.id"], name=op.f("fk_voucher_lot_lot_id_point_lot")),
        sa.ForeignKeyConstraint(["voucher_id"], ["voucher.id"], name=op.f("fk_voucher_lot_voucher_id_voucher")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voucher_lot")),
    )
    with op.batch_alter_table("voucher_lot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voucher_lot_lot_id"), ["lot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_voucher_lot_voucher_id"), ["voucher_id"], unique=False)
    _reserve_open_vouchers()
    _append_only(create=True)


def downgrade():
    _append_only(create=False)
    with op.batch_alter_table("voucher_lot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voucher_lot_voucher_id"))
        batch_op.drop_index(batch_op.f("ix_voucher_lot_lot_id"))
    op.drop_table("voucher_lot")
    if _is_pg():
        op.drop_constraint(op.f("ck_point_lot_reserved_within_remaining"), "point_lot", type_="check")
        op.drop_column("point_lot", "reserved")
    else:
        op.execute("ALTER TABLE point_lot DROP COLUMN reserved")
