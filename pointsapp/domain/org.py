"""Building the organisation tree."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..database import insert_rows, update_rows
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

unit_t = OrgUnit.__table__


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


NAME_MAX = 100  # the longest node name or person's full name the database holds


def add_unit(name: str, level_code: str, parent: OrgUnit | None = None) -> OrgUnit:
    """Add a node under ``parent`` (a street when ``parent`` is None) and set its path."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A name is required.", field="name")
    if len(name) > NAME_MAX:
        raise InvalidInput("Keep the name to %(n)s characters.", field="name", n=NAME_MAX)
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
        raise _name_taken(parent, name)
    try:
        with db.session.begin_nested():
            ((unit_id, _path),) = insert_units([(name, level.id, parent)])
    except IntegrityError:  # the same name added under the same parent by someone else just now
        raise _name_taken(parent, name) from None
    if parent is not None:
        db.session.expire(parent, ["children"])
    return db.session.get(OrgUnit, unit_id)


def path_ids(path: str) -> list[int]:
    """The ids of a materialised path, top first: "/1/5/7/" gives [1, 5, 7]."""
    return [int(part) for part in path.strip("/").split("/")]


def path_text(path: str, names: dict[int, str]) -> str:
    """Name a node by its path below the street, from ``names`` (id → name) of the nodes to show:
    "友谊17社区 › 第21网格 › 1号楼" (a street has 39 buildings called 1号楼). Nodes missing from
    ``names`` are left out; "" for a street itself."""
    return " › ".join(names[i] for i in path_ids(path)[1:] if i in names)


def path_label(unit: OrgUnit) -> str:
    """``path_text`` of one node, reading the names of the nodes on its path (a street: its name)."""
    ids = path_ids(unit.path)[1:]
    names = dict(db.session.execute(select(OrgUnit.id, OrgUnit.name).where(OrgUnit.id.in_(ids))).all()) if ids else {}
    return path_text(unit.path, names) or unit.name


def _name_taken(parent: OrgUnit, name: str) -> InvalidInput:
    return InvalidInput("%(parent)s already has a node named %(name)s.", field="name", parent=parent.name, name=name)


def insert_units(units: list[tuple[str, int, object | None]]) -> list[tuple[int, str]]:
    """Write checked nodes, each given as (name, level id, parent): two statements however many.

    A parent needs only an ``id`` and a ``path`` (an import passes the nodes it has just written,
    level by level). Return each node's (id, path), in order.
    """
    if not units:
        return []
    db.session.flush()
    ids = insert_rows(
        unit_t,
        [{"name": name, "level_id": level_id, "parent_id": parent.id if parent is not None else None, "path": ""}
         for name, level_id, parent in units],
        returning=unit_t.c.id,
    )
    paths = [(parent.path if parent is not None else "/") + f"{unit_id}/" for (_, _, parent), unit_id in zip(units, ids)]
    update_rows(unit_t, [{"id": unit_id, "path": path} for unit_id, path in zip(ids, paths)])
    return list(zip(ids, paths))


def subtree_units(root: OrgUnit, max_rank: int | None = None) -> list[OrgUnit]:
    """Return ``root`` and every node below it (down to level rank ``max_rank``), in path order."""
    query = select(OrgUnit).where(OrgUnit.path.startswith(root.path, autoescape=True)).order_by(OrgUnit.path)
    if max_rank is not None:
        query = query.join(OrgLevel, OrgLevel.id == OrgUnit.level_id).where(OrgLevel.rank <= max_rank)
    return list(db.session.scalars(query))
