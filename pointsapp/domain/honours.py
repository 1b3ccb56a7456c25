"""Honour rolls (评先评优) and what a volunteer has earned for good.

Lifetime figures are never reduced by spending or expiry: lifetime points are the account's
``earned`` (credits less reversed credits), lifetime hours the hours of approved activities,
hours-only ones included. The spendable balance lives beside them in the ledger.

A roll ranks the volunteers of a grid, community or street by points earned in a month or a year,
and again by hours: approved activities recorded in the subtree (``Activity.org_unit_id``, where
the work was recorded), counted by ``activity_date``, less the volunteer's deductions made in the
period (ledger transfers of kind ``deduction`` from their account, by the street-local day of
``created_at``). Each roll is one aggregate query ranked in SQL with ``RANK()`` (ties share a
place: 1, 1, 3), so no query runs per volunteer.

Privacy first: a person who chose ``initials`` is shown as 王** to every viewer (admins, the
notice board, the CSV) except themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import Integer, and_, bindparam, case, cast, exists, func, literal, or_, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import Account, Activity, Entry, OrgLevel, OrgUnit, Transfer, User
from ..models.ledger import ACCOUNT_VOLUNTEER, TRANSFER_DEDUCTION
from ..models.rules import STATUS_APPROVED
from ..models.user import HONOUR_DISPLAYS, ROLE_VOLUNTEER, STAFF_ROLES, initials_name
from . import activity_totals, ledger
from .access import ancestor_paths, in_scope, subtree_filter
from .clock import FIRST_YEAR, LAST_YEAR, add_months, local_today, utc_start_of
from .errors import Forbidden, InvalidInput, NotFound

_reversal = aliased(Transfer)


def _not_reversed():
    """A deduction an admin reversed gives its points back, so it no longer counts."""
    return ~exists().where(_reversal.reverses_id == Transfer.id)


DEFAULT_TOP, MAX_TOP = 20, 100
# Places are cut at ``top``; everyone tied at the last place stays, up to this many rows.
MAX_ROWS = 2 * MAX_TOP
ROLL_LEVELS = 2  # street (0), community (1), grid (2)
ROLL_ROLES = (ROLE_VOLUNTEER,) + STAFF_ROLES


@dataclass(frozen=True)
class Period:
    start: date  # first day
    end: date  # first day after
    label: str  # "2026" or "2026-09"

    @property
    def is_year(self) -> bool:
        return len(self.label) == 4


def year_period(year: int) -> Period:
    return Period(date(year, 1, 1), date(year + 1, 1, 1), f"{year:04d}")


def month_period(first: date) -> Period:
    return Period(first, add_months(first), first.strftime("%Y-%m"))


def parse_period(text: str | None, today: date | None = None) -> Period:
    """Return the year (``2026``) or month (``2026-09``) written; empty means this year."""
    text = (text or "").strip()
    if not text.isascii():
        text = "?"  # other digits (２０２６) are not a period
    if not text:
        return year_period((today or local_today()).year)
    try:
        if len(text) == 4 and text.isdigit():
            period = year_period(int(text))
        elif len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit():
            period = month_period(date(int(text[:4]), int(text[5:]), 1))
        else:
            period = None
    except ValueError:
        period = None
    if period is None or not FIRST_YEAR <= period.start.year <= LAST_YEAR:
        raise InvalidInput(
            "Write the period as a year (2026) or a month (2026-09), between 2000 and 2100.", field="period"
        )
    return period


def parse_top(value) -> int:
    """Return how many places to show (1 to 100); empty means 20."""
    if value in (None, ""):
        return DEFAULT_TOP
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_TOP:
        raise InvalidInput("Show between 1 and %(n)s places.", field="top", n=MAX_TOP)
    return int(text)


def period_choices(today: date | None = None) -> list[Period]:
    """This year, last year, then this month and the eleven before it."""
    today = today or local_today()
    months, m = [], today.replace(day=1)
    for _ in range(12):
        months.append(month_period(m))
        m = add_months(m, -1)
    return [year_period(today.year), year_period(today.year - 1), *months]


# -- who sees which roll -------------------------------------------------------------------------

def _units_at_roll_levels():
    return select(OrgUnit).join(OrgLevel, OrgLevel.id == OrgUnit.level_id).where(OrgLevel.rank <= ROLL_LEVELS)


def _own_paths(viewer) -> list[str]:
    """The paths of the street, community and grid above a volunteer's node (their own rolls)."""
    if not viewer.has_role(ROLE_VOLUNTEER) or viewer.org_unit is None:
        return []
    return ancestor_paths(viewer.org_unit)


def roll_units(viewer) -> list[OrgUnit]:
    """Return the grids, communities and streets whose rolls ``viewer`` may see, in tree order.

    A volunteer sees the rolls above their own node; staff and admins those in their subtrees.
    """
    conditions = [subtree_filter(OrgUnit.path, viewer, STAFF_ROLES)]
    own = _own_paths(viewer)
    if own:
        conditions.append(OrgUnit.path.in_(own))
    units = db.session.scalars(_units_at_roll_levels().where(or_(*conditions))).all()
    return sorted(units, key=lambda u: [int(p) for p in u.path.strip("/").split("/")])


def may_see(viewer, unit: OrgUnit | None) -> bool:
    if unit is None or unit.level.rank > ROLL_LEVELS:
        return False
    return in_scope(viewer, unit, STAFF_ROLES) or unit.path in _own_paths(viewer)


def roll_unit(viewer, unit_id: int | None) -> OrgUnit:
    """Return the node whose roll to show: ``unit_id``, or the viewer's own grid (staff: their node).

    Raise ``NotFound`` for a node the viewer may not see (its existence is not revealed).
    """
    if unit_id is None:
        units = roll_units(viewer)
        if not units:
            raise NotFound()
        grants = [g.org_unit for g in viewer.grants(*STAFF_ROLES) if g.org_unit is not None]
        own = [u for u in units if u.path in _own_paths(viewer)]
        return grants[0] if grants and may_see(viewer, grants[0]) else (own[-1] if own else units[0])
    unit = db.session.get(OrgUnit, unit_id)
    if not may_see(viewer, unit):
        raise NotFound()
    return unit


# -- the roll ------------------------------------------------------------------------------------

@dataclass
class Place:
    place: int
    volunteer_id: int
    name: str
    points: int
    hours: Decimal
    is_me: bool
    initials_only: bool


@dataclass
class Roll:
    unit: OrgUnit
    period: Period
    top: int
    by_points: list[Place]
    by_hours: list[Place]


def _earned_in(path: str, period: Period):
    """CTE: per volunteer, points credited and hundredths of hours of approved activities."""
    return (
        select(
            Activity.volunteer_id.label("vid"),
            func.sum(Activity.points_credited).label("points"),
            func.coalesce(func.sum(cast(func.round(Activity.hours * 100), Integer)), 0).label("centihours"),
        )
        .where(
            # The subtree's nodes first, then their activities by (org_unit_id, activity_date).
            Activity.org_unit_id.in_(select(OrgUnit.id).where(OrgUnit.path.startswith(path, autoescape=True))),
            Activity.status == STATUS_APPROVED,
            Activity.activity_date >= period.start,
            Activity.activity_date < period.end,
        )
        .group_by(Activity.volunteer_id)
        .cte("honour_earned")
    )


def _deducted(period: Period, volunteers):
    """Subquery: per volunteer, points deducted from their account in the period."""
    return (
        select(Account.user_id.label("vid"), func.sum(-Entry.amount).label("deducted"))
        .select_from(Entry)
        .join(Account, Account.id == Entry.account_id)
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .where(
            Account.user_id.in_(volunteers),
            Entry.amount < 0,
            Transfer.kind == TRANSFER_DEDUCTION,
            _not_reversed(),
            Transfer.created_at >= utc_start_of(period.start),
            Transfer.created_at < utc_start_of(period.end),
        )
        .group_by(Account.user_id)
        .subquery("honour_deducted")
    )


def _board(viewer, unit: OrgUnit, period: Period, top: int, by: str, public: bool) -> list[Place]:
    earned = _earned_in(unit.path, period)
    deducted = _deducted(period, select(earned.c.vid))
    net = earned.c.points - func.coalesce(deducted.c.deducted, 0)
    score = net if by == "points" else earned.c.centihours
    ranked = (
        select(
            earned.c.vid, net.label("points"), earned.c.centihours,
            func.rank().over(order_by=score.desc()).label("place"),
        )
        .select_from(earned.outerjoin(deducted, deducted.c.vid == earned.c.vid))
        .where(score > 0)
        .subquery("honour_ranked")
    )
    rows = db.session.execute(
        select(ranked.c.place, ranked.c.vid, ranked.c.points, ranked.c.centihours, User.full_name, User.honour_display)
        .join(User, User.id == ranked.c.vid)
        .where(ranked.c.place <= top)
        .order_by(ranked.c.place, ranked.c.vid)
        .limit(MAX_ROWS)
    ).all()
    places = []
    for place, vid, points, centi, full_name, display in rows:
        me = vid == viewer.id and not public
        hidden = display == "initials"
        places.append(Place(
            place=int(place), volunteer_id=vid,
            name=full_name if me or not hidden else initials_name(full_name),
            points=max(int(points), 0), hours=Decimal(int(centi)) / 100, is_me=me, initials_only=hidden,
        ))
    return places


def roll(viewer, unit: OrgUnit, period: Period, top: int = DEFAULT_TOP, public: bool = False) -> Roll:
    """Return the roll of ``unit`` for ``period``: the top places by points and by hours.

    ``public`` (the notice board, downloads): every name as its owner chose, the viewer's too.
    """
    if not may_see(viewer, unit):
        raise NotFound()
    if not 1 <= top <= MAX_TOP:
        raise InvalidInput("Show between 1 and %(n)s places.", field="top", n=MAX_TOP)
    return Roll(
        unit=unit, period=period, top=top,
        by_points=_board(viewer, unit, period, top, "points", public),
        by_hours=_board(viewer, unit, period, top, "hours", public),
    )


def roll_table(r: Roll) -> tuple[list[str], list[list]]:
    """Return the roll as one table (both rankings), for CSV and XLSX."""
    from flask_babel import gettext as _
    from flask_babel import pgettext

    headers = [_("Ranking"), pgettext("honour roll", "Place"), pgettext("person", "Name"), _("Points"), _("Hours")]
    rows = [[_("By points"), p.place, p.name, p.points, float(p.hours)] for p in r.by_points]
    rows += [[_("By hours"), p.place, p.name, p.points, float(p.hours)] for p in r.by_hours]
    return headers, rows


# -- a volunteer's own figures and choice ----------------------------------------------------------

@dataclass
class Totals:
    earned: int  # lifetime, never reduced by spending or expiry
    hours: Decimal  # lifetime
    year: int
    year_earned: int
    year_hours: Decimal


def volunteer_totals(volunteer, today: date | None = None) -> Totals:
    """Return the volunteer's lifetime points and hours and this year's.

    The sums come from the volunteer's yearly rows (``activity_totals``), the account's ``earned``
    and the deductions index (``volunteer_figures``)."""
    return volunteer_figures(volunteer.id, today).totals


@dataclass(frozen=True)
class Figures:
    """What the volunteer's home page and balance show: their account's id (None before their
    first credit), balance, points expiring soon and totals."""
    account_id: int | None
    balance: "ledger.Balance"
    expiring: "ledger.Expiring"
    totals: Totals


def volunteer_figures(user_id: int, today: date | None = None) -> Figures:
    """Return the volunteer's balance, what expires within ``ledger.EXPIRING_DAYS`` and their
    totals, as ``ledger.balance_of``, ``ledger.expiring_soon`` and ``volunteer_totals`` give
    them, read in one statement (every volunteer's home page runs it)."""
    today = today or local_today()
    year = year_period(today.year)
    row = db.session.execute(_figures_query(), {
        "user_id": user_id, "year": year.start.year, "horizon": today + timedelta(days=ledger.EXPIRING_DAYS),
        "since": utc_start_of(year.start), "until": utc_start_of(year.end),
    }).one()
    account_id, balance, held, earned, expiring, first, deducted, centi_hours, year_points, year_centi_hours = row
    if account_id is None:
        balance = held = earned = deducted = 0
    soon = int(expiring)
    return Figures(
        account_id=account_id,
        balance=ledger.Balance(balance, held, earned),
        expiring=ledger.Expiring(soon, first if soon else None),
        totals=Totals(
            earned=int(earned), hours=Decimal(int(centi_hours)) / 100, year=year.start.year,
            year_earned=max(int(year_points) - int(deducted), 0), year_hours=Decimal(int(year_centi_hours)) / 100,
        ),
    )


@lru_cache(maxsize=None)
def _figures_query():
    """Built once. One row whether or not the volunteer has an account yet: the account is
    outer-joined to a one-row selection, and each figure is a subquery of its own index (the
    account's lots, its deductions, the volunteer's yearly rows), as the functions it stands for
    read them."""
    account_t, lot_t = Account.__table__, ledger.lot_t
    year_t = activity_totals.year_t
    this_year = year_t.c.year == bindparam("year", type_=year_t.c.year.type)
    one = select(literal(1).label("one")).subquery("one")

    def expiring(what):  # what no open voucher reserves
        return select(what).where(
            lot_t.c.account_id == account_t.c.id, lot_t.c.remaining > lot_t.c.reserved,
            lot_t.c.expires_on < bindparam("horizon", type_=lot_t.c.expires_on.type),
        ).scalar_subquery()

    def yearly(what):
        volunteer = year_t.c.volunteer_id == bindparam("user_id")
        return select(func.coalesce(func.sum(what), 0)).where(volunteer).scalar_subquery()

    deducted = _deducted_in_period().where(Transfer.from_account_id == account_t.c.id)
    return select(
        account_t.c.id, account_t.c.balance, account_t.c.held, account_t.c.earned,
        expiring(func.coalesce(func.sum(lot_t.c.remaining - lot_t.c.reserved), 0)),
        expiring(func.min(lot_t.c.expires_on)),
        deducted.scalar_subquery(),
        yearly(year_t.c.centi_hours),
        yearly(case((this_year, year_t.c.points), else_=0)),
        yearly(case((this_year, year_t.c.centi_hours), else_=0)),
    ).select_from(
        one.outerjoin(account_t, and_(account_t.c.user_id == bindparam("user_id"),
                                      account_t.c.kind == ACCOUNT_VOLUNTEER))
    )


def _deducted_in_period():
    """The deductions of a period (``since``, ``until``), of whichever account the caller names."""
    at = Transfer.created_at
    return select(func.coalesce(func.sum(Transfer.amount), 0)).where(
        Transfer.kind == TRANSFER_DEDUCTION,
        _not_reversed(),
        at >= bindparam("since", type_=at.type),
        at < bindparam("until", type_=at.type),
    )


def set_honour_display(volunteer: User, choice: str) -> User:
    """Set how honour rolls show the volunteer to others: ``name`` or ``initials`` (王**)."""
    if not volunteer.has_role(ROLE_VOLUNTEER):
        raise Forbidden()
    if choice not in HONOUR_DISPLAYS:
        raise InvalidInput("Choose how the honour roll shows you: full name or surname only.", field="honour_display")
    user = volunteer if isinstance(volunteer, User) else volunteer.user  # a token's actor: its owner
    user.honour_display = choice
    db.session.flush()
    return user
