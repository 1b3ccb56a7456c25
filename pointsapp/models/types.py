"""Column types shared by the models."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


# The clock that stamps rows taking their ``created_at`` from the default (``utcnow``): the wall
# clock, or the moment a replayed history has reached (``stamping_with``).
_row_clock: ContextVar[Callable[[], datetime] | None] = ContextVar("row_clock", default=None)


def utcnow() -> datetime:
    """Return the current time, aware, in UTC (or the replayed history's, see ``stamping_with``)."""
    clock = _row_clock.get()
    return clock() if clock is not None else datetime.now(timezone.utc)


@contextmanager
def stamping_with(clock: Callable[[], datetime]):
    """Stamp rows that take their ``created_at`` from the default with ``clock()`` instead of
    the wall clock, in this context (a replayed history, such as the demo street's)."""
    token = _row_clock.set(clock)
    try:
        yield
    finally:
        _row_clock.reset(token)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned timezone-aware.

    SQLite has no time zones; PostgreSQL's ``timestamptz`` has. Storing naive UTC in a
    ``timestamp`` column on both keeps comparisons identical across the two databases.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)
