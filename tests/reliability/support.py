"""Helpers of the reliability suite: reset the test database fast, snapshot every table."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from pointsapp.extensions import db


def reset_database(database_template: dict) -> None:
    """Empty the test's database again without creating a new one (many examples per test).

    PostgreSQL: empty every table as each test's set-up does (``tests.conftest.empty_postgresql``).
    SQLite: copy the migrated template file over the database file again.
    """
    db.session.remove()
    if database_template["kind"] == "postgresql":
        from tests.conftest import empty_postgresql

        with db.engine.begin() as conn:
            empty_postgresql(conn, database_template)
        return
    db.engine.dispose()
    target = Path(db.engine.url.database)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(database_template["template"], target)


def snapshot(session=None) -> dict[str, list[tuple]]:
    """Return every row of every table, in primary-key order: two equal snapshots, equal databases."""
    session = session or db.session
    out = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        rows = session.execute(sa.select(table).order_by(*order)).all()
        out[table.name] = [tuple(r) for r in rows]
    return out


@contextmanager
def alembic_version_set_to(*revisions: str):
    """Pretend the database is at other revisions (none: never migrated); put the real one back after.

    On PostgreSQL the run's database is shared by every test (each empties the data tables), so
    the real revision must come back even when the test fails.
    """
    with db.engine.begin() as conn:
        real = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
        conn.execute(sa.text("DELETE FROM alembic_version"))
        for rev in revisions:
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": rev})
    try:
        yield
    finally:
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
            for rev in real:
                conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": rev})
