"""Backup and restore: `flask points export` / `import`, round trip SQLite → PostgreSQL → SQLite."""
from __future__ import annotations

import os
import secrets
import zipfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pointsapp import create_app
from pointsapp.backup import FORMAT, FORMAT_VERSION, BackupError, export_archive, import_archive
from pointsapp.config import TestConfig
from pointsapp.domain import claims, ledger, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.extensions import db
from pointsapp.models import Account, Transfer, User, Voucher
from tests.conftest import PG_ADMIN_URL, _migrate
from tests.factories import give_points, person
from tests.reliability.support import alembic_version_set_to, reset_database, snapshot


def populate(s) -> None:
    """Give the street a little of everything: credits, claims, every voucher state, reversals."""
    give_points(s, s.vol_a, 60)
    give_points(s, s.vol_b, 40)
    pending = claims.submit_claim(s.vol_a, rule_id=s.patrol.id, activity_date=local_today(), hours="1.5", note="夜间巡查")
    approved = claims.submit_claim(s.vol_a2, rule_id=s.patrol.id, activity_date=local_today(), hours="2")
    rejected = claims.submit_claim(s.vol_a2, rule_id=s.meeting.id, activity_date=local_today())
    db.session.commit()
    claims.approve_claim(s.staff_a, approved.id)
    claims.reject_claim(s.staff_a, rejected.id, "当天没有开会")
    redeemed = vouchers.issue_voucher(s.vol_a, s.rice.id)
    cancelled = vouchers.issue_voucher(s.vol_a, s.rice.id)
    vouchers.issue_voucher(s.vol_a, s.rice.id)  # stays open
    vouchers.issue_voucher(s.vol_b, s.oil.id, now=now_utc() - timedelta(days=10))  # overdue
    db.session.commit()
    vouchers.confirm_redemption(s.cashier, redeemed.code)
    vouchers.cancel_voucher(s.vol_a, cancelled.voucher.id)
    vouchers.expire_vouchers()
    db.session.commit()
    credit = db.session.scalar(sa.select(Transfer).where(Transfer.kind == "credit", Transfer.activity_id == approved.id))
    claims.reverse_transfer(s.street_admin, credit.id, "重复申报")
    db.session.commit()
    assert db.session.get(type(pending), pending.id).status == "pending"
    db.session.rollback()  # end the read: on SQLite it would hold the write lock


def balances() -> list[tuple]:
    return [tuple(r) for r in db.session.execute(sa.select(Account.id, Account.balance, Account.held, Account.earned).order_by(Account.id))]


@contextmanager
def app_on(url: str, instance: Path):
    """Push an app context on another database (the test's own app stays underneath)."""
    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    settings.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="test-secret-key", VOUCHER_KEY="test-voucher-key")
    other = create_app(settings)
    with other.app_context():
        try:
            yield other
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def fresh_postgresql(tmp_path):
    """Create a migrated PostgreSQL database for this test (whatever TEST_DATABASE is); drop it after."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"pointsapp_restore_{secrets.token_hex(4)}"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: the SQLite → PostgreSQL round trip needs it")
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url, tmp_path)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def fresh_sqlite(tmp_path: Path, name: str) -> str:
    url = f"sqlite:///{tmp_path / name}"
    _migrate(url, tmp_path)
    return url


def test_round_trip_sqlite_to_postgresql_and_back_keeps_every_row(app, tmp_path, fresh_postgresql):
    instance = tmp_path / "instance"
    first, second = tmp_path / "from-sqlite.zip", tmp_path / "from-postgresql.zip"
    with app_on(fresh_sqlite(tmp_path, "source.db"), instance):
        from tests.factories import build_street

        populate(build_street())
        original, original_balances = snapshot(), balances()
        db.session.rollback()
        export_archive(first)

    with app_on(fresh_postgresql, instance):
        import_archive(first)
        assert snapshot() == original
        assert balances() == original_balances
        assert ledger.check_ledger() == []
        db.session.rollback()
        export_archive(second)
        # The id sequences were moved past the imported rows: new rows get new ids.
        vol = db.session.scalar(sa.select(User).where(User.username == "vol_b"))
        last_voucher = db.session.scalar(sa.select(sa.func.max(Voucher.id)))
        issued = vouchers.issue_voucher(vol, db.session.scalar(sa.select(Voucher.reward_id).where(Voucher.volunteer_id == vol.id)))
        db.session.commit()
        assert issued.voucher.id == last_voucher + 1

    with app_on(fresh_sqlite(tmp_path, "restored.db"), instance):
        import_archive(second)
        assert snapshot() == original
        assert balances() == original_balances
        assert ledger.check_ledger() == []
        db.session.rollback()

    # The two archives hold the same rows, byte for byte, whichever database wrote them.
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        ma, mb = (__import__("json").loads(z.read("manifest.json")) for z in (a, b))
        assert (ma["source_dialect"], mb["source_dialect"]) == ("sqlite", "postgresql")
        assert [(t["name"], t["rows"], t["sha256"]) for t in ma["tables"]] == [(t["name"], t["rows"], t["sha256"]) for t in mb["tables"]]


def test_the_archive_has_a_manifest_with_version_revision_counts_and_checksums(street, tmp_path):
    populate(street)
    manifest = export_archive(tmp_path / "backup.zip")
    assert manifest["format"] == FORMAT and manifest["format_version"] == FORMAT_VERSION
    with db.engine.connect() as conn:
        assert manifest["alembic_revision"] == conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    counts = {t["name"]: t["rows"] for t in manifest["tables"]}
    assert set(counts) == set(db.metadata.tables)  # every table, including any added later
    assert counts["transfer"] == db.session.scalar(sa.select(sa.func.count()).select_from(Transfer))
    with zipfile.ZipFile(tmp_path / "backup.zip") as zf:
        names = set(zf.namelist())
    assert names == {"manifest.json"} | {f"tables/{t}.jsonl" for t in counts}


def test_the_archive_is_readable_by_its_owner_only_whatever_the_umask(street, tmp_path):
    """It holds names, phone numbers and password hashes."""
    populate(street)
    old = os.umask(0o022)
    try:
        export_archive(tmp_path / "backup.zip")
    finally:
        os.umask(old)
    assert (tmp_path / "backup.zip").stat().st_mode & 0o777 == 0o600


def test_cli_export_then_import_into_an_emptied_database_restores_it(street, runner, database_template, tmp_path, check_ledger):
    populate(street)
    before = snapshot()
    db.session.rollback()
    archive = tmp_path / "points.zip"
    out = runner.invoke(args=["points", "export", str(archive)])
    assert out.exit_code == 0, out.output
    assert "exported" in out.output

    refused = runner.invoke(args=["points", "import", str(archive)])
    assert refused.exit_code != 0
    assert "not empty" in refused.output and "Nothing was imported" in refused.output

    reset_database(database_template)
    out = runner.invoke(args=["points", "import", str(archive)])
    assert out.exit_code == 0, out.output
    assert "ledger check passed" in out.output
    assert snapshot() == before
    check_ledger()


def test_a_damaged_archive_is_refused_before_anything_is_written(street, database_template, tmp_path):
    populate(street)
    good = tmp_path / "good.zip"
    export_archive(good)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "tables/entry.jsonl":
                data = data.replace(b'"amount": -', b'"amount": -1', 1)  # one leg changed by a digit
            dst.writestr(item, data)
    reset_database(database_template)
    with pytest.raises(BackupError, match="entry: checksum mismatch"):
        import_archive(bad)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_an_archive_of_another_schema_revision_is_refused(street, database_template, tmp_path):
    archive = tmp_path / "b.zip"
    export_archive(archive)
    reset_database(database_template)
    with alembic_version_set_to("r0later"):
        with pytest.raises(BackupError, match="made at revision .* but this database is at r0later"):
            import_archive(archive)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_a_file_that_is_not_an_archive_is_refused(app, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BackupError, match="cannot read"):
        import_archive(junk)
