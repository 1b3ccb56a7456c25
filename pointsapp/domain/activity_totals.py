"""Each volunteer's approved activities summed per year (``VolunteerYear``), for their pages.

The volunteer's home page and ``/api/v1/me`` show lifetime hours and this year's points and
hours. Summed from the activities, that reads every activity of the volunteer's life, and grows
with it. Instead, every change of an activity into or out of ``approved`` adds to, or takes from,
its volunteer's row for the activity's year, in the same transaction:

- approval of a claim, or its credit after public notice (``claims._credit``);
- a recorded meeting, and a check-in event's close (``claims.record_attendance``,
  ``checkin.close_event``), hours-only attendance included;
- the reversal of an activity's credit (``claims.reverse_transfer``).

Lock order: the rows are written after the ledger's writes of the same transaction (accounts,
budgets, monthly totals), in (volunteer, year) order, and before reward stock and the audit
chain's head. Unlike the monthly totals, a row may be written without its volunteer's account
lock (a check-in's hours-only attendance moves no points): two such writers wait on the row
itself, and neither takes a ledger lock after it, so no cycle can form. ``check_year_totals`` (part of ``ledger.check_ledger``) recomputes every row from
the activities; ``rebuild_year_totals`` writes them again.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from sqlalchemy import Integer, bindparam, case, cast, extract, func, select, text

from ..database import add_to_rows
from ..extensions import db
from ..models import Activity, VolunteerYear
from ..models.rules import STATUS_APPROVED

year_t = VolunteerYear.__table__
ROWS_PER_STATEMENT = 1000


def centi(hours: Decimal | None) -> int:
    """An activity's hours in hundredths, rounded as the column (two decimals) and the SQL
    ``ROUND(hours * 100)`` of the rebuild and the check round them."""
    return int((hours or Decimal(0)).quantize(Decimal("0.01"), ROUND_HALF_UP) * 100)


def add(acts: list[Activity], sign: int = 1) -> None:
    """Add approved activities to their volunteers' yearly totals (``sign=-1``: take them away,
    when they leave ``approved``), creating the rows a year's first activity needs: one upsert
    for up to ``ROWS_PER_STATEMENT`` rows, in key order."""
    sums: dict[tuple[int, int], list[int]] = {}
    for act in acts:
        row = sums.setdefault((act.volunteer_id, act.activity_date.year), [0, 0, 0])
        row[0] += sign * act.points_credited
        row[1] += sign * centi(act.hours)
        row[2] += sign
    rows = [
        {"volunteer_id": v, "year": y, "points": p, "centi_hours": h, "activities": n}
        for (v, y), (p, h, n) in sorted(sums.items())
    ]
    add_to_rows(year_t, rows, key=["volunteer_id", "year"], per_statement=ROWS_PER_STATEMENT)


@dataclass
class YearTotals:
    centi_hours: int  # lifetime
    year_points: int
    year_centi_hours: int


def totals_of(volunteer_id: int, year: int) -> YearTotals:
    """The volunteer's lifetime hours and one year's points and hours, from their yearly rows."""
    hours, points, year_hours = db.session.execute(_totals_query(), {"volunteer_id": volunteer_id, "year": year}).one()
    return YearTotals(int(hours), int(points), int(year_hours))


@lru_cache(maxsize=None)
def _totals_query():
    """Built once: the volunteer's pages run it on every request."""
    this = year_t.c.year == bindparam("year", type_=year_t.c.year.type)
    return select(
        func.coalesce(func.sum(year_t.c.centi_hours), 0),
        func.coalesce(func.sum(case((this, year_t.c.points), else_=0)), 0),
        func.coalesce(func.sum(case((this, year_t.c.centi_hours), else_=0)), 0),
    ).where(year_t.c.volunteer_id == bindparam("volunteer_id"))


def _from_activities():
    """SQL: the approved activities summed per volunteer and year, as the rows should hold them."""
    year = cast(extract("year", Activity.activity_date), Integer)
    return (
        select(
            Activity.volunteer_id, year.label("year"),
            func.coalesce(func.sum(Activity.points_credited), 0),
            func.coalesce(func.sum(cast(func.round(func.coalesce(Activity.hours, 0) * 100), Integer)), 0),
            func.count(),
        )
        .where(Activity.status == STATUS_APPROVED)
        .group_by(Activity.volunteer_id, year)
    )


def rebuild_year_totals() -> int:
    """Compute every volunteer's yearly totals again from the activities; return the rows written.

    For activities written without them (data loaded in bulk, or by processes of a version before
    the totals while the migration ran). On PostgreSQL the table is locked first (EXCLUSIVE: reads
    go on, upserts wait), so that an approval committed before the lock is counted by the
    statement after it, and one still open adds itself after this transaction commits."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("LOCK TABLE volunteer_year IN EXCLUSIVE MODE"))
    db.session.execute(year_t.delete())
    db.session.execute(
        year_t.insert().from_select(["volunteer_id", "year", "points", "centi_hours", "activities"], _from_activities())
    )
    return db.session.scalar(select(func.count()).select_from(year_t))


def check_year_totals() -> list[str]:
    """One line per volunteer and year whose row differs from their approved activities."""
    expected = {(v, int(y)): (int(p), int(h), int(n)) for v, y, p, h, n in db.session.execute(_from_activities())}
    found = {
        (v, y): (p, h, n)
        for v, y, p, h, n in db.session.execute(
            select(year_t.c.volunteer_id, year_t.c.year, year_t.c.points, year_t.c.centi_hours, year_t.c.activities)
        )
        if (p, h, n) != (0, 0, 0)  # every activity of the year reversed
    }
    return [
        f"volunteer {v}: {y} totals (points, hundredths of hours, activities) {found.get((v, y))} "
        f"but the approved activities give {expected.get((v, y))}"
        for v, y in sorted(set(expected) | set(found))
        if expected.get((v, y)) != found.get((v, y))
    ]
