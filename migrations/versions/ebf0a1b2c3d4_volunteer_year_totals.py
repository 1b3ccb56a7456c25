"""each volunteer's approved activities summed per year, for the totals on their pages

Revision ID: ebf0a1b2c3d4
Revises: eaf0a1b2c3d4
Create Date: 2026-11-23 04:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "ebf0a1b2c3d4"
down_revision = "eaf0a1b2c3d4"
branch_labels = None
depends_on = None

def upgrade():
    op.create_table(
        "volunteer_year",
        sa.Column("volunteer_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("centi_hours", sa.BigInteger(), nullable=False),
        sa.Column("activities", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["volunteer_id"], ["user_account.id"], name=op.f("fk_volunteer_year_volunteer_id_user_account")),
        sa.PrimaryKeyConstraint("volunteer_id", "year", name=op.f("pk_volunteer_year")),
    )
    # Fill it from the activities already approved, in one statement.
    year = "CAST(EXTRACT(YEAR FROM activity_date) AS INTEGER)"
    if op.get_bind().dialect.name == "sqlite":
        year = "CAST(STRFTIME('%Y', activity_date) AS INTEGER)"
    op.execute(
        f"""
        INSERT INTO volunteer_year (volunteer_id, year, points, centi_hours, activities)
        SELECT volunteer_id, {year}, SUM(points_credited),
               SUM(CAST(ROUND(COALESCE(hours, 0) * 100) AS INTEGER)), COUNT(*)
        FROM activity WHERE status = 'approved'
        GROUP BY volunteer_id, {year}
        """
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE volunteer_year")
    # ix_activity_volunteer_totals stays: the volunteer's yearly statement reads a year of their
    # activities by it.


def downgrade():
    op.drop_table("volunteer_year")
