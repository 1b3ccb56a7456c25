"""A portable, versioned export of the whole database, and its restore into an empty one.

The archive is a zip file:

    manifest.json           format name and version, the Alembic revision of the schema, the
                            source database, when it was made, and per table: its columns, its
                            row count and the SHA-256 of its data file
    tables/<table>.jsonl    one JSON object per row, in primary-key order, UTF-8

Export and import are driven by the SQLAlchemy metadata, table by table in foreign-key order, so
a table added by a later migration is exported and restored without changing this module. Values
are written as JSON: timestamps and dates in ISO 8601 (timestamps with their UTC offset),
decimals as strings, binary data in base64; each is read back by its column's type, so an archive
made on SQLite restores into PostgreSQL and back.

The export reads one consistent snapshot (a REPEATABLE READ transaction on PostgreSQL, a read
transaction in WAL mode on SQLite), so it can run while the app serves requests. The import
refuses unless the database is migrated to the archive's revision and is empty, checks every
checksum before it writes anything, inserts every row in one transaction (the ledger's append-only
triggers refuse UPDATE and DELETE, never INSERT), moves PostgreSQL's id sequences past the
imported ids, verifies the row counts and the ledger, and only then commits.

This complements ``pg_dump`` (see the README): the archive is independent of the database
engine and of its version, and it can be read by any tool that reads JSON.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from .extensions import db

FORMAT = "pointsapp-export"
FORMAT_VERSION = 1
BATCH = 1000


class BackupError(Exception):
    """The archive cannot be written or restored; the message says why. Nothing was changed."""


def _tables() -> list[sa.Table]:
    return list(db.metadata.sorted_tables)  # parents before children (foreign-key order)


def _kind(column: sa.Column):
    """Return the Python type of a column's values (through TypeDecorators), or None."""
    col_type = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        col_type = col_type.impl_instance
    try:
        return col_type.python_type
    except NotImplementedError:
        return None


def _encoder(column: sa.Column):
    kind = _kind(column)
    if kind is datetime or kind is date:
        return lambda v: None if v is None else v.isoformat()
    if kind is Decimal:
        return lambda v: None if v is None else str(v)
    if kind is bytes:
        return lambda v: None if v is None else base64.b64encode(v).decode("ascii")
    return lambda v: v


def _decoder(column: sa.Column):
    kind = _kind(column)
    if kind is datetime:
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if kind is date:
        return lambda v: None if v is None else date.fromisoformat(v)
    if kind is Decimal:
        return lambda v: None if v is None else Decimal(v)
    if kind is bytes:
        return lambda v: None if v is None else base64.b64decode(v)
    return lambda v: v


def current_revision(conn) -> str | None:
    """Return the database's Alembic revision (None if it was never migrated)."""
    try:
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    except sa.exc.DBAPIError:
        return None
    return ",".join(sorted(rows)) or None


def _snapshot_connection():
    """Open a connection whose transaction sees one consistent state of every table."""
    from .database import sqlite_begin_mode

    conn = db.engine.connect()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    token = sqlite_begin_mode.set("DEFERRED")  # a read transaction; writers go on beside it (WAL)
    try:
        conn.begin()
    finally:
        sqlite_begin_mode.reset(token)
    return conn


def export_archive(path: str | os.PathLike) -> dict:
    """Write every table to a zip archive at ``path``; return its manifest."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "tables": [],
    }
    conn = _snapshot_connection()
    try:
        manifest["alembic_revision"] = current_revision(conn)
        manifest["source_dialect"] = conn.dialect.name
        if manifest["alembic_revision"] is None:
            raise BackupError("the database has no Alembic revision: migrate it first")
        # Readable by its owner only: it holds names, phone numbers and password hashes.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for table in _tables():
                columns = list(table.columns)
                encoders = [_encoder(c) for c in columns]
                digest, rows = hashlib.sha256(), 0
                order = list(table.primary_key.columns) or columns
                result = conn.execution_options(yield_per=BATCH).execute(sa.select(*columns).order_by(*order))
                with zf.open(f"tables/{table.name}.jsonl", "w") as out:
                    for row in result:
                        record = {c.name: enc(v) for c, enc, v in zip(columns, encoders, row)}
                        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
                        digest.update(line)
                        out.write(line)
                        rows += 1
                manifest["tables"].append(
                    {"name": table.name, "columns": [c.name for c in columns], "rows": rows, "sha256": digest.hexdigest()}
                )
            zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        conn.rollback()
        conn.close()
    return manifest


def read_manifest(zf: zipfile.ZipFile) -> dict:
    """Return the archive's manifest after checking its format, version and every checksum."""
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except (KeyError, ValueError) as exc:
        raise BackupError("not a pointsapp archive: manifest.json is missing or unreadable") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError("not a pointsapp archive: unknown format")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"archive format version {manifest.get('format_version')} is not supported (this version reads {FORMAT_VERSION})"
        )
    for entry in manifest["tables"]:
        try:
            data = zf.read(f"tables/{entry['name']}.jsonl")
        except KeyError as exc:
            raise BackupError(f"the archive lacks the data of table {entry['name']}") from exc
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise BackupError(f"table {entry['name']}: checksum mismatch, the archive is damaged")
        lines = data.count(b"\n")
        if lines != entry["rows"]:
            raise BackupError(f"table {entry['name']}: {lines} rows but the manifest says {entry['rows']}")
    return manifest


def _reset_sequences(conn, tables: list[sa.Table]) -> None:
    """Move PostgreSQL's id sequences past the imported ids, so new rows get fresh ids."""
    if conn.dialect.name != "postgresql":
        return  # SQLite's INTEGER PRIMARY KEY continues from the largest id by itself
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, sa.Integer):
            continue
        col = pk[0].name
        conn.execute(
            sa.text(
                f'SELECT setval(pg_get_serial_sequence(:table, :col), COALESCE(MAX("{col}"), 0) + 1, false) '
                f'FROM "{table.name}"'
            ),
            {"table": table.name, "col": col},
        )


def import_archive(path: str | os.PathLike, *, check: bool = True) -> dict:
    """Restore an archive into this empty, migrated database, in one transaction; return its manifest."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from exc
    with zf:
        manifest = read_manifest(zf)
        tables = {t.name: t for t in _tables()}
        archived = {e["name"]: e for e in manifest["tables"]}
        if set(archived) != set(tables):
            raise BackupError(
                "the archive's tables differ from this database's: "
                f"only in the archive {sorted(set(archived) - set(tables))}, only here {sorted(set(tables) - set(archived))}"
            )
        for name, entry in archived.items():
            if entry["columns"] != [c.name for c in tables[name].columns]:
                raise BackupError(f"table {name}: the archive's columns differ from this database's")

        db.session.remove()
        session = db.session
        try:
            revision = current_revision(session.connection())
            if revision != manifest["alembic_revision"]:
                raise BackupError(
                    f"the archive was made at revision {manifest['alembic_revision']} but this database is at "
                    f"{revision}: run `flask db upgrade` (or create the database at that revision) first"
                )
            busy = [
                name for name, t in tables.items()
                if session.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first() is not None
            ]
            if busy:
                raise BackupError(f"the database is not empty (rows in {', '.join(busy)}): import only into an empty one")
            for table in tables.values():  # foreign-key order
                decoders = {c.name: _decoder(c) for c in table.columns}
                batch: list[dict] = []
                with zf.open(f"tables/{table.name}.jsonl") as lines:
                    for line in lines:
                        record = json.loads(line)
                        batch.append({k: decoders[k](v) for k, v in record.items()})
                        if len(batch) >= BATCH:
                            session.execute(table.insert(), batch)
                            batch = []
                if batch:
                    session.execute(table.insert(), batch)
                count = session.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                if count != archived[table.name]["rows"]:
                    raise BackupError(f"table {table.name}: {count} rows restored, {archived[table.name]['rows']} expected")
            _reset_sequences(session.connection(), list(tables.values()))
            if check:
                from .domain.ledger import check_ledger

                problems = check_ledger()
                if problems:
                    raise BackupError("the restored ledger fails its check: " + "; ".join(problems[:10]))
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return manifest
