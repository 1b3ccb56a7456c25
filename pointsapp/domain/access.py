"""Who may see and act on what. Staff and admin roles are scoped to a subtree of the org tree.

Queries are scoped with ``subtree_filter`` (a path-prefix match on the materialised path), so a
list never contains rows outside the user's subtrees; single objects are checked with
``require_in_scope`` before anything is done to them.
"""
from __future__ import annotations

from sqlalchemy import false, or_, select

from ..extensions import db
from ..models import Merchant, OrgUnit, User
from ..models.user import ADMIN_ROLES, ROLE_MERCHANT_STAFF, STAFF_ROLES
from .errors import Forbidden, NotFound


def scope_paths(user: User, roles=STAFF_ROLES) -> list[str]:
    """Return the materialised paths of the subtrees where ``user`` holds one of ``roles``."""
    return [g.org_unit.path for g in user.grants(*roles) if g.org_unit is not None]


def subtree_filter(path_column, user: User, roles=STAFF_ROLES):
    """Return a SQL condition: ``path_column`` lies in one of the user's subtrees for ``roles``."""
    paths = scope_paths(user, roles)
    if not paths:
        return false()
    return or_(*[path_column.startswith(p, autoescape=True) for p in paths])


def in_scope(user: User, unit: OrgUnit | None, roles=STAFF_ROLES) -> bool:
    """Say whether ``unit`` lies in one of the user's subtrees for ``roles``."""
    return unit is not None and any(unit.path.startswith(p) for p in scope_paths(user, roles))


def require_in_scope(user: User, unit: OrgUnit | None, roles=STAFF_ROLES) -> None:
    """Raise ``NotFound`` when ``unit`` is outside the user's subtrees (existence is not leaked)."""
    if not in_scope(user, unit, roles):
        raise NotFound()


def require_admin_of(user: User, unit: OrgUnit | None) -> None:
    """Raise unless ``user`` is a community or street admin over ``unit``."""
    if not user.has_role(*ADMIN_ROLES):
        raise Forbidden()
    require_in_scope(user, unit, ADMIN_ROLES)


def merchant_ids_for_staff(user: User) -> list[int]:
    """Return the merchants where ``user`` is a cashier."""
    return [g.merchant_id for g in user.grants(ROLE_MERCHANT_STAFF)]


def managed_merchants_query(user: User):
    """Return a select of merchants whose org node lies in the user's admin subtrees."""
    return (
        select(Merchant)
        .join(OrgUnit, OrgUnit.id == Merchant.org_unit_id)
        .where(subtree_filter(OrgUnit.path, user, ADMIN_ROLES))
    )


def require_merchant_admin(user: User, merchant_id: int) -> Merchant:
    """Return the merchant when ``user`` administers it, else raise ``NotFound``."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound()
    require_in_scope(user, merchant.org_unit, ADMIN_ROLES)
    return merchant


def ancestor_paths(unit: OrgUnit) -> list[str]:
    """Return the paths of ``unit`` and every node above it, root first."""
    parts = unit.path.strip("/").split("/")
    return ["/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
