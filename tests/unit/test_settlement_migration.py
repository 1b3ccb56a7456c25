"""The settlement migration rebuilds the transfer table's kind check without losing a row or
the append-only guard (SQLite cannot alter a CHECK in place)."""
import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from pointsapp.domain.ledger import check_ledger
from pointsapp.extensions import db
from pointsapp.models import Entry, Transfer
from tests.factories import build_street
from tests.unit.helpers import award


def test_down_and_up_again_keeps_every_transfer_and_the_guard(app):
    s = build_street()
    award(s, s.vol_a, 10)
    award(s, s.vol_b, 20)
    before = [tuple(r) for r in db.session.execute(select(Transfer.id, Transfer.kind, Transfer.amount, Transfer.cause_key).order_by(Transfer.id))]
    db.session.remove()
    downgrade(revision="09d413df3395")
    upgrade()
    after = [tuple(r) for r in db.session.execute(select(Transfer.id, Transfer.kind, Transfer.amount, Transfer.cause_key).order_by(Transfer.id))]
    assert after == before and len(after) == 2
    assert db.session.scalar(select(func.count()).select_from(Entry)) == 4
    assert check_ledger() == []
    if db.engine.dialect.name == "sqlite":
        assert db.session.execute(text("PRAGMA foreign_key_check")).all() == []
        ddl = db.session.execute(text("SELECT sql FROM sqlite_master WHERE name = 'transfer'")).scalar()
        assert "'settlement'" in ddl and "REFERENCES transfer" in ddl
        indexes = {r[0] for r in db.session.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transfer'"))}
        assert {"ix_transfer_activity_id", "ix_transfer_created_at", "ix_transfer_voucher_id"} <= indexes
    for sql in ("UPDATE transfer SET amount = 1", "DELETE FROM transfer"):
        with pytest.raises(DBAPIError) as exc:
            db.session.execute(text(sql))
        assert "append-only" in str(exc.value)
        db.session.rollback()
    # The new kind is accepted by the rebuilt check, an unknown kind is not.
    with pytest.raises(DBAPIError):
        db.session.execute(text(
            "INSERT INTO transfer (kind, amount, from_account_id, to_account_id, reason, cause_key, created_at) "
            "SELECT 'bogus', 1, from_account_id, to_account_id, 'x', 'x:1', created_at FROM transfer LIMIT 1"
        ))
    db.session.rollback()
