"""Reports for admins over a subtree and a range of months.

Every figure is an aggregate query (``GROUP BY`` in the database), scoped by the materialised
path of the chosen node. Each report is a ``ReportTable``: the page draws its chart from exactly
these rows, shows them as a table beside the chart, and offers them as XLSX and CSV.

Months are the street's months. Points issued and redeemed are read from the volunteers'
monthly totals, which the ledger keeps by street-local month as it writes (``AccountMonth``);
the other reports count activities by their date, or claims by the range's first and last
moments where the street is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, case, cast, distinct, func, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import (
    Account,
    AccountMonth,
    Activity,
    Merchant,
    OrgLevel,
    OrgUnit,
    PointRuleVersion,
    Reward,
    User,
    Voucher,
)
from ..models.ledger import ACCOUNT_MERCHANT, TRANSFER_CAPTURE, TRANSFER_CREDIT, TRANSFER_REVERSAL
from ..models.rewards import VOUCHER_REDEEMED
from ..models.rules import CATEGORIES, STATUS_APPROVED, STATUS_PENDING, STATUS_REJECTED
from ..models.user import ADMIN_ROLES
from .access import require_in_scope
from .clock import add_months, utc_start_of
from .errors import InvalidInput
from .vouchers import redemption_reversed

LOW_STOCK = 5
MAX_MONTHS = 36


@dataclass
class ReportTable:
    key: str
    title: str
    headers: list[str]
    rows: list[list]
    chart: str | None = None  # "bar" or "line": first column labels, the other columns series
    series: list[int] = field(default_factory=list)  # which columns are drawn

    def chart_data(self) -> dict:
        """Return the chart's data: labels and one dataset per drawn column."""
        return {
            "type": self.chart,
            "labels": [str(r[0]) for r in self.rows],
            "datasets": [{"label": self.headers[i], "data": [r[i] for r in self.rows]} for i in self.series],
        }


@dataclass
class Range:
    unit: OrgUnit
    start: date  # first day of the first month
    end: date  # first day after the last month

    @property
    def months(self) -> list[str]:
        out, m = [], self.start
        while m < self.end:
            out.append(m.strftime("%Y-%m"))
            m = add_months(m)
        return out


def make_range(actor, unit: OrgUnit, first: date, last: date) -> Range:
    """Check the admin may report on ``unit`` and the months make sense; return the range."""
    require_in_scope(actor, unit, ADMIN_ROLES)
    start, end = first.replace(day=1), add_months(last.replace(day=1))
    if end <= start:
        raise InvalidInput("The last month comes before the first.", field="last")
    if len(Range(unit, start, end).months) > MAX_MONTHS:
        raise InvalidInput("Choose at most %(n)s months.", field="last", n=MAX_MONTHS)
    return Range(unit, start, end)


# -- SQL helpers --------------------------------------------------------------------------------

def _dialect() -> str:
    return db.session.get_bind().dialect.name


def month_of_date(col):
    """SQL: the ``YYYY-MM`` of a date column."""
    if _dialect() == "postgresql":
        return func.to_char(col, "YYYY-MM")
    return func.strftime("%Y-%m", col)


def hours_between(later, earlier):
    if _dialect() == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _in_subtree(path_col, r: Range):
    return path_col.startswith(r.unit.path, autoescape=True)


def _community_join(node):
    community = aliased(OrgUnit)
    rank1 = select(OrgLevel.id).where(OrgLevel.rank == 1).scalar_subquery()
    return community, (community.level_id == rank1) & node.path.startswith(community.path)


# -- the reports --------------------------------------------------------------------------------

def _points_by_month_and_community(r: Range) -> list[tuple]:
    """The volunteers' monthly totals (``AccountMonth``, kept with the ledger) in the subtree and
    range, summed per month and community: (month, community name or None, issued, redeemed,
    corrections). Both the monthly and the per-community report are sums of these rows, so the
    page reads them once: one row per active volunteer, month and kind, not every transfer."""
    community, joined = _community_join(OrgUnit)
    total = AccountMonth

    def kind_sum(kind: str, sign: int = 1):
        return func.coalesce(func.sum(case((total.kind == kind, total.amount * sign), else_=0)), 0)

    rows = db.session.execute(
        select(total.month, community.name, kind_sum(TRANSFER_CREDIT), kind_sum(TRANSFER_CAPTURE, -1),
               kind_sum(TRANSFER_REVERSAL))
        .join(Account, Account.id == total.account_id)
        .join(User, User.id == Account.user_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .outerjoin(community, joined)
        .where(
            _in_subtree(OrgUnit.path, r),
            total.month >= r.start,
            total.month < r.end,
            total.kind.in_((TRANSFER_CREDIT, TRANSFER_CAPTURE, TRANSFER_REVERSAL)),
        )
        .group_by(total.month, community.name)
    ).all()
    return [(m.strftime("%Y-%m"), name, issued, redeemed, corrections) for m, name, issued, redeemed, corrections in rows]


def points_by_month(r: Range, legs: list[tuple] | None = None) -> ReportTable:
    found: dict[str, list[int]] = {}
    for m, _community, issued, redeemed, corrections in legs if legs is not None else _points_by_month_and_community(r):
        sums = found.setdefault(m, [0, 0, 0])
        sums[0] += int(issued)
        sums[1] += int(redeemed)
        sums[2] += int(corrections)
    rows = [[m, *found.get(m, (0, 0, 0))] for m in r.months]
    return ReportTable(
        "points_by_month", str(_l("Points issued and redeemed per month")),
        [str(_l("Month")), str(_l("Points issued")), str(_l("Points redeemed")),
         # Reversals of credits take points back, of redemptions give them back: one net figure.
         str(_l("Corrections, net (+ returned to volunteers, − taken back)"))],
        rows, chart="bar", series=[1, 2],
    )


def points_by_community(r: Range, legs: list[tuple] | None = None) -> ReportTable:
    found: dict[str | None, list[int]] = {}
    for _month, name, issued, redeemed, _corrections in legs if legs is not None else _points_by_month_and_community(r):
        sums = found.setdefault(name, [0, 0])
        sums[0] += int(issued)
        sums[1] += int(redeemed)
    # By name, the street level (volunteers above any community) last, on both databases.
    names = sorted(found, key=lambda n: (n is None, n or ""))
    return ReportTable(
        "points_by_community", str(_l("Points issued and redeemed per community")),
        [str(_l("Community")), str(_l("Points issued")), str(_l("Points redeemed"))],
        [[name or str(_l("Street level")), *found[name]] for name in names],
        chart="bar", series=[1, 2],
    )


def _approved_activities(r: Range, *columns):
    return (
        select(*columns)
        .select_from(Activity)
        .join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
        .where(
            _in_subtree(OrgUnit.path, r),
            Activity.status == STATUS_APPROVED,
            Activity.activity_date >= r.start,
            Activity.activity_date < r.end,
        )
    )


def _activities_by_version(r: Range) -> list[tuple]:
    """The approved activities in the subtree and range, counted and summed per rule version:
    (rule id, version id, category, Chinese name, English name, activities, points). The category
    and the top-activities reports are both sums of these rows, so the page reads the activities
    once."""
    v = PointRuleVersion
    return db.session.execute(
        _approved_activities(r, v.rule_id, v.id, v.category, v.name_zh, v.name_en, func.count(Activity.id),
                             func.coalesce(func.sum(Activity.points_credited), 0))
        .join(v, v.id == Activity.rule_version_id)
        .group_by(v.id, v.rule_id, v.category, v.name_zh, v.name_en)
    ).all()


def points_by_category(r: Range, zh: bool, versions: list[tuple] | None = None) -> ReportTable:
    found: dict[str, list[int]] = {}
    for _rule, _version, category, _zh, _en, n, points in versions if versions is not None else _activities_by_version(r):
        sums = found.setdefault(category, [0, 0])
        sums[0] += int(n)
        sums[1] += int(points)
    name = lambda c: CATEGORIES.get(c, (c, c))[0 if zh else 1]  # noqa: E731
    return ReportTable(
        "points_by_category", str(_l("Points credited per activity category")),
        [str(_l("Category")), str(_l("Activities")), str(_l("Points"))],
        [[name(c), n, p] for c, (n, p) in sorted(found.items(), key=lambda kv: (-kv[1][1], kv[0]))],
        chart="bar", series=[2],
    )


def active_volunteers(r: Range) -> ReportTable:
    # Grouped by the month's first day (a date) and named in Python: grouping by its text sorted
    # every activity of the range by a collated string.
    if _dialect() == "postgresql":
        month = cast(func.date_trunc("month", Activity.activity_date), Date)  # a date: no time zone
    else:
        month = func.strftime("%Y-%m", Activity.activity_date)
    found = {
        m if isinstance(m, str) else m.strftime("%Y-%m"): n
        for m, n in db.session.execute(
            _approved_activities(r, month, func.count(distinct(Activity.volunteer_id))).group_by(month)
        )
    }
    return ReportTable(
        "active_volunteers", str(_l("Active volunteers per month")),
        [str(_l("Month")), str(_l("Volunteers with credited activities"))],
        [[m, int(found.get(m, 0))] for m in r.months],
        chart="line", series=[1],
    )


def top_activities(r: Range, zh: bool, versions: list[tuple] | None = None) -> ReportTable:
    # rule id: [newest version id seen, its name, activities, points]: a renamed rule is shown by
    # the name of its newest version among the range's activities.
    found: dict[int, list] = {}
    for rule, version, _category, name_zh, name_en, n, points in (
            versions if versions is not None else _activities_by_version(r)):
        row = found.setdefault(rule, [0, "", 0, 0])
        if version > row[0]:
            row[0], row[1] = version, name_zh if zh else name_en
        row[2] += int(n)
        row[3] += int(points)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1][2], -kv[1][3], kv[0]))[:10]
    return ReportTable(
        "top_activities", str(_l("Top activities")),
        [str(_l("Activity")), str(_l("Activities")), str(_l("Points"))],
        [row[1:] for _rule, row in ranked],
        chart="bar", series=[1],
    )


def claims(r: Range) -> ReportTable:
    pending = db.session.scalar(
        select(func.count(Activity.id)).join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
        .where(_in_subtree(OrgUnit.path, r), Activity.status == STATUS_PENDING)
    )
    decided, avg_hours, max_hours = db.session.execute(
        select(
            func.count(Activity.id),
            func.avg(hours_between(Activity.decided_at, Activity.created_at)),
            func.max(hours_between(Activity.decided_at, Activity.created_at)),
        )
        .join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
        .where(
            _in_subtree(OrgUnit.path, r),
            Activity.source == "claim",
            Activity.status.in_((STATUS_APPROVED, STATUS_REJECTED, "reversed", "on_notice", "withheld")),
            Activity.decided_at >= utc_start_of(r.start),
            Activity.decided_at < utc_start_of(r.end),
        )
    ).one()
    return ReportTable(
        "claims", str(_l("Claims pending and approval times")),
        [str(_l("Claims pending now")), str(_l("Claims decided")), str(_l("Average hours to a decision")),
         str(_l("Longest wait in hours"))],
        [[int(pending), int(decided), round(float(avg_hours or 0), 1), round(float(max_hours or 0), 1)]],
    )


def rewards_redeemed(r: Range) -> ReportTable:
    rows = db.session.execute(
        select(Reward.name, Merchant.name, func.count(Voucher.id), func.sum(Voucher.points))
        .select_from(Voucher)
        .join(Reward, Reward.id == Voucher.reward_id)
        .join(Merchant, Merchant.id == Voucher.merchant_id)
        .join(User, User.id == Voucher.volunteer_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(
            _in_subtree(OrgUnit.path, r),
            Voucher.status == VOUCHER_REDEEMED,
            Voucher.redeemed_at >= utc_start_of(r.start),
            Voucher.redeemed_at < utc_start_of(r.end),
            # Reversed within the range: left out, as the range's points redeemed net it. Reversed
            # after it: still redeemed in it (a closed month's report does not change; the
            # reversal counts in its own month's corrections).
            ~redemption_reversed(before=utc_start_of(r.end)),
        )
        .group_by(Reward.id, Reward.name, Merchant.name)
        .order_by(func.count(Voucher.id).desc(), Reward.name)
    ).all()
    return ReportTable(
        "rewards_redeemed", str(_l("Rewards redeemed")),
        [str(_l("Reward")), str(_l("Merchant")), str(_l("Redeemed")), str(_l("Points"))],
        [[rw, m, int(n), int(p or 0)] for rw, m, n, p in rows],
        chart="bar", series=[2],
    )


def low_stock(r: Range) -> ReportTable:
    merchant_unit = aliased(OrgUnit)
    rows = db.session.execute(
        select(Reward.name, Merchant.name, Reward.stock)
        .join(Merchant, Merchant.id == Reward.merchant_id)
        .join(merchant_unit, merchant_unit.id == Merchant.org_unit_id)
        .where(
            _in_subtree(merchant_unit.path, r),
            Reward.is_active.is_(True),
            Reward.stock.is_not(None),
            Reward.stock <= LOW_STOCK,
        )
        .order_by(Reward.stock, Reward.name)
    ).all()
    return ReportTable(
        "low_stock", str(_l("Stock running low (%(n)s or fewer left)", n=LOW_STOCK)),
        [str(_l("Reward")), str(_l("Merchant")), str(_l("Stock left"))],
        [[rw, m, int(s)] for rw, m, s in rows],
    )


def liability(r: Range) -> ReportTable:
    """Points the street owes now: volunteers' balances in the subtree and merchants' receivables."""
    vol_balance, vol_held = db.session.execute(
        select(func.coalesce(func.sum(Account.balance), 0), func.coalesce(func.sum(Account.held), 0))
        .join(User, User.id == Account.user_id)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(_in_subtree(OrgUnit.path, r))
    ).one()
    merchant_unit = aliased(OrgUnit)
    owed = db.session.scalar(
        select(func.coalesce(func.sum(Account.balance), 0))
        .join(Merchant, Merchant.id == Account.merchant_id)
        .join(merchant_unit, merchant_unit.id == Merchant.org_unit_id)
        .where(Account.kind == ACCOUNT_MERCHANT, _in_subtree(merchant_unit.path, r))
    )
    vol_balance, vol_held, owed = int(vol_balance), int(vol_held), int(owed)
    return ReportTable(
        "liability", str(_l("Outstanding liability now")),
        # Merchants located in the subtree, where the budgets page counts its volunteers'
        # redemptions wherever redeemed: the two agree for a whole street.
        [str(_l("Volunteers' points")), str(_l("of which held for vouchers")),
         str(_l("Owed to merchants located here")), str(_l("Total"))],
        [[vol_balance, vol_held, owed, vol_balance + owed]],
    )


REPORT_KEYS = (
    "points_by_month", "points_by_community", "points_by_category", "active_volunteers", "top_activities",
    "claims", "rewards_redeemed", "low_stock", "liability",
)


def build(r: Range, zh: bool, only: str | None = None) -> list[ReportTable]:
    """Return the reports of a range (or only the one named ``only``)."""
    read: dict[str, list[tuple]] = {}

    def legs() -> list[tuple]:  # read once for both reports that sum them
        if "legs" not in read:
            read["legs"] = _points_by_month_and_community(r)
        return read["legs"]

    def versions() -> list[tuple]:  # likewise
        if "versions" not in read:
            read["versions"] = _activities_by_version(r)
        return read["versions"]

    makers = {
        "points_by_month": lambda: points_by_month(r, legs()),
        "points_by_community": lambda: points_by_community(r, legs()),
        "points_by_category": lambda: points_by_category(r, zh, versions()),
        "active_volunteers": lambda: active_volunteers(r),
        "top_activities": lambda: top_activities(r, zh, versions()),
        "claims": lambda: claims(r),
        "rewards_redeemed": lambda: rewards_redeemed(r),
        "low_stock": lambda: low_stock(r),
        "liability": lambda: liability(r),
    }
    keys = [only] if only else list(REPORT_KEYS)
    return [makers[k]() for k in keys]
