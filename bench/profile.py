"""Profile one API path in-process with pyinstrument: ``python bench/profile.py --url URL approve|history``.

Prints pyinstrument's call tree of ``--n`` requests made through Flask's test client, so the time
spent in the app (not in HTTP or gunicorn) shows, with the database it would run against.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import date, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Fixtures  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--offset", type=int, default=90000)
    p.add_argument("path", choices=("approve", "history", "attendance"))
    args = p.parse_args(argv)
    from pyinstrument import Profiler

    fx = Fixtures(args.url)
    client = fx.app.test_client()
    if args.path == "approve":
        ids = fx.pending_claims([v for v, _ in fx.volunteers(args.n, offset=args.offset)],
                                date.today() - timedelta(days=1))
        token = fx.token("jiedao")
        calls = [("POST", f"/api/v1/claims/{i}/approve", {"Authorization": f"Bearer {token}",
                                                          "Idempotency-Key": str(uuid.uuid4())}) for i in ids]
    elif args.path == "attendance":
        from sqlalchemy import select

        from pointsapp.extensions import db
        from pointsapp.models import PointRuleVersion

        with fx.ctx():
            rule_id = db.session.scalar(select(PointRuleVersion.rule_id).where(PointRuleVersion.category == "meeting"))
        vols = [v for v, _ in fx.volunteers(500, offset=args.offset)]
        token = fx.token("jiedao")
        body = {"rule_id": rule_id, "activity_date": (date.today() - timedelta(days=3)).isoformat(),
                "volunteer_ids": vols, "note": "profile"}
        calls = [("POST", "/api/v1/attendance", {"Authorization": f"Bearer {token}",
                                                 "Idempotency-Key": str(uuid.uuid4())}, body)]
    else:
        (vid, username), = fx.volunteers(1, busiest=True)
        token = fx.token(username)
        calls = [("GET", "/api/v1/me/history?limit=20", {"Authorization": f"Bearer {token}"})] * args.n
    profiler = Profiler(interval=0.0005)
    t0 = time.perf_counter()
    with profiler:
        for method, path, headers, *body in calls:
            resp = client.open(path, method=method, headers=headers, json=body[0] if body else None)
            assert resp.status_code < 300, (resp.status_code, resp.data[:300])
    elapsed = time.perf_counter() - t0
    print(f"{len(calls)} requests in {elapsed:.2f} s: {elapsed / len(calls) * 1000:.1f} ms each")
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
