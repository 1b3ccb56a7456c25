"""The benchmark's paced load counts a request's latency from when it was due: a server slower than
the rate shows as growing waits, not as a lower rate (which a closed loop would report)."""
from __future__ import annotations

import importlib.util
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
bench_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_run)

SERVICE_SECONDS = 0.02  # one request at a time: at most 50 a second


@pytest.fixture
def slow_server():
    one_at_a_time = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with one_at_a_time:
                time.sleep(SERVICE_SECONDS)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(i, call):
    return call("GET", "/")[0] == 200


def test_below_capacity_the_latency_is_the_service_time(slow_server):
    load = bench_run.PacedLoad(slow_server, rate=20, seconds=1.5, step=_get, threads=4).run()
    assert len(load.latencies) == 30 and load.failed == 0
    assert SERVICE_SECONDS * 1000 <= load.pct(0.5) < 200
    assert len(load.lag) == 30 and bench_run.percentile_ms(load.lag, 0.5) < 200  # sent on time


def test_above_capacity_the_waits_grow_with_the_backlog(slow_server):
    # 100 due a second for 1 s against 50 a second: the last ones are due about 1 s before they
    # are answered. Timed from when each was sent, as a closed loop does, they would look like
    # 4 connections × 20 ms = 80 ms.
    load = bench_run.PacedLoad(slow_server, rate=100, seconds=1, step=_get, threads=4).run()
    assert len(load.latencies) == 100 and load.failed == 0
    assert load.pct(0.95) > 600
    assert min(load.latencies) < 0.3


def test_a_failed_request_is_counted_and_not_timed(slow_server):
    load = bench_run.PacedLoad(slow_server, rate=20, seconds=0.5, step=lambda i, call: call("GET", "/")[0] == 404,
                               threads=2).run()
    assert load.failed == 10 and load.latencies == [] and len(load.lag) == 10


def test_percentiles_are_by_nearest_rank():
    xs = [i / 1000 for i in range(1, 101)]  # 1 ms ... 100 ms
    assert bench_run.percentile_ms(xs, 0.95) == pytest.approx(95)
    assert bench_run.percentile_ms(xs, 0.5) == pytest.approx(50)
    assert bench_run.percentile_ms(xs, 1.0) == pytest.approx(100)
    assert bench_run.percentile_ms([0.007], 0.99) == pytest.approx(7)
