"""Decorators that check roles before a view runs. Scoping of data is done in the domain."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required
from werkzeug.routing import IntegerConverter

DB_INT_MAX = 2**31 - 1  # ids, counts and cursors are 32-bit integers in the database


def db_int(value: str) -> int:
    """Parse a query-string integer that fits the database; raise ValueError otherwise."""
    number = int(value)
    if not 0 <= number <= DB_INT_MAX:
        raise ValueError("out of range")
    return number


class DatabaseIntConverter(IntegerConverter):
    """``<int:id>`` that matches only ids the database can hold (a larger one is a plain 404)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(map, *args, **kwargs)


def role_required(*roles: str):
    """Let the view run only for a logged-in, active user who holds one of ``roles``."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_roles = roles
        return wrapped

    return decorator
