"""Pages for community and street admins: rules, merchants and rewards, people, reversals, the tree."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from ..domain import audit, claims, ledger, people, rules, uploads, vouchers
from ..domain.access import (
    managed_merchants_query,
    require_admin_of,
    require_merchant_admin,
    subtree_filter,
)
from ..domain.errors import PointsError
from ..domain.org import add_unit, path_label, path_text, subtree_units
from ..extensions import db
from ..forms import (
    ROLE_LABELS,
    STOCK_UNLIMITED,
    CashierForm,
    GrantRoleForm,
    MerchantForm,
    OrgUnitForm,
    MovePersonForm,
    PersonDetailsForm,
    PersonForm,
    ReverseForm,
    RewardEditForm,
    RewardForm,
    RewardPictureForm,
    RuleForm,
    category_choices,
    merchant_kind_choices,
    show_domain_error,
    title_choices,
)
from ..models import (
    AuditRecord,
    Merchant,
    OrgLevel,
    OrgUnit,
    Reward,
    RoleGrant,
    Transfer,
    User,
)
from ..models.rewards import MERCHANT_KINDS
from ..models.user import ADMIN_ROLES, ROLE_MERCHANT_STAFF
from .guards import db_int, role_required
from .template_helpers import bilingual, page_is_zh, zh_choices

bp = Blueprint("admin", __name__, url_prefix="/admin")

PEOPLE_PAGE = 50
LEDGER_PAGE = 50
AUDIT_PAGE = 50
AUDIT_ACTIONS = {
    audit.RULE_CREATED: _l("Rule created"),
    audit.RULE_CHANGED: _l("Rule changed"),
    audit.CLAIM_APPROVED: _l("Claim approved"),
    audit.CLAIM_REJECTED: _l("Claim rejected"),
    audit.ATTENDANCE_RECORDED: _l("Attendance recorded"),
    audit.TRANSFER_REVERSED: _l("Entry reversed"),
    audit.MERCHANT_CREATED: _l("Merchant added"),
    audit.REWARD_CREATED: _l("Reward listed"),
    audit.REWARD_CHANGED: _l("Reward changed"),
    audit.PERSON_CREATED: _l("Person added"),
    audit.ROLE_GRANTED: _l("Role given"),
    audit.ROLE_REVOKED: _l("Role taken away"),
    audit.PERSON_DEACTIVATED: _l("Person deactivated"),
    audit.PERSON_REACTIVATED: _l("Person reactivated"),
    audit.PERSON_CHANGED: _l("Person's details corrected"),
    audit.PERSON_MOVED: _l("Person moved to another node"),
    audit.PASSWORD_RESET: _l("Password reset"),
    audit.RATE_SET: _l("Points rate set"),
    audit.PERIOD_CLOSED: _l("Settlement period closed"),
    audit.PAYMENT_RECORDED: _l("Payment to a merchant recorded"),
    audit.DEDUCTION_APPLIED: _l("Points deducted"),
    audit.BUDGET_FUNDED: _l("Budget funding recorded"),
    audit.EVENT_CREATED: _l("Check-in event created"),
    audit.EVENT_UPDATED: _l("Check-in event changed"),
    audit.EVENT_ATTENDEE_ADDED: _l("Attendee added to an event"),
    audit.EVENT_CLOSED: _l("Check-in event closed"),
    audit.CLAIM_VOTED: _l("Vote on a claim"),
    audit.NOTICE_POSTED: _l("Posted for public notice"),
    audit.NOTICE_SETTING_CHANGED: _l("Public notice setting changed"),
    audit.OBJECTION_FILED: _l("Objection filed"),
    audit.OBJECTION_UPHELD: _l("Objection upheld"),
    audit.OBJECTION_DISMISSED: _l("Objection dismissed"),
    audit.NOTICE_CREDITED: _l("Credited after public notice"),
}


def _me() -> User:
    return current_user._get_current_object()


@bp.context_processor
def _labels() -> dict:
    # Cashiers' role is never granted by the forms, but it is shown on their person page.
    return {"merchant_kinds": MERCHANT_KINDS, "role_labels": {**ROLE_LABELS, ROLE_MERCHANT_STAFF: _l("Cashier")}}


def managed_units(actor: User, max_rank: int | None = None) -> list[OrgUnit]:
    """Return every node in the actor's admin subtrees (down to level rank ``max_rank``), in tree order."""
    found: dict[int, OrgUnit] = {}
    for grant in actor.grants(*ADMIN_ROLES):
        for unit in subtree_units(grant.org_unit, max_rank):
            found[unit.id] = unit
    return sorted(found.values(), key=lambda u: [int(p) for p in u.path.strip("/").split("/")])


def unit_choices(units: list[OrgUnit]) -> list[SelectChoice]:
    """Return nodes as select choices named by their path below the street, from the names of
    ``units`` themselves ("少先31社区 › 第1网格 › 1号楼"; a grid worker's start at their grid): a
    closed select shows one choice, and a street has many buildings called 1号楼. A street, the
    top of its tree, is named with its level."""
    names = {u.id: u.name for u in units}
    return zh_choices((u.id, path_text(u.path, names) or f"{u.name} · {bilingual(u.level)}") for u in units)


def _unit(unit_id: int) -> OrgUnit:
    unit = db.session.get(OrgUnit, unit_id)
    if unit is None:
        abort(404)
    return unit


# --- home -----------------------------------------------------------------------------------


@bp.route("/")
@role_required(*ADMIN_ROLES)
def home():
    """Show the admin's sections and how many claims wait."""
    actor = _me()
    pending = db.session.scalar(
        select(func.count()).select_from(claims.pending_claims_query(actor).order_by(None).subquery())
    )
    return render_template("admin/home.html", pending=pending)


# --- point rules ----------------------------------------------------------------------------


def _rule_form(form: RuleForm) -> RuleForm:
    zh = page_is_zh()
    form.category.choices = category_choices(zh)
    form.titles.choices = title_choices(zh)
    if "org_unit_id" in form:
        form.org_unit_id.choices = unit_choices(managed_units(_me()))
    return form


def _rule_terms(form: RuleForm) -> rules.RuleTerms:
    return rules.RuleTerms(
        name_zh=form.name_zh.data,
        name_en=form.name_en.data,
        category=form.category.data,
        unit=form.unit.data,
        points=form.points.data,
        daily_cap=form.daily_cap.data,
        monthly_cap=form.monthly_cap.data,
        needs_approval=form.needs_approval.data,
        requires_note=form.requires_note.data,
        requires_photo=form.requires_photo.data,
        active_from=form.active_from.data,
        active_to=form.active_to.data,
        titles=list(form.titles.data or []),
        is_active=form.is_active.data,
        expiry_policy=form.expiry_policy.data or "never",
        expiry_months=form.expiry_months.data,
        kind=form.kind.data or "earn",
        checkin_hours_cap=form.checkin_hours_cap.data,
        hours_rounding_minutes=form.hours_rounding_minutes.data,
        backfill_earns_points=form.backfill_earns_points.data,
        approvals_required=form.approvals_required.data or 1,
    )


@bp.route("/rules")
@role_required(*ADMIN_ROLES)
def rules_list():
    """List the rules the admin manages."""
    return render_template("admin/rules.html", rules=rules.managed_rules(_me()))


@bp.route("/rules/new", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def rule_new():
    """Define a new point rule."""
    form = _rule_form(RuleForm())
    if form.validate_on_submit():
        try:
            rule = rules.create_rule(_me(), _unit(form.org_unit_id.data), _rule_terms(form))
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
            return render_template("admin/rule_form.html", form=form, rule=None), status
        flash(_("The rule %(name)s was created.", name=bilingual(rule.current)), "ok")
        return redirect(url_for(".rule_edit", rule_id=rule.id))
    return render_template("admin/rule_form.html", form=form, rule=None), (422 if form.errors else 200)


@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def rule_edit(rule_id: int):
    """Change a rule (adding a version) and show its version history."""
    rule = rules.get_managed_rule(_me(), rule_id)
    form = RuleForm(obj=rule.current)
    del form.org_unit_id  # a rule's place in the tree is fixed; define a new rule elsewhere instead
    _rule_form(form)
    if form.validate_on_submit():
        try:
            version = rules.update_rule(_me(), rule_id, _rule_terms(form))
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
            return render_template("admin/rule_form.html", form=form, rule=rule), status
        flash(_("Saved as version %(n)s. Points already credited are unchanged.", n=version.version), "ok")
        return redirect(url_for(".rule_edit", rule_id=rule_id))
    return render_template("admin/rule_form.html", form=form, rule=rule), (422 if form.errors else 200)


# --- merchants and rewards ------------------------------------------------------------------


@bp.route("/merchants")
@role_required(*ADMIN_ROLES)
def merchants():
    """List the merchants the admin manages."""
    rows = list(db.session.scalars(managed_merchants_query(_me()).order_by(Merchant.id)))
    return render_template("admin/merchants.html", merchants=rows)


@bp.route("/merchants/new", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def merchant_new():
    """Register a merchant."""
    form = MerchantForm()
    form.org_unit_id.choices = unit_choices(managed_units(_me()))
    form.kind.choices = merchant_kind_choices(page_is_zh())
    if form.validate_on_submit():
        try:
            merchant = vouchers.create_merchant(
                _me(),
                _unit(form.org_unit_id.data),
                name=form.name.data,
                kind=form.kind.data,
                address=form.address.data or "",
                phone=(form.phone.data or "").strip() or None,
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
            return render_template("admin/merchant_form.html", form=form), status
        flash(_("The merchant %(name)s was added.", name=merchant.name), "ok")
        return redirect(url_for(".merchant", merchant_id=merchant.id))
    return render_template("admin/merchant_form.html", form=form), (422 if form.errors else 200)


def _merchant_page(merchant: Merchant, form: CashierForm, status: int = 200):
    cashiers = list(
        db.session.scalars(
            select(User)
            .join(RoleGrant, RoleGrant.user_id == User.id)
            .where(RoleGrant.role == ROLE_MERCHANT_STAFF, RoleGrant.merchant_id == merchant.id)
            .order_by(User.id)
        )
    )
    return render_template("admin/merchant.html", merchant=merchant, cashiers=cashiers, form=form), status


@bp.route("/merchants/<int:merchant_id>")
@role_required(*ADMIN_ROLES)
def merchant(merchant_id: int):
    """Show a merchant's rewards and cashiers."""
    return _merchant_page(require_merchant_admin(_me(), merchant_id), CashierForm(formdata=None))


@bp.route("/merchants/<int:merchant_id>/cashiers", methods=["POST"])
@role_required(*ADMIN_ROLES)
def cashier_new(merchant_id: int):
    """Create a cashier account for a merchant."""
    merchant = require_merchant_admin(_me(), merchant_id)
    form = CashierForm()
    if form.validate_on_submit():
        try:
            person = people.create_person(
                _me(),
                username=form.username.data,
                full_name=form.full_name.data,
                password=form.password.data,
                phone=form.phone.data,
                org_unit=None,
                roles=(ROLE_MERCHANT_STAFF,),
                merchant=merchant,
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            return _merchant_page(merchant, form, show_domain_error(form, exc))
        flash(_("%(name)s can now redeem vouchers at %(merchant)s.", name=person.full_name, merchant=merchant.name), "ok")
        return redirect(url_for(".merchant", merchant_id=merchant_id))
    return _merchant_page(merchant, form, 422)


def _reward_terms(form, **extra) -> vouchers.RewardTerms:
    """Read a reward's terms from its form (new or edit; stock is passed in by the new form only)."""
    return vouchers.RewardTerms(
        name=form.name.data,
        price=form.price.data,
        description=form.description.data or "",
        per_volunteer_limit=form.per_volunteer_limit.data,
        active_from=form.active_from.data,
        active_to=form.active_to.data,
        is_active=form.is_active.data,
        **extra,
    )


@bp.route("/merchants/<int:merchant_id>/rewards/new", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def reward_new(merchant_id: int):
    """List a new reward at a merchant."""
    merchant = require_merchant_admin(_me(), merchant_id)
    form = RewardForm()
    if form.validate_on_submit():
        terms = _reward_terms(form, stock=form.stock.data)
        try:
            reward = vouchers.create_reward(_me(), merchant_id, terms)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
            return render_template("admin/reward_form.html", form=form, merchant=merchant, reward=None), status
        flash(_("The reward %(name)s is listed.", name=reward.name), "ok")
        return redirect(url_for(".merchant", merchant_id=merchant_id))
    return render_template("admin/reward_form.html", form=form, merchant=merchant, reward=None), (
        422 if form.errors else 200
    )


@bp.route("/rewards/<int:reward_id>/picture", methods=["POST"])
@role_required(*ADMIN_ROLES)
def reward_picture(reward_id: int):
    """Give a reward the picture volunteers see in the catalogue (replacing the one it had)."""
    reward = db.session.get(Reward, reward_id)
    if reward is None:
        abort(404)
    require_merchant_admin(_me(), reward.merchant_id)
    form = RewardPictureForm()
    if not form.validate_on_submit():
        for error in form.picture.errors:
            flash(str(error), "error")
        return redirect(url_for(".reward_edit", reward_id=reward_id))
    try:
        uploads.store_reward_picture(reward_id, form.picture.data.read())
    except PointsError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".reward_edit", reward_id=reward_id))
    flash(_("The picture of %(name)s was saved.", name=reward.name), "ok")
    return redirect(url_for(".reward_edit", reward_id=reward_id))


@bp.route("/rewards/<int:reward_id>", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def reward_edit(reward_id: int):
    """Change a reward's terms; stock changes by an amount or becomes unlimited."""
    reward = db.session.get(Reward, reward_id)
    if reward is None:
        abort(404)
    merchant = require_merchant_admin(_me(), reward.merchant_id)
    form = RewardEditForm(obj=reward)
    if request.method == "GET":
        form.stock_mode.data = STOCK_UNLIMITED if reward.stock is None else "limited"
        form.stock_change.data = 0
    if form.validate_on_submit():
        terms = _reward_terms(form)
        try:
            vouchers.update_reward(
                _me(),
                reward_id,
                terms,
                stock_change=form.stock_change.data or 0,
                unlimited=form.stock_mode.data == STOCK_UNLIMITED,
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
            return render_template(
                "admin/reward_form.html", form=form, merchant=merchant, reward=reward, picture_form=RewardPictureForm()
            ), status
        flash(_("The reward %(name)s was saved.", name=form.name.data), "ok")
        return redirect(url_for(".merchant", merchant_id=merchant.id))
    return render_template(
        "admin/reward_form.html", form=form, merchant=merchant, reward=reward, picture_form=RewardPictureForm()
    ), (422 if form.errors else 200)


# --- people ---------------------------------------------------------------------------------


@bp.route("/people")
@role_required(*ADMIN_ROLES)
def people_list():
    """List the people in the admin's subtrees, searchable, a page at a time."""
    q = (request.args.get("q") or "").strip()
    after = request.args.get("after", type=db_int)
    query = (
        select(User)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(subtree_filter(OrgUnit.path, _me(), ADMIN_ROLES))
        .options(selectinload(User.org_unit))
        .order_by(User.id)
        .limit(PEOPLE_PAGE + 1)
    )
    if q:
        pattern = f"%{q}%"
        query = query.where(or_(User.full_name.ilike(pattern), User.username.ilike(pattern)))
    if after:
        query = query.where(User.id > after)
    rows = list(db.session.scalars(query))
    more = len(rows) > PEOPLE_PAGE
    rows = rows[:PEOPLE_PAGE]
    return render_template("admin/people.html", people=rows, q=q, next_after=rows[-1].id if more else None)


@bp.route("/people/new", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def person_new():
    """Create a person with a node, a title and roles in the admin's subtree."""
    form = PersonForm()
    form.org_unit_id.choices = unit_choices(managed_units(_me()))
    form.title.choices = [SelectChoice("", _("No title"))] + title_choices(page_is_zh())
    if form.validate_on_submit():
        try:
            person = people.create_person(
                _me(),
                username=form.username.data,
                full_name=form.full_name.data,
                password=form.password.data,
                phone=form.phone.data,
                org_unit=_unit(form.org_unit_id.data),
                title=form.title.data or None,
                roles=tuple(form.roles.data),
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc, "roles")
            return render_template("admin/person_form.html", form=form), status
        flash(_("%(name)s was added.", name=person.full_name), "ok")
        return redirect(url_for(".person", user_id=person.id))
    return render_template("admin/person_form.html", form=form), (422 if form.errors else 200)


def _grant_form(form: GrantRoleForm) -> GrantRoleForm:
    form.org_unit_id.choices = unit_choices(managed_units(_me()))
    return form


def _details_form(person: User, formdata=None) -> PersonDetailsForm:
    form = PersonDetailsForm(formdata=formdata, full_name=person.full_name, phone=person.phone, title=person.title or "")
    form.title.choices = [SelectChoice("", _("No title"))] + title_choices(page_is_zh())
    return form


def _move_form(person: User, formdata=None) -> MovePersonForm | None:
    """The form that moves a person to another node of their street; None when they have no node
    (a cashier) or are the admin themselves."""
    if person.org_unit is None or person.id == _me().id:
        return None
    form = MovePersonForm(formdata=formdata, org_unit_id=person.org_unit_id)
    street = person.org_unit.root_id
    form.org_unit_id.choices = unit_choices([u for u in managed_units(_me()) if u.root_id == street])
    return form


def _person_page(person: User, form: GrantRoleForm, status: int = 200, temporary_password: str | None = None,
                 details: PersonDetailsForm | None = None, move: MovePersonForm | None = None):
    account = ledger.volunteer_account(person.id)
    return render_template(
        "admin/person.html", person=person, account=account, form=form, temporary_password=temporary_password,
        details=details or _details_form(person), move=move or _move_form(person),
        belongs_to=path_label(person.org_unit) if person.org_unit is not None else None,
    ), status


@bp.route("/people/<int:user_id>")
@role_required(*ADMIN_ROLES)
def person(user_id: int):
    """Show a person, their roles and points, and the forms that change them."""
    person = people.person_in_scope(_me(), user_id)
    form = _grant_form(GrantRoleForm(formdata=None, org_unit_id=person.org_unit_id))
    return _person_page(person, form)


def _change_on_person_page(user_id: int, grant_form: GrantRoleForm, name: str, form, change):
    """Run ``change`` (a domain call) for a form of the person page and commit; return its result
    and None, or None and the page again with the refusal beside the form (``name``: details, move)."""
    try:
        result = change()
        db.session.commit()
        return result, None
    except PointsError as exc:
        db.session.rollback()
        if exc.status in (403, 404):
            raise
        person = people.person_in_scope(_me(), user_id)
        return None, _person_page(person, grant_form, show_domain_error(form, exc), **{name: form})


@bp.route("/people/<int:user_id>/details", methods=["POST"])
@role_required(*ADMIN_ROLES)
def person_details(user_id: int):
    """Correct a person's full name, phone and title."""
    person = people.person_in_scope(_me(), user_id)
    details = _details_form(person, request.form)
    grant_form = _grant_form(GrantRoleForm(formdata=None, org_unit_id=person.org_unit_id))
    if not details.validate_on_submit():
        return _person_page(person, grant_form, 422, details=details)
    changed, refused = _change_on_person_page(user_id, grant_form, "details", details, lambda: people.update_details(
        _me(), user_id, full_name=details.full_name.data, phone=details.phone.data, title=details.title.data or None))
    if refused:
        return refused
    flash(_("The details of %(name)s were saved.", name=changed.full_name), "ok")
    return redirect(url_for(".person", user_id=user_id))


@bp.route("/people/<int:user_id>/node", methods=["POST"])
@role_required(*ADMIN_ROLES)
def person_move(user_id: int):
    """Move a person to another node of their street."""
    person = people.person_in_scope(_me(), user_id)
    move = _move_form(person, request.form)
    if move is None:
        abort(403)
    grant_form = _grant_form(GrantRoleForm(formdata=None, org_unit_id=person.org_unit_id))
    if not move.validate_on_submit():
        return _person_page(person, grant_form, 422, move=move)
    person, refused = _change_on_person_page(user_id, grant_form, "move", move, lambda: people.move_person(
        _me(), user_id, db.session.get(OrgUnit, move.org_unit_id.data)))
    if refused:
        return refused
    said = [_("%(name)s now belongs to %(node)s; their points and history went with them.",
              name=person.full_name, node=path_label(person.org_unit))]
    waiting = claims.pending_count(person.id)
    if waiting:
        said.append(ngettext("%(num)s claim of theirs still waits for approval by the staff where it was made.",
                             "%(num)s claims of theirs still wait for approval by the staff where they were made.",
                             waiting))
    flash(" ".join(said), "ok")
    return redirect(url_for(".person", user_id=user_id))


@bp.route("/people/<int:user_id>/active", methods=["POST"])
@role_required(*ADMIN_ROLES)
def person_active(user_id: int):
    """Deactivate or reactivate a person."""
    active = request.form.get("active") == "1"
    try:
        person = people.set_active(_me(), user_id, active)
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        if exc.status in (403, 404):
            raise
        flash(exc.message, "error")
        return redirect(url_for(".person", user_id=user_id))
    if active:
        flash(_("%(name)s can log in again.", name=person.full_name), "ok")
    else:
        flash(_("%(name)s was deactivated; their points stay in the ledger.", name=person.full_name), "ok")
    return redirect(url_for(".person", user_id=user_id))


@bp.route("/people/<int:user_id>/roles", methods=["POST"])
@role_required(*ADMIN_ROLES)
def person_grant(user_id: int):
    """Give a person a role at a node of the admin's subtree."""
    person = people.person_in_scope(_me(), user_id)
    form = _grant_form(GrantRoleForm())
    if form.validate_on_submit():
        try:
            people.grant_role(_me(), person, form.role.data, unit=_unit(form.org_unit_id.data))
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            return _person_page(person, form, show_domain_error(form, exc, "role"))
        flash(_("The role was given to %(name)s.", name=person.full_name), "ok")
        return redirect(url_for(".person", user_id=user_id))
    return _person_page(person, form, 422)


@bp.route("/people/<int:user_id>/roles/<int:grant_id>/revoke", methods=["POST"])
@role_required(*ADMIN_ROLES)
def person_revoke(user_id: int, grant_id: int):
    """Take a role away from a person."""
    try:
        grant = people.revoke_role(_me(), user_id, grant_id)
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        if exc.status == 404:
            raise
        flash(exc.message, "error")
        return redirect(url_for(".person", user_id=user_id))
    flash(_("The role %(role)s was taken away.", role=ROLE_LABELS.get(grant.role, grant.role)), "ok")
    return redirect(url_for(".person", user_id=user_id))


@bp.route("/people/<int:user_id>/password", methods=["POST"])
@role_required(*ADMIN_ROLES)
def person_reset_password(user_id: int):
    """Give a person a temporary password, shown once here; they must change it at login."""
    try:
        person, temporary = people.reset_password(_me(), user_id)
        db.session.commit()
    except PointsError as exc:
        db.session.rollback()
        if exc.status in (403, 404):
            raise
        flash(exc.message, "error")
        return redirect(url_for(".person", user_id=user_id))
    form = _grant_form(GrantRoleForm(formdata=None, org_unit_id=person.org_unit_id))
    return _person_page(person, form, temporary_password=temporary)


# --- the audit log --------------------------------------------------------------------------


@bp.route("/audit")
@role_required(*ADMIN_ROLES)
def audit_log():
    """List the audit records of the admin's subtrees, newest first, a page at a time."""
    query = (
        select(AuditRecord)
        .where(subtree_filter(AuditRecord.org_path, _me(), ADMIN_ROLES))
        .order_by(AuditRecord.id.desc())
        .limit(AUDIT_PAGE + 1)
    )
    before = request.args.get("before", type=db_int)
    if before:
        query = query.where(AuditRecord.id < before)
    rows = list(db.session.scalars(query))
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return render_template(
        "admin/audit.html", records=rows, next_before=rows[-1].id if more else None, action_labels=AUDIT_ACTIONS
    )


# --- reversals ------------------------------------------------------------------------------


def _ledger_page(person: User, rejecting: tuple[int, ReverseForm] | None = None, status: int = 200):
    account = ledger.volunteer_account(person.id)
    transfers: list[Transfer] = []
    reversed_by: dict[int, int] = {}  # an entry of the page -> the correction that reversed it
    before = request.args.get("before", type=db_int)
    next_before = None
    if account is not None:
        query = (
            select(Transfer)
            .where(or_(Transfer.from_account_id == account.id, Transfer.to_account_id == account.id))
            .order_by(Transfer.id.desc())
            .limit(LEDGER_PAGE + 1)
        )
        if before:
            query = query.where(Transfer.id < before)
        transfers = list(db.session.scalars(query))
        if len(transfers) > LEDGER_PAGE:
            transfers = transfers[:LEDGER_PAGE]
            next_before = transfers[-1].id
        ids = [t.id for t in transfers]
        reversed_by = dict(db.session.execute(
            select(Transfer.reverses_id, Transfer.id).where(Transfer.reverses_id.in_(ids))).all())
    return render_template(
        "admin/ledger.html",
        person=person,
        account=account,
        transfers=transfers,
        reversed_by=reversed_by,
        rejecting=rejecting,
        next_before=next_before,
    ), status


@bp.route("/people/<int:user_id>/ledger")
@role_required(*ADMIN_ROLES)
def person_ledger(user_id: int):
    """List a person's ledger transfers with a reversal form for each."""
    return _ledger_page(people.person_in_scope(_me(), user_id))


@bp.route("/people/<int:user_id>/transfers/<int:transfer_id>/reverse", methods=["POST"])
@role_required(*ADMIN_ROLES)
def reverse(user_id: int, transfer_id: int):
    """Reverse one ledger transfer of a person, with a reason."""
    person = people.person_in_scope(_me(), user_id)
    transfer = db.session.get(Transfer, transfer_id)
    if transfer is None or person.id not in (transfer.from_account.user_id, transfer.to_account.user_id):
        abort(404)
    form = ReverseForm()
    if form.validate_on_submit():
        try:
            claims.reverse_transfer(_me(), transfer_id, form.reason.data)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            if exc.status in (403, 404):
                raise
            return _ledger_page(person, (transfer_id, form), show_domain_error(form, exc, "reason"))
        flash(ngettext("The entry was reversed: %(num)s point.", "The entry was reversed: %(num)s points.",
                       transfer.amount), "ok")
        return redirect(url_for(".person_ledger", user_id=user_id))
    return _ledger_page(person, (transfer_id, form), 422)


# --- the organisation tree ------------------------------------------------------------------


@bp.route("/org", methods=["GET", "POST"])
@role_required(*ADMIN_ROLES)
def org():
    """Show the admin's part of the tree and add a node to it."""
    actor = _me()
    units = managed_units(actor)
    form = OrgUnitForm()
    form.parent_id.choices = unit_choices(units)
    levels = list(db.session.scalars(select(OrgLevel).where(OrgLevel.rank > 0).order_by(OrgLevel.rank)))
    form.level.choices = [SelectChoice(lv.code, bilingual(lv)) for lv in levels]
    if form.validate_on_submit():
        parent = _unit(form.parent_id.data)
        try:
            require_admin_of(actor, parent)
            unit = add_unit(form.name.data, form.level.data, parent)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            status = show_domain_error(form, exc)
            return render_template("admin/org.html", units=managed_units(actor), form=form), status
        flash(_("%(name)s was added under %(parent)s.", name=unit.name, parent=parent.name), "ok")
        return redirect(url_for(".org"))
    return render_template("admin/org.html", units=units, form=form), (422 if form.errors else 200)


@bp.route("/org/<int:unit_id>/notice", methods=["POST"])
@role_required(*ADMIN_ROLES)
def notice_setting(unit_id: int):
    """Turn public notice (公示) on or off for a community, with its number of days."""
    from ..domain import notice
    from ..forms import NoticeSettingForm

    unit = _unit(unit_id)
    require_admin_of(_me(), unit)
    form = NoticeSettingForm()
    if form.validate_on_submit():
        try:
            notice.set_notice_days(_me(), unit, form.notice_days.data)
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return redirect(url_for(".org"))
        if unit.notice_days:
            flash(ngettext("%(name)s: public notice of %(num)s day is on.", "%(name)s: public notice of %(num)s days is on.",
                           unit.notice_days, name=unit.name), "ok")
        else:
            flash(_("%(name)s: public notice is off.", name=unit.name), "ok")
        return redirect(url_for(".org"))
    flash(_("Public notice lasts 0 (off) to 15 days."), "error")
    return redirect(url_for(".org"))
