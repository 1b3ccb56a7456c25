"""Importing the roster of volunteers (楼长, 单元长, ...) and the org nodes they sit in.

The file is a table with one column per level of the tree below the street (社区, 网格, 楼栋,
单元: the deployment's own levels), then the person's username, name, phone and title. A row
without a username only makes sure its nodes exist.

Imported people get no password: each gets a one-time activation code (``people.
new_activation_code``), listed in the result for the admin to hand out, which the person logs in
with the first time and then replaces with a password of their own. So an import costs no
argon2id hash per person (about 0.2 s each), and no password travels in a spreadsheet.

The import is set-based, so that a roster of thousands of people takes seconds: the nodes the
file can reach (the street and the subtrees of the nodes its first level column names, not the
whole street) and the people with the file's usernames are read once, at the start; each row is
then checked in memory against them and against the rows before it (nothing is read per row), and the
rows are written in batches of ``BATCH``: the new nodes level by level (``org.insert_units``),
then the people with everything ``people.create_person`` gives one person (their role grant,
ledger account and audit record, ``people.create_people``): a few statements per batch, however
many rows it holds. A person is checked by the same function as on the admin pages
(``people.new_person``), a new node by the same scope check (``require_admin_of`` its parent).

A bad row is reported with its row number and message, and the rows after it are still checked;
once a row has failed, nothing more is written. The caller commits only when no row failed and
it is not a dry run; otherwise it rolls the whole transaction back: all or nothing. Should the
database refuse a batch even so (someone else created one of its usernames or nodes since the
start), the batch is undone in its savepoint and its clashing rows are reported.

Re-importing the same file changes nothing: nodes are matched by name under their parent, and a
username that already exists with the same details is counted as unchanged (with other details
it is refused, never overwritten). A username given twice in the file (in any case) is the same:
the second row is unchanged when its details are the first one's, and refused otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable, Generator

from sqlalchemy import String, func, or_, select
from sqlalchemy.exc import IntegrityError

from ..database import among, dialect
from ..extensions import db
from ..i18n import page_is_zh
from ..models import OrgLevel, OrgUnit, User
from ..models.user import ADMIN_ROLES, ROLE_VOLUNTEER, TITLES
from .access import require_admin_of
from .errors import Forbidden, InvalidInput, PointsError
from .org import NAME_MAX, insert_units
from .people import NewPerson, create_people, new_activation_code, new_person

PERSON_COLUMNS: list[tuple[str, str, str, tuple[str, ...]]] = [
    # key, Chinese header, English header, other accepted spellings
    ("username", "用户名", "Username", ("账号",)),
    ("full_name", "姓名", "Full name", ("name",)),
    ("phone", "电话", "Phone", ("手机", "手机号")),
    ("title", "职务", "Title", ()),
]
# Files made from the template of earlier versions had an initial password column: refused with
# a message that says what to do (each person now gets an activation code instead).
PASSWORD_HEADERS = ("初始密码", "initial password", "密码", "password")


@dataclass
class ImportResult:
    rows: int = 0
    people_created: int = 0
    units_created: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # (username, full name, activation code) of each person created, to hand out: never logged.
    codes: list[tuple[str, str, str]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors


def levels_below_street() -> list[OrgLevel]:
    return list(db.session.scalars(select(OrgLevel).where(OrgLevel.rank >= 1).order_by(OrgLevel.rank)))


def template_headers(zh: bool) -> list[str]:
    """Return the import file's header row in the page's language."""
    levels = [lv.name_zh if zh else lv.name_en for lv in levels_below_street()]
    return levels + [zh_name if zh else en_name for _, zh_name, en_name, _ in PERSON_COLUMNS]


def _norm(text: str) -> str:
    return (text or "").strip().lower()


def _columns(header: list[str]) -> tuple[dict[int, int], dict[str, int]]:
    """Map the header row to level ranks and person fields; raise on an unknown or doubled header."""
    by_name: dict[str, tuple[str, object]] = {}
    for lv in levels_below_street():
        for name in (lv.name_zh, lv.name_en, lv.code):
            by_name[_norm(name)] = ("level", lv.rank)
    for key, zh_name, en_name, others in PERSON_COLUMNS:
        for name in (zh_name, en_name, key, *others):
            by_name[_norm(name)] = ("person", key)
    levels: dict[int, int] = {}
    person: dict[str, int] = {}
    for i, text in enumerate(header):
        if not _norm(text):
            continue
        if _norm(text) in PASSWORD_HEADERS:
            raise InvalidInput(
                "Initial passwords are no longer imported: remove the column %(name)s. Each new person gets "
                "an activation code to log in with the first time.", name=text)
        kind_key = by_name.get(_norm(text))
        if kind_key is None:
            raise InvalidInput("Unknown column %(name)s; download the template to see the columns.", name=text)
        kind, key = kind_key
        target = levels if kind == "level" else person
        if key in target:
            raise InvalidInput("The column %(name)s appears twice.", name=text)
        target[key] = i
    if not levels and "username" not in person:
        raise InvalidInput("The first row must name the columns; download the template to see them.")
    return levels, person


def _title(text: str) -> str | None:
    if not text:
        return None
    for code, (zh, en) in TITLES.items():
        if _norm(text) in (code, _norm(zh), _norm(en)):
            return code
    known = [zh if page_is_zh() else en for zh, en in TITLES.values()]
    raise InvalidInput("Unknown title %(title)s. Write one of: %(titles)s, or leave it empty.", title=text,
                       titles=("、" if page_is_zh() else ", ").join(known))


def _level_name(level: OrgLevel) -> str:
    """A level's name in the page's language (社区, or community)."""
    return level.name_zh if page_is_zh() else level.name_en.lower()


def _street_of(actor: User) -> OrgUnit:
    grants = [g for g in actor.grants(*ADMIN_ROLES) if g.org_unit is not None]
    if not grants:
        raise Forbidden()
    return db.session.get(OrgUnit, grants[0].org_unit.root_id)


def import_people(
    actor: User, rows: list[list[str]], *, progress: Callable[[int], None] | None = None
) -> ImportResult:
    """Create the nodes and volunteers of ``rows`` (a header row first); flush, never commit.

    Row problems are collected, not raised; the caller commits only if ``result.ok``.
    ``progress(1)`` is called as each data row is taken up.
    """
    steps = import_steps(actor, rows)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value
        if progress:
            progress(1)


def import_steps(actor: User, rows: list[list[str]]) -> Generator[int, None, ImportResult]:
    """Import as ``import_people`` does, yielding before each data row how many were already
    done (0, 1, ...), so that a page can show honest progress; the generator returns the result."""
    if not actor.has_role(*ADMIN_ROLES):
        raise Forbidden()
    result = ImportResult()
    if not rows:
        result.errors.append((1, InvalidInput("The file is empty.").message))
        return result
    try:
        level_cols, person_cols = _columns(rows[0])
    except PointsError as exc:
        result.errors.append((1, exc.message))
        return result
    plan = _Plan(actor, _street_of(actor), {lv.rank: lv for lv in levels_below_street()}, level_cols, person_cols)
    plan.read_nodes(rows[1:])
    plan.look_up_usernames(rows[1:])
    taken: list[_Row] = []  # checked rows not written yet
    for number, row in enumerate(rows[1:], start=2):
        yield number - 2
        if not any((c or "").strip() for c in row):
            continue
        result.rows += 1
        try:
            taken.append(plan.take(number, row))
        except PointsError as exc:
            result.errors.append((number, exc.message))
            continue
        _count(result, taken[-1], 1)
        if len(taken) >= BATCH and not result.errors:
            _write(plan, taken, result)
            taken = []
    if not result.errors:
        _write(plan, taken, result)
    return result


# Rows written together: progress is shown batch by batch, and a batch's writes are a few
# statements however many people it holds.
BATCH = 500
# A file naming more top-level nodes than this has the street's whole tree read in one statement,
# rather than a condition per subtree.
TOPS_READ_APART = 20
# A CSV file can hold NUL characters, which PostgreSQL refuses in any text: such a row is refused
# with its number, and its cells are kept out of the statements that read the nodes and people.
NUL = "\x00"


@dataclass(eq=False)
class _Node:
    """A node of the street's tree: an existing one, or one the file names that is written with
    the row's batch (its ``path`` until then is its parent's plus a mark, for scope checks)."""

    id: int | None
    path: str
    name: str = ""
    level: OrgLevel | None = None
    parent: "_Node | None" = None


@dataclass(eq=False)
class _Row:
    number: int
    units: list[_Node]  # the nodes this row creates, top first
    person: NewPerson | None  # the person this row creates


class _Plan:
    """What the file will create, row by row, checked against the database as read once at the
    start (the street's nodes, the file's usernames) and against the rows before."""

    def __init__(self, actor, street, levels, level_cols, person_cols):
        self.actor, self.levels, self.level_cols, self.person_cols = actor, levels, level_cols, person_cols
        self.street_unit = street
        # lower(username) -> (full name, node (or node id outside the nodes read), title, phone),
        # for the existing people and those of the rows taken.
        self.people: dict[str, tuple] = {}

    def read_nodes(self, rows: list[list[str]]) -> None:
        """Read the nodes the rows can reach: the street, and the subtrees of the street's
        children that the first level column names (a row's nodes hang below the node its first
        level cell names). A street has thousands of nodes and a file usually fills one
        community or a few: reading only those keeps the start of an import short."""
        street = self.street_unit
        tops = sorted(n for n in {_cell(row, self.level_cols[min(self.level_cols)]) for row in rows}
                      if n and NUL not in n) if self.level_cols else []
        cols = (OrgUnit.id, OrgUnit.parent_id, OrgUnit.name, OrgUnit.path)
        if len(tops) > TOPS_READ_APART:
            reach = OrgUnit.path.startswith(street.path, autoescape=True)
        else:
            paths = list(db.session.scalars(select(OrgUnit.path).where(
                OrgUnit.parent_id == street.id, OrgUnit.name.in_(tops)))) if tops else []
            reach = or_(OrgUnit.id == street.id, *(OrgUnit.path.startswith(p, autoescape=True) for p in paths))
        rows_read = db.session.execute(select(*cols).where(reach))
        nodes = {r.id: (_Node(r.id, r.path, r.name), r.parent_id) for r in rows_read}
        self.street = nodes[street.id][0]
        # (parent node, name) -> node, for the nodes read and those of the rows taken.
        self.children: dict[tuple[_Node, str], _Node] = {
            (nodes[parent_id][0], node.name): node for node, parent_id in nodes.values() if parent_id in nodes
        }
        self.nodes_by_id = {node_id: node for node_id, (node, _) in nodes.items()}

    def look_up_usernames(self, rows: list[list[str]]) -> None:
        """Read the existing people with the file's usernames (case-insensitively)."""
        names = sorted(n for n in {_cell(row, self.person_cols.get("username")).lower() for row in rows}
                       if n and NUL not in n)
        for r in _people_named(names, User.username, User.full_name, User.org_unit_id, User.title, User.phone):
            node = self.nodes_by_id.get(r.org_unit_id, r.org_unit_id)
            self.people[r.username.lower()] = (r.full_name, node, r.title, r.phone or None)

    def take(self, number: int, row: list[str]) -> _Row:
        """Check one row against the database and the rows before; raise ``PointsError`` for a bad one."""
        if any(NUL in (cell or "") for cell in row):
            raise InvalidInput("This row holds an invisible control character (NUL) that no field can store; "
                               "save the file again from the spreadsheet program and import it again.")
        names = [(rank, _cell(row, self.level_cols[rank])) for rank in sorted(self.level_cols)]
        while names and not names[-1][1]:
            names.pop()
        parent, new_units = self.street, []
        for rank, name in names:
            if not name:
                raise InvalidInput("The %(level)s is missing.", level=_level_name(self.levels[rank]))
            if len(name) > NAME_MAX:
                raise InvalidInput("The %(level)s's name can have at most %(n)s characters.",
                                   level=_level_name(self.levels[rank]), n=NAME_MAX)
            child = self.children.get((parent, name))
            if child is None:
                require_admin_of(self.actor, parent)
                child = _Node(None, parent.path + "+/", name, self.levels[rank], parent)
                new_units.append(child)
            parent = child
        taken = _Row(number, new_units, self._person(row, parent, bool(names)))
        for unit in new_units:  # only now: a bad row leaves no node for the rows after it
            self.children[(unit.parent, unit.name)] = unit
        if taken.person is not None:
            p = taken.person
            self.people[p.username.lower()] = (p.full_name, p.org_unit, p.title, p.phone)
        return taken

    def _person(self, row: list[str], parent: _Node, names_node: bool) -> NewPerson | None:
        username = _cell(row, self.person_cols.get("username"))
        if not username:
            if any(_cell(row, self.person_cols.get(k)) for k in ("full_name", "phone", "title")):
                raise InvalidInput("A person needs a username.")
            if not names_node:
                raise InvalidInput("The row names no node and no person.")
            return None
        full_name = _cell(row, self.person_cols.get("full_name"))
        phone = _cell(row, self.person_cols.get("phone")) or None
        title = _title(_cell(row, self.person_cols.get("title")))
        existing = self.people.get(username.lower())
        if existing is not None:
            if existing != (full_name, parent, title, phone):
                raise InvalidInput(
                    "The username %(u)s already belongs to a person with other details; nothing was changed.",
                    u=username,
                )
            return None
        return new_person(
            self.actor, username=username, full_name=full_name, password=None, org_unit=parent, phone=phone,
            title=title, roles=(ROLE_VOLUNTEER,),
        )


def _write(plan: _Plan, taken: list[_Row], result: ImportResult) -> None:
    """Write the nodes (level by level) and people of checked rows; count them in ``result``.

    Should the database refuse them all the same (someone else created one of these usernames
    or nodes meanwhile), nothing of the batch is written and its clashing rows are reported.
    """
    units = sorted((u for t in taken for u in t.units), key=lambda u: u.level.rank)
    people = [t.person for t in taken if t.person is not None]
    try:
        with db.session.begin_nested():
            for _rank, level_units in groupby(units, key=lambda u: u.level.rank):
                level_units = list(level_units)
                written = insert_units([(u.name, u.level.id, u.parent) for u in level_units])
                for unit, (unit_id, path) in zip(level_units, written):
                    unit.id, unit.path = unit_id, path
            codes = []
            for person in people:
                code, person.activation = new_activation_code()
                codes.append(code)
            create_people(plan.actor, people)
    except IntegrityError:
        for t in _clashing(taken):
            _count(result, t, -1)
            result.errors.append(
                (t.number, InvalidInput("This row clashes with another row or an existing record.").message)
            )
        return
    result.codes.extend((p.username, p.full_name, code) for p, code in zip(people, codes))


def _count(result: ImportResult, taken: _Row, sign: int) -> None:
    result.units_created += sign * len(taken.units)
    result.people_created += sign * int(taken.person is not None)
    result.unchanged += sign * int(not taken.units and taken.person is None)


def _clashing(taken: list[_Row]) -> list[_Row]:
    """Return the rows of a refused batch whose username now exists, else those that create anything."""
    usernames = [t.person.username.lower() for t in taken if t.person is not None]
    existing = {r.username.lower() for r in _people_named(usernames, User.username)}
    rows = [t for t in taken if t.person is not None and t.person.username.lower() in existing]
    return rows or [t for t in taken if t.units or t.person is not None]


def _people_named(lowered: list[str], *columns):
    """Yield ``columns`` of the people whose lowercased username is in ``lowered``, 5,000 names a query."""
    named = among(func.lower(User.username, type_=String), "names", dialect())
    for i in range(0, len(lowered), 5000):
        yield from db.session.execute(select(*columns).where(named), {"names": lowered[i:i + 5000]})


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return (row[index] or "").strip()
