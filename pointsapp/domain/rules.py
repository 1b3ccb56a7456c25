"""Point rules. Editing a rule adds a version; activities keep the version they were judged under."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from ..extensions import db
from ..models import OrgUnit, PointRule, PointRuleVersion, User
from ..models.rules import (
    CATEGORIES,
    EXPIRY_MONTHS,
    EXPIRY_NEVER,
    EXPIRY_POLICIES,
    RULE_DEDUCT,
    RULE_EARN,
    UNIT_HOUR,
    UNIT_OCCURRENCE,
)
from ..models.user import ADMIN_ROLES, TITLES
from . import audit
from .access import ancestor_paths, require_admin_of, subtree_filter
from .errors import InvalidInput, NotFound

# Check-in hours are rounded down to one of these steps (each divides an hour).
ROUNDING_MINUTES = (1, 5, 10, 15, 20, 30, 60)


@dataclass
class RuleTerms:
    name_zh: str
    name_en: str
    category: str
    unit: str
    points: int
    daily_cap: int | None = None
    monthly_cap: int | None = None
    needs_approval: bool = True
    requires_note: bool = False
    requires_photo: bool = False
    active_from: date | None = None
    active_to: date | None = None
    titles: list[str] = field(default_factory=list)
    is_active: bool = True
    expiry_policy: str = EXPIRY_NEVER
    expiry_months: int | None = None
    kind: str = RULE_EARN
    checkin_hours_cap: Decimal | None = None
    hours_rounding_minutes: int = 30
    backfill_earns_points: bool = True
    approvals_required: int = 1

    def validate(self) -> None:
        if not (self.name_zh or "").strip():
            raise InvalidInput("A Chinese name is required.", field="name_zh")
        if not (self.name_en or "").strip():
            raise InvalidInput("An English name is required.", field="name_en")
        if self.category not in CATEGORIES:
            raise InvalidInput("Unknown category.", field="category")
        if self.unit not in (UNIT_OCCURRENCE, UNIT_HOUR):
            raise InvalidInput("Points are given per occurrence or per hour.", field="unit")
        if not isinstance(self.points, int) or not 1 <= self.points <= 10000:
            raise InvalidInput("Points must be a whole number from 1 to 10000.", field="points")
        for name in ("daily_cap", "monthly_cap"):
            cap = getattr(self, name)
            if cap is not None and not 1 <= cap <= 1_000_000:
                raise InvalidInput("A cap must be from 1 to 1,000,000, or empty for none.", field=name)
        if self.daily_cap and self.monthly_cap and self.daily_cap > self.monthly_cap:
            raise InvalidInput("The daily cap cannot exceed the monthly cap.", field="daily_cap")
        if self.active_from and self.active_to and self.active_to < self.active_from:
            raise InvalidInput("The end date is before the start date.", field="active_to")
        if not isinstance(self.approvals_required, int) or not 1 <= self.approvals_required <= 5:
            raise InvalidInput("A claim needs 1 to 5 approvals.", field="approvals_required")
        unknown = [t for t in self.titles if t not in TITLES]
        if unknown:
            raise InvalidInput("Unknown title.", field="titles")
        if self.expiry_policy not in EXPIRY_POLICIES:
            raise InvalidInput("Unknown expiry policy.", field="expiry_policy")
        if self.expiry_policy == EXPIRY_MONTHS:
            if not isinstance(self.expiry_months, int) or not 1 <= self.expiry_months <= 120:
                raise InvalidInput("Points expire after 1 to 120 months.", field="expiry_months")
        elif self.expiry_months is not None:
            self.expiry_months = None  # only the "months" policy counts months
        if self.kind not in (RULE_EARN, RULE_DEDUCT):
            raise InvalidInput("A rule gives points or deducts them.", field="kind")
        if self.checkin_hours_cap is not None:
            try:
                cap = Decimal(str(self.checkin_hours_cap))
            except (InvalidOperation, ValueError):
                cap = Decimal(-1)
            if not cap.is_finite() or not 0 < cap <= 24 or (cap * 2) % 1 != 0:
                raise InvalidInput(
                    "The hours cap per event must be from 0.5 to 24, in steps of half an hour, or empty for none.",
                    field="checkin_hours_cap",
                )
            self.checkin_hours_cap = cap
        if self.hours_rounding_minutes not in ROUNDING_MINUTES:
            raise InvalidInput(
                "Round check-in hours to 1, 5, 10, 15, 20, 30 or 60 minutes.", field="hours_rounding_minutes"
            )


def create_rule(actor: User, unit: OrgUnit, terms: RuleTerms) -> PointRule:
    """Define a new point rule for the volunteers under ``unit``."""
    require_admin_of(actor, unit)
    terms.validate()
    rule = PointRule(org_unit=unit)
    db.session.add(rule)
    db.session.flush()
    version = PointRuleVersion(rule_id=rule.id, version=1, created_by_id=actor.id, **_clean(terms))
    db.session.add(version)
    db.session.flush()
    db.session.expire(rule, ["versions"])
    audit.record(actor, audit.RULE_CREATED, "point_rule", rule.id, {"version": 1, **_clean(terms)}, org_path=unit.path)
    return rule


def update_rule(actor: User, rule_id: int, terms: RuleTerms) -> PointRuleVersion:
    """Change a rule's terms from now on by adding a version; credited activities are untouched."""
    rule = get_managed_rule(actor, rule_id)
    terms.validate()
    # The rule's row is locked first: two admins changing it at once add versions one after the
    # other, the second over the first's terms, where both would have taken the same number.
    db.session.execute(select(PointRule.id).where(PointRule.id == rule.id).with_for_update())
    db.session.expire(rule, ["versions"])
    last = rule.current
    new_terms = _clean(terms)
    changes = {k: [getattr(last, k), v] for k, v in new_terms.items() if getattr(last, k) != v}
    version = PointRuleVersion(rule_id=rule.id, version=last.version + 1, created_by_id=actor.id, **new_terms)
    db.session.add(version)
    db.session.flush()
    db.session.expire(rule, ["versions"])
    audit.record(
        actor, audit.RULE_CHANGED, "point_rule", rule.id, {"version": version.version, "changes": changes},
        org_path=rule.org_unit.path,
    )
    return version


def _clean(terms: RuleTerms) -> dict:
    data = asdict(terms)
    data["name_zh"] = data["name_zh"].strip()
    data["name_en"] = data["name_en"].strip()
    data["titles"] = sorted(set(data["titles"]))
    return data


def get_managed_rule(actor: User, rule_id: int) -> PointRule:
    """Return a rule the actor administers, else raise ``NotFound``."""
    rule = db.session.get(PointRule, rule_id)
    if rule is None:
        raise NotFound()
    require_admin_of(actor, rule.org_unit)
    return rule


def managed_rules(actor: User) -> list[PointRule]:
    """Return the rules defined in the actor's admin subtrees."""
    return list(
        db.session.scalars(
            select(PointRule)
            .join(OrgUnit, OrgUnit.id == PointRule.org_unit_id)
            .where(subtree_filter(OrgUnit.path, actor, ADMIN_ROLES))
            .order_by(PointRule.id)
        )
    )


def rules_for_unit(unit: OrgUnit) -> list[PointRule]:
    """Return the rules defined at ``unit`` or above it (the ones its volunteers can use)."""
    return list(
        db.session.scalars(
            select(PointRule)
            .join(OrgUnit, OrgUnit.id == PointRule.org_unit_id)
            .where(OrgUnit.path.in_(ancestor_paths(unit)))
            .order_by(PointRule.id)
        )
    )


def rules_for_volunteer(volunteer: User, on: date) -> list[PointRuleVersion]:
    """Return the current versions of the rules a volunteer can claim under on ``on``."""
    if volunteer.org_unit is None:
        return []
    out = []
    for rule in rules_for_unit(volunteer.org_unit):
        v = rule.current
        if v.kind == RULE_EARN and v.applies_on(on) and (not v.titles or volunteer.title in v.titles):
            out.append(v)
    return out
