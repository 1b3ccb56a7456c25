"""Local dates: caps and activity dates are counted in the street's time zone."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


def local_zone() -> ZoneInfo:
    name = current_app.config["TIMEZONE"] if has_app_context() else "Asia/Shanghai"
    return ZoneInfo(name)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def local_today(now: datetime | None = None) -> date:
    """Return today's date where the street is."""
    return (now or now_utc()).astimezone(local_zone()).date()


def to_local(moment: datetime) -> datetime:
    return moment.astimezone(local_zone())


def utc_start_of(day: date) -> datetime:
    """Return the moment ``day`` begins where the street is, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=local_zone()).astimezone(timezone.utc)


def add_months(day: date, n: int = 1) -> date:
    """Return the first day of the month ``n`` months after ``day``'s month."""
    month = day.month - 1 + n
    return date(day.year + month // 12, month % 12 + 1, 1)


FIRST_YEAR, LAST_YEAR = 2000, 2100


def parse_month(text: str, field: str = "month") -> date:
    """Return the first day of a month written ``YYYY-MM`` (2000 to 2100), or raise ``InvalidInput``."""
    from .errors import InvalidInput

    try:
        day = date.fromisoformat(f"{(text or '').strip()}-01")
    except ValueError:
        day = None
    if day is None or not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput("Write the month like 2026-09, between 2000 and 2100.", field=field)
    return day
