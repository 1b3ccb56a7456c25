"""Engine set-up per database.

SQLite: WAL, a busy timeout, foreign keys, and SQLAlchemy's documented pysqlite recipe so that
every write transaction starts with ``BEGIN IMMEDIATE``: writers queue for the lock at the start
instead of failing with "database is locked" when they try to upgrade a read lock. Read-only
requests begin DEFERRED (see ``sqlite_begin_mode``); in WAL mode they read beside the writer.
Within a process, writers to one database file also queue on a lock of their own
(``QueuedSQLiteConnection``) before their ``BEGIN IMMEDIATE``, and the one that finishes wakes the
next at once. SQLite's own wait for a busy database is a sleep that grows to 100 ms between tries,
so without the queue a writer that came second often slept long after the first had committed:
one approval in a hundred took over a second with eight at a time.

PostgreSQL: the same read-only requests begin ``READ ONLY`` (psycopg's ``BEGIN READ ONLY``, no
extra round trip) and end with a COMMIT, which then has nothing to write, instead of a ROLLBACK:
psycopg discards its prepared statements at every ROLLBACK, so read-only requests that ended
with one never kept a statement prepared, and the server planned every statement of every page
again. The READ ONLY is what makes the COMMIT safe: a read-only request cannot write.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextvars import ContextVar
from functools import lru_cache

from sqlalchemy import Column, Float, Integer, Numeric, Select, String, Table, any_, bindparam, cast, event, func, insert, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm.util import identity_key
from sqlalchemy.engine import Engine

from .extensions import db

SQLITE_BUSY_TIMEOUT_MS = 30_000

# How SQLite transactions begin in this context. Requests that only read (GET, HEAD) begin
# DEFERRED so that they never wait for, nor hold up, a writer; everything else (POSTs, CLI
# commands, tests) begins IMMEDIATE and so takes the write lock before its first read.
sqlite_begin_mode: ContextVar[str] = ContextVar("sqlite_begin_mode", default="IMMEDIATE")


class _WriterQueue:
    """The queue of one database file's writers: a lock for this process's threads, and a lock
    file (``<database>-writer``, ``flock``) for the processes. The process lock is waited for
    without polling; the lock file is tried every millisecond, by one thread of a process at a
    time. SQLite's own lock is still what guards the data: a writer that gives up on the queue
    fails as a busy database does, and one that does not use it (another program) is waited for
    with the busy timeout as before. The lock file is opened for each turn and closed after it,
    so that a forked process never shares its parent's lock, and nothing is left open."""

    def __init__(self, database: str):
        self.threads = threading.Lock()
        self.database = database
        self.path = database + "-writer"
        self.fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for this process's turn and then the file's (where the
        lock file can be opened); say whether the turn was taken."""
        import fcntl

        deadline = time.monotonic() + timeout
        if not self.threads.acquire(timeout=timeout):
            return False
        fd = None
        try:
            fd = self._open()
            if fd is None:  # no lock file to be had here: SQLite's own lock orders the processes
                return True
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self.fd = fd
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.001)
        except BaseException:
            if fd is not None:
                os.close(fd)
            self.threads.release()
            raise
        os.close(fd)
        self.threads.release()
        return False

    def _open(self) -> int | None:
        """Open the lock file, made with the database file's permissions (as SQLite makes its
        ``-wal`` and ``-shm`` files), so that every user who may write the database may queue.
        None when it cannot be opened (a read-only folder, another owner's file)."""
        try:
            database = os.stat(self.database)
        except OSError:
            database = None
        mode = database.st_mode & 0o666 if database is not None else 0o600
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        except OSError:
            try:  # made by another user: a lock needs no write access to its file
                return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
        try:
            os.fchmod(fd, mode)  # past the umask, as the database's own; not ours to change: kept
            if database is not None and os.geteuid() == 0:
                # A command run as root gives the file to the database's owner, as SQLite does
                # with its -wal and -shm files, so that the app's own user can still queue.
                os.fchown(fd, database.st_uid, database.st_gid)
        except OSError:
            pass
        return fd

    def release(self) -> None:
        fd, self.fd = self.fd, None
        try:
            if fd is not None:
                os.close(fd)  # which releases the file's lock
        finally:
            self.threads.release()


_writer_queues: dict[str, _WriterQueue] = {}
_writer_queues_guard = threading.Lock()


def _forget_queues_in_child() -> None:
    """In a forked child, leave the parent's queues: a turn a parent's thread held is not the
    child's (its lock file stays locked while any copy of the handle is open: close the child's)."""
    global _writer_queues, _writer_queues_guard
    for queue in _writer_queues.values():
        if queue.fd is not None:
            os.close(queue.fd)
            queue.fd = None
    _writer_queues, _writer_queues_guard = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_queues_in_child)


def _writer_lock(database: str) -> _WriterQueue | None:
    """The queue of the writers to the database file ``database`` (None for a database in
    memory, which each connection has to itself)."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = os.path.realpath(database)
    with _writer_queues_guard:
        queue = _writer_queues.get(path)
        if queue is None:
            queue = _writer_queues[path] = _WriterQueue(path)
        return queue


class QueuedSQLiteConnection(sqlite3.Connection):
    """A pysqlite connection whose write transactions queue for their database file
    (``_WriterQueue``): ``begin_write`` joins the queue, waiting at most the connection's
    ``timeout`` and then failing as a busy database does, and the commit, rollback or close that
    ends the transaction hands the file to the next writer."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self._queue = None if kwargs.get("uri") else _writer_lock(os.fspath(database))
        self._timeout = float(kwargs.get("timeout", 5.0))
        self._queued = False

    def begin_write(self) -> None:
        if self._queue is None or self._queued:
            return
        if not self._queue.acquire(self._timeout):
            raise sqlite3.OperationalError("database is locked")
        self._queued = True

    def leave_queue(self) -> None:
        if getattr(self, "_queued", False):  # False too when __init__ failed before setting it
            self._queued = False
            self._queue.release()

    def commit(self):
        try:
            super().commit()
        except BaseException:
            if not self.in_transaction:  # a COMMIT that failed leaves the transaction open
                self.leave_queue()       # until its rollback, which then hands over
            raise
        self.leave_queue()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self.leave_queue()

    def close(self):
        try:
            super().close()
        finally:
            self.leave_queue()

    def __del__(self):
        # A connection dropped without being closed (the pool closes and rolls back its own)
        # must not keep the file from every other writer of the process.
        self.leave_queue()


def reads_only() -> bool:
    """Say whether transactions begun now are read-only ones (a GET, a consistent snapshot)."""
    return sqlite_begin_mode.get() == "DEFERRED"


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        from psycopg.types.array import ListBinaryDumper

        @event.listens_for(engine, "connect")
        def _arrays_in_binary(dbapi_connection, connection_record):
            # Lists (the array parameters of ``insert_rows`` and ``among``) go in PostgreSQL's
            # binary array format: each element is sent with its length, so nothing is quoted or
            # escaped. In the text format psycopg quotes, and escapes with a regular expression,
            # every element holding a space, comma, quote or brace: for the 500 audit summaries
            # (JSON) of a batch, about 12 ms of CPU against 0.3 ms in binary.
            dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)

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
        if sqlite_begin_mode.get() == "DEFERRED":
            conn.exec_driver_sql("BEGIN DEFERRED")
            return
        dbapi = conn.connection.dbapi_connection
        queued = isinstance(dbapi, QueuedSQLiteConnection)
        if queued:
            try:
                dbapi.begin_write()
            except sqlite3.OperationalError as exc:
                # As SQLite's own "database is locked" from the BEGIN would come: wrapped by
                # SQLAlchemy (a "begin" listener runs outside its wrapping), so that callers
                # catching sqlalchemy.exc.OperationalError see it.
                raise sa_exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if queued:
                dbapi.leave_queue()
            raise


def dialect() -> str:
    """The name of the session's database: ``postgresql`` or ``sqlite``."""
    return db.session.get_bind().dialect.name


def among(column, name: str, dialect_name: str):
    """The condition "``column`` is one of the list parameter ``name``", for ``dialect_name``.

    PostgreSQL: ``column = ANY(CAST(:name AS type[]))``, one array parameter, so the statement's
    text is the same for any number of values: psycopg caches its parse and may prepare it. An
    expanding IN renders one placeholder per value, which SQLAlchemy renders and psycopg parses
    (uncached, with a regular expression, past 4 kB of text) on every execution: for the 500
    attendees of a meeting, several milliseconds a statement. Elsewhere: an expanding IN.
    Statements built with it are built per dialect (callers cache them with the name as key)."""
    if dialect_name == "postgresql":
        array = ARRAY(_unbounded(column.type))
        return column == any_(cast(bindparam(name, type_=array), array))
    return column.in_(bindparam(name, expanding=True))


def expire_loaded(model, key: int, *attributes: str) -> None:
    """Drop the session's copy of row ``key`` of ``model`` (only ``attributes``, if given), if it
    holds one, after a plain UPDATE changed the row: the next read loads it again."""
    obj = db.session.identity_map.get(identity_key(model, key))
    if obj is not None:
        db.session.expire(obj, list(attributes) or None)


def insert_rows(table: Table, rows: list[dict], *, returning: Column | None = None, then=None,
                then_params: dict | None = None) -> list | None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in one statement; with
    ``returning`` (an integer key filled by a sequence), return its values in the order of ``rows``.
    ``then``: an UPDATE or INSERT (built once) to run with them, with ``then_params``: on
    PostgreSQL in the same statement (a data-modifying CTE: one round trip), on SQLite after it.

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
            keys = None
        else:
            keys = list(db.session.execute(insert(table).returning(returning, sort_by_parameter_order=True), rows).scalars())
        if then is not None:
            db.session.execute(then, then_params or {})
        return keys
    names, same = _split_constant(rows)
    stmt = _insert_from_arrays(table, names, same, returning, then)
    params = array_params(rows, names)
    params.update({f"one_{name}": rows[0][name] for name in same})
    params.update(then_params or {})
    if returning is None:
        db.session.execute(stmt, params)
        return None
    return sorted(db.session.execute(stmt, params).scalars())


def _split_constant(rows: list[dict]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split the columns of ``rows`` into those whose values vary and those with one value (of
    one type) in every row, which travel once as a plain parameter instead of as an array of
    copies: the rule, date, author and time of a meeting's 500 activities are each dumped once,
    not 500 times. At least the first column stays an array (it gives the number of rows)."""
    first = rows[0]
    names = tuple(first)
    same = tuple(
        name for name in names[1:]
        if all(row[name] == first[name] and type(row[name]) is type(first[name]) for row in rows)
    )
    return tuple(name for name in names if name not in same), same


# The statements below are built once per table and columns and kept: building one (its array
# types, casts and table-valued function) and computing its cache key cost more than running it
# for a row or two, as the ledger writes on every credit. They hold no values, only parameters.


@lru_cache(maxsize=None)
def unnest_select(table: Table, names: tuple[str, ...], same: tuple[str, ...] = ()) -> Select:
    """PostgreSQL: a SELECT of the columns ``names`` of ``table`` from ``unnest`` of one array
    parameter per column (``rows_<name>``, given by ``array_params``), in the order of the rows,
    then the columns ``same`` from one plain parameter each (``one_<name>``), the same in every row.

    ``names`` and ``same`` are tuples (the cache's key); the statement returned is shared, so
    callers build on it (``subquery``, ``from_select``), which copies, and never change it."""
    types = {name: ARRAY(_unbounded(table.c[name].type)) for name in names}
    arrays = [cast(bindparam(f"rows_{name}", type_=types[name]), types[name]) for name in names]
    given = func.unnest(*arrays).table_valued(*names, with_ordinality="row_number").render_derived()
    ones = [cast(bindparam(f"one_{name}", type_=table.c[name].type), _unbounded(table.c[name].type)).label(name)
            for name in same]
    return select(*(given.c[name] for name in names), *ones).order_by(given.c.row_number)


def array_params(rows: list[dict], names: tuple[str, ...]) -> dict:
    """The parameters of ``unnest_select(table, names)`` for ``rows``: one list per column."""
    return {f"rows_{name}": [row[name] for row in rows] for name in names}


@lru_cache(maxsize=None)
def _insert_from_arrays(table: Table, names: tuple[str, ...], same: tuple[str, ...], returning: Column | None,
                        then=None):
    """INSERT of the columns ``names`` from arrays and ``same`` from one value each (see
    ``unnest_select``), in the order of the arrays' rows; with the statement ``then`` as a CTE."""
    stmt = insert(table).from_select([*names, *same], unnest_select(table, names, same))
    if then is not None:
        stmt = stmt.add_cte(then.cte("then"))
    return stmt if returning is None else stmt.returning(returning)


@lru_cache(maxsize=None)
def add_from_arrays(table: Table, names: tuple[str, ...], key: tuple[str, ...], only_with=None):
    """PostgreSQL: the upsert of ``add_to_rows`` (parameters from ``array_params``), which a caller
    may also run inside another statement as a CTE; ``only_with``: a CTE of that statement, the
    rows being added only when it has a row."""
    rows = unnest_select(table, names)
    if only_with is not None:
        given = rows.subquery("given")
        rows = select(*(given.c[name] for name in names)).select_from(given.join(only_with, true()))
    return _adding(postgresql.insert(table).from_select(list(names), rows), names, key)


@lru_cache(maxsize=None)
def _add_one_row(table: Table, names: tuple[str, ...], key: tuple[str, ...]):
    return _adding(sqlite.insert(table).values({name: bindparam(name) for name in names}), names, key)


def _adding(stmt, names: tuple[str, ...], key: tuple[str, ...]):
    """``stmt`` (an INSERT of ``names``) made to add its values to the row with the same ``key``."""
    table = stmt.table
    return stmt.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={name: table.c[name] + stmt.excluded[name] for name in names if name not in key},
    )


@lru_cache(maxsize=None)
def _insert_or_nothing(dialect: str, table: Table, names: tuple[str, ...], key: tuple[str, ...], returning: Column):
    insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert_of(table).values({name: bindparam(name) for name in names})
        .on_conflict_do_nothing(index_elements=[table.c[name] for name in key])
        .returning(returning)
    )


@lru_cache(maxsize=None)
def _update_from_arrays(table: Table, names: tuple[str, ...], key: str):
    given = unnest_select(table, names).subquery("given")
    return update(table).where(table.c[key] == given.c[key]).values({n: given.c[n] for n in names if n != key})


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
    the rows of ``table`` with the same key, creating those not there yet, in the order given,
    which callers keep in key order (the lock order of running totals): on PostgreSQL one upsert
    per ``per_statement`` rows (as array parameters, see ``insert_rows``), on SQLite one per row."""
    if not rows:
        return
    names = tuple(rows[0])
    if dialect() == "postgresql":
        stmt = add_from_arrays(table, names, tuple(key))
        for i in range(0, len(rows), per_statement):
            db.session.execute(stmt, array_params(rows[i:i + per_statement], names))
        return
    # SQLite: one statement with a parameter per column, run for each row in process
    # (``executemany``); a multi-row VALUES upsert could not be cached and was compiled every time.
    db.session.execute(_add_one_row(table, names, tuple(key)), rows)


def insert_unless_taken(table: Table, row: dict, *, key: list[str], returning: Column):
    """INSERT ``row`` into ``table`` unless a row with the same ``key`` (a unique constraint's
    columns) is there, in one statement; return the new row's ``returning`` value, or None.

    ``ON CONFLICT DO NOTHING`` instead of an insert that fails inside a savepoint: the
    transaction stays usable without the savepoint's two extra round trips. A row inserted by a
    transaction not yet committed makes this one wait for it (PostgreSQL), as the unique index
    would; on SQLite the writer holds the database's write lock.
    """
    stmt = _insert_or_nothing(dialect(), table, tuple(row), tuple(key), returning)
    return db.session.execute(stmt, row).scalar()


def update_rows(table: Table, rows: list[dict], *, key: str = "id") -> None:
    """Set, for each of ``rows`` (dicts with the same keys, one of them ``key``), the other columns
    of the row of ``table`` it names: one ``UPDATE ... FROM unnest(...)`` on PostgreSQL (see
    ``insert_rows``), ``executemany`` on SQLite."""
    if not rows:
        return
    names = tuple(rows[0])
    if dialect() != "postgresql":
        others = [name for name in names if name != key]
        db.session.execute(
            update(table).where(table.c[key] == bindparam(f"row_{key}")).values({n: bindparam(f"row_{n}") for n in others}),
            [{f"row_{n}": v for n, v in row.items()} for row in rows],
        )
        return
    db.session.execute(_update_from_arrays(table, names, key), array_params(rows, names))
