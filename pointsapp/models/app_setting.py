"""Facts about the installation that every machine serving it must agree on."""
from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class AppSetting(db.Model):
    """One named value, written once (``voucher_key_fingerprint``: which voucher key made the
    vouchers, so that a machine with another key refuses instead of showing unusable codes)."""

    __tablename__ = "app_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
