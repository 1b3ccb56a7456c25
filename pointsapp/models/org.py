"""The organisation tree: street → community → grid → building → unit (configurable)."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db


class OrgLevel(db.Model):
    """One level of the tree for this deployment (rank 0 is the street)."""

    __tablename__ = "org_level"
    __table_args__ = (CheckConstraint("rank >= 0", name="rank_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    name_zh: Mapped[str] = mapped_column(String(32))
    name_en: Mapped[str] = mapped_column(String(64))


def root_id_of(path: str) -> int:
    """The id of the street (the root) of a node path such as ``/1/5/7/``."""
    return int(path.strip("/").split("/")[0])


class OrgUnit(db.Model):
    """A node of the tree. ``path`` is the materialised path ``/1/5/23/`` used for subtree scoping."""

    __tablename__ = "org_unit"
    __table_args__ = (
        UniqueConstraint("parent_id", "name", name="uq_org_unit_parent_name"),
        CheckConstraint("notice_days IS NULL OR notice_days BETWEEN 1 AND 15", name="notice_days_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("org_unit.id"), index=True)
    level_id: Mapped[int] = mapped_column(ForeignKey("org_level.id"))
    name: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(255), default="", index=True)
    # Public notice (公示), set on a community: approved activities of its volunteers are posted
    # for objections this many days before they are credited. NULL: off.
    notice_days: Mapped[Optional[int]] = mapped_column(Integer)

    level: Mapped[OrgLevel] = relationship(lazy="joined")
    parent: Mapped[Optional["OrgUnit"]] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["OrgUnit"]] = relationship(back_populates="parent", order_by="OrgUnit.id")

    def contains(self, other: "OrgUnit | None") -> bool:
        """Say whether ``other`` is this node or below it."""
        return other is not None and other.path.startswith(self.path)

    @property
    def root_id(self) -> int:
        return root_id_of(self.path)

    @property
    def depth(self) -> int:
        return self.path.count("/") - 2

    def __repr__(self) -> str:
        return f"<OrgUnit {self.id} {self.name}>"
