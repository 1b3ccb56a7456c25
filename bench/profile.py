"""Profile one path in-process with pyinstrument: ``python bench/profile.py --url URL approve|redeem|history|home|attendance|reports``.

Prints pyinstrument's call tree of ``--n`` requests made through Flask's test client, so the time
spent in the app (not in HTTP or gunicorn) shows, with the database it would run against, and
the SQL statements and transactions (commits and rollbacks that ended one) per request, counted
with SQLAlchemy events. ``--no-profile`` times the requests without pyinstrument's overhead.
``--cprofile`` lists the functions with the most time of their own instead (``PROFILE_SORT``,
``PROFILE_TOP``; ``PROFILE_DUMP=file`` also writes the statistics for ``pstats``). Times move by
±30 % on a shared machine; instructions do not:
``valgrind --tool=callgrind --instr-atstart=no python bench/profile.py ... --callgrind approve``
counts those of the timed requests alone (valgrind prints the total as "Collected").
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Fixtures  # noqa: E402


class SqlCounter:
    """Count statements and finished transactions on every connection of an engine."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.statements = 0
        self.transactions = 0
        self.kinds: Counter = Counter()
        self.seconds: Counter = Counter()  # from sending a statement to its result, per kind
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._stmt)
        event.listen(engine, "after_cursor_execute", self._done)
        event.listen(engine, "commit", self._tx)
        event.listen(engine, "rollback", self._tx)

    @staticmethod
    def _kind(statement: str) -> str:
        return " ".join(statement.split()[:4])[:60]

    def _stmt(self, conn, cursor, statement, params, context, executemany):
        self.statements += 1
        self.kinds[self._kind(statement)] += 1
        self._started = time.perf_counter()

    def _done(self, conn, cursor, statement, params, context, executemany):
        self.seconds[self._kind(statement)] += time.perf_counter() - self._started

    def _tx(self, conn):
        self.transactions += 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--offset", type=int, default=90000)
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--statements", action="store_true", help="list the statements of the timed requests")
    p.add_argument("--cprofile", action="store_true",
                   help="cProfile instead of pyinstrument: the functions with the most time of their own")
    p.add_argument("--callgrind", action="store_true",
                   help="under valgrind --tool=callgrind --instr-atstart=no: count the instructions of the timed "
                        "requests only (repeatable, unlike times on a shared machine); implies --no-profile")
    p.add_argument("path", choices=("approve", "redeem", "history", "home", "attendance", "reports"))
    args = p.parse_args(argv)
    args.no_profile = args.no_profile or args.callgrind
    from pyinstrument import Profiler

    fx = Fixtures(args.url)
    client = fx.app.test_client()
    if args.path == "approve":
        ids = fx.pending_claims([v for v, _ in fx.volunteers(args.n, offset=args.offset)],
                                date.today() - timedelta(days=1))
        token = fx.token("jiedao")
        calls = [("POST", f"/api/v1/claims/{i}/approve", {"Authorization": f"Bearer {token}",
                                                          "Idempotency-Key": str(uuid.uuid4())}) for i in ids]
    elif args.path == "redeem":
        vols = fx.volunteers(args.n, offset=1000, busiest=True)
        codes, merchant_id = fx.vouchers([v for v, _ in vols])
        token = fx.token("chaoshi1")
        calls = []
        for code in codes:
            calls.append(("POST", "/api/v1/redemptions/lookup", {"Authorization": f"Bearer {token}"},
                          {"code": code, "merchant_id": merchant_id}))
            calls.append(("POST", "/api/v1/redemptions", {"Authorization": f"Bearer {token}",
                                                         "Idempotency-Key": str(uuid.uuid4())},
                          {"code": code, "merchant_id": merchant_id}))
    elif args.path == "attendance":
        from sqlalchemy import select

        from pointsapp.extensions import db
        from pointsapp.models import PointRuleVersion

        with fx.ctx():
            rule_id = db.session.scalar(select(PointRuleVersion.rule_id).where(PointRuleVersion.category == "meeting"))
        token = fx.token("jiedao")
        calls = []
        for i in range(args.n + 1):  # the first one warms up; each meeting has other attendees
            vols = [v for v, _ in fx.volunteers(500, offset=args.offset + 500 * i)]
            body = {"rule_id": rule_id, "activity_date": (date.today() - timedelta(days=3)).isoformat(),
                    "volunteer_ids": vols, "note": "profile"}
            calls.append(("POST", "/api/v1/attendance", {"Authorization": f"Bearer {token}",
                                                         "Idempotency-Key": str(uuid.uuid4())}, body))
    elif args.path in ("home", "reports"):
        from sqlalchemy import select

        from pointsapp.demo import DEMO_PASSWORD
        from pointsapp.extensions import db
        from pointsapp.models import OrgUnit

        if args.path == "home":
            (vid, username), = fx.volunteers(1, busiest=True)
            path = "/volunteer/"
        else:
            username = "jiedao"
            with fx.ctx():
                street = db.session.scalar(select(OrgUnit.id).where(OrgUnit.parent_id.is_(None)))
            month = (date.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
            path = f"/reports/?unit={street}&first={month}&last={month}"
        fx.app.config["WTF_CSRF_ENABLED"] = False
        resp = client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
        assert resp.status_code == 302, resp.status_code
        calls = [("GET", path, {})] * args.n
    else:
        (vid, username), = fx.volunteers(1, busiest=True)
        token = fx.token(username)
        calls = [("GET", "/api/v1/me/history?limit=20", {"Authorization": f"Bearer {token}"})] * args.n
    # One untimed request first: the first of a process loads templates and fills caches.
    warm, calls = calls[:1 if args.path != "redeem" else 2], calls[1 if args.path != "redeem" else 2:]
    for method, path, headers, *body in warm:
        client.open(path, method=method, headers=headers, json=body[0] if body else None)
    with fx.ctx():
        from pointsapp.extensions import db

        counter = SqlCounter(db.engine)
    if args.cprofile:
        here = os.path.dirname(os.path.abspath(__file__))  # this file is named profile.py:
        saved = sys.path[:]  # let cProfile find the standard library's
        sys.path[:] = [d for d in sys.path if os.path.abspath(d or ".") != here]
        try:
            import cProfile
        finally:
            sys.path[:] = saved

        profiler = cProfile.Profile()
        profiler.start, profiler.stop = profiler.enable, profiler.disable
    else:
        profiler = Profiler(interval=0.0005)
    if args.callgrind:
        subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if not args.no_profile:
        profiler.start()
    for method, path, headers, *body in calls:
        resp = client.open(path, method=method, headers=headers, json=body[0] if body else None)
        assert resp.status_code < 300, (resp.status_code, resp.data[:300])
    if not args.no_profile:
        profiler.stop()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if args.callgrind:
        subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], check=True, capture_output=True)
    n = len(calls)
    print(f"{n} requests in {elapsed:.2f} s: {elapsed / n * 1000:.1f} ms each ({cpu / n * 1000:.1f} ms of this "
          f"process's CPU); "
          f"{counter.statements / n:.1f} statements and {counter.transactions / n:.1f} transactions per request")
    if args.statements:
        print("  per request: count, ms from sending to result, statement")
        for stmt, k in counter.kinds.most_common():
            print(f"  {k / n:5.1f}  {counter.seconds[stmt] / n * 1000:6.2f}  {stmt}")
    if args.cprofile and not args.no_profile:
        import pstats

        if os.environ.get("PROFILE_DUMP"):  # the statistics, for pstats
            profiler.dump_stats(os.environ["PROFILE_DUMP"])
        pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(int(os.environ.get("PROFILE_TOP", "40")))
    elif not args.no_profile:
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
