"""Flask extensions, created unbound and initialised in ``create_app``."""
from __future__ import annotations

import click

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints so that Alembic migrations can refer to (and drop) them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = None  # set below: LazyMigrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


class _LazyMigrateConfig:
    """Stands in ``app.extensions["migrate"]`` for Flask-Migrate until something uses it.

    Flask-Migrate imports Alembic (and Mako), about 11 MB per process that a web worker never
    needs: migrations run from the command line. ``directory`` is known without loading it
    (``/readyz`` reads it); any other attribute loads Flask-Migrate and answers from it.
    """

    def __init__(self, app, db, directory: str, kwargs: dict):
        self._app, self._db, self._kwargs = app, db, kwargs
        self.directory = directory
        self._real = None

    def __getattr__(self, name):
        if self._real is None:
            from flask_migrate import Migrate

            Migrate(self._app, self._db, directory=self.directory, **self._kwargs)  # replaces this stand-in
            self._real = self._app.extensions["migrate"]
        return getattr(self._real, name)


class _LazyDbGroup(click.Group):
    """``flask db ...``: Flask-Migrate's command group, imported when the command line asks for it."""

    @staticmethod
    def _real() -> click.Group:
        from flask_migrate.cli import db as db_group

        return db_group

    def make_context(self, info_name, args, parent=None, **extra):
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        return self._real().invoke(ctx)

    def list_commands(self, ctx):
        return self._real().list_commands(ctx)

    def get_command(self, ctx, name):
        return self._real().get_command(ctx, name)


class LazyMigrate:
    """Flask-Migrate's ``init_app``, without importing Flask-Migrate until it is used."""

    def init_app(self, app, db, directory: str, **kwargs) -> None:
        app.extensions["migrate"] = _LazyMigrateConfig(app, db, str(directory), kwargs)
        app.cli.add_command(_LazyDbGroup("db", help="Perform database migrations."))


migrate = LazyMigrate()
