"""The benchmark data generator writes only what the app could have written: the ledger is sound."""
from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from pointsapp import create_app
from pointsapp.domain.ledger import check_ledger
from pointsapp.domain.org import add_unit
from pointsapp.extensions import db
from pointsapp.models import Account, Activity, Entry, OrgUnit, Transfer, User
from tests.conftest import BACKEND, PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)


def _scratch_url(tmp_path) -> tuple[str, callable]:
    if BACKEND != "postgresql":
        return f"sqlite:///{tmp_path / 'bench.db'}", lambda: None
    name = f"pointsapp_bench_{secrets.token_hex(4)}"
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop():
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


@pytest.mark.slow
def test_generated_city_has_the_asked_volunteers_and_entries_and_a_sound_ledger(tmp_path):
    url, drop = _scratch_url(tmp_path)
    try:
        out = generate.generate(url, volunteers=300, entries=2000, seed=7)
        app = create_app({"DATABASE_URL": url})
        with app.app_context():
            assert check_ledger() == []
            s = db.session
            generated = s.scalar(sa.select(sa.func.count()).select_from(User).where(User.username.like("v%")))
            assert generated == out["volunteers"] == 300
            # 1,000 credits of the bulk load, each an approved activity with one transfer and two entries.
            bulk = sa.select(Transfer.id).join(Activity, Activity.id == Transfer.activity_id).join(
                User, User.id == Activity.volunteer_id).where(User.username.like("v%"))
            assert s.scalar(sa.select(sa.func.count()).select_from(bulk.subquery())) == 1000
            assert s.scalar(sa.select(sa.func.count()).select_from(Entry).where(Entry.transfer_id.in_(bulk))) == 2000
            # Every generated volunteer has an account; balances are what their entries say.
            volunteers = s.scalar(sa.select(sa.func.count()).select_from(Account).join(User).where(User.username.like("v%")))
            assert volunteers == 300
            # The app adds rows after the bulk load with fresh ids (the sequences were moved past it).
            top = s.scalar(sa.select(sa.func.max(OrgUnit.id)))
            street = s.scalar(sa.select(OrgUnit).where(OrgUnit.parent_id.is_(None)))
            assert add_unit("压测后新增社区", "community", street).id > top
            s.rollback()
            db.engine.dispose()
    finally:
        drop()
