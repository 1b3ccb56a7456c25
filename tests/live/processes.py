"""Serve the app from real gunicorn processes, as in production, for the multi-process tests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Gunicorn:
    proc: subprocess.Popen
    base: str
    log: Path

    def worker_pids(self) -> list[int]:
        """Return the master's live worker processes."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except FileNotFoundError:
            return []
        return [int(p) for p in children]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


@contextmanager
def gunicorn(app: Flask, database_url: str, log: Path, *, workers: int = 2, threads: int = 4, startup: float = 45):
    """Run ``gunicorn 'pointsapp:create_app()'`` on a free port of 127.0.0.1 on ``database_url``.

    The processes share the test app's keys, so a session cookie or a voucher code made by one is
    valid on every other, as behind a load balancer. The server is stopped (and, if it hangs,
    killed with its whole process group) when the block ends, whatever happens in it.
    """
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=app.config["SECRET_KEY"],
        POINTS_VOUCHER_KEY=app.config["VOUCHER_KEY"],
        POINTS_INSTANCE_PATH=app.instance_path,
        POINTS_LOGIN_LIMIT="100000 per minute",
        POINTS_FALLBACK_CODE_LIMIT="100000 per minute",
        POINTS_DB_POOL_SIZE=str(threads),
        POINTS_DB_MAX_OVERFLOW="2",
    )
    env.pop("REDIS_URL", None)
    cmd = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
        "--bind", f"127.0.0.1:{port}", "--timeout", "30", "--graceful-timeout", "5",
        "--log-level", "warning", "pointsapp:create_app()",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Gunicorn(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + startup
        while _get_status(server.base + "/readyz") != 200 or len(server.worker_pids()) < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not become ready:\n{server.log_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind: the group is ours alone
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
