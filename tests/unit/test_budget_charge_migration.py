"""Migration eff0a1b2c3d4 on a database with budget charges in place: rows, constraints,
indexes and the append-only guard survive on both databases."""
import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from pointsapp.extensions import db
from tests.factories import build_street
from tests.unit.helpers import award, fund


def test_the_per_budget_charge_migration_keeps_data_constraints_and_guards(app):
    s = build_street()
    fund(s, s.community_a, 100)
    award(s, s.vol_a, 10)
    award(s, s.vol_a, 5)
    db.session.commit()
    db.session.remove()
    downgrade(revision="eef0a1b2c3d4")
    upgrade()
    insp = inspect(db.engine)
    uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("budget_charge")}
    checks = [c["name"] for c in insp.get_check_constraints("budget_charge")]
    fks = sorted(f["name"] for f in insp.get_foreign_keys("budget_charge"))
    idx = sorted(i["name"] for i in insp.get_indexes("budget_charge"))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), sum(points) FROM budget_charge")).one() == (2, 15)
    assert uniques == {"uq_budget_charge_transfer_id_budget_id": ["transfer_id", "budget_id"]}
    assert "ck_budget_charge_points_not_zero" in checks
    assert fks == ["fk_budget_charge_budget_id_budget", "fk_budget_charge_transfer_id_transfer"]
    assert "ix_budget_charge_budget_id" in idx
    with pytest.raises(DBAPIError) as exc:
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM budget_charge"))
    assert "append-only" in str(exc.value)
    with pytest.raises(DBAPIError):
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO budget_charge (transfer_id, budget_id, points) "
                              "SELECT transfer_id, budget_id, 0 FROM budget_charge LIMIT 1"))
