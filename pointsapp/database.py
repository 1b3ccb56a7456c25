"""Engine set-up per database.

SQLite: WAL, a busy timeout, foreign keys, and SQLAlchemy's documented pysqlite recipe so that
every write transaction starts with ``BEGIN IMMEDIATE``: writers queue for the lock at the start
instead of failing with "database is locked" when they try to upgrade a read lock. Read-only
requests begin DEFERRED (see ``sqlite_begin_mode``); in WAL mode they read beside the writer.

PostgreSQL: the same read-only requests begin ``READ ONLY`` (psycopg's ``BEGIN READ ONLY``, no
extra round trip) and end with a COMMIT, which then has nothing to write, instead of a ROLLBACK:
psycopg discards its prepared statements at every ROLLBACK, so read-only requests that ended
with one never kept a statement prepared, and the server planned every statement of every page
again. The READ ONLY is what makes the COMMIT safe: a read-only request cannot write.
"""
from __future__ import annotations

from contextvars import ContextVar

from sqlalchemy import Column, Float, Integer, Numeric, Select, String, Table, bindparam, cast, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine

from .extensions import db

SQLITE_BUSY_TIMEOUT_MS = 30_000

# How SQLite transactions begin in this context. Requests that only read (GET, HEAD) begin
# DEFERRED so that they never wait for, nor hold up, a writer; everything else (POSTs, CLI
# commands, tests) begins IMMEDIATE and so takes the write lock before its first read.
sqlite_begin_mode: ContextVar[str] = ContextVar("sqlite_begin_mode", default="IMMEDIATE")


def reads_only() -> bool:
    """Say whether transactions begun now are read-only ones (a GET, a consistent snapshot)."""
    return sqlite_begin_mode.get() == "DEFERRED"


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        @event.listens_for(engine, "begin")
        def _begin_read_only(conn):
            # psycopg begins the transaction with the first statement, after this event.
            dbapi = conn.connection.dbapi_connection
            if dbapi.read_only != reads_only():
                dbapi.read_only = reads_only()
            conn.info["began_read_only"] = reads_only()  # what the request's teardown checks
        return
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


def insert_rows(table: Table, rows: list[dict], *, returning: Column | None = None) -> list | None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in one statement; with
    ``returning`` (an integer key filled by a sequence), return its values in the order of ``rows``.

    PostgreSQL: ``INSERT ... SELECT ... FROM unnest(:col1, :col2, ...)``, one array parameter per
    column whatever the number of rows. A multi-row ``VALUES`` has a placeholder per value, which
    SQLAlchemy compiles and psycopg parses (with a regular expression, uncached for long
    statements) on every execution: for the rows of a 500-person meeting, more time than the
    database takes to write them. The rows go in in order and take their keys from the sequence
    in that order, so the returned keys, sorted, are the rows' keys in order (as SQLAlchemy's own
    "insertmanyvalues" relies on). SQLite: ``executemany`` (with ``RETURNING``, SQLAlchemy's
    batched form), which runs in process and parses the statement once.
    """
    if not rows:
        return [] if returning is not None else None
    session_bind = db.session.get_bind()
    if session_bind.dialect.name != "postgresql":
        if returning is None:
            db.session.execute(insert(table), rows)
            return None
        return list(db.session.execute(insert(table).returning(returning, sort_by_parameter_order=True), rows).scalars())
    names, given = unnest_rows(table, rows)
    stmt = insert(table).from_select(names, given)
    if returning is None:
        db.session.execute(stmt)
        return None
    return sorted(db.session.execute(stmt.returning(returning)).scalars())


def unnest_rows(table: Table, rows: list[dict]) -> tuple[list[str], Select]:
    """PostgreSQL: ``rows`` (dicts with the same keys, columns of ``table``) as a SELECT from
    ``unnest`` of one array parameter per column, in the order of ``rows``; and the column names."""
    names = list(rows[0])
    types = {name: ARRAY(_unbounded(table.c[name].type)) for name in names}
    arrays = [cast(bindparam(f"rows_{name}", [row[name] for row in rows], type_=types[name]), types[name])
              for name in names]
    given = func.unnest(*arrays).table_valued(*names, with_ordinality="row_number").render_derived()
    return names, select(*(given.c[name] for name in names)).order_by(given.c.row_number)


def _unbounded(type_):
    """The type to cast an array parameter's elements to: without a length or precision. An
    explicit cast to ``varchar(64)`` cuts a longer text short without an error (and one to
    ``numeric(5, 2)`` rounds), where writing the value into the column refuses it as too long."""
    if isinstance(type_, String):
        return String()
    if isinstance(type_, Numeric) and not isinstance(type_, (Integer, Float)):
        return Numeric()
    return type_


def add_to_rows(table: Table, rows: list[dict], *, key: list[str], per_statement: int = 1000) -> None:
    """Add ``rows`` (dicts with the same keys: the ``key`` columns and the columns to add to) to
    the rows of ``table`` with the same key, creating those not there yet: one upsert per
    ``per_statement`` rows (the rows as array parameters on PostgreSQL, see ``insert_rows``), in
    the order given, which callers keep in key order (the lock order of running totals)."""
    if not rows:
        return
    postgres = db.session.get_bind().dialect.name == "postgresql"
    added = [name for name in rows[0] if name not in key]
    for i in range(0, len(rows), per_statement):
        chunk = rows[i:i + per_statement]
        if postgres:
            stmt = postgresql.insert(table).from_select(*unnest_rows(table, chunk))
        else:
            stmt = sqlite.insert(table).values(chunk)
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=[table.c[name] for name in key],
            set_={name: table.c[name] + stmt.excluded[name] for name in added},
        ))


def update_rows(table: Table, rows: list[dict], *, key: str = "id") -> None:
    """Set, for each of ``rows`` (dicts with the same keys, one of them ``key``), the other columns
    of the row of ``table`` it names: one ``UPDATE ... FROM unnest(...)`` on PostgreSQL (see
    ``insert_rows``), ``executemany`` on SQLite."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if db.session.get_bind().dialect.name != "postgresql":
        db.session.execute(
            update(table).where(table.c[key] == bindparam(f"row_{key}")).values({n: bindparam(f"row_{n}") for n in names}),
            [{f"row_{n}": v for n, v in row.items()} for row in rows],
        )
        return
    given = unnest_rows(table, rows)[1].subquery("given")
    db.session.execute(update(table).where(table.c[key] == given.c[key]).values({n: given.c[n] for n in names}))
