"""Engine set-up per database.

SQLite: WAL, a busy timeout, foreign keys, and SQLAlchemy's documented pysqlite recipe so that
every write transaction starts with ``BEGIN IMMEDIATE``: writers queue for the lock at the start
instead of failing with "database is locked" when they try to upgrade a read lock. Read-only
requests begin DEFERRED (see ``sqlite_begin_mode``); in WAL mode they read beside the writer.
"""
from __future__ import annotations

from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_MS = 30_000

# How SQLite transactions begin in this context. Requests that only read (GET, HEAD) begin
# DEFERRED so that they never wait for, nor hold up, a writer; everything else (POSTs, CLI
# commands, tests) begins IMMEDIATE and so takes the write lock before its first read.
sqlite_begin_mode: ContextVar[str] = ContextVar("sqlite_begin_mode", default="IMMEDIATE")


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):
        # Stop pysqlite from emitting its own BEGIN; we emit ours below.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN DEFERRED" if sqlite_begin_mode.get() == "DEFERRED" else "BEGIN IMMEDIATE")
