"""Importing the roster of volunteers (楼长, 单元长, ...) and the org nodes they sit in.

The file is a table with one column per level of the tree below the street (社区, 网格, 楼栋,
单元: the deployment's own levels), then the person's username, name, phone and title. A row
without a username only makes sure its nodes exist.

Imported people get no password: each gets a one-time activation code (``people.
issue_activation_code``), listed in the result for the admin to hand out, which the person logs in
with the first time and then replaces with a password of their own. So an import costs no
argon2id hash per person (about 0.2 s each), and no password travels in a spreadsheet.

Every row is tried in its own savepoint, through the same domain functions as the admin pages
(``org.add_unit``, ``people.create_person``), so one bad row is reported with its row number
and the others are still checked. The caller commits only when no row failed and it is not a dry
run; otherwise it rolls the whole transaction back: all or nothing.

Re-importing the same file changes nothing: nodes are matched by name under their parent, and a
username that already exists with the same details is counted as unchanged (with other details
it is refused, never overwritten).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import OrgLevel, OrgUnit, User
from ..models.user import ADMIN_ROLES, ROLE_VOLUNTEER, TITLES
from .access import require_admin_of
from .errors import Forbidden, InvalidInput, PointsError
from .org import add_unit
from .people import create_person, issue_activation_code

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
    # (username, full name, activation code) of each person created, to hand out.
    codes: list[tuple[str, str, str]] = field(default_factory=list)

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
    raise InvalidInput("Unknown title %(title)s.", title=text)


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
    street = _street_of(actor)
    codes = {lv.rank: lv for lv in levels_below_street()}
    for number, row in enumerate(rows[1:], start=2):
        yield number - 2
        if not any((c or "").strip() for c in row):
            continue
        result.rows += 1
        try:
            with db.session.begin_nested():
                created_units, created_person = _import_row(actor, street, codes, level_cols, person_cols, row,
                                                            result.codes)
        except PointsError as exc:
            result.errors.append((number, exc.message))
            continue
        except IntegrityError:
            result.errors.append((number, InvalidInput("This row clashes with another row or an existing record.").message))
            continue
        result.units_created += created_units
        result.people_created += int(created_person)
        if not created_units and not created_person:
            result.unchanged += 1
    return result


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return (row[index] or "").strip()


def _import_row(actor, street, levels, level_cols, person_cols, row, handed_out) -> tuple[int, bool]:
    names = [(rank, _cell(row, level_cols[rank])) for rank in sorted(level_cols)]
    while names and not names[-1][1]:
        names.pop()
    parent, created = street, 0
    for rank, name in names:
        if not name:
            raise InvalidInput("The %(level)s is missing.", level=levels[rank].name_zh)
        child = db.session.scalar(select(OrgUnit).where(OrgUnit.parent_id == parent.id, OrgUnit.name == name))
        if child is None:
            require_admin_of(actor, parent)
            child = add_unit(name, levels[rank].code, parent)
            created += 1
        parent = child
    username = _cell(row, person_cols.get("username"))
    if not username:
        if any(_cell(row, person_cols.get(k)) for k in ("full_name", "phone", "title")):
            raise InvalidInput("A person needs a username.")
        if not names:
            raise InvalidInput("The row names no node and no person.")
        return created, False
    full_name = _cell(row, person_cols.get("full_name"))
    phone = _cell(row, person_cols.get("phone")) or None
    title = _title(_cell(row, person_cols.get("title")))
    existing = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if existing is not None:
        same = (
            existing.full_name == full_name
            and existing.org_unit_id == parent.id
            and existing.title == title
            and (existing.phone or None) == phone
        )
        if not same:
            raise InvalidInput(
                "The username %(u)s already belongs to a person with other details; nothing was changed.",
                u=username,
            )
        return created, False
    person = create_person(
        actor,
        username=username,
        full_name=full_name,
        password=None,
        org_unit=parent,
        phone=phone,
        title=title,
        roles=(ROLE_VOLUNTEER,),
    )
    handed_out.append((person.username, person.full_name, issue_activation_code(person)))
    return created, True
