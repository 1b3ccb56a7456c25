"""Run the benchmarks against gunicorn and print each figure next to a reference from the same run.

    python bench/run.py --large postgresql://postgres@127.0.0.1:5432/points_bench_large \
        --small postgresql://postgres@127.0.0.1:5432/points_bench_small \
        --sqlite sqlite:////abs/path/instance/bench_small.db [--seconds 15] [--clients 32]

The databases are built by ``bench/generate.py`` (``make bench`` does both). The app runs under
gunicorn with ``gunicorn.conf.py`` on a free port of 127.0.0.1; the load comes from this process
(threads, one keep-alive HTTP connection each). Every benchmark runs for a bounded time and stops
by itself; gunicorn is stopped at the end, whatever happens. Each result is printed and appended
as a dated row to docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BIN = os.path.dirname(sys.executable)
RESULTS = os.path.join(ROOT, "docs", "PERFORMANCE.md")


# --- the machine and the reference ------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} × {model}"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def pgbench_tps(url: str, clients: int, seconds: int) -> float:
    """Run pgbench's TPC-B-like script in a scratch database on the same server; return its TPS."""
    import psycopg

    base = libpq(url).rsplit("/", 1)[0]
    name = f"pgbench_ref_{os.getpid()}"
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        target = base + "/" + name
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", target], check=True, capture_output=True)
        out = subprocess.run(
            ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), target],
            check=True, capture_output=True, text=True,
        ).stdout
        return float(re.search(r"tps = ([0-9.]+)", out).group(1))
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with the production config on a free port; stopped on exit."""

    def __init__(self, url: str, workers: int | None = None):
        self.url = url
        self.port = free_port()
        env = dict(os.environ, DATABASE_URL=url, GUNICORN_BIND=f"127.0.0.1:{self.port}",
                   GUNICORN_LOGLEVEL="warning", POINTS_LOGIN_LIMIT="100000 per minute",
                   POINTS_LOGIN_ACCOUNT_LIMIT="100000 per minute")
        if workers:
            env["GUNICORN_WORKERS"] = str(workers)
        os.makedirs(os.path.join(ROOT, "instance"), exist_ok=True)
        # The server's own log (refused vouchers are logged as warnings: half the codes are tried twice).
        self.log = open(os.path.join(ROOT, "instance", "bench-gunicorn.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "gunicorn"), "-c", os.path.join(ROOT, "gunicorn.conf.py"), "pointsapp:create_app()"],
            cwd=ROOT, env=env, start_new_session=True, stdout=self.log, stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                c.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def workers_memory_mb(self) -> list[tuple[float, float]]:
        """Return (RSS, PSS) of each worker: PSS counts pages shared with other processes in part."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        sizes = []
        for pid in out:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    fields = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in fh if line.split(":")[0] in ("Rss", "Pss")}
                sizes.append((fields["Rss"], fields["Pss"]))
            except (OSError, KeyError):
                pass
        return sizes

    def cpu_seconds(self) -> dict:
        """CPU seconds used so far by the workers, by every PostgreSQL process, by this process
        (the load) and by the whole machine; with the wall clock, for ``cpu_per_request``."""
        workers = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        postgres = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()
        load = os.times()
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        return {"app": sum(_process_cpu(p) for p in workers), "postgres": sum(_process_cpu(p) for p in postgres),
                "load": load.user + load.system, "busy": (sum(fields[:3]) + sum(fields[5:8])) / tick,
                "wall": time.monotonic()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _process_cpu(pid: str) -> float:
    """User and system CPU seconds of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(before: dict, after: dict, requests: int) -> str:
    """Where the CPU went, in ms per request: the app's workers, PostgreSQL, the load generator,
    and how busy the machine's cores were meanwhile. The throughput goals are a budget of CPU per
    request: 0.40 × pgbench on 2 cores leaves 2,000 ms / (0.40 × pgbench tps) for all three."""
    n = max(requests, 1)
    cores = os.cpu_count() or 1
    busy = (after["busy"] - before["busy"]) / (cores * (after["wall"] - before["wall"]))
    return (f"CPU per request: app {1000 * (after['app'] - before['app']) / n:.1f} ms, PostgreSQL "
            f"{1000 * (after['postgres'] - before['postgres']) / n:.1f} ms, load {1000 * (after['load'] - before['load']) / n:.1f} ms; "
            f"cores {100 * busy:.0f} % busy")


class WaitSampler:
    """What the app's PostgreSQL connections are doing, sampled every 20 ms while a load runs:
    waiting for a row lock, in a transaction waiting for the app, running a statement, or idle."""

    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(libpq(url), autocommit=True)
        self.database = libpq(url).rsplit("/", 1)[1].split("?")[0]
        self.counts: dict[str, int] = {}
        self.samples = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        query = ("SELECT state, wait_event_type FROM pg_stat_activity WHERE datname = %s "
                 "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        while not self.done.wait(0.02):
            for state, wait in self.conn.execute(query, (self.database,)):
                kind = ("waiting for a lock" if wait == "Lock" else "in a transaction, waiting for the app"
                        if state == "idle in transaction" else "idle" if state == "idle" else "in PostgreSQL")
                self.counts[kind] = self.counts.get(kind, 0) + 1
            self.samples += 1

    def stop(self) -> str:
        self.done.set()
        self.thread.join()
        self.conn.close()
        n = max(self.samples, 1)
        parts = [f"{self.counts.get(k, 0) / n:.1f} {k}" for k in
                 ("waiting for a lock", "in a transaction, waiting for the app", "in PostgreSQL", "idle")]
        return "the app's connections on average: " + ", ".join(parts)


# --- the load -------------------------------------------------------------------------------


def send(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None) -> tuple[int, bytes]:
    """One request on a keep-alive connection (``body`` sent as JSON); return its status and
    payload, or (0, b"") when the connection failed (it is closed, and reopened by the next)."""
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (http.client.HTTPException, OSError):
        conn.close()
        return 0, b""


class Load:
    """``clients`` threads, each with one keep-alive connection, calling ``step`` until time is up."""

    def __init__(self, port: int, clients: int, seconds: float, step, server: "Server | None" = None,
                 sample_waits: bool = True):
        self.port, self.clients, self.seconds, self.step = port, clients, seconds, step
        self.server = server
        self.sample_waits = sample_waits
        self.cpu = ""
        self.waits = ""
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.done = 0
        self.lock = threading.Lock()

    def run(self) -> "Load":
        deadline = time.monotonic() + self.seconds
        start = time.monotonic()

        def worker(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            lat, stat, n = [], {}, 0

            def call(method, path, body=None, headers=None):
                t0 = time.perf_counter()
                status, payload = send(conn, method, path, body, headers)
                if status:  # a connection that failed is counted, not timed
                    lat.append(time.perf_counter() - t0)
                stat[status] = stat.get(status, 0) + 1
                return status, payload

            while time.monotonic() < deadline:
                if self.step(i, call) is False:
                    break
                n += 1
            conn.close()
            with self.lock:
                self.latencies.extend(lat)
                for k, v in stat.items():
                    self.statuses[k] = self.statuses.get(k, 0) + v
                self.done += n

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.clients)]
        cpu_before = self.server.cpu_seconds() if self.server else None
        sampler = (WaitSampler(self.server.url) if self.sample_waits and self.server
                   and self.server.url.startswith("postgresql") else None)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.elapsed = time.monotonic() - start
        if cpu_before is not None:
            self.cpu = cpu_per_request(cpu_before, self.server.cpu_seconds(), sum(self.statuses.values()))
        if sampler is not None:
            self.waits = sampler.stop()
        return self

    def rate(self) -> float:
        """Requests answered with a 2xx status, per second."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300) / self.elapsed

    def pct(self, p: float) -> float:
        return percentile_ms(self.latencies, p)


def percentile_ms(seconds: list[float], p: float) -> float:
    """The ``p`` quantile (nearest rank) of latencies in seconds, in milliseconds; nan for none."""
    xs = sorted(seconds)
    return xs[max(0, math.ceil(len(xs) * p) - 1)] * 1000 if xs else float("nan")


class PacedLoad:
    """Requests sent at a fixed rate (open loop) for ``seconds``, by ``threads`` threads with one
    keep-alive connection each: request k is due at start + k / rate, whether or not the ones
    before it were answered. Its latency counts from when it was due, so time spent waiting for
    a free thread is counted too (a closed loop would instead slow down with the server and hide
    that wait). Tells what a page costs a person when the server is not saturated. ``lag`` holds
    how late each request was sent: if the load generator itself could not keep pace, it shows
    there, not hidden in the server's figures."""

    def __init__(self, port: int, rate: float, seconds: float, step, threads: int = 8):
        self.port, self.rate, self.seconds, self.step, self.threads = port, rate, seconds, step, threads
        self.latencies: list[float] = []  # answered requests only
        self.lag: list[float] = []
        self.failed = 0
        self.lock = threading.Lock()

    def run(self) -> "PacedLoad":
        total = int(self.rate * self.seconds)
        counter = iter(range(total))
        threads = [threading.Thread(target=self._worker, args=(i, counter)) for i in range(self.threads)]
        self.start = time.perf_counter() + 0.05
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self

    def _worker(self, i: int, counter) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        lat, lag, failed = [], [], 0
        sent = [0.0]

        def call(method, path, body=None, headers=None):
            sent[0] = time.perf_counter()
            return send(conn, method, path, body, headers)

        while True:
            with self.lock:
                k = next(counter, None)
            if k is None:
                break
            due = self.start + k / self.rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ok = self.step(i, call)
            done = time.perf_counter()
            lag.append(sent[0] - due)
            if ok:
                lat.append(done - due)
            else:
                failed += 1
        conn.close()
        with self.lock:
            self.latencies.extend(lat)
            self.lag.extend(lag)
            self.failed += failed

    def pct(self, p: float) -> float:
        return percentile_ms(self.latencies, p)

    def summary(self) -> str:
        return (f"p95 {self.pct(0.95):.1f} ms, p99 {self.pct(0.99):.1f} ms, sent late by p99 "
                f"{percentile_ms(self.lag, 0.99):.1f} ms, {self.failed} failed")


# --- fixtures made in the database before each benchmark ------------------------------------


class Fixtures:
    def __init__(self, url: str):
        from pointsapp import create_app

        self.app = create_app({"DATABASE_URL": url})

    def ctx(self):
        return self.app.app_context()

    def token(self, username: str, name: str | None = None, **kw) -> str:
        from sqlalchemy import select

        from pointsapp.domain.tokens import create_token
        from pointsapp.extensions import db
        from pointsapp.models import User

        with self.ctx():
            user = db.session.scalar(select(User).where(User.username == username))
            _tok, secret = create_token(user, name=name or f"bench {uuid.uuid4().hex[:8]}", **kw)
            db.session.commit()
            return secret

    def fund(self, points: int) -> None:
        """Record funding, as the street admin would, so that every budget can cover ``points``
        more: each crediting run spends what the last one left (the generator funds a year's)."""
        from sqlalchemy import select

        from pointsapp.domain import budgets
        from pointsapp.domain.clock import local_today
        from pointsapp.extensions import db
        from pointsapp.models import Budget, User

        with self.ctx():
            admin = db.session.scalar(select(User).where(User.username == "jiedao"))
            for budget in db.session.scalars(select(Budget).order_by(Budget.id)).all():
                state = budgets.status(budget)
                short = points - (state.capacity - state.used)
                if short > 0:
                    budgets.record_funding(admin, budget.org_unit, fen=short * state.fen_per_point, source="street_grant",
                                           funded_on=local_today(), note="benchmark run", key=uuid.uuid4().hex)
            db.session.commit()

    def volunteers(self, n: int, offset: int = 0, busiest: bool = False,
                   undecided_on: date | None = None) -> list[tuple[int, str]]:
        """Return (id, username) of generated volunteers: the busiest, or in id order from ``offset``;
        with ``undecided_on``, only those with no decided activity of that day (a run before on
        the same database would otherwise approve claims that the daily cap credits nothing)."""
        from sqlalchemy import exists, select

        from pointsapp.extensions import db
        from pointsapp.models import Account, Activity, User

        with self.ctx():
            q = select(User.id, User.username).join(Account, Account.user_id == User.id).where(
                User.username.like("v%"))
            if undecided_on is not None:
                q = q.where(~exists().where(Activity.volunteer_id == User.id, Activity.activity_date == undecided_on,
                                            Activity.status != "pending"))
            q = (q.order_by(Account.balance.desc(), User.id) if busiest else q.order_by(User.id)).offset(offset)
            return [tuple(r) for r in db.session.execute(q.limit(n))]

    def pending_claims(self, volunteer_ids: list[int], day: date) -> list[int]:
        """Insert one pending meeting claim per volunteer, as submit_claim would; return their ids."""
        from sqlalchemy import insert, select

        from pointsapp.extensions import db
        from pointsapp.models import Activity, PointRuleVersion, User

        with self.ctx():
            v = db.session.scalar(select(PointRuleVersion).where(PointRuleVersion.category == "meeting")
                                  .order_by(PointRuleVersion.id.desc()))
            units = dict(db.session.execute(select(User.id, User.org_unit_id).where(User.id.in_(volunteer_ids))).all())
            now = datetime.now(timezone.utc)
            first = (db.session.scalar(select(db.func.max(Activity.id))) or 0) + 1
            db.session.execute(insert(Activity), [
                dict(volunteer_id=vid, org_unit_id=units[vid], rule_version_id=v.id, rule_id=v.rule_id,
                     activity_date=day, source="claim", status="pending", points_requested=v.points,
                     points_credited=0, created_at=now, created_by_id=vid, note="参加网格议事会")
                for vid in volunteer_ids
            ])
            db.session.commit()
            return list(db.session.scalars(select(Activity.id).where(Activity.id >= first, Activity.status == "pending")
                                           .order_by(Activity.id)))

    def credited_among(self, activity_ids: list[int]) -> str:
        """Say how many of these claims were approved, and how many of those credited points."""
        from sqlalchemy import func, select

        from pointsapp.extensions import db
        from pointsapp.models import Activity

        with self.ctx():
            approved, credited = db.session.execute(
                select(func.count(), func.count().filter(Activity.points_credited > 0))
                .where(Activity.id.in_(activity_ids), Activity.status == "approved")
            ).one()
        return f"{credited} of {approved} approvals credited points"

    def vouchers(self, volunteer_ids: list[int]) -> tuple[list[str], str]:
        """Issue one voucher per volunteer for a new unlimited reward; return the codes and the cashier."""
        from sqlalchemy import select

        from pointsapp.domain import vouchers
        from pointsapp.extensions import db
        from pointsapp.models import RoleGrant, User

        with self.ctx():
            grant = db.session.scalar(select(RoleGrant).join(User).where(User.username == "chaoshi1",
                                                                         RoleGrant.role == "merchant_staff"))
            admin = db.session.scalar(select(User).where(User.username == "jiedao"))
            reward = vouchers.create_reward(admin, grant.merchant_id, vouchers.RewardTerms(
                name=f"压测礼品 {uuid.uuid4().hex[:6]}", price=1))
            db.session.commit()
            codes = []
            for vid in volunteer_ids:
                issued = vouchers.issue_voucher(db.session.get(User, vid), reward.id)
                db.session.commit()
                codes.append(vouchers.token_for(issued.voucher.nonce))
            return codes, grant.merchant_id

    def captures_per_voucher_max(self) -> int:
        from sqlalchemy import func, select

        from pointsapp.extensions import db
        from pointsapp.models import Transfer

        with self.ctx():
            sub = select(func.count().label("n")).where(Transfer.kind == "capture").group_by(Transfer.voucher_id).subquery()
            return db.session.scalar(select(func.coalesce(func.max(sub.c.n), 0)))


# --- the results file ---------------------------------------------------------------------------


def record(rows: list[dict]) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    m = machine()
    lines = []
    for r in rows:
        print(f"{r['name']}: {r['figure']} | reference {r['reference']} | ratio {r['ratio']} | goal {r['goal']} | "
              f"{'MET' if r['met'] else 'NOT MET'}\n    reproduce: {r['command']}")
        lines.append(f"| {stamp} | {m} | {r['name']} | {r['figure']} | {r['reference']} | {r['ratio']} | "
                     f"{r['goal']} | {'yes' if r['met'] else '**no**'} | `{r['command']}` |\n")
    with open(RESULTS, encoding="utf-8") as fh:
        text = fh.read()
    marker = "<!-- results: bench/run.py appends rows above this line -->"
    text = text.replace(marker, "".join(lines) + marker)
    with open(RESULTS, "w", encoding="utf-8") as fh:
        fh.write(text)


# --- the benchmarks ---------------------------------------------------------------------------


def bench_credit(fx: Fixtures, srv: Server, clients: int, seconds: int, offset: int, label: str):
    """Approve pending claims through the API, each with its own idempotency key; return approvals/s."""
    day = date.today() - timedelta(days=1)
    vols = fx.volunteers(max(2000, clients * 200), offset=offset, undecided_on=day)
    if len(vols) < clients * 10:
        raise SystemExit(f"{label}: only {len(vols)} volunteers of this database have no decided claim of {day} "
                         "(each run approves claims of up to 2,000 of them): rebuild it (make bench-data) "
                         "or run again tomorrow")
    ids = fx.pending_claims([v for v, _ in vols], day)
    fx.fund(10 * len(ids))  # a meeting's points
    token = fx.token("jiedao")
    it = iter(ids)
    lock = threading.Lock()

    def step(i, call):
        with lock:
            aid = next(it, None)
        if aid is None:
            return False
        status, _ = call("POST", f"/api/v1/claims/{aid}/approve", None,
                         {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())})
        return status != 0

    load = Load(srv.port, clients, seconds, step, server=srv).run()
    ok = load.statuses.get(200, 0)
    load.credited = fx.credited_among(ids)
    return ok / load.elapsed, load


def bench_credit_batches(fx: Fixtures, srv: Server, clients: int, seconds: int, offset: int, label: str,
                         size: int = 50):
    """Approve pending claims through the API ``size`` at a time (a verifier's "approve the
    selected"), each request with its own idempotency key; return claims approved per second."""
    from sqlalchemy import func, select

    from pointsapp.extensions import db
    from pointsapp.models import Activity

    # Not bench_credit's day; the first day back with enough volunteers none of whose activities
    # of that day is decided, so that runs after runs on the same database still credit.
    vols, day = [], None
    for back in range(2, 40):
        on = date.today() - timedelta(days=back)
        found = fx.volunteers(20_000, offset=offset, undecided_on=on)
        if len(found) > len(vols):
            vols, day = found, on
        if len(vols) >= 15_000:
            break
    if len(vols) < clients * size * 2:
        raise SystemExit(f"{label}: only {len(vols)} volunteers of this database have no decided claim of {day}: "
                         "rebuild it (make bench-data) or run again tomorrow")
    ids = fx.pending_claims([v for v, _ in vols], day)
    fx.fund(10 * len(ids))  # a meeting's points
    token = fx.token("jiedao")
    batches = iter([ids[i:i + size] for i in range(0, len(ids), size)])
    lock = threading.Lock()

    def step(i, call):
        with lock:
            batch = next(batches, None)
        if batch is None:
            return False
        status, _ = call("POST", "/api/v1/claims/approve", {"activity_ids": batch},
                         {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())})
        return status != 0

    load = Load(srv.port, clients, seconds, step, server=srv).run()
    with fx.ctx():
        approved = db.session.scalar(select(func.count()).where(Activity.id.in_(ids), Activity.status == "approved"))
    load.credited = fx.credited_among(ids)
    return approved / load.elapsed, load


def bench_redeem(fx: Fixtures, srv: Server, clients: int, seconds: int, n: int):
    """Look up and confirm vouchers; every code is tried by two tills at once. Return redemptions/s."""
    # Volunteers with points, but not the busiest few: the read benchmarks use those, with no vouchers.
    vols = fx.volunteers(n, offset=1000, busiest=True)
    codes, merchant_id = fx.vouchers([v for v, _ in vols])
    token = fx.token("chaoshi1")
    queue = [c for c in codes for _ in (0, 1)]
    it = iter(queue)
    lock = threading.Lock()
    wins: dict[str, int] = {}
    op_latency: list[float] = []

    def step(i, call):
        with lock:
            code = next(it, None)
        if code is None:
            return False
        auth = {"Authorization": f"Bearer {token}"}
        t0 = time.perf_counter()
        s1, _ = call("POST", "/api/v1/redemptions/lookup", {"code": code, "merchant_id": merchant_id}, auth)
        if s1 == 200:
            s2, _ = call("POST", "/api/v1/redemptions", {"code": code, "merchant_id": merchant_id},
                         dict(auth, **{"Idempotency-Key": str(uuid.uuid4())}))
            with lock:
                op_latency.append(time.perf_counter() - t0)
                if s2 == 201:
                    wins[code] = wins.get(code, 0) + 1
        return True

    load = Load(srv.port, clients, seconds, step, server=srv).run()
    doubles = sum(1 for v in wins.values() if v > 1)
    db_max = fx.captures_per_voucher_max()
    return len(wins) / load.elapsed, load, doubles, db_max, len(queue)


def login(port: int, username: str, password: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = resp.getheader("Set-Cookie", "").split(";", 1)[0]
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    conn.request("POST", "/login", body=urlencode({"csrf_token": csrf, "username": username, "password": password}),
                 headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 302:
        raise RuntimeError(f"login of {username} failed: {resp.status}")
    return resp.getheader("Set-Cookie", "").split(";", 1)[0]


def bench_reads(fx: Fixtures, srv: Server, clients: int, seconds: int):
    """The volunteer home page and the history API for the busiest volunteers: ``clients``
    closed-loop connections, then at half the rate they reached, paced; return the two loads
    (each with its paced one as ``.paced``)."""
    from pointsapp.demo import DEMO_PASSWORD

    vols = fx.volunteers(clients, busiest=True)
    cookies = [login(srv.port, u, DEMO_PASSWORD) for _, u in vols]
    tokens = [fx.token(u) for _, u in vols]
    home = Load(srv.port, clients, seconds, lambda i, call: call("GET", "/volunteer/", None,
                                                                 {"Cookie": cookies[i]})[0] == 200, srv,
                sample_waits=False).run()
    hist = Load(srv.port, clients, seconds, lambda i, call: call(
        "GET", "/api/v1/me/history?limit=20", None, {"Authorization": f"Bearer {tokens[i]}"})[0] == 200, srv,
        sample_waits=False).run()
    # The same requests at half the rate the closed loop reached: the server busy, not saturated.
    n = len(vols)
    home.paced = PacedLoad(srv.port, home.rate() / 2, seconds, lambda i, call: call(
        "GET", "/volunteer/", None, {"Cookie": cookies[i % n]})[0] == 200).run()
    hist.paced = PacedLoad(srv.port, hist.rate() / 2, seconds, lambda i, call: call(
        "GET", "/api/v1/me/history?limit=20", None, {"Authorization": f"Bearer {tokens[i % n]}"})[0] == 200).run()
    return home, hist


def bench_bulk(fx: Fixtures, srv: Server, offset: int, rounds: int = 3):
    """Record one meeting for 1,000 attendees (two requests of 500, the API's most); return rows/s."""
    from sqlalchemy import select

    from pointsapp.extensions import db
    from pointsapp.models import PointRuleVersion

    with fx.ctx():
        rule_id = db.session.scalar(select(PointRuleVersion.rule_id).where(PointRuleVersion.category == "meeting"))
    token = fx.token("jiedao")
    rates = []
    for r in range(rounds):
        vols = [v for v, _ in fx.volunteers(1000, offset=offset + r * 1000)]
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        t0 = time.perf_counter()
        for half in (vols[:500], vols[500:]):
            body = json.dumps({"rule_id": rule_id, "activity_date": (date.today() - timedelta(days=2)).isoformat(),
                               "volunteer_ids": half, "note": "街道志愿者大会"})
            conn.request("POST", "/api/v1/attendance", body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4())})
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"attendance refused: {resp.status} {payload[:300]!r}")
        rates.append(1000 / (time.perf_counter() - t0))
        conn.close()
    return sorted(rates)[len(rates) // 2]


def bench_reports(fx: Fixtures, srv: Server, rounds: int = 5):
    """Last month's reports page for the whole street, and a merchant's statement; return median seconds."""
    from sqlalchemy import select

    from pointsapp.demo import DEMO_PASSWORD
    from pointsapp.extensions import db
    from pointsapp.models import OrgUnit, RoleGrant, User

    with fx.ctx():
        street = db.session.scalar(select(OrgUnit.id).where(OrgUnit.parent_id.is_(None)))
        merchant = db.session.scalar(select(RoleGrant.merchant_id).join(User).where(User.username == "chaoshi1"))
    month = (date.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    cookie = login(srv.port, "jiedao", DEMO_PASSWORD)
    out = {}
    for name, path in (("reports", f"/reports/?unit={street}&first={month}&last={month}"),
                       # The statement of the current month: a merchant's months start when it joined.
                       ("statement", f"/settlement/{merchant}")):
        times = []
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        for _ in range(rounds):
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{path}: {resp.status}")
            times.append(time.perf_counter() - t0)
        conn.close()
        out[name] = sorted(times)[len(times) // 2]
    return out, month


def bench_import(fx: Fixtures, rows: int = 1000) -> tuple[float, float]:
    """Import ``rows`` people (each gets an activation code) in-process, then roll back; return rows/s.

    Also return the seconds one argon2id hash takes: what each row cost when imports hashed an
    initial password.
    """
    from sqlalchemy import select

    from pointsapp.domain.imports import import_people, template_headers
    from pointsapp.domain.people import hash_password
    from pointsapp.extensions import db
    from pointsapp.models import User

    tag = uuid.uuid4().hex[:6]
    with fx.ctx():
        table = [template_headers(True)]
        for i in range(rows):
            b, u = divmod(i, 20)
            table.append([f"导入{tag}社区", "第1网格", f"{b + 1}号楼", f"{u % 5 + 1}单元", f"imp{tag}{i}", "王小明",
                          "", "单元长", f"Bench-{tag}-pw{i}"][: len(table[0])])
        admin = db.session.scalar(select(User).where(User.username == "jiedao"))
        t0 = time.perf_counter()
        result = import_people(admin, table)
        took = time.perf_counter() - t0
        db.session.rollback()
        if result.errors:
            raise RuntimeError(f"import refused rows: {result.errors[:3]}")
        t1 = time.perf_counter()
        for _ in range(5):
            hash_password("Bench-password-1")
        one_hash = (time.perf_counter() - t1) / 5
    return rows / took, one_hash


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--large", required=True)
    p.add_argument("--small", required=True)
    p.add_argument("--sqlite", required=True)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--read-clients", type=int, default=4)
    p.add_argument("--batch-clients", type=int, default=4,
                   help="connections approving claims 50 at a time (each holds the street's issuance account "
                        "for its whole batch)")
    p.add_argument("--only", default="credit,batches,redeem,reads,bulk,import,reports,rss,sqlite,sqlite-batches")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    rows: list[dict] = []
    c, s = args.clients, args.seconds

    def row(name, figure, reference, ratio, goal, met):
        rows.append(dict(name=name, figure=figure, reference=reference, ratio=ratio, goal=goal, met=met,
                         command=cmd))

    large = Fixtures(args.large)
    try:
        with Server(args.large) as srv:
            fresh = max(r for r, _ in srv.workers_memory_mb())
            pg_ref = None
            if {"credit", "batches", "redeem"} & only:
                pg_ref = pgbench_tps(args.large, c, s)
            if "credit" in only:
                tps, load = bench_credit(large, srv, c, s, offset=0, label="PostgreSQL")
                row(f"(a) crediting: claim approvals via API, PostgreSQL, {c} connections",
                    f"{tps:.0f} /s (p99 {load.pct(0.99):.0f} ms; statuses {load.statuses}; {load.credited}; {load.cpu}; {load.waits})",
                    f"pgbench TPC-B {pg_ref:.0f} tps", f"{tps / pg_ref:.2f}", "≥ 0.40", tps / pg_ref >= 0.40)
            if "batches" in only:
                b = args.batch_clients
                ref = pg_ref if b == c else pgbench_tps(args.large, b, s)
                tps, load = bench_credit_batches(large, srv, b, s, offset=0, label="PostgreSQL")
                row(f"(a) crediting: claims approved 50 at a time via POST /claims/approve, PostgreSQL, {b} connections",
                    f"{tps:.0f} claims/s ({load.rate():.1f} requests/s; request p99 {load.pct(0.99):.0f} ms; "
                    f"statuses {load.statuses}; {load.credited}; per request: {load.cpu}; {load.waits})",
                    f"pgbench TPC-B {ref:.0f} tps ({b} clients)", f"{tps / ref:.2f}", "≥ 0.40", tps / ref >= 0.40)
            if "redeem" in only:
                tps, load, doubles, db_max, tried = bench_redeem(large, srv, c, s, n=max(200, 40 * s * 2))
                p99 = load.pct(0.99)
                row(f"(b) redemption: lookup + confirm via API, {c} connections, each code at 2 tills",
                    f"{tps:.0f} redemptions/s; request p99 {p99:.0f} ms; double redemptions {doubles} "
                    f"(max captures per voucher in DB {db_max}; {load.cpu}; {load.waits})",
                    f"pgbench TPC-B {pg_ref:.0f} tps", f"{tps / pg_ref:.2f}",
                    "≥ 0.40, p99 < 50 ms, 0 doubles", tps / pg_ref >= 0.40 and p99 < 50 and doubles == 0 and db_max <= 1)
            if "bulk" in only:
                rate = bench_bulk(large, srv, offset=50_000)
                row("(d) bulk: one meeting, 1,000 attendees via POST /attendance (2 × 500)",
                    f"{rate:.0f} rows/s", "—", "—", "≥ 20,000 rows/s", rate >= 20000)
            if "reads" in only:
                home_l, hist_l = bench_reads(large, srv, args.read_clients, s)
            if "import" in only:
                rate, one_hash = bench_import(large)
                row("(d) people import: 1,000 rows with activation codes, in-process (rolled back)",
                    f"{rate:.0f} rows/s", f"one argon2id hash {one_hash * 1000:.0f} ms", f"{rate * one_hash:.2f}",
                    "≥ 20,000 rows/s", rate >= 20000)
            if "reports" in only:
                with large.ctx():
                    from pointsapp.extensions import db
                    n_large = db.session.scalar(db.text("SELECT count(*) FROM entry"))
                took, month = bench_reports(large, srv)
                for key, label in (("reports", f"reports page, whole street, month {month}"),
                                   ("statement", "merchant settlement statement, this month")):
                    row(f"(g) {label}, median of 5", f"{took[key] * 1000:.0f} ms at {n_large:,} entries",
                        "—", "—", "< 1 s", took[key] < 1)
            if "rss" in only:
                mem = srv.workers_memory_mb()
                rss = max(r for r, _ in mem)
                row("(e) gunicorn worker RSS after the load",
                    f"max {rss:.0f} MB RSS over {len(mem)} workers (PSS max {max(p for _, p in mem):.0f} MB)",
                    f"{fresh:.0f} MB RSS of a fresh worker", f"{rss / fresh:.2f}", "< 100 MB", rss < 100)
        if "reads" in only:
            small = Fixtures(args.small)
            with Server(args.small) as srv:
                home_s, hist_s = bench_reads(small, srv, args.read_clients, s)
            with large.ctx():
                from pointsapp.extensions import db
                n_large = db.session.scalar(db.text("SELECT count(*) FROM entry"))
            with small.ctx():
                n_small = db.session.scalar(db.text("SELECT count(*) FROM entry"))
            for name, a, b in (("volunteer home page", home_s, home_l), ("history API", hist_s, hist_l)):
                ps, pl = a.pct(0.95), b.pct(0.95)
                row(f"(c) {name} p95, busiest volunteers, {args.read_clients} connections",
                    f"{pl:.1f} ms at {n_large:,} entries ({b.rate():.0f} requests/s; {b.cpu}; at half that rate, "
                    f"paced by 8 threads: {b.paced.summary()})",
                    f"{ps:.1f} ms at {n_small:,} entries ({a.rate():.0f} requests/s; at half that rate, paced: "
                    f"{a.paced.summary()})",
                    f"{pl / ps:.2f}", "p95 < 20 ms; ratio ≤ 1.30", pl < 20 and pl / ps <= 1.30)
        if "sqlite" in only:
            lite = Fixtures(args.sqlite)
            with Server(args.sqlite) as srv:
                tps, load = bench_credit(lite, srv, 8, s, offset=0, label="SQLite")
            row("(f) crediting: claim approvals via API, SQLite, 8 connections",
                f"{tps:.0f} /s (p99 {load.pct(0.99):.0f} ms; statuses {load.statuses}; {load.credited}; {load.cpu})", "—", "—",
                "≥ 1,000 /s", tps >= 1000)
        if "sqlite-batches" in only:
            lite = Fixtures(args.sqlite)
            with Server(args.sqlite) as srv:
                tps, load = bench_credit_batches(lite, srv, args.batch_clients, s, offset=0, label="SQLite")
            row(f"(f) crediting: claims approved 50 at a time via POST /claims/approve, SQLite, "
                f"{args.batch_clients} connections",
                f"{tps:.0f} claims/s ({load.rate():.1f} requests/s; request p99 {load.pct(0.99):.0f} ms; "
                f"statuses {load.statuses}; {load.credited}; per request: {load.cpu})", "—", "—",
                "≥ 1,000 /s", tps >= 1000)
    finally:
        if rows:
            record(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
