"""security: session versions, forced password change, the hash-chained audit log

Revision ID: b5a1c0de5ec1
Revises: 09d413df3395
Create Date: 2026-11-22 12:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'b5a1c0de5ec1'
down_revision = '09d413df3395'
branch_labels = None
depends_on = None


def _create_audit_triggers():
    # Like the ledger (first migration): the database itself refuses to change or delete a record.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit table % is append-only', TG_TABLE_NAME; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_record_no_{action.lower()} BEFORE {action} ON audit_record "
                "BEGIN SELECT RAISE(ABORT, 'audit table audit_record is append-only'); END"
            )


def _drop_audit_triggers():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_record_append_only ON audit_record")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_record_no_{action}")


def upgrade():
    # Plain ADD COLUMN on both databases (SQLite supports it with a constant default). A batch
    # copy of user_account would drop the table every other table refers to, which SQLite's
    # foreign keys forbid once people exist.
    op.add_column('user_account', sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))
    op.add_column('user_account', sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('user_account', sa.Column('password_changed_at', sa.DateTime(), nullable=True))

    op.create_table('audit_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=True),
    sa.Column('org_path', sa.String(length=255), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_record_seq_positive')),
    sa.CheckConstraint('length(hash) = 64 AND length(prev_hash) = 64', name=op.f('ck_audit_record_hashes_are_sha256')),
    sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'], name=op.f('fk_audit_record_actor_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_record')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_record_hash')),
    sa.UniqueConstraint('prev_hash', name=op.f('uq_audit_record_prev_hash')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_record_seq'))
    )
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_record_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_audit_record_org_path_id', ['org_path', 'id'], unique=False)

    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_chain_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    _create_audit_triggers()


def downgrade():
    _drop_audit_triggers()
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_record_org_path_id')
        batch_op.drop_index(batch_op.f('ix_audit_record_created_at'))

    op.drop_table('audit_record')
    columns = ('password_changed_at', 'must_change_password', 'session_version')
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops these plain columns in place; a batch copy of user_account would
        # have to drop the table every other table refers to, which foreign keys forbid.
        for column in columns:
            op.execute(f"ALTER TABLE user_account DROP COLUMN {column}")
    else:
        for column in columns:
            op.drop_column('user_account', column)
