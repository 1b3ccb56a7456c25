"""``flask points ...``: thin commands over the domain functions. Each commits once."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select

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

    problems = check_ledger()
    db.session.rollback()
    if problems:
        for p in problems:
            click.echo(f"PROBLEM: {p}", err=True)
        click.echo(f"ledger check failed: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("ledger check passed")


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
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has people.")
@click.option("--months", default=4, show_default=True, help="Months of history to generate.")
def seed_demo_cmd(if_empty, months):
    """Build the demo street (Youyi street, Baotou) with people, rules, merchants and history."""
    from .demo import seed_demo
    from .models import User

    if if_empty and db.session.scalar(select(User.id).limit(1)) is not None:
        click.echo("database already has data; demo not loaded")
        return
    _commit_or_fail(lambda: seed_demo(months=months))
    click.echo("demo street loaded; `flask points demo-logins` prints the logins")


@points_cli.command("demo-logins")
def demo_logins_cmd():
    """Print the demo logins and their password, or how to create the first admin."""
    from .demo import DEMO_LOGINS, DEMO_PASSWORD, demo_present

    present = demo_present()
    db.session.rollback()
    if not present:
        click.echo("No demo data in this database. Create the first street admin with:")
        click.echo('  flask points create-admin --username admin --name "Your Name" --street "友谊街道"')
        click.echo("or load the demo street (only into an empty database) with: flask points seed-demo")
        return
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, what in DEMO_LOGINS:
        click.echo(f"  {username:<14} {what}")


@points_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def export_cmd(path):
    """Write the whole database to a portable, versioned archive (a zip of JSON lines)."""
    from .backup import BackupError, export_archive

    try:
        manifest = export_archive(path)
    except BackupError as exc:
        raise click.ClickException(str(exc))
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
