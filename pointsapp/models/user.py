"""People and the roles they hold. One person may hold several roles, each scoped."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, false, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

# Volunteer titles (职务) from the seeds; code → (Chinese, English).
TITLES: dict[str, tuple[str, str]] = {
    "building_leader": ("楼长", "Building leader"),
    "unit_leader": ("单元长", "Unit leader"),
    "micro_grid_leader": ("微网格长", "Micro-grid leader"),
    "part_time_grid_worker": ("兼职网格员", "Part-time grid worker"),
    "resident": ("居民志愿者", "Resident volunteer"),
}

ROLE_VOLUNTEER = "volunteer"
ROLE_GRID_STAFF = "grid_staff"
ROLE_COMMUNITY_ADMIN = "community_admin"
ROLE_STREET_ADMIN = "street_admin"
ROLE_MERCHANT_STAFF = "merchant_staff"
ROLES = (ROLE_VOLUNTEER, ROLE_GRID_STAFF, ROLE_COMMUNITY_ADMIN, ROLE_STREET_ADMIN, ROLE_MERCHANT_STAFF)
ADMIN_ROLES = (ROLE_COMMUNITY_ADMIN, ROLE_STREET_ADMIN)
STAFF_ROLES = (ROLE_GRID_STAFF, ROLE_COMMUNITY_ADMIN, ROLE_STREET_ADMIN)



def mask_name(full_name: str | None) -> str:
    """Return a name as a cashier may see it: 张*华, 李*."""
    name = full_name or ""
    if len(name) <= 1:
        return name + "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


HONOUR_DISPLAYS = ("name", "initials")


def initials_name(full_name: str | None) -> str:
    """Return a name as an honour roll shows it to others when its owner asks: 王**."""
    name = (full_name or "").strip()
    return (name[:1] or "*") + "**"

class User(UserMixin, db.Model):
    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint(
            "title IS NULL OR title IN ('" + "','".join(TITLES) + "')", name="title_known"
        ),
        CheckConstraint("honour_display IN ('name', 'initials')", name="honour_display_known"),
        # Usernames are looked up case-insensitively (login, imports, new people): without this
        # index each look-up reads every person. Unique: two people added at once as Li9 and li9
        # would both pass the application's check, and only one could log in.
        Index("ix_user_account_username_lower", func.lower(text("username")), unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[Optional[str]] = mapped_column(String(32))
    # The node a volunteer belongs to (their unit, building or grid).
    org_unit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("org_unit.id"), index=True)
    title: Mapped[Optional[str]] = mapped_column(String(32))
    is_active_flag: Mapped[bool] = mapped_column("is_active", Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Raised whenever every session of the person must end (logout, password change or reset,
    # deactivation); each session carries the number it was opened with and dies on a mismatch.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set by an admin's password reset: every page leads to the change-password page until done.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    password_changed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # How honour rolls show the person to everyone else: full name, or surname only (王**).
    honour_display: Mapped[str] = mapped_column(String(16), default="name", server_default="name")
    # A person imported without a password logs in the first time with a one-time activation
    # code (its keyed SHA-256 here, until it expires or the person sets a password).
    activation_hash: Mapped[Optional[str]] = mapped_column(String(64))
    activation_expires_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    org_unit = relationship("OrgUnit")
    roles: Mapped[list["RoleGrant"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    # Flask-Login: a deactivated account cannot log in.
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return bool(self.is_active_flag)

    def has_role(self, *names: str) -> bool:
        return any(r.role in names for r in self.roles)

    def grants(self, *names: str) -> list["RoleGrant"]:
        return [r for r in self.roles if r.role in names]

    @property
    def is_volunteer(self) -> bool:
        return self.has_role(ROLE_VOLUNTEER)

    @property
    def masked_name(self) -> str:
        """Return the name as a cashier may see it: 张*华, 李*."""
        return mask_name(self.full_name)

    @property
    def public_name(self) -> str:
        """Return the name as the public (the notice board) may see it: masked (张*华), or the
        surname only (张**) when the person asked the public to see no more."""
        return initials_name(self.full_name) if self.honour_display == "initials" else mask_name(self.full_name)

    def title_label(self, locale: str = "zh") -> str:
        if not self.title:
            return ""
        zh, en = TITLES[self.title]
        return zh if locale.startswith("zh") else en

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class RoleGrant(db.Model):
    """A role held by a user, scoped to a subtree (staff, admins) or a merchant (cashiers)."""

    __tablename__ = "role_grant"
    __table_args__ = (
        CheckConstraint("role IN ('" + "','".join(ROLES) + "')", name="role_known"),
        CheckConstraint(
            "(role = 'merchant_staff' AND merchant_id IS NOT NULL)"
            " OR (role <> 'merchant_staff' AND merchant_id IS NULL AND org_unit_id IS NOT NULL)",
            name="scope_matches_role",
        ),
        UniqueConstraint("user_id", "role", "org_unit_id", "merchant_id", name="uq_role_grant_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    org_unit_id: Mapped[Optional[int]] = mapped_column(ForeignKey("org_unit.id"))
    merchant_id: Mapped[Optional[int]] = mapped_column(ForeignKey("merchant.id"))

    user: Mapped[User] = relationship(back_populates="roles")
    org_unit = relationship("OrgUnit", lazy="joined")
    merchant = relationship("Merchant", lazy="joined")
