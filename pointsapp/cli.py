"""``flask points ...``: thin commands over the domain functions. Each commits once; the batch
jobs (expiry, notices, vouchers) once per complete unit, so that a rerun finishes a stopped run."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import func, select, text

from .domain import clock
from .domain.errors import PointsError
from .extensions import db

points_cli = AppGroup("points", help="Points ledger administration.")


def _commit_or_fail(fn):
    try:
        result = fn()
        db.session.commit()
        return result
    except Exception:
        db.session.rollback()
        raise


@points_cli.command("check-ledger")
def check_ledger_cmd():
    """Verify every ledger invariant; exit 1 naming each problem."""
    from .domain.ledger import check_ledger

    if db.engine.dialect.name == "postgresql":
        # One snapshot for every check, so that writes committed meanwhile cannot make two of
        # its reads disagree (SQLite's transaction is a snapshot already).
        db.session.rollback()
        db.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    problems = check_ledger()
    db.session.rollback()
    if problems:
        for p in problems:
            click.echo(f"PROBLEM: {p}", err=True)
        click.echo(f"ledger check failed: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("ledger check passed")


@points_cli.command("rebuild-month-totals")
def rebuild_month_totals_cmd():
    """Compute every volunteer's monthly totals again from the transfers."""
    from .domain.ledger import rebuild_month_totals

    rows = _commit_or_fail(rebuild_month_totals)
    click.echo(f"monthly totals rebuilt: {rows} row(s)")


@points_cli.command("rebuild-year-totals")
def rebuild_year_totals_cmd():
    """Compute every volunteer's yearly totals (points and hours) again from the activities."""
    from .domain.activity_totals import rebuild_year_totals

    rows = _commit_or_fail(rebuild_year_totals)
    click.echo(f"yearly totals rebuilt: {rows} row(s)")


@points_cli.command("verify-audit")
def verify_audit_cmd():
    """Walk the audit log's hash chain; exit 1 naming the first missing or altered record."""
    from .domain.audit import verify_chain

    report = verify_chain()
    db.session.rollback()
    if report.problem:
        click.echo(f"BROKEN: {report.problem}", err=True)
        click.echo(f"audit check failed after {report.records} good record(s)", err=True)
        sys.exit(1)
    # The newest hash, for the record kept elsewhere (the cron mail): a chain rewritten from
    # some record on, by someone who can write to the database, ends in another hash.
    click.echo(f"audit chain intact: {report.records} record(s), newest hash {report.head_hash}")


@points_cli.command("expire-vouchers")
def expire_vouchers_cmd():
    """Expire vouchers past their time and give their points and stock back."""
    from .domain.vouchers import expire_vouchers

    total = 0
    while True:
        n = _commit_or_fail(expire_vouchers)
        total += n
        if n == 0:
            break
    click.echo(f"expired {total} voucher(s)")


@points_cli.command("expire")
@click.option("--today", "today", default=None, help="Run as of this date (YYYY-MM-DD); default: today where the street is.")
def expire_cmd(today):
    """Expire points past their last day (run daily): each lot's remainder moves to the street's
    expiry account. Safe to run twice or at once."""
    from datetime import date

    from .domain.clock import local_today

    try:
        day = date.fromisoformat(today) if today else local_today()
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--today")
    if day > local_today(clock.now_utc()):
        # A typo would expire real points months early: only today, or a day missed before it.
        raise click.BadParameter(f"{day} is after today ({local_today(clock.now_utc())}); points expire only "
                                 "on or after their last day", param_hint="--today")
    done = expire_points(day)
    click.echo(f"expired {done.points} point(s) in {done.lots} lot(s)")


def expire_points(day):
    """Expire every volunteer's due lots as of ``day``, one transaction per volunteer account."""
    from .domain import ledger

    done = ledger.Expired()
    account_ids = ledger.accounts_with_due_lots(day)
    db.session.rollback()
    for account_id in account_ids:
        done += _commit_or_fail(lambda: ledger.expire_account(account_id, day))
    return done


@points_cli.command("publish-notices")
@click.option("--now", "now_text", default=None, help="Treat this ISO time (UTC unless it says) as now.")
def publish_notices_cmd(now_text):
    """Credit activities whose public notice has ended with no open objection (run daily or hourly)."""
    from datetime import datetime, timezone

    from .domain.errors import PointsError
    from .domain.notice import due_notice_ids, publish_one

    now = None
    if now_text:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise click.BadParameter("use an ISO time such as 2026-12-07T08:00:00+08:00", param_hint="--now")
        now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
        if now > clock.now_utc():
            # A time ahead would credit work while its notice is still open for objections.
            raise click.BadParameter(f"{now_text} is in the future: work is credited only after its public "
                                     "notice has ended", param_hint="--now")
    total, seen = 0, set()
    while True:
        ids = [i for i in due_notice_ids(now) if i not in seen]
        db.session.rollback()
        if not ids:
            break
        for activity_id in ids:
            seen.add(activity_id)
            # One transaction per activity: its row is locked before the accounts (lock order).
            try:
                total += bool(_commit_or_fail(lambda: publish_one(activity_id, now)))
            except PointsError as exc:  # a refusal of the credit path: the activity stays on notice
                click.echo(f"activity {activity_id} not credited: {exc.message}", err=True)
    click.echo(f"credited {total} activit{'y' if total == 1 else 'ies'} after public notice")


@points_cli.command("create-admin")
@click.option("--username", required=True)
@click.option("--name", "full_name", required=True, help="The person's full name.")
@click.option("--street", required=True, help="Name of the street (created if missing).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin_cmd(username, full_name, street, password):
    """Create a street admin (and the street itself on a new install)."""
    from .domain.errors import PointsError
    from .domain.org import add_unit, ensure_levels
    from .domain.people import create_person
    from .models import OrgUnit
    from .models.user import ROLE_STREET_ADMIN

    street = street.strip()  # "友谊街道 " is the same street, as add_unit would name it

    def run():
        ensure_levels()
        unit = db.session.scalar(select(OrgUnit).where(OrgUnit.parent_id.is_(None), OrgUnit.name == street))
        if unit is None:
            unit = add_unit(street, "street")
        return create_person(
            None, username=username, full_name=full_name, password=password, org_unit=unit, roles=(ROLE_STREET_ADMIN,)
        )

    try:
        user = _commit_or_fail(run)
    except PointsError as exc:
        raise click.ClickException(exc.message)
    click.echo(f"created street admin {user.username} for {street}")


@points_cli.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing (and succeed) when the database already has people.")
@click.option("--months", default=4, show_default=True, help="Months of history to generate.")
def seed_demo_cmd(if_empty, months):
    """Build the demo street (Youyi street, Baotou) with people, rules, merchants and history,
    into an empty database only: its accounts share a published password."""
    from .demo import seed_demo
    from .models import User

    if db.session.scalar(select(User.id).limit(1)) is not None:
        if if_empty:
            click.echo("database already has data; demo not loaded")
            return
        raise click.ClickException("this database already has people: the demo, whose accounts share a "
                                   "published password, loads only into an empty database")
    _commit_or_fail(lambda: seed_demo(months=months))
    click.echo("demo street loaded; `flask points demo-logins` prints the logins")


@points_cli.command("demo-logins")
def demo_logins_cmd():
    """Print the demo logins and their password, or how to create the first admin."""
    from .demo import DEMO_LOGINS, DEMO_PASSWORD, demo_present
    from .models import User

    present = demo_present()
    anyone = db.session.scalar(select(User.id).limit(1)) is not None
    db.session.rollback()
    if not present and anyone:
        click.echo("No demo data in this database. Log in with your admins' accounts; an admin resets "
                   "a forgotten password on the person's page.")
        return
    if not present:
        click.echo("No demo data in this database. Create the first street admin with:")
        click.echo('  flask points create-admin --username admin --name "Your Name" --street "友谊街道"')
        click.echo("or load the demo street (only into an empty database) with: flask points seed-demo")
        return
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, what in DEMO_LOGINS:
        click.echo(f"  {username:<14} {what}")


@points_cli.command("import-people")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report problems; change nothing.")
@click.option("--as", "as_user", default=None, help="Username of the admin importing (default: the only street admin).")
def import_people_cmd(file, dry_run, as_user):
    """Import org nodes and volunteers from an XLSX or CSV file, all rows or none."""
    from .domain.imports import import_people
    from .models import RoleGrant, User
    from .models.user import ROLE_STREET_ADMIN
    from .spreadsheets import UnreadableFile, read_rows

    if as_user:
        actor = db.session.scalar(select(User).where(func.lower(User.username) == as_user.strip().lower()))
        if actor is None:
            raise click.ClickException(f"no user named {as_user}")
    else:
        admins = list(db.session.scalars(
            select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(RoleGrant.role == ROLE_STREET_ADMIN)
        ))
        if len(admins) != 1:
            raise click.ClickException("name the importing admin with --as USERNAME")
        actor = admins[0]
    with open(file, "rb") as f:
        data = f.read()
    try:
        rows = read_rows(data, file)
    except UnreadableFile as exc:
        raise click.ClickException(f"cannot read {file}: {exc}")
    try:
        with click.progressbar(length=max(len(rows) - 1, 0), label="Checking" if dry_run else "Importing") as bar:
            result = import_people(actor, rows, progress=bar.update)
    except PointsError as exc:  # the importer may not import (not an admin, say)
        db.session.rollback()
        raise click.ClickException(f"{actor.username}: {exc.message}")
    except Exception:
        db.session.rollback()
        raise
    for number, message in result.errors:
        click.echo(f"row {number}: {message}", err=True)
    summary = (
        f"{result.rows} row(s): {result.people_created} new people, {result.units_created} new nodes, "
        f"{result.unchanged} unchanged"
    )
    if result.errors or dry_run:
        db.session.rollback()
        if result.errors:
            click.echo(f"nothing imported: {len(result.errors)} row(s) have problems", err=True)
            sys.exit(1)
        click.echo(f"dry run, nothing changed; would import {summary}")
        return
    db.session.commit()
    click.echo(f"imported {summary}")
    if result.codes:
        click.echo("activation codes (hand each person theirs; valid 14 days, shown only now):")
        for username, full_name, code in result.codes:
            click.echo(f"  {username}\t{full_name}\t{code}")


@points_cli.command("purge-idempotency-keys")
@click.option("--older-than-hours", default=24, show_default=True, type=click.IntRange(24, None),
              help="Delete keys older than this (at least 24 hours).")
def purge_idempotency_keys_cmd(older_than_hours):
    """Delete API idempotency keys older than a day (or the given age)."""
    from datetime import timedelta

    from .domain.tokens import purge_idempotency_keys

    n = _commit_or_fail(lambda: purge_idempotency_keys(timedelta(hours=older_than_hours)))
    click.echo(f"purged {n} idempotency key(s)")


@points_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def export_cmd(path):
    """Write the whole database to a portable, versioned archive (a zip of JSON lines)."""
    from .backup import BackupError, export_archive

    try:
        manifest = export_archive(path)
    except BackupError as exc:
        raise click.ClickException(str(exc))
    except OSError as exc:  # no such folder, no room, no permission
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}")
    rows = sum(t["rows"] for t in manifest["tables"])
    click.echo(
        f"exported {rows} rows of {len(manifest['tables'])} tables at revision {manifest['alembic_revision']} to {path}"
    )


@points_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_cmd(path):
    """Restore an archive made by `export` into this empty, migrated database."""
    from .backup import BackupError, import_archive

    try:
        manifest = import_archive(path)
    except BackupError as exc:
        raise click.ClickException(f"{exc}. Nothing was imported.")
    rows = sum(t["rows"] for t in manifest["tables"])
    click.echo(f"imported {rows} rows of {len(manifest['tables'])} tables from {path}; ledger check passed")
