"""core loop: org, people, rules, ledger, rewards, vouchers

Revision ID: 09d413df3395
Revises: 
Create Date: 2026-11-22 05:39:50.465134

"""
from alembic import op
import sqlalchemy as sa

# The ledger is append-only: the database itself refuses to change or delete its rows.
APPEND_ONLY_TABLES = ("transfer", "entry")


def _create_append_only_triggers():
    bind = op.get_bind()
    for table in APPEND_ONLY_TABLES:
        if bind.dialect.name == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only'); END"
                )


def _drop_append_only_triggers():
    bind = op.get_bind()
    for table in APPEND_ONLY_TABLES:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


# revision identifiers, used by Alembic.
revision = '09d413df3395'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'ledger table % is append-only', TG_TABLE_NAME; END $$"
        )
    op.create_table('org_level',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('name_zh', sa.String(length=32), nullable=False),
    sa.Column('name_en', sa.String(length=64), nullable=False),
    sa.CheckConstraint('rank >= 0', name=op.f('ck_org_level_rank_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_level')),
    sa.UniqueConstraint('code', name=op.f('uq_org_level_code')),
    sa.UniqueConstraint('rank', name=op.f('uq_org_level_rank'))
    )
    op.create_table('org_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('level_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['level_id'], ['org_level.id'], name=op.f('fk_org_unit_level_id_org_level')),
    sa.ForeignKeyConstraint(['parent_id'], ['org_unit.id'], name=op.f('fk_org_unit_parent_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_unit')),
    sa.UniqueConstraint('parent_id', 'name', name='uq_org_unit_parent_name')
    )
    with op.batch_alter_table('org_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_org_unit_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_org_unit_path'), ['path'], unique=False)

    op.create_table('merchant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('org_unit_id', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('charity_supermarket', 'shop', 'service_platform')", name=op.f('ck_merchant_kind_known')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_merchant_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant'))
    )
    with op.batch_alter_table('merchant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_org_unit_id'), ['org_unit_id'], unique=False)

    op.create_table('point_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_unit_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_point_rule_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_point_rule'))
    )
    with op.batch_alter_table('point_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_point_rule_org_unit_id'), ['org_unit_id'], unique=False)

    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('org_unit_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=32), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("title IS NULL OR title IN ('building_leader','unit_leader','micro_grid_leader','part_time_grid_worker','resident')", name=op.f('ck_user_account_title_known')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_user_account_org_unit_id_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('username', name=op.f('uq_user_account_username'))
    )
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_org_unit_id'), ['org_unit_id'], unique=False)

    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('org_unit_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('held', sa.Integer(), nullable=False),
    sa.Column('earned', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("(kind = 'issuance' AND org_unit_id IS NOT NULL AND user_id IS NULL AND merchant_id IS NULL) OR (kind = 'volunteer' AND user_id IS NOT NULL AND org_unit_id IS NULL AND merchant_id IS NULL) OR (kind = 'merchant' AND merchant_id IS NOT NULL AND org_unit_id IS NULL AND user_id IS NULL)", name=op.f('ck_account_owner_matches_kind')),
    sa.CheckConstraint("kind = 'issuance' OR balance >= 0", name=op.f('ck_account_balance_not_negative')),
    sa.CheckConstraint("kind = 'issuance' OR held <= balance", name=op.f('ck_account_held_within_balance')),
    sa.CheckConstraint("kind IN ('issuance', 'volunteer', 'merchant')", name=op.f('ck_account_kind_known')),
    sa.CheckConstraint('earned >= 0', name=op.f('ck_account_earned_not_negative')),
    sa.CheckConstraint('held >= 0', name=op.f('ck_account_held_not_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], name=op.f('fk_account_merchant_id_merchant')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_account_org_unit_id_org_unit')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_account_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account')),
    sa.UniqueConstraint('kind', 'org_unit_id', name='uq_account_kind_org_unit'),
    sa.UniqueConstraint('merchant_id', name=op.f('uq_account_merchant_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_account_user_id'))
    )
    op.create_table('point_rule_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name_zh', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('daily_cap', sa.Integer(), nullable=True),
    sa.Column('monthly_cap', sa.Integer(), nullable=True),
    sa.Column('needs_approval', sa.Boolean(), nullable=False),
    sa.Column('requires_note', sa.Boolean(), nullable=False),
    sa.Column('requires_photo', sa.Boolean(), nullable=False),
    sa.Column('active_from', sa.Date(), nullable=True),
    sa.Column('active_to', sa.Date(), nullable=True),
    sa.Column('titles', sa.JSON(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("unit IN ('occurrence', 'hour')", name=op.f('ck_point_rule_version_unit_known')),
    sa.CheckConstraint('active_to IS NULL OR active_from IS NULL OR active_to >= active_from', name=op.f('ck_point_rule_version_active_range')),
    sa.CheckConstraint('daily_cap IS NULL OR daily_cap > 0', name=op.f('ck_point_rule_version_daily_cap_positive')),
    sa.CheckConstraint('monthly_cap IS NULL OR monthly_cap > 0', name=op.f('ck_point_rule_version_monthly_cap_positive')),
    sa.CheckConstraint('points > 0', name=op.f('ck_point_rule_version_points_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_point_rule_version_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['rule_id'], ['point_rule.id'], name=op.f('fk_point_rule_version_rule_id_point_rule')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_point_rule_version')),
    sa.UniqueConstraint('rule_id', 'version', name='uq_point_rule_version_rule_version')
    )
    with op.batch_alter_table('point_rule_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_point_rule_version_rule_id'), ['rule_id'], unique=False)

    op.create_table('reward',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=True),
    sa.Column('per_volunteer_limit', sa.Integer(), nullable=True),
    sa.Column('active_from', sa.Date(), nullable=True),
    sa.Column('active_to', sa.Date(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('active_to IS NULL OR active_from IS NULL OR active_to >= active_from', name=op.f('ck_reward_active_range')),
    sa.CheckConstraint('per_volunteer_limit IS NULL OR per_volunteer_limit > 0', name=op.f('ck_reward_limit_positive')),
    sa.CheckConstraint('price > 0', name=op.f('ck_reward_price_positive')),
    sa.CheckConstraint('stock IS NULL OR stock >= 0', name=op.f('ck_reward_stock_not_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], name=op.f('fk_reward_merchant_id_merchant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward'))
    )
    with op.batch_alter_table('reward', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('role_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('org_unit_id', sa.Integer(), nullable=True),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("(role = 'merchant_staff' AND merchant_id IS NOT NULL) OR (role <> 'merchant_staff' AND merchant_id IS NULL AND org_unit_id IS NOT NULL)", name=op.f('ck_role_grant_scope_matches_role')),
    sa.CheckConstraint("role IN ('volunteer','grid_staff','community_admin','street_admin','merchant_staff')", name=op.f('ck_role_grant_role_known')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], name=op.f('fk_role_grant_merchant_id_merchant')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_role_grant_org_unit_id_org_unit')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_role_grant_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_grant')),
    sa.UniqueConstraint('user_id', 'role', 'org_unit_id', 'merchant_id', name='uq_role_grant_scope')
    )
    with op.batch_alter_table('role_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_grant_user_id'), ['user_id'], unique=False)

    op.create_table('activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('volunteer_id', sa.Integer(), nullable=False),
    sa.Column('org_unit_id', sa.Integer(), nullable=False),
    sa.Column('rule_version_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('activity_date', sa.Date(), nullable=False),
    sa.Column('hours', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('photo_path', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('points_requested', sa.Integer(), nullable=False),
    sa.Column('points_credited', sa.Integer(), nullable=False),
    sa.Column('cap_note', sa.String(length=255), nullable=True),
    sa.Column('reject_reason', sa.Text(), nullable=True),
    sa.Column('batch_key', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("source IN ('claim', 'recorded')", name=op.f('ck_activity_source_known')),
    sa.CheckConstraint("status <> 'rejected' OR reject_reason IS NOT NULL", name=op.f('ck_activity_rejection_has_reason')),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'reversed')", name=op.f('ck_activity_status_known')),
    sa.CheckConstraint('hours IS NULL OR hours > 0', name=op.f('ck_activity_hours_positive')),
    sa.CheckConstraint('points_credited >= 0', name=op.f('ck_activity_points_credited_not_negative')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_activity_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_activity_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_unit.id'], name=op.f('fk_activity_org_unit_id_org_unit')),
    sa.ForeignKeyConstraint(['rule_id'], ['point_rule.id'], name=op.f('fk_activity_rule_id_point_rule')),
    sa.ForeignKeyConstraint(['rule_version_id'], ['point_rule_version.id'], name=op.f('fk_activity_rule_version_id_point_rule_version')),
    sa.ForeignKeyConstraint(['volunteer_id'], ['user_account.id'], name=op.f('fk_activity_volunteer_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity')),
    sa.UniqueConstraint('volunteer_id', 'batch_key', name='uq_activity_volunteer_id_batch_key')
    )
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activity_org_unit_id'), ['org_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activity_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_activity_volunteer_id'), ['volunteer_id'], unique=False)
        batch_op.create_index('ix_activity_volunteer_id_rule_id_activity_date', ['volunteer_id', 'rule_id', 'activity_date'], unique=False)

    op.create_table('voucher',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('reward_id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('volunteer_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(), nullable=True),
    sa.Column('redeemed_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("(status = 'redeemed') = (redeemed_at IS NOT NULL)", name=op.f('ck_voucher_redeemed_has_time')),
    sa.CheckConstraint("status IN ('issued', 'redeemed', 'cancelled', 'expired')", name=op.f('ck_voucher_status_known')),
    sa.CheckConstraint('points > 0', name=op.f('ck_voucher_points_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_voucher_account_id_account')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], name=op.f('fk_voucher_merchant_id_merchant')),
    sa.ForeignKeyConstraint(['redeemed_by_id'], ['user_account.id'], name=op.f('fk_voucher_redeemed_by_id_user_account')),
    sa.ForeignKeyConstraint(['reward_id'], ['reward.id'], name=op.f('fk_voucher_reward_id_reward')),
    sa.ForeignKeyConstraint(['volunteer_id'], ['user_account.id'], name=op.f('fk_voucher_volunteer_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_voucher')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_voucher_code_hash')),
    sa.UniqueConstraint('nonce', name=op.f('uq_voucher_nonce')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_voucher_token_hash'))
    )
    with op.batch_alter_table('voucher', schema=None) as batch_op:
        batch_op.create_index('ix_voucher_merchant_id_redeemed_at', ['merchant_id', 'redeemed_at'], unique=False)
        batch_op.create_index('ix_voucher_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_voucher_volunteer_id_reward_id', ['volunteer_id', 'reward_id'], unique=False)

    op.create_table('transfer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('from_account_id', sa.Integer(), nullable=False),
    sa.Column('to_account_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=True),
    sa.Column('voucher_id', sa.Integer(), nullable=True),
    sa.Column('reverses_id', sa.Integer(), nullable=True),
    sa.Column('cause_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("(kind = 'reversal') = (reverses_id IS NOT NULL)", name=op.f('ck_transfer_reversal_links_original')),
    sa.CheckConstraint("kind IN ('credit', 'capture', 'reversal')", name=op.f('ck_transfer_kind_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_transfer_amount_positive')),
    sa.CheckConstraint('from_account_id <> to_account_id', name=op.f('ck_transfer_distinct_accounts')),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_transfer_activity_id_activity')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_transfer_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['from_account_id'], ['account.id'], name=op.f('fk_transfer_from_account_id_account')),
    sa.ForeignKeyConstraint(['reverses_id'], ['transfer.id'], name=op.f('fk_transfer_reverses_id_transfer')),
    sa.ForeignKeyConstraint(['to_account_id'], ['account.id'], name=op.f('fk_transfer_to_account_id_account')),
    sa.ForeignKeyConstraint(['voucher_id'], ['voucher.id'], name=op.f('fk_transfer_voucher_id_voucher')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer')),
    sa.UniqueConstraint('cause_key', name=op.f('uq_transfer_cause_key')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_transfer_reverses_id'))
    )
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_activity_id'), ['activity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_voucher_id'), ['voucher_id'], unique=False)

    op.create_table('entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transfer_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_entry_amount_not_zero')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_entry_account_id_account')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfer.id'], name=op.f('fk_entry_transfer_id_transfer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entry'))
    )
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.create_index('ix_entry_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_entry_transfer_id'), ['transfer_id'], unique=False)

    _create_append_only_triggers()


def downgrade():
    _drop_append_only_triggers()
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_transfer_id'))
        batch_op.drop_index('ix_entry_account_id_id')

    op.drop_table('entry')
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_voucher_id'))
        batch_op.drop_index(batch_op.f('ix_transfer_created_at'))
        batch_op.drop_index(batch_op.f('ix_transfer_activity_id'))

    op.drop_table('transfer')
    with op.batch_alter_table('voucher', schema=None) as batch_op:
        batch_op.drop_index('ix_voucher_volunteer_id_reward_id')
        batch_op.drop_index('ix_voucher_status_expires_at')
        batch_op.drop_index('ix_voucher_merchant_id_redeemed_at')

    op.drop_table('voucher')
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_volunteer_id_rule_id_activity_date')
        batch_op.drop_index(batch_op.f('ix_activity_volunteer_id'))
        batch_op.drop_index(batch_op.f('ix_activity_status'))
        batch_op.drop_index(batch_op.f('ix_activity_org_unit_id'))

    op.drop_table('activity')
    with op.batch_alter_table('role_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_grant_user_id'))

    op.drop_table('role_grant')
    with op.batch_alter_table('reward', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_merchant_id'))

    op.drop_table('reward')
    with op.batch_alter_table('point_rule_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_point_rule_version_rule_id'))

    op.drop_table('point_rule_version')
    op.drop_table('account')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_org_unit_id'))

    op.drop_table('user_account')
    with op.batch_alter_table('point_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_point_rule_org_unit_id'))

    op.drop_table('point_rule')
    with op.batch_alter_table('merchant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_org_unit_id'))

    op.drop_table('merchant')
    with op.batch_alter_table('org_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_org_unit_path'))
        batch_op.drop_index(batch_op.f('ix_org_unit_parent_id'))

    op.drop_table('org_unit')
    op.drop_table('org_level')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
