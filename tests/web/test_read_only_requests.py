"""Requests that only read (GET, HEAD) run in READ ONLY transactions on PostgreSQL and end with a
COMMIT, which keeps psycopg's prepared statements (a ROLLBACK discards them); every other
request, and whatever runs after a request in the same thread, can write."""
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from pointsapp.extensions import db
from tests.unit.helpers import award


@pytest.fixture
def ends(app):
    """Count how transactions end on the app's engine: {"commit": n, "rollback": n}."""
    counts = {"commit": 0, "rollback": 0}
    listeners = [(name, lambda conn, name=name: counts.__setitem__(name, counts[name] + 1)) for name in counts]
    for name, fn in listeners:
        event.listen(db.engine, name, fn)
    yield counts
    for name, fn in listeners:
        event.remove(db.engine, name, fn)


def test_a_page_read_ends_its_transaction_with_a_commit_on_postgresql_and_a_write_after_it_works(
        street, client, auth, ends, check_ledger):
    auth.login(street.vol_a.username)
    db.session.commit()
    ends.update(commit=0, rollback=0)
    for _ in range(3):
        assert client.get("/volunteer/").status_code == 200
    if db.engine.dialect.name == "postgresql":
        assert ends == {"commit": 3, "rollback": 0}
    else:  # SQLite's read transactions are not committed: they end as before
        assert ends["commit"] == 0
    # The same thread writes afterwards (a test's own set-up, a command): writable again.
    award(street, street.vol_a, 5)
    assert client.get("/volunteer/").status_code == 200
    check_ledger()


def test_a_write_inside_a_page_read_is_refused_by_postgresql(app, street, client):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("READ ONLY transactions are PostgreSQL's; SQLite's reads begin DEFERRED")
    seen = {}

    @app.get("/_test/write-in-a-read")
    def write_in_a_read():
        try:
            db.session.execute(text("UPDATE account SET held = held WHERE id = 0"))
        except DBAPIError as exc:
            seen["error"] = str(exc.orig)
            db.session.rollback()
        return "done"

    assert client.get("/_test/write-in-a-read").status_code == 200
    assert "read-only transaction" in seen["error"]


def test_a_form_post_after_page_reads_still_writes(street, client, auth, check_ledger):
    auth.login(street.vol_a.username)
    for _ in range(2):
        assert client.get("/volunteer/").status_code == 200
    # A POST on the same thread (and a pooled connection that last ran a READ ONLY transaction).
    resp = auth.logout()
    assert resp.status_code == 302
    assert client.get("/volunteer/").status_code == 302  # logged out: the session version moved
    check_ledger()
