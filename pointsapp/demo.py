"""The demo street: Youyi street (友谊街道), Kundulun district (昆区), Baotou.

Built after the 2020 report on Youyi street's grid reform: four communities cut into 39 grids of
about 400 households, building leaders (楼长) and unit leaders (单元长) as unpaid volunteers who
earn points for meetings, reports, help and duty, and the outlets the report names (the charity
supermarket, the 12349 elderly-care platform, the auto-repair street, the Jiujiuwu e-commerce
platform, the Laoshaokang care platform) where points are spent.

Everything is made through the domain functions, so the demo obeys the same rules as real use,
and the history is played forward in time: every claim, approval, meeting and redemption is done
with ``now=`` set to the moment it happened, so dates, caps, the 90-day claim window and voucher
expiry all hold as they would have. The street is scaled down (two buildings of two units per
grid) so that it loads in seconds. A fixed random seed makes it the same street every time.

``seed_demo`` flushes but never commits; the ``flask points seed-demo`` command commits.
"""
from __future__ import annotations

import heapq
import io
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select

from .domain import budgets, claims, honours, ledger, notice, people, rules, vouchers
from .domain.clock import local_today, local_zone, now_utc
from .domain.org import add_unit, ensure_levels
from .domain.uploads import store_photo
from .extensions import db
from .models import Account, Activity, Merchant, OrgUnit, PointRule, PointRuleVersion, Reward, Transfer, User
from .models.rules import UNIT_HOUR, UNIT_OCCURRENCE
from .models.types import stamping_with
from .models.user import (
    ROLE_COMMUNITY_ADMIN,
    ROLE_GRID_STAFF,
    ROLE_MERCHANT_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
)

DEMO_PASSWORD = "youyi-demo"
DEMO_STREET = "友谊街道"
DEMO_SEED = 20201231

# One login per role; every demo account has the password DEMO_PASSWORD.
DEMO_LOGINS: list[tuple[str, str]] = [
    ("jiedao", "Street admin of 友谊街道: rules, rewards, merchants, people, reversals, reports"),
    ("shequ1", "Community admin of 少先31社区"),
    ("wangge1", "Grid staff (专职网格员) of 第1网格: approval queue, record attendance"),
    ("louzhang1", "Volunteer, building leader (楼长) of 1号楼 in 第1网格, with points"),
    ("danyuan1", "Volunteer, unit leader (单元长) of 1号楼1单元 in 第1网格, with points"),
    ("chaoshi1", "Cashier at 友谊街道慈善超市: scan and redeem vouchers"),
]
DEMO_ADMIN_USERNAME = DEMO_LOGINS[0][0]
# The volunteer logins whose history is planned so that they always have something to show.
SHOWCASE = ("louzhang1", "danyuan1", "weiwangge1")

# (name, number of grids): 39 grids in all, as in the report.
COMMUNITIES = [("少先31社区", 10), ("友谊13社区", 10), ("友谊17社区", 10), ("友谊21社区", 9)]
BUILDINGS_PER_GRID = 2
UNITS_PER_BUILDING = 2

SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
    "余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段钱汤尹黎易常武乔贺赖龚文"
)
GIVEN_NAMES = (
    "建国 建华 建军 国庆 国强 志刚 志强 志红 秀兰 秀英 秀珍 秀芳 桂英 桂兰 桂芝 淑珍 淑兰 淑华 玉兰 玉珍 "
    "玉梅 凤英 凤兰 凤琴 海燕 海军 丽华 丽娟 丽萍 春梅 春花 春生 红梅 红霞 红英 宝山 宝华 振华 振国 金凤 "
    "金花 德胜 德明 德华 文明 文华 文杰 明华 明亮 晓东 晓燕 晓红 永红 永刚 永生 爱华 爱国 爱民 美玲 美兰 "
    "素梅 素珍 翠英 翠兰 云霞 彩霞 俊峰 立新 立华 长青 长胜 福生 福林 荣华 瑞芳 慧敏 静 敏 军 勇 伟 芳 燕 霞"
).split()
# Baotou has many Mongolian residents; their names are not surname + given name.
MONGOLIAN_NAMES = ["巴特尔", "其其格", "乌云", "萨仁", "额尔敦", "苏和", "娜仁花", "宝音", "图雅", "阿拉坦"]


@dataclass(frozen=True)
class RuleSpec:
    key: str
    terms: dict
    notes: tuple[str, ...] = ()
    hours: tuple[str, ...] = ()


RULES: list[RuleSpec] = [
    RuleSpec("meeting", dict(
        name_zh="参加会议", name_en="Attending a meeting", category="meeting", unit=UNIT_OCCURRENCE,
        points=5, daily_cap=10, needs_approval=True, expiry_policy="months", expiry_months=3,
    ), ("参加网格议事会", "参加楼栋长工作例会")),
    RuleSpec("reporting", dict(
        name_zh="反映情况", name_en="Reporting a problem", category="reporting", unit=UNIT_OCCURRENCE,
        points=2, daily_cap=6, monthly_cap=30, needs_approval=False, requires_note=True,
    ), (
        "楼道声控灯不亮，已报物业", "单元门禁损坏，已在网格群反映", "小区东门下水井盖松动", "楼顶防水层破损，顶层漏雨",
        "楼下有人私搭乱建，已反映社区", "小区路灯坏了三盏", "垃圾箱满溢无人清运", "有独居老人多日未出门，已告知网格员",
        "二手摩托车占道停放", "暖气不热，已反映热力公司", "楼前树枝压住电线",
    )),
    RuleSpec("governance", dict(
        name_zh="协助治理", name_en="Assisting governance", category="governance", unit=UNIT_HOUR,
        points=2, daily_cap=8, monthly_cap=60, needs_approval=True, requires_note=True,
    ), (
        "协助物业清理楼道杂物", "配合燃气公司入户安检", "协助社区开展人口信息采集", "协助疫苗接种点维持秩序",
        "协助拆除违建后清运垃圾", "配合供水公司通知停水", "协助城管劝离占道经营",
    ), ("1", "1.5", "2", "2", "3", "4")),
    RuleSpec("mobilising", dict(
        name_zh="组织发动居民", name_en="Organising residents", category="mobilising", unit=UNIT_OCCURRENCE,
        points=10, monthly_cap=50, needs_approval=True, requires_note=True,
    ), (
        "组织本单元居民参加垃圾分类宣传", "动员居民参加环境卫生大扫除", "组织居民商议加装电梯",
        "动员居民按时缴纳物业费", "组织楼栋居民参加防诈骗讲座",
    )),
    RuleSpec("helping", dict(
        name_zh="助人为乐", name_en="Helping others", category="helping", unit=UNIT_OCCURRENCE,
        points=5, monthly_cap=40, needs_approval=True, requires_note=True, expiry_policy="next_year_end",
    ), (
        "帮独居老人买菜送药", "为行动不便的邻居修理水龙头", "陪同高龄老人到医院复诊", "帮邻居照看放学的孩子",
        "帮助残疾人邻居搬运煤气罐", "为空巢老人打扫卫生",
    )),
    RuleSpec("brave", dict(
        name_zh="见义勇为", name_en="Brave deed", category="brave_deed", unit=UNIT_OCCURRENCE,
        points=100, needs_approval=True, requires_note=True,
    ), (
        "协助扑灭楼下电动车起火，并疏散楼内居民", "救助突发疾病倒地的老人并拨打120", "制止一起入室盗窃并报警",
    )),
    RuleSpec("patrol", dict(
        name_zh="巡查执勤", name_en="Patrol and duty shift", category="patrol", unit=UNIT_HOUR,
        points=1, daily_cap=4, monthly_cap=40, needs_approval=True,
    ), ("夜间治安巡逻", "老旧院落防疫值守", "疫情防控卡口执勤", "节日期间消防安全巡查"), ("1", "2", "2", "3", "4")),
    RuleSpec("mediation", dict(
        name_zh="调解纠纷", name_en="Mediating a dispute", category="mediation", unit=UNIT_OCCURRENCE,
        points=8, monthly_cap=48, needs_approval=True, requires_note=True,
    ), (
        "调解楼上楼下漏水纠纷", "调解邻里停车矛盾", "调解宠物扰民纠纷", "调解楼道堆物引发的争吵", "调解装修噪音纠纷",
    )),
    RuleSpec("safety", dict(
        name_zh="排查安全隐患", name_en="Safety-hazard check", category="safety", unit=UNIT_OCCURRENCE,
        points=3, daily_cap=9, needs_approval=True, requires_note=True, requires_photo=True,
    ), (
        "排查楼道电动车充电隐患", "检查消防通道堵塞情况", "协助燃气安检，发现胶管老化", "发现楼道灭火器过期",
    )),
    RuleSpec("errand", dict(
        name_zh="代办政务事项", name_en="Government errand for a resident", category="errand", unit=UNIT_OCCURRENCE,
        points=5, monthly_cap=50, needs_approval=True, requires_note=True,
    ), (
        "为卧床老人代办高龄津贴认证", "代办医保缴费", "代办居住证明", "帮老人办理养老金资格认证", "代办残疾人证年审",
    )),
    RuleSpec("visit", dict(
        name_zh="走访入户", name_en="Household visit", category="governance", unit=UNIT_OCCURRENCE,
        points=2, daily_cap=10, needs_approval=True, requires_note=True,
        titles=["building_leader", "micro_grid_leader"],
    ), ("走访本楼栋住户，更新居民信息", "走访空巢老人，了解生活需求", "入户宣传防疫政策")),
]
# A community's own rule, defined by its admin, usable only by that community's volunteers.
COMMUNITY_RULE = RuleSpec("stairwell", dict(
    name_zh="楼道卫生清扫", name_en="Stairwell clean-up", category="other", unit=UNIT_OCCURRENCE,
    points=3, monthly_cap=12, needs_approval=True,
), ("清扫本单元楼道", "清理楼道小广告"))

# Which rules each title tends to claim, with weights.
CLAIM_MIX = {
    "building_leader": {"reporting": 3, "governance": 2, "mobilising": 2, "helping": 2, "mediation": 2,
                        "safety": 1, "patrol": 2, "errand": 1, "visit": 3},
    "unit_leader": {"reporting": 4, "helping": 3, "patrol": 2, "safety": 1, "governance": 1},
    "micro_grid_leader": {"errand": 3, "mediation": 3, "safety": 2, "visit": 3, "reporting": 2, "helping": 1},
    "part_time_grid_worker": {"patrol": 3, "governance": 3, "reporting": 2, "safety": 1},
    "resident": {"helping": 3, "patrol": 1, "reporting": 2},
}

REJECT_REASONS = (
    "同一事项已由网格员统一登记，不重复计分。",
    "情况说明不够具体，请补充时间、地点后重新申报。",
    "日期与会议记录不符，请核实后重新申报。",
    "该事项属于物业公司职责范围，不计入积分。",
)


@dataclass(frozen=True)
class MerchantSpec:
    name: str
    kind: str
    address: str
    phone: str | None
    cashiers: tuple[tuple[str, str], ...]
    # (name, description, price, stock or None, per-volunteer limit or None, weight when choosing)
    rewards: tuple[tuple[str, str, int, int | None, int | None, int], ...]


MERCHANTS = [
    MerchantSpec("友谊街道慈善超市", "charity_supermarket", "昆区友谊大街少先31号街坊东门", None,
                 (("chaoshi1", "任桂芳"), ("chaoshi2", "白晓燕")), (
        ("大米 5kg", "爱心企业捐赠的东北大米", 30, 60, None, 5),
        ("食用油 5L", "大豆油一桶", 45, 40, None, 3),
        ("鸡蛋 30枚", "本地农户鲜鸡蛋", 18, 80, None, 5),
        ("洗衣液 2kg", "", 15, 50, None, 3),
        ("挂面 2kg", "", 10, 100, None, 4),
        ("毛巾两条", "纯棉毛巾", 8, 100, 3, 2),
    )),
    MerchantSpec("12349便民为老服务平台", "service_platform", "昆区友谊驿站一楼", "12349",
                 (("weilao1", "郝丽萍"),), (
        ("上门理发", "为本人或家中老人上门理发一次", 20, None, 2, 4),
        ("家政保洁 2小时", "预约后两日内上门", 50, 20, None, 2),
        ("助浴服务一次", "为行动不便的老人提供助浴", 40, 10, None, 1),
        ("油烟机清洗", "", 60, 10, 1, 1),
    )),
    MerchantSpec("汽修一条街", "shop", "昆区钢铁大街汽修一条街", None, (("qixiu1", "乔德胜"),), (
        ("普通洗车", "小型轿车外观清洗一次", 15, None, None, 3),
        ("汽车打蜡", "", 40, 20, None, 1),
        ("更换机油工时", "机油自备，免工时费", 60, 15, 1, 1),
    )),
    MerchantSpec("九九吾电商平台", "service_platform", "线上下单，社区自提点领取", None, (("dianshang1", "邵晓东"),), (
        ("生活用品抵扣券 20元", "平台内生活用品下单抵扣", 20, None, None, 3),
        ("新鲜蔬菜礼包", "每周三到社区自提点领取", 25, 30, None, 2),
        ("抽纸一提", "", 12, 60, None, 2),
    )),
    MerchantSpec("老少康育园平台（友谊驿站）", "service_platform", "昆区友谊新时代文明实践广场友谊驿站", None,
                 (("kangyu1", "苏雅琴"),), (
        ("老年健身课一次", "友谊驿站二楼活动室", 10, None, 4, 2),
        ("儿童托管半天", "周末半天托管，含午餐", 30, 20, None, 1),
    )),
]


@dataclass
class DemoStreet:
    """What ``seed_demo`` built, for the command's message and for tests."""

    street: OrgUnit
    communities: list[OrgUnit] = field(default_factory=list)
    grids: list[OrgUnit] = field(default_factory=list)
    volunteers: list[User] = field(default_factory=list)
    merchants: list[Merchant] = field(default_factory=list)
    claims: int = 0
    recorded: int = 0
    vouchers: int = 0
    checkin_event: object = None


class _Clock:
    """The moment the history has reached; new rows are stamped with it."""

    def __init__(self, now: datetime):
        self.now = now


def _stamped_with(clock: _Clock):
    """Give rows that take their ``created_at`` from the default the history's time.

    The domain functions take ``now=`` for the rows that matter to rules (activities, vouchers);
    accounts, transfers, people and rules default to the wall clock. In a replayed history those
    must carry the moment they were made, or a volunteer's statement would show every credit
    as made today.
    """
    return stamping_with(lambda: clock.now)


@contextmanager
def _one_hash_for_the_demo_password():
    """Hash the shared demo password once instead of once per person.

    argon2id takes about a tenth of a second by design; three hundred demo people would take
    half a minute. They all share one published password, so one salt loses nothing.
    """
    original = people.hash_password
    demo_hash = original(DEMO_PASSWORD)

    def hash_password(password: str) -> str:
        return demo_hash if password == DEMO_PASSWORD else original(password)

    people.hash_password = hash_password
    try:
        yield
    finally:
        people.hash_password = original


def demo_present() -> bool:
    """Say whether the demo street has been loaded (its street admin exists)."""
    return db.session.scalar(
        select(User.id).where(func.lower(User.username) == DEMO_ADMIN_USERNAME)
    ) is not None


def seed_demo(months: int = 4, now: datetime | None = None) -> DemoStreet:
    """Build the demo street with people, rules, merchants and ``months`` months of history."""
    if not 1 <= int(months) <= 24:
        raise ValueError("months must be between 1 and 24")
    now = now or now_utc()
    clock = _Clock(now)
    with _stamped_with(clock), _one_hash_for_the_demo_password():
        builder = _Builder(random.Random(DEMO_SEED), clock, months, now)
        builder.build()
    db.session.flush()
    return builder.demo


@dataclass
class _Volunteer:
    user: User
    community: int
    grid: int
    title: str
    claims_per_month: float


class _Builder:
    def __init__(self, rng: random.Random, clock: _Clock, months: int, end: datetime):
        self.rng = rng
        self.clock = clock
        self.end = end
        self.today = local_today(end)
        self.first_day = self.today - timedelta(days=30 * months)
        self.zone = local_zone()
        self.used_names: set[str] = set()
        self.heap: list = []
        self.seq = 0
        self.photos: list[bytes] = []
        self.limits_taken: dict[tuple[int, int], int] = {}

    # --- time -------------------------------------------------------------------------------

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """Return the UTC moment of a local wall-clock time on ``day``."""
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(timezone.utc)

    def office_hours_after(self, moment: datetime, min_hours: float, max_hours: float) -> datetime:
        """Return a moment some hours later, moved into 9:00–17:30 local time."""
        later = (moment + timedelta(hours=self.rng.uniform(min_hours, max_hours))).astimezone(self.zone)
        if later.hour < 9:
            later = later.replace(hour=9, minute=self.rng.randrange(60))
        elif later.hour >= 17:
            later = (later + timedelta(days=1)).replace(hour=9, minute=self.rng.randrange(60))
        return later.astimezone(timezone.utc)

    def schedule(self, when: datetime, fn, *args) -> bool:
        """Queue ``fn(*args)`` to happen at ``when``; what would happen after now never does."""
        if when > self.end:
            return False
        heapq.heappush(self.heap, (when, self.seq, fn, args))
        self.seq += 1
        return True

    def days(self):
        day = self.first_day
        while day <= self.today:
            yield day
            day += timedelta(days=1)

    # --- the street -------------------------------------------------------------------------

    def user_named(self, username: str) -> User:
        return next(v.user for v in self.volunteers if v.user.username == username)

    def name(self) -> str:
        while True:
            if self.rng.random() < 0.04:
                full = self.rng.choice(MONGOLIAN_NAMES)
            else:
                full = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN_NAMES)
            if full not in self.used_names:
                self.used_names.add(full)
                return full

    def person(self, username: str, unit: OrgUnit | None, roles, title=None, merchant=None, full_name=None) -> User:
        return people.create_person(
            None,
            username=username,
            full_name=full_name or self.name(),
            password=DEMO_PASSWORD,
            org_unit=unit,
            title=title,
            roles=roles,
            merchant=merchant,
        )

    def build(self) -> None:
        # People, rules and merchants were in place a fortnight before the history starts.
        self.clock.now = self.at(self.first_day - timedelta(days=14), 10)
        ensure_levels()
        street = add_unit(DEMO_STREET, "street")
        self.demo = DemoStreet(street=street)
        self.admin = self.person("jiedao", street, (ROLE_STREET_ADMIN,), full_name="高志远")
        self.build_tree(street)
        self.build_rules(street)
        self.build_merchants(street)
        self.build_budgets(street)
        self.plan_history()
        while self.heap:
            when, _, fn, args = heapq.heappop(self.heap)
            self.clock.now = when
            fn(*args)
        self.clock.now = self.end
        self.open_checkin_event(street)
        # One volunteer with credited work in the first grid asked the honour rolls to show them
        # by surname only (王**).
        grid = self.demo.grids[0]
        shy = db.session.scalar(
            select(User)
            .join(Activity, Activity.volunteer_id == User.id)
            .join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
            .where(Activity.status == "approved", Activity.points_credited > 0,
                   OrgUnit.path.startswith(grid.path), User.username != "louzhang1")
            .order_by(User.id)
            .limit(1)
        )
        if shy is not None:
            honours.set_honour_display(shy, "initials")

    def open_checkin_event(self, street: OrgUnit) -> None:
        """An event under way in the first grid: its page shows the rotating check-in QR code."""
        from decimal import Decimal

        from .domain import checkin

        rule = rules.create_rule(self.admin, street, rules.RuleTerms(
            name_zh="社区志愿服务活动", name_en="Community volunteering event", category="helping", unit=UNIT_HOUR,
            points=2, needs_approval=False, checkin_hours_cap=Decimal("2"), hours_rounding_minutes=30,
            backfill_earns_points=False,
        ))
        start = self.end - timedelta(minutes=30)
        event = checkin.create_event(
            self.grid_staff[0], title="楼道清洁日", rule_id=rule.id, org_unit_id=self.demo.grids[0].id,
            place="1号楼下小广场", starts_at=start, ends_at=start + timedelta(hours=3), now=start,
        )
        first_grid = [v.user for v in self.volunteers if v.grid == 0][:3]
        for i, user in enumerate(first_grid):
            checkin.sign_in(user, event.id, now=start + timedelta(minutes=5 * i))
        self.demo.checkin_event = event

    def build_budgets(self, street: OrgUnit) -> None:
        """The street funds its points with ¥350,000 (as Jinyuan street raised for its grid
        leaders); a partner organisation funds one community, and one mistyped record is corrected."""
        day = self.clock.now.date()
        community = self.community_admins[0].org_unit
        for unit, actor, yuan, source, note in (
            (street, self.admin, 300_000, "street_grant", "街道年度积分经费"),
            (street, self.admin, 50_000, "donation", "辖区企业捐赠"),
            (community, self.admin, 30_000, "partner", "共建单位支持微网格长激励"),
            (community, self.admin, -3_000, "partner", "更正：重复录入"),
        ):
            budgets.record_funding(actor, unit, fen=yuan * 100, source=source, funded_on=day, note=note,
                                   key=f"demo-funding-{unit.id}-{yuan}", now=self.clock.now)

    def build_tree(self, street: OrgUnit) -> None:
        self.community_admins: list[User] = []
        self.grid_staff: list[User] = []
        self.volunteers: list[_Volunteer] = []
        self.account_ids: dict[int, int] = {}
        counters = {"louzhang": 0, "danyuan": 0, "weiwangge": 0, "jianzhi": 0, "jumin": 0}

        def volunteer(prefix, unit, title, c, g, level=None):
            counters[prefix] += 1
            user = self.person(f"{prefix}{counters[prefix]}", unit, (ROLE_VOLUNTEER,), title=title)
            rate = level if level is not None else self.rng.choice((0.2, 0.3, 0.5, 0.6, 0.8, 1.5))
            self.volunteers.append(_Volunteer(user, c, g, title, rate))
            self.account_ids[user.id] = ledger.account_for_volunteer(user).id
            self.demo.volunteers.append(user)
            return user

        grid_no = 0
        for c, (community_name, n_grids) in enumerate(COMMUNITIES):
            community = add_unit(community_name, "community", street)
            self.demo.communities.append(community)
            self.community_admins.append(
                self.person(f"shequ{c + 1}", community, (ROLE_COMMUNITY_ADMIN,))
            )
            for local_no in range(1, n_grids + 1):
                grid_no += 1
                g = grid_no - 1
                grid = add_unit(f"第{grid_no}网格", "grid", community)
                self.demo.grids.append(grid)
                self.grid_staff.append(self.person(f"wangge{grid_no}", grid, (ROLE_GRID_STAFF,)))
                for b in range(1, BUILDINGS_PER_GRID + 1):
                    building = add_unit(f"{(local_no - 1) * BUILDINGS_PER_GRID + b}号楼", "building", grid)
                    lead = 2.5 if grid_no == 1 and b == 1 else None
                    volunteer("louzhang", building, "building_leader", c, g, lead)
                    for u in range(1, UNITS_PER_BUILDING + 1):
                        unit = add_unit(f"{u}单元", "unit", building)
                        volunteer("danyuan", unit, "unit_leader", c, g, 2.0 if lead else None)
                    if self.rng.random() < 0.1:
                        volunteer("jumin", building, "resident", c, g)
                if local_no % 2 == 1:
                    volunteer("weiwangge", grid, "micro_grid_leader", c, g, 3.0 if grid_no % 7 == 1 else None)
                if local_no <= 2:
                    volunteer("jianzhi", grid, "part_time_grid_worker", c, g)

    def build_rules(self, street: OrgUnit) -> None:
        self.rules: dict[str, PointRule] = {}
        self.rule_specs: dict[str, RuleSpec] = {}
        for spec in RULES:
            self.rules[spec.key] = rules.create_rule(self.admin, street, rules.RuleTerms(**spec.terms))
            self.rule_specs[spec.key] = spec
        spec = COMMUNITY_RULE
        self.rules[spec.key] = rules.create_rule(
            self.community_admins[0], self.demo.communities[0], rules.RuleTerms(**spec.terms)
        )
        self.rule_specs[spec.key] = spec

    def build_merchants(self, street: OrgUnit) -> None:
        self.cashiers: dict[int, list[User]] = {}
        self.rewards: list[tuple[Reward, int]] = []
        for spec in MERCHANTS:
            merchant = vouchers.create_merchant(
                self.admin, street, name=spec.name, kind=spec.kind, address=spec.address, phone=spec.phone
            )
            self.demo.merchants.append(merchant)
            self.cashiers[merchant.id] = [
                self.person(username, None, (ROLE_MERCHANT_STAFF,), merchant=merchant, full_name=full_name)
                for username, full_name in spec.cashiers
            ]
            for name, description, price, stock, limit, weight in spec.rewards:
                reward = vouchers.create_reward(
                    self.admin,
                    merchant.id,
                    vouchers.RewardTerms(
                        name=name, description=description, price=price, stock=stock, per_volunteer_limit=limit
                    ),
                )
                self.rewards.append((reward, weight))

    # --- the history ------------------------------------------------------------------------

    def plan_history(self) -> None:
        rng = self.rng
        by_grid: dict[int, list[_Volunteer]] = {}
        by_community: dict[int, list[_Volunteer]] = {}
        for v in self.volunteers:
            by_grid.setdefault(v.grid, []).append(v)
            by_community.setdefault(v.community, []).append(v)

        for day in self.days():
            # Every grid meets every other month (网格议事会议), chaired by its grid worker.
            for g, members in by_grid.items():
                if day.day == 3 + g % 20 and day.month % 2 == g % 2:
                    present = [v.user.id for v in members if rng.random() < 0.8]
                    self.schedule(self.at(day, 17, 30), self.record, self.grid_staff[g], "meeting", day,
                                  present, None, "网格议事会议", f"demo-grid-meeting-{g}-{day}")
            # Each community gathers its building and unit leaders once a month.
            for c, members in by_community.items():
                if day.day == 24 + c:
                    present = [v.user.id for v in members if rng.random() < 0.5]
                    self.schedule(self.at(day, 11, 30), self.record, self.community_admins[c], "meeting", day,
                                  present, None, "社区楼长单元长工作例会", f"demo-community-meeting-{c}-{day}")
            # Grid workers log the shared duty at old courtyards every eight weeks.
            for g, members in by_grid.items():
                if (day - self.first_day).days % 56 == (g * 5) % 56:
                    shift = rng.sample(members, min(len(members), rng.randint(3, 5)))
                    self.schedule(self.at(day, 20, 0), self.record, self.grid_staff[g], "patrol", day,
                                  [v.user.id for v in shift], "2", "老旧院落防疫值守", f"demo-duty-{g}-{day}")
            # The overnight job expires vouchers nobody collected.
            self.schedule(self.at(day, 2, 30), self.expire)

        total_days = (self.today - self.first_day).days + 1
        for v in self.volunteers:
            n = sum(1 for _ in range(total_days) if rng.random() < v.claims_per_month / 30)
            for _ in range(n):
                day = self.first_day + timedelta(days=rng.randrange(total_days))
                self.plan_claim(v, day)
            # Now and then a volunteer goes shopping with what they have.
            for _ in range(rng.randint(0, 1 + (self.today - self.first_day).days // 45)):
                day = self.first_day + timedelta(days=rng.randrange(20, max(21, total_days)))
                self.schedule(self.at(day, rng.randint(8, 18), rng.randrange(60)), self.shop, v)

        self.plan_showcase()
        # Halfway through, the street raises the pay for duty shifts: a new version of the rule.
        middle = self.first_day + timedelta(days=total_days // 2)
        self.schedule(self.at(middle, 10), self.raise_patrol_points)

    def plan_claim(self, v: _Volunteer, day: date, key: str | None = None, note: str | None = None,
                   decide: bool = True, reject: bool | None = None, delay_days: int | None = None) -> None:
        rng = self.rng
        if key is None:
            mix = dict(CLAIM_MIX[v.title])
            if v.community == 0:
                mix["stairwell"] = 2
            if v.claims_per_month >= 1.5 and rng.random() < 0.01:
                mix = {"brave": 1}
            keys = list(mix)
            key = rng.choices(keys, weights=[mix[k] for k in keys])[0]
        delay = rng.choice((0, 0, 1, 1, 2, 3)) if delay_days is None else delay_days
        submitted = self.at(day + timedelta(days=delay), rng.randint(18, 21), rng.randrange(60))
        self.schedule(submitted, self.claim, v, key, day, note, decide, reject)

    def plan_showcase(self) -> None:
        """Make sure the demo logins have something to see, whatever the dice said."""
        louzhang, danyuan, weiwangge = (next(v for v in self.volunteers if v.user.username == name) for name in SHOWCASE)
        t = self.today
        # Waiting in wangge1's approval queue.
        self.plan_claim(louzhang, t - timedelta(days=1), "brave", "协助扑灭楼下电动车起火，并疏散楼内居民",
                        decide=False, delay_days=0)
        self.plan_claim(danyuan, t - timedelta(days=2), "helping", "帮独居老人买菜送药", decide=False, delay_days=1)
        self.plan_claim(weiwangge, t - timedelta(days=2), "errand", "为卧床老人代办高龄津贴认证",
                        decide=False, delay_days=1)
        self.plan_claim(weiwangge, t - timedelta(days=1), "mediation", "调解楼上楼下漏水纠纷",
                        decide=False, delay_days=0)
        # A decision each way that the volunteers can read.
        self.plan_claim(louzhang, t - timedelta(days=20), "mediation", "调解邻里停车矛盾", delay_days=1, reject=False)
        self.plan_claim(danyuan, t - timedelta(days=25), "governance", "协助物业清理楼道杂物", delay_days=0,
                        reject=True)
        # Vouchers: redeemed at the supermarket, one still open, one cancelled.
        self.schedule(self.end - timedelta(days=9), self.showcase_voucher, louzhang, "大米 5kg", "redeem")
        self.schedule(self.end - timedelta(days=1, hours=3), self.showcase_voucher, louzhang, "上门理发", "keep")
        self.schedule(self.end - timedelta(days=6), self.showcase_voucher, danyuan, "鸡蛋 30枚", "cancel")
        self.schedule(self.end - timedelta(days=1, hours=5), self.showcase_voucher, danyuan, "挂面 2kg", "keep")
        # Two redemptions at chaoshi1's till earlier today (or late last night, just after midnight).
        for minutes, who in ((95, danyuan), (40, weiwangge)):
            self.schedule(self.end - timedelta(days=2), self.showcase_voucher, who, "洗衣液 2kg",
                          ("redeem_at", self.end - timedelta(minutes=minutes)))
        # A correction: a credit reversed by the community admin, with a reason.
        self.schedule(self.end - timedelta(days=4), self.reverse_one)
        # Brave deeds now need two verifiers; the fourth community posts approvals for public notice.
        self.schedule(self.end - timedelta(days=3), self.showcase_approval_and_notice)
        self.schedule(self.end - timedelta(days=1), self.showcase_two_votes, louzhang)
        self.schedule(self.end - timedelta(days=2), self.showcase_notice_meeting)

    # --- events -----------------------------------------------------------------------------

    def record(self, actor, key, day, volunteer_ids, hours, note, batch_key) -> None:
        if not volunteer_ids:
            return
        acts = claims.record_attendance(
            actor, rule_id=self.rules[key].id, activity_date=day, volunteer_ids=volunteer_ids, hours=hours,
            note=note, batch_key=batch_key, now=self.clock.now,
        )
        self.demo.recorded += len(acts)

    def photo(self) -> str:
        if not self.photos:
            self.photos = [_evidence_photo(seed) for seed in range(3)]
        return store_photo(self.rng.choice(self.photos))

    def claim(self, v: _Volunteer, key: str, day: date, note, decide: bool, reject) -> None:
        rng = self.rng
        spec = self.rule_specs[key]
        version = self.rules[key].current
        hours = rng.choice(spec.hours) if version.unit == UNIT_HOUR else None
        if note is None and (version.requires_note or rng.random() < 0.5):
            note = rng.choice(spec.notes)
        act = claims.submit_claim(
            v.user, rule_id=self.rules[key].id, activity_date=day, hours=hours, note=note,
            photo_name=self.photo() if version.requires_photo else None, now=self.clock.now,
        )
        self.demo.claims += 1
        if act.status != "pending" or not decide:
            return
        big = key == "brave" or act.points_requested >= 50
        approver = self.community_admins[v.community] if big else self.grid_staff[v.grid]
        if reject is None:
            reject = not big and rng.random() < 0.08
        self.schedule(self.office_hours_after(self.clock.now, 10, 60), self.decide, approver, act.id, reject)

    def decide(self, approver: User, activity_id: int, reject: bool) -> None:
        if reject:
            claims.reject_claim(approver, activity_id, self.rng.choice(REJECT_REASONS), now=self.clock.now)
        else:
            claims.approve_claim(approver, activity_id, now=self.clock.now)

    def expire(self) -> None:
        vouchers.expire_vouchers(now=self.clock.now)
        # Meeting points expire three months after the meeting, as `flask points expire` does daily.
        today = local_today(self.clock.now)
        for account_id in ledger.accounts_with_due_lots(today):
            ledger.expire_account(account_id, today)

    def raise_patrol_points(self) -> None:
        terms = dict(self.rule_specs["patrol"].terms, points=2, daily_cap=8, monthly_cap=60)
        rules.update_rule(self.admin, self.rules["patrol"].id, rules.RuleTerms(**terms))

    def affordable(self, v: _Volunteer, rewards: list[tuple[Reward, int]]) -> list[tuple[Reward, int]]:
        """Return the rewards (with their weights) the volunteer could redeem right now."""
        available = ledger.balance_of(self.account_ids[v.user.id]).available
        ids = [r.id for r, _ in rewards if r.price <= available]
        if not ids:
            return []
        # Stock is changed by UPDATE statements, so read it from the table rather than the objects.
        stock = dict(db.session.execute(select(Reward.id, Reward.stock).where(Reward.id.in_(ids))).all())
        out = []
        for reward, weight in rewards:
            if reward.id not in stock or (stock[reward.id] is not None and stock[reward.id] < 1):
                continue
            if reward.per_volunteer_limit and self.limits_taken.get((v.user.id, reward.id), 0) >= reward.per_volunteer_limit:
                continue
            out.append((reward, weight))
        return out

    def issue(self, v: _Volunteer, reward: Reward) -> vouchers.IssuedVoucher:
        issued = vouchers.issue_voucher(v.user, reward.id, now=self.clock.now)
        key = (v.user.id, reward.id)
        self.limits_taken[key] = self.limits_taken.get(key, 0) + 1
        self.demo.vouchers += 1
        return issued

    def shop(self, v: _Volunteer) -> None:
        if v.user.username in SHOWCASE:
            return  # their vouchers are the planned ones (plan_showcase): whatever the dice say, they keep points
        rng = self.rng
        choices = self.affordable(v, self.rewards)
        if not choices:
            return
        reward = rng.choices([r for r, _ in choices], weights=[w for _, w in choices])[0]
        issued = self.issue(v, reward)
        fate = rng.random()
        if fate < 0.86:
            when = self.office_hours_after(self.clock.now, 1, 100)
            # A pick-up that would fall after expiry (or after now) leaves the voucher open or expiring.
            if when < issued.voucher.expires_at:
                self.schedule(when, self.redeem, issued, reward.merchant_id)
        elif fate < 0.92:
            self.schedule(self.clock.now + timedelta(hours=rng.uniform(1, 30)), self.cancel, v, issued)
        # else: never collected; the overnight job expires it and returns the points.

    def redeem(self, issued: vouchers.IssuedVoucher, merchant_id: int) -> None:
        cashier = self.rng.choice(self.cashiers[merchant_id])
        text = issued.token if self.rng.random() < 0.8 else vouchers.format_code(issued.code)
        vouchers.confirm_redemption(cashier, text, merchant_id, now=self.clock.now)

    def cancel(self, v: _Volunteer, issued: vouchers.IssuedVoucher) -> None:
        vouchers.cancel_voucher(v.user, issued.voucher.id, now=self.clock.now)
        key = (v.user.id, issued.voucher.reward_id)
        self.limits_taken[key] -= 1

    def showcase_voucher(self, v: _Volunteer, reward_name: str, fate) -> None:
        reward = next(r for r, _ in self.rewards if r.name == reward_name)
        if not self.affordable(v, [(reward, 1)]):
            return
        issued = self.issue(v, reward)
        if fate == "redeem":
            self.schedule(self.office_hours_after(self.clock.now, 2, 20), self.redeem, issued, reward.merchant_id)
        elif fate == "cancel":
            self.schedule(self.clock.now + timedelta(hours=3), self.cancel, v, issued)
        elif isinstance(fate, tuple) and fate[0] == "redeem_at":
            cashier = self.cashiers[reward.merchant_id][0]
            self.schedule(fate[1], self._redeem_by, cashier, issued, reward.merchant_id)

    def _redeem_by(self, cashier: User, issued: vouchers.IssuedVoucher, merchant_id: int) -> None:
        vouchers.confirm_redemption(cashier, issued.token, merchant_id, now=self.clock.now)

    def showcase_approval_and_notice(self) -> None:
        terms = dict(self.rule_specs["brave"].terms, approvals_required=2)
        rules.update_rule(self.admin, self.rules["brave"].id, rules.RuleTerms(**terms))
        notice.set_notice_days(self.community_admins[3], self.demo.communities[3], 7)

    def showcase_two_votes(self, v: _Volunteer) -> None:
        """A brave deed with one vote of two: the first grid worker's queue shows "1/2"."""
        act = claims.submit_claim(
            v.user, rule_id=self.rules["brave"].id, activity_date=local_today(self.clock.now) - timedelta(days=1),
            note=self.rule_specs["brave"].notes[0], now=self.clock.now,
        )
        self.demo.claims += 1
        self.schedule(self.clock.now + timedelta(hours=3), self.decide, self.community_admins[v.community], act.id, False)

    def showcase_notice_meeting(self) -> None:
        """A residents' council of the fourth community, on public notice, with one objection."""
        members = [v.user.id for v in self.volunteers if v.community == 3 and v.title == "building_leader"][:6]
        if not members:
            return
        acts = claims.record_attendance(
            self.community_admins[3], rule_id=self.rules["meeting"].id,
            activity_date=local_today(self.clock.now) - timedelta(days=1), volunteer_ids=members,
            note="社区居民议事会", batch_key="demo-notice-council", now=self.clock.now,
        )
        self.demo.recorded += len(acts)
        notice.file_objection(acts[0].id, "议事会那天我在现场，没有看到这位楼长。", contact="同楼居民 王女士",
                              now=self.clock.now + timedelta(hours=5))

    def reverse_one(self) -> None:
        """Reverse one duty-shift credit that was claimed as well as recorded by the grid worker."""
        community = self.demo.communities[1]
        admin = self.community_admins[1]
        candidates = db.session.execute(
            select(Transfer, Activity)
            .join(Activity, Activity.id == Transfer.activity_id)
            .where(
                Transfer.kind == "credit",
                Activity.rule_id == self.rules["patrol"].id,
                Activity.source == "claim",
                Activity.status == "approved",
            )
            .order_by(Transfer.id.desc())
        ).all()
        for transfer, act in candidates:
            if not community.contains(act.org_unit):
                continue
            acc = ledger.account_for_volunteer(act.volunteer)
            if ledger.balance_of(acc.id).available < transfer.amount:
                continue
            claims.reverse_transfer(admin, transfer.id, "与网格员统一登记的执勤记录重复，撤销本次积分。")
            return


def _evidence_photo(seed: int) -> bytes:
    """Draw a small stand-in for a volunteer's phone photo (a stairwell with a hazard marked)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (480, 360), (200 + seed * 10, 196, 186))
    draw = ImageDraw.Draw(img)
    for y in range(0, 360, 30):  # stairs
        draw.rectangle([0, y + 180 - y // 2, 480, y + 190 - y // 2], fill=(150, 146, 140))
    x, y = rng.randint(80, 300), rng.randint(120, 220)
    draw.rectangle([x, y, x + 90, y + 60], fill=(60, 90, 150))  # the hazard: a parked e-bike, a box
    draw.ellipse([x - 20, y - 20, x + 110, y + 80], outline=(220, 30, 30), width=6)  # circled in red
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


__all__ = ["DEMO_LOGINS", "DEMO_PASSWORD", "DEMO_STREET", "DemoStreet", "demo_present", "seed_demo"]
