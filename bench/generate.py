"""Build a city-scale dataset for the benchmarks, fast, keeping every ledger invariant.

    python bench/generate.py --url postgresql://postgres@127.0.0.1:5432/points_bench \
        --volunteers 100000 --entries 1000000
    python bench/generate.py --url sqlite:///instance/bench.db --volunteers 5000 --entries 50000

The database is created (or emptied: PostgreSQL databases are dropped and created again),
migrated, and loaded with the demo street (its rules, merchants, staff and cashiers, one month
of history through the domain functions). Then, in bulk, for a city: extra communities, grids,
buildings and units; ``--volunteers`` volunteers spread over the units, each with a role and an
account; and ``--entries`` ledger entries: ``entries / 2`` approved activities spread over the
twelve months before the current one, each credited by one transfer from the street's issuance
account with its two entries, balances and ``balance_after`` computed in order. PostgreSQL is
loaded with ``COPY``; SQLite with ``executemany``. Sequences are moved past the new ids.

Nothing is written that the app could not have written: ``flask points check-ledger`` passes.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

UNITS_PER_BUILDING = 5
BUILDINGS_PER_GRID = 10
GRIDS_PER_COMMUNITY = 10
VOLUNTEERS_PER_UNIT = 20
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
TITLES = ("building_leader", "unit_leader", "micro_grid_leader", "part_time_grid_worker", "resident")


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def recreate_postgres(url: str) -> None:
    """Drop and create the database named in ``url`` (connecting to ``postgres`` to do it)."""
    import psycopg

    base, name = libpq_url(url).rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Loader:
    """Write rows to a table: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, url: str):
        self.postgres = url.startswith("postgres")
        if self.postgres:
            import psycopg

            self.conn = psycopg.connect(libpq_url(url))
        else:
            import sqlite3

            self.conn = sqlite3.connect(url.split("///", 1)[1])
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=OFF")

    def scalar(self, sql: str):
        cur = self.conn.execute(sql)
        return cur.fetchone()[0]

    def next_id(self, table: str) -> int:
        return (self.scalar(f"SELECT max(id) FROM {table}") or 0) + 1

    def write(self, table: str, columns: tuple[str, ...], rows) -> int:
        n = 0
        if self.postgres:
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        n += 1
        else:
            marks = ", ".join("?" for _ in columns)
            batch: list = []
            for row in rows:
                batch.append(row)
                n += 1
                if len(batch) >= 20000:
                    self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", batch)
                    batch = []
            if batch:
                self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", batch)
        return n

    def fix_sequences(self, tables) -> None:
        if not self.postgres:
            return
        for table in tables:
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )

    def commit(self) -> None:
        self.conn.commit()


def sqlite_value(v):
    """Store dates and times the way SQLAlchemy's SQLite dialect does."""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    return v


def migrate_and_seed(url: str, demo_months: int) -> dict:
    """Migrate, load the demo street, and return the ids the bulk load hangs on."""
    os.environ["DATABASE_URL"] = url
    from flask_migrate import upgrade
    from sqlalchemy import select

    from pointsapp import create_app
    from pointsapp.demo import seed_demo
    from pointsapp.extensions import db
    from pointsapp.models import Account, OrgLevel, OrgUnit, PointRuleVersion, User

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        upgrade(directory=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations"))
        seed_demo(months=demo_months)
        db.session.commit()
        street = db.session.scalar(select(OrgUnit).where(OrgUnit.parent_id.is_(None)))
        issuance = db.session.scalar(select(Account).where(Account.kind == "issuance", Account.org_unit_id == street.id))
        # The meeting rule: every title, no monthly cap (a daily cap of 10, two meetings a day).
        version = db.session.scalar(
            select(PointRuleVersion).where(PointRuleVersion.category == "meeting").order_by(PointRuleVersion.id.desc())
        )
        admin = db.session.scalar(select(User).where(User.username == "jiedao"))
        some_volunteer = db.session.scalar(select(User).where(User.username == "danyuan1"))
        return {
            "street_id": street.id,
            "street_path": street.path,
            "issuance_id": issuance.id,
            "issuance_balance": issuance.balance,
            "rule_id": version.rule_id,
            "rule_version_id": version.id,
            "points": version.points,
            "admin_id": admin.id,
            "password_hash": some_volunteer.password_hash,
            "levels": {lv.code: lv.id for lv in db.session.scalars(select(OrgLevel))},
        }


def generate(url: str, volunteers: int, entries: int, seed: int = 1, demo_months: int = 1) -> dict:
    """Build the dataset; return counts and timings."""
    started = time.monotonic()
    if url.startswith("postgres"):
        recreate_postgres(url)
    else:
        path = url.split("///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ctx = migrate_and_seed(url, demo_months)
    from pointsapp.domain.ledger import month_of  # in the street's zone (Asia/Shanghai by default)

    seeded = time.monotonic()
    rng = random.Random(seed)
    db = Loader(url)
    pg = db.postgres
    conv = (lambda row: row) if pg else (lambda row: tuple(sqlite_value(v) for v in row))
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    # The org tree: communities of grids of buildings of units, enough units for the volunteers.
    n_units = max(1, -(-volunteers // VOLUNTEERS_PER_UNIT))
    per_community = GRIDS_PER_COMMUNITY * BUILDINGS_PER_GRID * UNITS_PER_BUILDING
    n_communities = max(1, -(-n_units // per_community))
    next_org = db.next_id("org_unit")
    org_rows, unit_ids, unit_paths = [], [], {}
    lv = ctx["levels"]

    def node(parent_path, parent_id, level, name):
        nonlocal next_org
        oid = next_org
        next_org += 1
        path = f"{parent_path}{oid}/"
        org_rows.append((oid, parent_id, lv[level], name, path))
        return oid, path

    for c in range(n_communities):
        cid, cpath = node(ctx["street_path"], ctx["street_id"], "community", f"城区{c + 1}社区")
        for g in range(GRIDS_PER_COMMUNITY):
            gid, gpath = node(cpath, cid, "grid", f"城区{c + 1}-{g + 1}网格")
            for b in range(BUILDINGS_PER_GRID):
                bid, bpath = node(gpath, gid, "building", f"{b + 1}号楼")
                for u in range(UNITS_PER_BUILDING):
                    uid, upath = node(bpath, bid, "unit", f"{u + 1}单元")
                    unit_ids.append(uid)
                    unit_paths[uid] = upath
    db.write("org_unit", ("id", "parent_id", "level_id", "name", "path"), map(conv, org_rows))

    # Volunteers, their roles and accounts.
    first_user = db.next_id("user_account")
    first_grant = db.next_id("role_grant")
    first_account = db.next_id("account")
    user_unit = [unit_ids[i % len(unit_ids)] for i in range(volunteers)]
    created = now - timedelta(days=400)

    def users():
        for i in range(volunteers):
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 3 else "")
            yield conv((first_user + i, f"v{i + 1:07d}", ctx["password_hash"], name, None, user_unit[i],
                        TITLES[i % len(TITLES)], True, created, 0, False))

    db.write("user_account", ("id", "username", "password_hash", "full_name", "phone", "org_unit_id", "title",
                              "is_active", "created_at", "session_version", "must_change_password"), users())
    db.write("role_grant", ("id", "user_id", "role", "org_unit_id", "merchant_id"),
             (conv((first_grant + i, first_user + i, "volunteer", user_unit[i], None)) for i in range(volunteers)))

    # The ledger: entries/2 credits, over the twelve months before this one, in time order.
    n_transfers = entries // 2
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = timedelta(days=365).total_seconds()
    origin = month_start - timedelta(days=365)
    # Some volunteers are far more active than others (a long tail), as in the demo street.
    weights = [rng.paretovariate(1.5) for _ in range(volunteers)]
    who = rng.choices(range(volunteers), weights=weights, k=n_transfers)
    when = sorted(rng.random() * span for _ in range(n_transfers))
    points = ctx["points"]
    vol_balance = [0] * volunteers
    issuance_balance = ctx["issuance_balance"]
    first_activity = db.next_id("activity")
    first_transfer = db.next_id("transfer")
    first_entry = db.next_id("entry")
    first_lot = db.next_id("point_lot")

    activities, transfers, entry_rows, lot_rows = [], [], [], []
    months: dict[tuple, list[int]] = {}  # the volunteers' monthly totals, as the ledger keeps them
    years: dict[tuple, list[int]] = {}  # and their yearly totals of approved activities
    for k in range(n_transfers):
        v = who[k]
        at = origin + timedelta(seconds=when[k])
        aid, tid = first_activity + k, first_transfer + k
        activities.append(conv((aid, first_user + v, user_unit[v], ctx["rule_version_id"], ctx["rule_id"],
                                (at + timedelta(hours=8)).date(), "recorded", "approved", points, points,
                                at, ctx["admin_id"], at, ctx["admin_id"])))
        transfers.append(conv((tid, "credit", points, ctx["issuance_id"], first_account + v, "参加会议",
                               aid, f"activity:{aid}", at, ctx["admin_id"])))
        issuance_balance -= points
        vol_balance[v] += points
        entry_rows.append(conv((first_entry + 2 * k, tid, ctx["issuance_id"], -points, issuance_balance)))
        entry_rows.append(conv((first_entry + 2 * k + 1, tid, first_account + v, points, vol_balance[v])))
        # Each credit is a lot (never expiring, as the bench's rule says), untouched so far.
        lot_rows.append(conv((first_lot + k, first_account + v, tid, points, points, (at + timedelta(hours=8)).date())))
        total = months.setdefault((month_of(at.replace(tzinfo=timezone.utc)), first_account + v), [0, 0])
        total[0] += points
        total[1] += 1
        total = years.setdefault((first_user + v, (at + timedelta(hours=8)).year), [0, 0])
        total[0] += points
        total[1] += 1

    db.write("account", ("id", "kind", "org_unit_id", "user_id", "merchant_id", "balance", "held", "earned", "created_at"),
             (conv((first_account + i, "volunteer", None, first_user + i, None, vol_balance[i], 0, vol_balance[i], created))
              for i in range(volunteers)))
    db.write("activity", ("id", "volunteer_id", "org_unit_id", "rule_version_id", "rule_id", "activity_date", "source",
                          "status", "points_requested", "points_credited", "created_at", "created_by_id",
                          "decided_at", "decided_by_id"), activities)
    db.write("transfer", ("id", "kind", "amount", "from_account_id", "to_account_id", "reason", "activity_id",
                          "cause_key", "created_at", "created_by_id"), transfers)
    db.write("entry", ("id", "transfer_id", "account_id", "amount", "balance_after"), entry_rows)
    db.write("point_lot", ("id", "account_id", "transfer_id", "amount", "remaining", "earned_on"), lot_rows)
    db.write("account_month", ("month", "account_id", "kind", "amount", "transfers"),
             (conv((m, acc, "credit", amount, n)) for (m, acc), (amount, n) in sorted(months.items())))
    db.write("volunteer_year", ("volunteer_id", "year", "points", "centi_hours", "activities"),
             (conv((vid, y, amount, 0, n)) for (vid, y), (amount, n) in sorted(years.items())))
    # The issuance account's balance moves with the credits: an UPDATE of a balance, as credit() does.
    db.conn.execute(
        f"UPDATE account SET balance = {issuance_balance} WHERE id = {ctx['issuance_id']}"
    )
    db.fix_sequences(("org_unit", "user_account", "role_grant", "account", "activity", "transfer", "entry", "point_lot"))
    db.commit()
    if pg:
        db.conn.autocommit = True
        db.conn.execute("VACUUM ANALYZE")
    loaded = time.monotonic()
    total_entries = db.scalar("SELECT count(*) FROM entry")
    return {
        "volunteers": volunteers, "org_units": len(org_rows), "transfers": n_transfers,
        "entries_total": total_entries, "seed_seconds": round(seeded - started, 1),
        "bulk_seconds": round(loaded - seeded, 1),
        "rows_per_second": round((len(org_rows) + 2 * volunteers + volunteers + 2 * n_transfers + 2 * n_transfers)
                                 / max(loaded - seeded, 1e-9)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="SQLAlchemy or libpq URL of the database to (re)create")
    p.add_argument("--volunteers", type=int, default=100_000)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    url = args.url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    out = generate(url, args.volunteers, args.entries, args.seed)
    print(" ".join(f"{k}={v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
