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
