"""gunicorn settings for production: ``gunicorn -c gunicorn.conf.py 'pointsapp:create_app()'``.

Every setting can be changed from the environment (``GUNICORN_WORKERS=8``...). The app keeps no
state in its processes (sessions are signed cookies, rate limits live in Redis when ``REDIS_URL``
is set, keys come from the environment or the shared instance folder), so any number of workers,
on one machine or several, serve the same database.

Connections: each worker process has its own SQLAlchemy pool (``POINTS_DB_POOL_SIZE``, 10 by
default, and ``POINTS_DB_MAX_OVERFLOW`` more on a burst). The pool opens connections only when
asked and a ``gthread`` worker runs at most ``threads`` requests at a time, so one machine holds at
most ``workers × threads`` connections (5 × 4 = 20 on 2 cores). Keep the sum over all machines under
PostgreSQL's ``max_connections`` (100 by default) with room for cron jobs and psql, or put
PgBouncer in transaction mode in between (1.21 or newer with ``max_prepared_statements``, or set
``POINTS_DB_PREPARE=off``).

Writes: a worker runs ``POINTS_WRITE_SLOTS`` write requests at once (1 by default; reads are not
limited), so one machine has at most ``workers`` writing transactions (5 on 2 cores). Credits of a
street all update its one issuance account and audited actions the one audit chain head: more
writers at once only wait on those rows inside PostgreSQL (docs/PERFORMANCE.md). Across machines,
keep the writers near two or three times PostgreSQL's cores.
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two per core plus one: a request spends much of its time waiting for the database.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# Threads let one worker keep several client connections alive (the sync worker closes each).
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# A worker is replaced after this many requests (with jitter, so not all at once): a slow leak
# in a library cannot grow a worker without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = 2000
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Behind nginx on the same machine: trust its X-Forwarded-* headers only from there.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Load the app once in the master and fork the workers from it: the code and the imported
# libraries are shared copy-on-write (a worker's PSS, what it really costs, falls), and workers
# start at once. The master opens no database connection (create_app makes the engine, which
# connects only when asked); ``post_fork`` still drops any pooled connection a child inherited,
# so that no two processes ever share one. A code change needs a restart, not a HUP.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"
# gunicorn's control socket is one path per user by default (~/.gunicorn/gunicorn.ctl): a second
# server started by the same user (a restart that starts the new before stopping the old, another
# app) takes it over, and removes it when it stops. The app is run by its supervisor's signals;
# ``GUNICORN_CONTROL_SOCKET=/run/pointsapp/gunicorn.ctl`` turns it on at a path of its own.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket


# Memory: glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
# freed memory stays in the arena it came from, so a worker with 4 threads grows by an arena's
# worth per thread under load and does not give it back. Two arenas per worker keep its RSS close
# to what it uses, for a contention cost that does not show at 4 threads (docs/performance-history.md).
# ``GUNICORN_MALLOC_ARENAS=0`` keeps glibc's default; a ``MALLOC_ARENA_MAX`` set in the
# environment wins.
malloc_arenas = int(os.environ.get("GUNICORN_MALLOC_ARENAS", "2"))


def limit_malloc_arenas(n: int) -> bool:
    """Cap glibc's malloc arenas for this process (and the threads it starts); say whether it did."""
    if n <= 0 or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    M_ARENA_MAX = -8
    return bool(mallopt(M_ARENA_MAX, n))


def post_fork(server, worker):
    limit_malloc_arenas(malloc_arenas)
    app = getattr(server.app, "callable", None)  # the preloaded app (None without preload_app)
    if app is None or not hasattr(app, "app_context"):
        return
    from pointsapp.extensions import db

    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)  # forget the parent's connections without closing them


def when_ready(server):
    """Say which database this server uses (never its password): a server started without its
    environment file would otherwise run on a SQLite file of its own, silently."""
    app = getattr(server.app, "callable", None)
    if app is None:
        return
    from sqlalchemy.engine import make_url

    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        server.log.warning("database: %s (SQLite: is DATABASE_URL set? a production server uses PostgreSQL)", where)
    else:
        server.log.info("database: %s", where)
