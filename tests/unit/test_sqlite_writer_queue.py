"""SQLite's writers queue for their database file (``database.QueuedSQLiteConnection``).

A writer takes its process's lock of the file and then the lock file beside the database before
its ``BEGIN IMMEDIATE``; the commit, rollback or close that ends its transaction hands both to the
next writer. These tests use the database file directly, whichever database the suite runs on.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from pointsapp import create_app
from pointsapp.database import QueuedSQLiteConnection, _writer_lock, sqlite_begin_mode
from pointsapp.extensions import db


def connect(path, timeout=5.0) -> QueuedSQLiteConnection:
    conn = sqlite3.connect(str(path), timeout=timeout, factory=QueuedSQLiteConnection, check_same_thread=False)
    conn.isolation_level = None  # as the app's engine: the BEGIN is ours
    return conn


def begin_write(conn) -> None:
    conn.begin_write()
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        conn.leave_queue()
        raise


@pytest.fixture
def dbfile(tmp_path):
    path = tmp_path / "queue.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.commit()
    conn.close()
    return path


def lock_file_is_taken(path) -> bool:
    fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def assert_queue_free(path) -> None:
    """Neither lock of the file's queue is held, and a writer that will not wait begins at once."""
    queue = _writer_lock(str(path))
    assert not queue.threads.locked() and not lock_file_is_taken(path)
    other = connect(path, timeout=0)
    begin_write(other)
    other.rollback()
    other.close()


def test_a_second_writer_waits_in_the_queue_and_goes_on_when_the_first_commits(dbfile):
    first, second = connect(dbfile), connect(dbfile)
    begin_write(first)
    first.execute("INSERT INTO t VALUES (1)")
    queue = _writer_lock(str(dbfile))
    assert queue.threads.locked() and lock_file_is_taken(dbfile)

    began = threading.Event()
    seen = []

    def writer():
        begin_write(second)
        began.set()
        seen.append(second.execute("SELECT count(*) FROM t").fetchone()[0])
        second.execute("INSERT INTO t VALUES (2)")
        second.commit()

    t = threading.Thread(target=writer)
    t.start()
    first.commit()
    t.join(10)
    assert began.is_set() and seen == [1]  # it began after the commit, and saw the first row
    assert not queue.threads.locked() and not lock_file_is_taken(dbfile)
    assert [r[0] for r in first.execute("SELECT n FROM t ORDER BY n")] == [1, 2]
    first.close()
    second.close()


def test_the_second_writer_waits_for_the_queue_even_when_sqlite_is_free(dbfile):
    """The first writer has only joined the queue (no BEGIN yet), so SQLite's own lock is free:
    the second writer still waits, and begins as soon as the first leaves the queue."""
    first, second = connect(dbfile), connect(dbfile)
    first.begin_write()
    began = threading.Event()

    def writer():
        begin_write(second)
        began.set()
        second.rollback()

    t = threading.Thread(target=writer)
    t.start()
    assert not began.wait(0.5)  # without the queue it would have begun at once
    first.leave_queue()
    t.join(10)
    assert began.is_set()
    first.close()
    second.close()


def test_a_child_process_starts_with_queues_of_its_own(dbfile):
    """A process forked while one of its threads holds the queue: the child's queue is free of
    that turn, and the parent keeps the lock file until it leaves the queue."""
    conn = connect(dbfile)
    conn.begin_write()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = not _writer_lock(str(dbfile)).threads.locked()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lock_file_is_taken(dbfile)  # closing the child's copy did not release the parent's lock
    conn.leave_queue()
    assert not lock_file_is_taken(dbfile)
    conn.close()


def test_a_writer_that_waits_too_long_fails_as_a_busy_database_and_leaves_the_queue(dbfile):
    holder, impatient = connect(dbfile), connect(dbfile, timeout=0.2)
    begin_write(holder)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        begin_write(impatient)
    holder.rollback()
    queue = _writer_lock(str(dbfile))
    assert not queue.threads.locked() and not lock_file_is_taken(dbfile)
    begin_write(impatient)  # its turn now
    impatient.execute("INSERT INTO t VALUES (3)")
    impatient.commit()
    assert holder.execute("SELECT n FROM t").fetchall() == [(3,)]
    holder.close()
    impatient.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_whatever_ends_the_transaction_hands_on_the_queue(dbfile, end):
    conn = connect(dbfile)
    begin_write(conn)
    getattr(conn, end)()
    assert_queue_free(dbfile)
    if end != "close":
        conn.close()


def test_a_commit_that_fails_keeps_the_turn_until_the_rollback(dbfile):
    """A deferred foreign key makes COMMIT fail and leaves the transaction open: the writer still
    holds SQLite's lock, so it keeps its turn until the rollback ends the transaction."""
    conn = connect(dbfile)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    begin_write(conn)
    conn.execute("INSERT INTO child VALUES (42)")
    with pytest.raises(sqlite3.IntegrityError):
        conn.commit()
    assert conn.in_transaction
    queue = _writer_lock(str(dbfile))
    assert queue.threads.locked() and lock_file_is_taken(dbfile)
    conn.rollback()
    assert_queue_free(dbfile)
    conn.close()


def test_a_connection_dropped_in_its_transaction_leaves_the_queue(dbfile):
    import gc

    conn = connect(dbfile)
    begin_write(conn)
    del conn
    gc.collect()
    assert_queue_free(dbfile)


def test_a_writer_of_another_process_holds_the_queue_until_it_is_done(dbfile):
    """The lock file is what orders processes: while another process holds it, this one's
    writer waits, and fails as a busy database past its timeout."""
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({str(dbfile) + '-writer'!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "held"
        conn = connect(dbfile, timeout=0.3)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            begin_write(conn)
        assert not _writer_lock(str(dbfile)).threads.locked()  # gave its process's turn back too
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(10)
        begin_write(conn)
        conn.execute("INSERT INTO t VALUES (4)")
        conn.commit()
        conn.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_without_a_lock_file_the_process_still_queues_and_sqlite_orders_the_rest(dbfile):
    """Where the lock file cannot be opened (here a folder stands in its place), writers still
    take their process's turn and write; between processes SQLite's busy timeout decides."""
    os.mkdir(f"{dbfile}-writer")
    first, second = connect(dbfile), connect(dbfile, timeout=0.2)
    begin_write(first)
    assert _writer_lock(str(dbfile)).threads.locked()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        begin_write(second)
    first.execute("INSERT INTO t VALUES (6)")
    first.commit()
    begin_write(second)
    second.execute("INSERT INTO t VALUES (7)")
    second.commit()
    assert [r[0] for r in first.execute("SELECT n FROM t ORDER BY n")] == [6, 7]
    first.close()
    second.close()


def test_the_lock_file_has_the_databases_permissions(dbfile):
    os.chmod(dbfile, 0o660)
    conn = connect(dbfile)
    begin_write(conn)
    conn.rollback()
    conn.close()
    assert os.stat(f"{dbfile}-writer").st_mode & 0o777 == 0o660


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives a file to another user")
def test_a_lock_file_made_by_root_belongs_to_the_databases_owner(dbfile):
    """A command run as root (a cron job, sudo) must not leave a lock file the app's own user
    cannot open: it is given to the database file's owner, as SQLite does with its -wal file."""
    os.chown(dbfile, 65534, 65534)
    conn = connect(dbfile)
    begin_write(conn)
    conn.rollback()
    conn.close()
    made = os.stat(f"{dbfile}-writer")
    assert (made.st_uid, made.st_gid) == (65534, 65534)


def test_a_database_in_memory_has_no_queue():
    conn = sqlite3.connect(":memory:", factory=QueuedSQLiteConnection)
    conn.isolation_level = None
    begin_write(conn)
    assert conn._queue is None
    conn.rollback()
    conn.close()


def test_the_apps_writers_queue_and_its_readers_do_not(dbfile, tmp_path, monkeypatch):
    """Through the app's engine: a write transaction (BEGIN IMMEDIATE) takes the queue, a read
    (BEGIN DEFERRED, as a GET's) does not, and reads beside the writer."""
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{dbfile}", "SECRET_KEY": "k", "TESTING": True})
    queue = _writer_lock(str(dbfile))
    with app.app_context():
        try:
            with db.engine.connect() as writer:
                assert isinstance(writer.connection.dbapi_connection, QueuedSQLiteConnection)
                writer.exec_driver_sql("INSERT INTO t VALUES (5)")
                assert queue.threads.locked() and lock_file_is_taken(dbfile)
                token = sqlite_begin_mode.set("DEFERRED")
                try:
                    with db.engine.connect() as reader:
                        assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
                finally:
                    sqlite_begin_mode.reset(token)
                writer.commit()
            assert not queue.threads.locked() and not lock_file_is_taken(dbfile)
        finally:
            db.engine.dispose()


def app_for(dbfile, tmp_path, monkeypatch, timeout=None):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{dbfile}", "SECRET_KEY": "k", "TESTING": True}
    if timeout is not None:
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": timeout}}
    return create_app(config)


def test_through_the_app_a_writer_that_waits_too_long_fails_as_sqlalchemy_says_busy(dbfile, tmp_path, monkeypatch):
    """As SQLite's own "database is locked" from BEGIN IMMEDIATE would: a
    sqlalchemy.exc.OperationalError, which callers such as the token's last-use write catch."""
    from sqlalchemy.exc import OperationalError

    holder = connect(dbfile)
    begin_write(holder)
    app = app_for(dbfile, tmp_path, monkeypatch, timeout=0.2)
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                with pytest.raises(OperationalError, match="database is locked"):
                    conn.exec_driver_sql("INSERT INTO t VALUES (8)")
        finally:
            db.engine.dispose()
    holder.rollback()
    holder.close()
    assert_queue_free(dbfile)


def test_through_the_app_a_connection_given_back_uncommitted_leaves_the_queue(dbfile, tmp_path, monkeypatch):
    app = app_for(dbfile, tmp_path, monkeypatch)
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (9)")
                assert _writer_lock(str(dbfile)).threads.locked()
            # the pool rolled it back on its return
            assert_queue_free(dbfile)
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        finally:
            db.engine.dispose()


def test_through_the_app_a_begin_that_fails_leaves_the_queue(dbfile, tmp_path, monkeypatch):
    """Another program (no queue) holds SQLite's write lock: the app's writer takes its turn in
    the queue, its BEGIN IMMEDIATE waits out the busy timeout and fails, and the turn is given back."""
    from sqlalchemy.exc import OperationalError

    import pointsapp.database as database

    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    other = sqlite3.connect(dbfile, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    app = app_for(dbfile, tmp_path, monkeypatch)
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                with pytest.raises(OperationalError, match="database is locked"):
                    conn.exec_driver_sql("INSERT INTO t VALUES (10)")
            queue = _writer_lock(str(dbfile))
            assert not queue.threads.locked() and not lock_file_is_taken(dbfile)
        finally:
            db.engine.dispose()
    other.rollback()
    other.close()
