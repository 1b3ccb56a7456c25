"""The production gunicorn configuration (gunicorn.conf.py) serves the app as documented."""
from __future__ import annotations

import http.client
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

from pointsapp.extensions import db
from tests.live.processes import ROOT, free_port

CONFIG = ROOT / "gunicorn.conf.py"


def test_config_defaults_to_two_workers_per_core_plus_one_with_threads(monkeypatch):
    for name in ("GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(CONFIG))
    assert conf["workers"] == os.cpu_count() * 2 + 1
    assert conf["worker_class"] == "gthread" and conf["threads"] == 4
    assert conf["bind"] == "127.0.0.1:8000"


def test_config_reads_its_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("GUNICORN_BIND", "127.0.0.1:9123")
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "2")
    conf = runpy.run_path(str(CONFIG))
    assert (conf["bind"], conf["workers"], conf["threads"]) == ("127.0.0.1:9123", 3, 2)


def test_config_preloads_the_app_and_drops_inherited_connections_after_the_fork(app, monkeypatch):
    monkeypatch.delenv("GUNICORN_PRELOAD", raising=False)
    conf = runpy.run_path(str(CONFIG))
    assert conf["preload_app"] is True
    with app.app_context():
        engine = db.engine
        with engine.connect():
            pass
        assert engine.pool.checkedin() == 1  # a pooled connection, as a parent could leave behind

    class Server:
        class app:
            callable = app

    conf["post_fork"](Server, None)
    assert engine.pool.checkedin() == 0  # the child starts with an empty pool of its own


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []


def test_gunicorn_with_the_config_file_runs_its_workers_and_keeps_connections_alive(app, database_url, tmp_path):
    db.session.rollback()
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY=app.config["SECRET_KEY"],
               POINTS_VOUCHER_KEY=app.config["VOUCHER_KEY"], POINTS_INSTANCE_PATH=app.instance_path,
               GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2", GUNICORN_THREADS="2",
               GUNICORN_LOGLEVEL="warning")
    env.pop("REDIS_URL", None)
    log = (tmp_path / "gunicorn.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "pointsapp:create_app()"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 45
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while True:
            try:
                conn.request("GET", "/readyz")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200 and len(_children(proc.pid)) == 2:
                    break
            except OSError:
                conn.close()
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.1)
        # Keep-alive: a second request goes over the same socket (a sync worker would close it).
        sock = conn.sock
        assert sock is not None
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and conn.sock is sock
        conn.close()
        assert len(_children(proc.pid)) == 2
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        log.close()


def test_workers_cap_glibcs_malloc_arenas_unless_told_otherwise(monkeypatch):
    """Two arenas per worker by default (RSS that stays near what the worker uses); 0, or a
    MALLOC_ARENA_MAX of the operator's, leaves glibc alone."""
    import ctypes.util

    if not ctypes.util.find_library("c") or not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt"):
        import pytest

        pytest.skip("not glibc: no mallopt")
    monkeypatch.delenv("GUNICORN_MALLOC_ARENAS", raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    conf = runpy.run_path(str(CONFIG))
    assert conf["malloc_arenas"] == 2
    assert conf["limit_malloc_arenas"](2) is True
    assert conf["limit_malloc_arenas"](0) is False
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert conf["limit_malloc_arenas"](2) is False
    monkeypatch.setenv("GUNICORN_MALLOC_ARENAS", "0")
    assert runpy.run_path(str(CONFIG))["malloc_arenas"] == 0


def test_the_server_says_which_database_it_uses_without_its_password_and_warns_of_sqlite():
    conf = runpy.run_path(str(CONFIG))

    def said_for(uri):
        said = []

        class Log:
            def info(self, msg, *args):
                said.append(("info", msg % args))

            def warning(self, msg, *args):
                said.append(("warning", msg % args))

        class Server:
            log = Log()

            class app:
                class callable:
                    config = {"SQLALCHEMY_DATABASE_URI": uri}

        conf["when_ready"](Server)
        return said

    assert said_for("postgresql+psycopg://points:s3cret@db.example/points") == [
        ("info", "database: postgresql+psycopg://points:***@db.example/points")]
    [(level, text)] = said_for("sqlite:////srv/pointsapp/instance/pointsapp.db")
    assert level == "warning" and "is DATABASE_URL set?" in text and "/srv/pointsapp/instance/pointsapp.db" in text
