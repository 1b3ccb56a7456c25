"""Building the organisation tree."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import OrgLevel, OrgUnit
from .errors import InvalidInput

DEFAULT_LEVELS = [
    ("street", "街道", "Street"),
    ("community", "社区", "Community"),
    ("grid", "网格", "Grid"),
    ("building", "楼栋", "Building"),
    ("unit", "单元", "Unit"),
]


def ensure_levels(levels=DEFAULT_LEVELS) -> list[OrgLevel]:
    """Create the deployment's levels (rank = position) if they are not there yet."""
    existing = {lv.code: lv for lv in db.session.scalars(select(OrgLevel))}
    out = []
    for rank, (code, zh, en) in enumerate(levels):
        lv = existing.get(code)
        if lv is None:
            lv = OrgLevel(code=code, rank=rank, name_zh=zh, name_en=en)
            db.session.add(lv)
        out.append(lv)
    db.session.flush()
    return out


def add_unit(name: str, level_code: str, parent: OrgUnit | None = None) -> OrgUnit:
    """Add a node under ``parent`` (a street when ``parent`` is None) and set its path."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A name is required.", field="name")
    level = db.session.scalar(select(OrgLevel).where(OrgLevel.code == level_code))
    if level is None:
        raise InvalidInput("Unknown level %(level)s.", field="level", level=level_code)
    if parent is None and level.rank != 0:
        raise InvalidInput("Only the top level can have no parent.", field="parent")
    if parent is not None and level.rank <= parent.level.rank:
        raise InvalidInput("A node must sit below its parent's level.", field="level")
    if parent is not None and db.session.scalar(
        select(OrgUnit.id).where(OrgUnit.parent_id == parent.id, OrgUnit.name == name)
    ):
        raise InvalidInput("%(parent)s already has a node named %(name)s.", field="name", parent=parent.name, name=name)
    unit = OrgUnit(name=name, level=level, parent=parent, path="")
    db.session.add(unit)
    db.session.flush()
    unit.path = (parent.path if parent else "/") + f"{unit.id}/"
    db.session.flush()
    return unit


def subtree_units(root: OrgUnit) -> list[OrgUnit]:
    """Return ``root`` and every node below it, in path order."""
    return list(
        db.session.scalars(
            select(OrgUnit).where(OrgUnit.path.startswith(root.path, autoescape=True)).order_by(OrgUnit.path)
        )
    )
