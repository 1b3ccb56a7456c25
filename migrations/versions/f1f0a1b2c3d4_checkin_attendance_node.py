"""check-in attendance node: each attendance row keeps the node its volunteer belonged to when they
signed in (or were added by staff), where closing the event records it; existing rows are given
their activity's node, else their volunteer's current node (else the event's)

Revision ID: f1f0a1b2c3d4
Revises: f0f0a1b2c3d4
Create Date: 2026-12-08 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "f1f0a1b2c3d4"
down_revision = "f0f0a1b2c3d4"
branch_labels = None
depends_on = None

FK_NAME = "fk_checkin_attendance_org_unit_id_org_unit"

# An attendance already closed was recorded at its activity's node; one still open at its
# volunteer's node (the best known: where they are now); the event's node (which every attendee
# was at or under when they signed in) only if neither is known, so that no row is left empty.
BACKFILL = (
    "UPDATE checkin_attendance SET org_unit_id = COALESCE("
    "(SELECT a.org_unit_id FROM activity a WHERE a.id = checkin_attendance.activity_id), "
    "(SELECT u.org_unit_id FROM user_account u WHERE u.id = checkin_attendance.volunteer_id), "
    "(SELECT e.org_unit_id FROM checkin_event e WHERE e.id = checkin_attendance.event_id))"
)


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    if _is_pg():
        op.add_column("checkin_attendance", sa.Column("org_unit_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f(FK_NAME), "checkin_attendance", "org_unit", ["org_unit_id"], ["id"])
        op.execute(BACKFILL)
        op.alter_column("checkin_attendance", "org_unit_id", existing_type=sa.Integer(), nullable=False)
        return
    # SQLite adds the nullable column in place; making it NOT NULL, with its (named) foreign key,
    # rebuilds the table once (nothing refers to checkin_attendance, and it has no triggers to lose).
    op.execute("ALTER TABLE checkin_attendance ADD COLUMN org_unit_id INTEGER")
    op.execute(BACKFILL)
    with op.batch_alter_table("checkin_attendance", recreate="always", reflect_kwargs={"resolve_fks": False}) as batch:
        batch.alter_column("org_unit_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(op.f(FK_NAME), "org_unit", ["org_unit_id"], ["id"])


def downgrade():
    if _is_pg():
        op.drop_constraint(op.f(FK_NAME), "checkin_attendance", type_="foreignkey")
        op.drop_column("checkin_attendance", "org_unit_id")
        return
    # SQLite cannot drop a column of a foreign key in place: the table is rebuilt without it.
    with op.batch_alter_table("checkin_attendance", recreate="always", reflect_kwargs={"resolve_fks": False}) as batch:
        batch.drop_column("org_unit_id")
