"""The API's endpoints. Each: validate, authorise, call one domain function, commit, dump."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import send_file
from flask_babel import get_locale
from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased, selectinload

from ..domain import (
    budgets, claims, deductions, exports, honours, ledger, notice, people, reports, rules, settlement, statements, tokens, uploads, vouchers,
)
from ..domain.access import (
    managed_merchants_query,
    require_admin_of,
    require_in_scope,
    require_merchant_admin,
    subtree_filter,
)
from ..domain.clock import local_today, parse_month
from ..domain.errors import NotFound
from ..domain.org import add_unit
from ..extensions import db
from ..models import Account, Activity, AuditRecord, Entry, Merchant, OrgUnit, Reward, Transfer, User, Voucher
from ..models.rewards import VOUCHER_ISSUED
from ..models.user import ADMIN_ROLES, ROLE_MERCHANT_STAFF, ROLE_STREET_ADMIN, ROLE_VOLUNTEER, STAFF_ROLES, initials_name
from ..schemas import (
    ActiveIn,
    AdminEntryOut,
    AuditOut,
    ApproveManyIn,
    ApproveManyOut,
    AttendanceIn,
    AttendanceOut,
    BalanceOut,
    DeductionIn,
    DeductionOut,
    CashierIn,
    CashierVoucherOut,
    ClaimFormIn,
    ClaimIn,
    ClaimOut,
    EntryOut,
    GrantIn,
    IssueVoucherIn,
    ListArgs,
    PageArgs,
    MeOut,
    MerchantArgs,
    MerchantIn,
    MoveIn,
    MerchantOut,
    NoticeSettingIn,
    OrgUnitIn,
    OrgUnitOut,
    PeopleArgs,
    PersonDetailsIn,
    PersonIn,
    PersonOut,
    PictureFormIn,
    RedemptionIn,
    RejectIn,
    ReverseIn,
    RewardCreateIn,
    RewardOut,
    RewardUpdateIn,
    RuleCreateIn,
    RuleOut,
    RuleTermsIn,
    StaffClaimOut,
    TemporaryPasswordOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    TransferOut,
    VoucherOut,
    MerchantOwedOut,
    MonthArgs,
    PaymentIn,
    PaymentOut,
    PeriodOut,
    RateIn,
    RatesOut,
    RedemptionOut,
    ReportArgs,
    FundingIn,
    FundingOut,
    LiabilityOut,
    ReportsOut,
    StatementOut,
    YearArgs,
    YearStatementOut,
    page_of,
    NoticeOut,
    ObjectionIn,
    ObjectionOut,
    ResolveIn,
    VotesOut,
    MyBalanceOut,
    HonourArgs,
    HonourRollOut,
    HonourDisplayIn,
    HonourDisplayOut,
)
from . import bp
from .core import (
    ApiError,
    actor,
    derived_key,
    doc,
    idempotent,
    is_multipart,
    load_args,
    load_body,
    load_form,
    local_day_bounds,
    paginate,
    require_role,
    respond,
)
from ..web.volunteer import discard_photo, send_photo
from .limits import wrong_code_limit

ALL = ("volunteer", "grid_staff", "community_admin", "street_admin", "merchant_staff")


def _grants(who) -> list[dict]:
    return [{"role": r.role, "org_unit_id": r.org_unit_id, "merchant_id": r.merchant_id} for r in who.roles]


def _unit(unit_id: int) -> OrgUnit:
    unit = db.session.get(OrgUnit, unit_id)
    if unit is None:
        raise NotFound()
    return unit


def _in_unit(path_column, args: dict, roles):
    """Return the condition for the ``org_unit_id`` filter (a node in the actor's scope), or None."""
    if not args.get("org_unit_id"):
        return None
    unit = _unit(args["org_unit_id"])
    require_in_scope(actor(), unit, roles)
    return path_column.startswith(unit.path, autoescape=True)


def _between(column, args: dict):
    start, end = local_day_bounds(args.get("date_from"), args.get("date_to"))
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


# --- me and my tokens -----------------------------------------------------------------------


@bp.get("/me")
@doc("Who the token acts for, with its roles", tag="me", response=MeOut, roles=ALL)
def me():
    """The acting user and their role grants, as the token narrows them."""
    who = actor()
    return respond(MeOut().dump({**{k: getattr(who, k) for k in ("id", "username", "full_name", "org_unit_id", "title")},
                                 "roles": _grants(who)}))


@bp.get("/tokens")
@doc("List my API tokens", tag="me", response=TokenOut(many=True), roles=ALL)
def token_list():
    """The acting user's tokens, live first; secrets are never shown again."""
    return respond(TokenOut(many=True).dump(tokens.tokens_of(actor().user)))


def _may_manage_tokens() -> None:
    """Refuse a narrowed token: it must not mint a token wider than itself."""
    token = actor().token
    if token is not None and (token.role or token.org_unit_id or token.merchant_id):
        raise ApiError(_("You are not allowed to do this here."), "forbidden", 403)


@bp.post("/tokens")
@doc("Create an API token", tag="me", body=TokenIn, response=TokenCreatedOut, status=201, roles=ALL)
def token_create():
    """Create a token, optionally narrowed to one role, a subtree or a merchant. The secret is shown once.

    A narrowed token cannot create or revoke tokens.
    """
    _may_manage_tokens()
    data = load_body(TokenIn)
    token, secret = tokens.create_token(actor().user, **data)
    return respond(TokenCreatedOut().dump({"token": token, "secret": secret}), 201)


@bp.delete("/tokens/<int:token_id>")
@doc("Revoke an API token", tag="me", response=TokenOut, roles=ALL)
def token_revoke(token_id: int):
    """Revoke one of my tokens (it stops working at once)."""
    _may_manage_tokens()
    return respond(TokenOut().dump(tokens.revoke_token(actor().user, token_id)))


# --- volunteers: balance, history, claims, rewards, vouchers --------------------------------


@bp.get("/me/balance")
@doc("My balance", tag="volunteer", response=MyBalanceOut, roles=("volunteer",))
def my_balance():
    """The volunteer's balance, the part held by open vouchers, what is available, what expires in the
    next 30 days; lifetime points earned and hours (never reduced by spending or expiry), and this year's."""
    require_role(ROLE_VOLUNTEER)
    f = honours.volunteer_figures(actor().user.id)
    t = f.totals
    return respond(MyBalanceOut().dump({
        **_balance_fields(f), "lifetime_hours": _hours(t.hours), "year": t.year, "year_earned": t.year_earned,
        "year_hours": _hours(t.year_hours),
    }))


def _balance_fields(f: honours.Figures) -> dict:
    """A volunteer's balance as ``BalanceOut`` gives it (zeros before their account exists)."""
    b = f.balance
    return {
        "balance": b.balance, "held": b.held, "available": b.available, "earned": b.earned,
        "expiring_soon": f.expiring.points, "expiring_first_date": f.expiring.first_date,
    }


def _my_account_id():
    """SQL: the volunteer's account id (none before it exists: these GETs only read, on
    PostgreSQL READ ONLY, so they do not create it as a first credit does)."""
    require_role(ROLE_VOLUNTEER)
    return ledger.volunteer_account_id_of(actor().user.id)


@bp.get("/me/history")
@doc("My ledger entries", tag="volunteer", args=PageArgs, response=page_of(EntryOut, "EntryPage"), roles=("volunteer",))
def my_history():
    """The volunteer's ledger entries, newest first."""
    args = load_args(PageArgs)
    # Plain rows, not objects, as the page only reads them; the account by its owner, and what a
    # reversal reverses, in the same statement (none yet: no rows).
    reversed_ = _REVERSED_TRANSFER
    query = (
        select(Entry.id, Entry.transfer_id, Entry.amount, Entry.balance_after, Transfer.kind, Transfer.reason,
               Transfer.activity_id, Transfer.voucher_id, Transfer.created_at,
               reversed_.id.label("reversed_id"), reversed_.kind.label("reversed_kind"),
               reversed_.reason.label("reversed_reason"), reversed_.created_at.label("reversed_at"))
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .outerjoin(reversed_, reversed_.id == Transfer.reverses_id)
        .where(Entry.account_id == _my_account_id(),
               *_between(Transfer.created_at, args))
    )
    return paginate(query, Entry.id, Entry.id, args, lambda rows: _ENTRIES_OUT.dump(map(_entry_row, rows)),
                    plain=True)


# Made once, not per request: the alias of the transfer a reversal reverses (making it cost more
# than the query), and the schema of the history's page, whose nested schema of that transfer a
# new instance would make again.
_REVERSED_TRANSFER = aliased(Transfer, name="reversed_transfer")
_ENTRIES_OUT = EntryOut(many=True)


def _entry_row(row) -> dict:
    """An entry row in the shape ``EntryOut`` reads: the transfer's columns under ``transfer``."""
    return {"id": row.id, "transfer_id": row.transfer_id, "amount": row.amount, "balance_after": row.balance_after,
            "transfer": {"kind": row.kind, "reason": row.reason, "activity_id": row.activity_id,
                         "voucher_id": row.voucher_id, "created_at": row.created_at,
                         "reverses": None if row.reversed_id is None else {
                             "id": row.reversed_id, "kind": row.reversed_kind, "reason": row.reversed_reason,
                             "created_at": row.reversed_at}}}


@bp.get("/me/claims")
@doc("My claims", tag="volunteer", args=PageArgs, response=page_of(ClaimOut, "ClaimPage"), roles=("volunteer",))
def my_claims():
    """The volunteer's claims and recorded activities, newest first."""
    require_role(ROLE_VOLUNTEER)
    args = load_args(PageArgs)
    query = (
        select(Activity)
        .where(Activity.volunteer_id == actor().id, *_between(Activity.created_at, args))
        .options(selectinload(Activity.rule_version))
    )
    return paginate(query, Activity.created_at, Activity.id, args, ClaimOut(many=True).dump)


@bp.post("/me/claims")
@idempotent
@doc("Submit a claim", tag="volunteer", body=ClaimIn, form=ClaimFormIn, response=ClaimOut, status=201,
     roles=("volunteer",), idempotent=True)
def claim_submit():
    """Claim credit for an activity; a rule that needs no approval credits it at once.

    Send JSON, or multipart/form-data with the same fields and the evidence ``photo`` as a file
    part (a rule with ``requires_photo`` needs one). The photo is re-encoded as JPEG.
    """
    require_role(ROLE_VOLUNTEER)  # the role first: a stranger learns nothing from the body check
    if not is_multipart():
        data = load_body(ClaimIn)
        act = claims.submit_claim(actor(), submission_key=derived_key("api"), **data)
        return respond(ClaimOut().dump(act), 201)
    data = load_form(ClaimFormIn)
    photo_name = uploads.store_photo(data.pop("photo").read())
    try:
        act = claims.submit_claim(actor(), submission_key=derived_key("api"), photo_name=photo_name, **data)
        return respond(ClaimOut().dump(act), 201)
    except BaseException:
        db.session.rollback()
        discard_photo(photo_name)
        raise


@bp.get("/me/claims/<int:activity_id>/photo")
@doc("The photo of one of my claims", tag="volunteer", content="image/jpeg", roles=("volunteer",))
def my_claim_photo(activity_id: int):
    """The evidence photo of one of the volunteer's own claims (JPEG); 404 when it has none."""
    require_role(ROLE_VOLUNTEER)
    act = db.session.get(Activity, activity_id)
    if act is None or act.volunteer_id != actor().id:
        raise NotFound()
    return _photo(act)


def _photo(act: Activity):
    if uploads.photo_path(act.photo_path or "") is None:
        raise NotFound()
    return send_photo(act)


@bp.get("/me/rules")
@doc("Rules I can claim under", tag="volunteer", response=RuleOut(many=True), roles=("volunteer",))
def my_rules():
    """The point rules that apply to the volunteer today."""
    require_role(ROLE_VOLUNTEER)
    return respond(RuleOut(many=True).dump(rules.rules_for_volunteer(actor(), local_today())))


@bp.get("/rewards")
@doc("Rewards I can redeem", tag="volunteer", response=RewardOut(many=True), roles=("volunteer",))
def reward_list():
    """The rewards offered to the volunteer today, with price and stock."""
    require_role(ROLE_VOLUNTEER)
    query = vouchers.visible_rewards_query(actor()).options(selectinload(Reward.merchant))
    return respond(RewardOut(many=True).dump(db.session.scalars(query)))


def _voucher_out(v: Voucher) -> dict:
    usable = v.status == VOUCHER_ISSUED
    out = VoucherOut().dump(v)
    out["token"] = vouchers.token_for(v.nonce) if usable else None
    out["code"] = vouchers.format_code(vouchers.code_for(v.nonce)) if usable else None
    return out


def _own_voucher(voucher_id: int) -> Voucher:
    require_role(ROLE_VOLUNTEER)
    v = db.session.get(Voucher, voucher_id)
    if v is None or v.volunteer_id != actor().id:
        raise NotFound()
    return v


@bp.post("/vouchers")
@idempotent
@doc("Redeem a reward: issue a voucher", tag="volunteer", body=IssueVoucherIn, response=VoucherOut, status=201,
     roles=("volunteer",), idempotent=True)
def voucher_issue():
    """Hold the reward's points and a unit of stock, and issue a voucher (QR token and fallback code)."""
    require_role(ROLE_VOLUNTEER)  # the role first: a stranger learns nothing from the body check
    data = load_body(IssueVoucherIn)
    issued = vouchers.issue_voucher(actor(), data["reward_id"])
    return respond(_voucher_out(issued.voucher), 201)


@bp.get("/vouchers")
@doc("My vouchers", tag="volunteer", args=PageArgs, response=page_of(VoucherOut, "VoucherPage"), roles=("volunteer",))
def voucher_list():
    """The volunteer's vouchers, newest first."""
    require_role(ROLE_VOLUNTEER)
    args = load_args(PageArgs)
    query = (
        select(Voucher)
        .where(Voucher.volunteer_id == actor().id, *_between(Voucher.issued_at, args))
        .options(selectinload(Voucher.reward), selectinload(Voucher.merchant))
    )
    return paginate(query, Voucher.issued_at, Voucher.id, args, lambda rows: [_voucher_out(v) for v in rows])


@bp.get("/vouchers/<int:voucher_id>")
@doc("Show one of my vouchers", tag="volunteer", response=VoucherOut, roles=("volunteer",))
def voucher_show(voucher_id: int):
    """One voucher, with its QR token and fallback code while it can be redeemed."""
    return respond(_voucher_out(_own_voucher(voucher_id)))


@bp.post("/vouchers/<int:voucher_id>/cancel")
@idempotent
@doc("Cancel one of my vouchers", tag="volunteer", response=VoucherOut, roles=("volunteer",), idempotent=True)
def voucher_cancel(voucher_id: int):
    """Cancel an unredeemed voucher: its points and stock come back (a voucher past its time is expired instead)."""
    _own_voucher(voucher_id)
    return respond(_voucher_out(vouchers.cancel_voucher(actor(), voucher_id)))


# --- cashiers: redemption ----------------------------------------------------------------------


@bp.post("/redemptions/lookup")
@wrong_code_limit
@doc("Look up a voucher at the till", tag="merchant", body=RedemptionIn, response=CashierVoucherOut,
     roles=("merchant_staff",))
def redemption_lookup():
    """Say whether the scanned or typed code may be redeemed here now, and for what; changes nothing."""
    require_role(ROLE_MERCHANT_STAFF)
    data = load_body(RedemptionIn)
    v = vouchers.look_up_for_redemption(actor(), data["code"], data["merchant_id"])
    return respond(CashierVoucherOut().dump(v))


@bp.post("/redemptions")
@wrong_code_limit
@idempotent
@doc("Confirm a redemption", tag="merchant", body=RedemptionIn, response=CashierVoucherOut, status=201,
     roles=("merchant_staff",), idempotent=True)
def redemption_confirm():
    """Redeem the voucher once: take its held points for the merchant. Hand over the goods on 201 only."""
    require_role(ROLE_MERCHANT_STAFF)
    data = load_body(RedemptionIn)
    v = vouchers.confirm_redemption(actor(), data["code"], data["merchant_id"])
    return respond(CashierVoucherOut().dump(v), 201)


@bp.get("/redemptions/today")
@doc("Today's redemptions at my merchant", tag="merchant", args=MerchantArgs, response=CashierVoucherOut(many=True),
     roles=("merchant_staff",))
def redemptions_today():
    """The vouchers redeemed today (local time) at one of the cashier's merchants."""
    require_role(ROLE_MERCHANT_STAFF)
    args = load_args(MerchantArgs)
    mine = sorted(r.merchant_id for r in actor().grants(ROLE_MERCHANT_STAFF))
    merchant_id = args["merchant_id"] or mine[0]
    day = vouchers.todays_takings(actor(), merchant_id)
    return respond([{**out, "reversed": out["id"] in day.reversed_ids}
                    for out in CashierVoucherOut(many=True).dump(day.vouchers)])


# --- grid staff: approvals and attendance -----------------------------------------------------


@bp.get("/claims")
@doc("Claims in my part of the tree", tag="staff", args=ListArgs, response=page_of(StaffClaimOut, "StaffClaimPage"),
     roles=STAFF_ROLES)
def claim_list():
    """Claims and recorded activities of volunteers in the actor's subtrees, newest first."""
    require_role(*STAFF_ROLES)
    args = load_args(ListArgs)
    query = (
        select(Activity).join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
        .where(subtree_filter(OrgUnit.path, actor(), STAFF_ROLES), *_between(Activity.created_at, args))
        .options(selectinload(Activity.rule_version), selectinload(Activity.volunteer))
    )
    within = _in_unit(OrgUnit.path, args, STAFF_ROLES)
    if within is not None:
        query = query.where(within)
    return paginate(query, Activity.created_at, Activity.id, args, StaffClaimOut(many=True).dump)


@bp.get("/claims/pending")
@doc("The approval queue", tag="staff", args=ListArgs, response=page_of(StaffClaimOut, "PendingClaimPage"),
     roles=STAFF_ROLES)
def claim_queue():
    """Pending claims in the actor's subtrees, newest first."""
    require_role(*STAFF_ROLES)
    args = load_args(ListArgs)
    query = claims.pending_claims_query(actor()).order_by(None).where(*_between(Activity.created_at, args)).options(
        selectinload(Activity.rule_version), selectinload(Activity.volunteer))
    within = _in_unit(OrgUnit.path, args, STAFF_ROLES)
    if within is not None:
        query = query.where(within)
    return paginate(query, Activity.created_at, Activity.id, args, StaffClaimOut(many=True).dump)


@bp.get("/claims/<int:activity_id>/photo")
@doc("The photo of a claim", tag="staff", content="image/jpeg", roles=STAFF_ROLES)
def claim_photo(activity_id: int):
    """The evidence photo of a claim in the actor's subtrees (JPEG); 404 when it has none."""
    require_role(*STAFF_ROLES)
    return _photo(claims.scoped_activity(actor(), activity_id))


@bp.post("/claims/<int:activity_id>/approve")
@idempotent
@doc("Approve a claim", tag="staff", response=StaffClaimOut, roles=STAFF_ROLES, idempotent=True)
def claim_approve(activity_id: int):
    """Vote to approve a pending claim. When the rule's approvals are reached it is approved and
    credited (up to the rule's caps), or posted for public notice (status ``on_notice``) where
    the volunteer's community has notice on; before that it stays ``pending``. A verifier votes
    once (409 ``already_voted``)."""
    require_role(*STAFF_ROLES)
    return respond(StaffClaimOut().dump(claims.approve_claim(actor(), activity_id)))


@bp.post("/claims/approve")
@idempotent
@doc("Approve many claims", tag="staff", body=ApproveManyIn, response=ApproveManyOut, roles=STAFF_ROLES,
     idempotent=True)
def claim_approve_many():
    """Vote to approve up to 100 pending claims of one street at once: each ends as approving it
    alone would leave it, in one transaction. When one cannot be approved (decided meanwhile,
    already voted on by you, a deactivated volunteer, the budget), none is, and the error names it."""
    require_role(*STAFF_ROLES)
    data = load_body(ApproveManyIn)
    acts = claims.approve_claims(actor(), data["activity_ids"], comment=data["comment"])
    count = {s: sum(1 for a in acts if a.status == s) for s in ("approved", "on_notice", "pending")}
    return respond(ApproveManyOut().dump({"items": acts, **count, "total_points": sum(a.points_credited for a in acts)}))


@bp.post("/claims/<int:activity_id>/reject")
@doc("Reject a claim", tag="staff", body=RejectIn, response=StaffClaimOut, roles=STAFF_ROLES)
def claim_reject(activity_id: int):
    """Reject a pending claim with a reason the volunteer will see (one rejection vote is enough)."""
    require_role(*STAFF_ROLES)
    data = load_body(RejectIn)
    return respond(StaffClaimOut().dump(claims.reject_claim(actor(), activity_id, data["reason"])))


@bp.post("/attendance")
@idempotent
@doc("Record attendance for many volunteers", tag="staff", body=AttendanceIn, response=AttendanceOut, status=201,
     roles=STAFF_ROLES, idempotent=True)
def attendance_record():
    """Record one activity (a meeting, a patrol) for many volunteers at once and credit them."""
    require_role(*STAFF_ROLES)
    data = load_body(AttendanceIn)
    acts = claims.record_attendance(actor(), batch_key=derived_key("api"), **data)
    return respond(AttendanceOut().dump({"items": acts, "total_points": sum(a.points_credited for a in acts)}), 201)


# --- admins: the tree, people, rules, merchants, rewards, reversals -------------------------


def _admin():
    require_role(*ADMIN_ROLES)
    return actor()


@bp.get("/org-units")
@doc("My part of the tree", tag="admin", response=OrgUnitOut(many=True), roles=ADMIN_ROLES + ("grid_staff",))
def org_units():
    """Every node in the actor's staff and admin subtrees, in tree order."""
    require_role(*STAFF_ROLES)
    rows = db.session.scalars(
        select(OrgUnit).where(subtree_filter(OrgUnit.path, actor(), STAFF_ROLES)).order_by(OrgUnit.path, OrgUnit.id)
    )
    return respond(OrgUnitOut(many=True).dump(rows))


@bp.post("/org-units")
@doc("Add a node to the tree", tag="admin", body=OrgUnitIn, response=OrgUnitOut, status=201, roles=ADMIN_ROLES)
def org_unit_create():
    """Add a node (a grid, a building, a unit) under a node the admin manages."""
    who = _admin()
    data = load_body(OrgUnitIn)
    parent = _unit(data["parent_id"])
    require_admin_of(who, parent)
    return respond(OrgUnitOut().dump(add_unit(data["name"], data["level"], parent)), 201)


@bp.put("/org-units/<int:unit_id>/notice")
@doc("Turn a community's public notice (公示) on or off", tag="admin", body=NoticeSettingIn, response=OrgUnitOut,
     roles=ADMIN_ROLES)
def org_unit_notice(unit_id: int):
    """Set how many days approved work of the community's volunteers stays on public notice before
    it is credited (1-15), or turn notice off (0 or null). Sending the same value again changes nothing."""
    who = _admin()
    data = load_body(NoticeSettingIn)
    return respond(OrgUnitOut().dump(notice.set_notice_days(who, _unit(unit_id), data["notice_days"])))


@bp.get("/people")
@doc("People in my part of the tree", tag="admin", args=PeopleArgs, response=page_of(PersonOut, "PersonPage"),
     roles=ADMIN_ROLES)
def people_list():
    """People whose node lies in the admin's subtrees, newest first; ``q`` searches names."""
    who = _admin()
    args = load_args(PeopleArgs)
    query = (
        select(User).join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(subtree_filter(OrgUnit.path, who, ADMIN_ROLES), *_between(User.created_at, args))
    )
    if args.get("q"):
        pattern = "%" + args["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.full_name.ilike(pattern, escape="\\"), User.username.ilike(pattern, escape="\\")))
    within = _in_unit(OrgUnit.path, args, ADMIN_ROLES)
    if within is not None:
        query = query.where(within)
    return paginate(query, User.created_at, User.id, args, lambda rows: [_person_out(p) for p in rows])


def _person_out(p: User) -> dict:
    return PersonOut().dump({**{k: getattr(p, k) for k in ("id", "username", "full_name", "phone", "org_unit_id",
                                                             "title", "is_active", "created_at")}, "roles": _grants(p)})


@bp.post("/people")
@doc("Add a person", tag="admin", body=PersonIn, response=PersonOut, status=201, roles=ADMIN_ROLES)
def person_create():
    """Create a person at a node of the admin's subtree, with their roles there."""
    who = _admin()
    data = load_body(PersonIn)
    unit = _unit(data.pop("org_unit_id"))
    require_admin_of(who, unit)
    person = people.create_person(who, org_unit=unit, **{**data, "roles": tuple(data["roles"])})
    return respond(_person_out(person), 201)


@bp.get("/people/<int:user_id>")
@doc("Show a person", tag="admin", response=PersonOut, roles=ADMIN_ROLES)
def person_show(user_id: int):
    """A person in the admin's subtrees, with their roles."""
    return respond(_person_out(people.person_in_scope(_admin(), user_id)))


@bp.put("/people/<int:user_id>")
@doc("Correct a person's details", tag="admin", body=PersonDetailsIn, response=PersonOut, roles=ADMIN_ROLES)
def person_update(user_id: int):
    """Correct a person's full name, phone and title (all three are sent; an omitted phone or title
    is cleared). The username, node and roles stay."""
    who = _admin()  # the role before the body: a volunteer learns nothing from a 422
    data = load_body(PersonDetailsIn)
    return respond(_person_out(people.update_details(who, user_id, **data)))


@bp.post("/people/<int:user_id>/node")
@doc("Move a person to another node", tag="admin", body=MoveIn, response=PersonOut, roles=ADMIN_ROLES)
def person_move(user_id: int):
    """Move a person to another node of their street (they moved house, or were filed under the
    wrong node); their volunteer role moves with them. Their points and history go with them;
    work already recorded keeps its node. The admin must administer both nodes, and cannot move
    themselves. Moving to the node they are at is refused (422)."""
    who = _admin()
    data = load_body(MoveIn)
    unit = db.session.get(OrgUnit, data["org_unit_id"])
    return respond(_person_out(people.move_person(who, user_id, unit)))


@bp.get("/people/<int:user_id>/balance")
@doc("A person's balance", tag="admin", response=BalanceOut, roles=ADMIN_ROLES)
def person_balance(user_id: int):
    """The balance of a volunteer in the admin's subtrees."""
    person = people.person_in_scope(_admin(), user_id)
    figures = honours.volunteer_figures(person.id)
    if figures.account_id is None:
        raise NotFound()
    return respond(BalanceOut().dump(_balance_fields(figures)))


@bp.post("/people/<int:user_id>/active")
@doc("Deactivate or reactivate a person", tag="admin", body=ActiveIn, response=PersonOut, roles=ADMIN_ROLES)
def person_active(user_id: int):
    """Deactivate (their points stay in the ledger) or reactivate a person."""
    who = _admin()
    data = load_body(ActiveIn)
    return respond(_person_out(people.set_active(who, user_id, data["active"])))


@bp.post("/people/<int:user_id>/roles")
@doc("Give a person a role", tag="admin", body=GrantIn, response=PersonOut, status=201, roles=ADMIN_ROLES)
def person_grant(user_id: int):
    """Give a person a role at a node of the admin's subtree."""
    who = _admin()
    data = load_body(GrantIn)
    person = people.person_in_scope(who, user_id)
    people.grant_role(who, person, data["role"], unit=_unit(data["org_unit_id"]))
    return respond(_person_out(person), 201)


@bp.get("/people/<int:user_id>/transfers")
@doc("A person's ledger transfers", tag="admin", args=PageArgs, response=page_of(TransferOut, "TransferPage"),
     roles=ADMIN_ROLES)
def person_transfers(user_id: int):
    """The transfers in and out of a volunteer's account, newest first (reversals reference ``reverses_id``)."""
    person = people.person_in_scope(_admin(), user_id)
    args = load_args(PageArgs)
    account = ledger.volunteer_account(person.id)
    if account is None:
        return respond({"items": [], "next_cursor": None})
    query = select(Transfer).where(
        or_(Transfer.from_account_id == account.id, Transfer.to_account_id == account.id),
        *_between(Transfer.created_at, args),
    )
    return paginate(query, Transfer.id, Transfer.id, args, TransferOut(many=True).dump)


@bp.post("/transfers/<int:transfer_id>/reverse")
@idempotent
@doc("Reverse a transfer", tag="admin", body=ReverseIn, response=TransferOut, status=201, roles=ADMIN_ROLES,
     idempotent=True)
def transfer_reverse(transfer_id: int):
    """Undo a credit or a redemption with a reversal transfer, with a reason; each transfer once."""
    who = _admin()
    data = load_body(ReverseIn)
    return respond(TransferOut().dump(claims.reverse_transfer(who, transfer_id, data["reason"])), 201)


@bp.get("/rules")
@doc("Rules I manage", tag="admin", response=RuleOut(many=True), roles=ADMIN_ROLES)
def rule_list():
    """The point rules defined in the admin's subtrees, with their current terms."""
    return respond(RuleOut(many=True).dump([r.current for r in rules.managed_rules(_admin())]))


def _terms(data: dict) -> rules.RuleTerms:
    return rules.RuleTerms(**{k: data[k] for k in RuleTermsIn().fields})


@bp.post("/rules")
@doc("Define a point rule", tag="admin", body=RuleCreateIn, response=RuleOut, status=201, roles=ADMIN_ROLES)
def rule_create():
    """Define a rule for the volunteers under a node the admin manages."""
    who = _admin()
    data = load_body(RuleCreateIn)
    rule = rules.create_rule(who, _unit(data["org_unit_id"]), _terms(data))
    return respond(RuleOut().dump(rule.current), 201)


@bp.put("/rules/<int:rule_id>")
@doc("Change a point rule (adds a version)", tag="admin", body=RuleTermsIn, response=RuleOut, roles=ADMIN_ROLES)
def rule_update(rule_id: int):
    """Change a rule's terms; points already credited keep the version they were judged under."""
    who = _admin()
    rules.get_managed_rule(who, rule_id)  # before the body: another community's rule is not revealed by a 422
    data = load_body(RuleTermsIn)
    return respond(RuleOut().dump(rules.update_rule(who, rule_id, _terms(data))))


@bp.get("/merchants")
@doc("Merchants I manage", tag="admin", response=MerchantOut(many=True), roles=ADMIN_ROLES)
def merchant_list():
    """The merchants registered in the admin's subtrees."""
    return respond(MerchantOut(many=True).dump(db.session.scalars(managed_merchants_query(_admin()).order_by(Merchant.id))))


@bp.post("/merchants")
@doc("Register a merchant", tag="admin", body=MerchantIn, response=MerchantOut, status=201, roles=ADMIN_ROLES)
def merchant_create():
    """Register a redemption outlet under a node the admin manages."""
    who = _admin()
    data = load_body(MerchantIn)
    unit = _unit(data.pop("org_unit_id"))
    return respond(MerchantOut().dump(vouchers.create_merchant(who, unit, **data)), 201)


@bp.post("/merchants/<int:merchant_id>/cashiers")
@doc("Add a cashier to a merchant", tag="admin", body=CashierIn, response=PersonOut, status=201, roles=ADMIN_ROLES)
def cashier_create(merchant_id: int):
    """Create a cashier account that can redeem vouchers at the merchant."""
    who = _admin()
    merchant = require_merchant_admin(who, merchant_id)
    data = load_body(CashierIn)
    person = people.create_person(who, org_unit=None, roles=(ROLE_MERCHANT_STAFF,), merchant=merchant, **data)
    return respond(_person_out(person), 201)


@bp.get("/merchants/<int:merchant_id>/cashiers")
@doc("A merchant's cashiers", tag="admin", response=PersonOut(many=True), roles=ADMIN_ROLES)
def cashier_list(merchant_id: int):
    """The cashier accounts of a merchant the admin manages, oldest first."""
    return respond([_person_out(p) for p in people.merchant_cashiers(_admin(), merchant_id)])


@bp.get("/merchants/<int:merchant_id>/rewards")
@doc("A merchant's rewards", tag="admin", response=RewardOut(many=True), roles=ADMIN_ROLES)
def merchant_rewards(merchant_id: int):
    """Every reward of a merchant the admin manages, listed or not."""
    merchant = require_merchant_admin(_admin(), merchant_id)
    return respond(RewardOut(many=True).dump(merchant.rewards))


@bp.post("/merchants/<int:merchant_id>/rewards")
@idempotent
@doc("List a reward", tag="admin", body=RewardCreateIn, response=RewardOut, status=201, roles=ADMIN_ROLES,
     idempotent=True)
def reward_create(merchant_id: int):
    """List a new reward at a merchant the admin manages, with its stock (null: unlimited)."""
    who = _admin()
    data = load_body(RewardCreateIn)
    return respond(RewardOut().dump(vouchers.create_reward(who, merchant_id, vouchers.RewardTerms(**data))), 201)


@bp.put("/rewards/<int:reward_id>")
@idempotent
@doc("Change a reward and its stock", tag="admin", body=RewardUpdateIn, response=RewardOut, roles=ADMIN_ROLES,
     idempotent=True)
def reward_update(reward_id: int):
    """Change a reward's terms; stock changes by ``stock_change`` (so reservations made meanwhile stay)."""
    who = _admin()
    data = load_body(RewardUpdateIn)
    stock_change, unlimited = data.pop("stock_change"), data.pop("unlimited")
    reward = vouchers.update_reward(who, reward_id, vouchers.RewardTerms(**data), stock_change=stock_change,
                                    unlimited=unlimited)
    return respond(RewardOut().dump(reward))


# --- settlement: what the street owes merchants -----------------------------------------------

STATEMENT_READERS = ("merchant_staff",) + ADMIN_ROLES


@bp.get("/settlement/merchants")
@doc("Merchants with what is owed to them", tag="settlement", response=MerchantOwedOut(many=True),
     roles=STATEMENT_READERS)
def settlement_merchants():
    """The merchants whose statements the actor may read (their own as cashier, those they administer),
    with the points owed to each now and their value in fen."""
    require_role(*STATEMENT_READERS)
    return respond(MerchantOwedOut(many=True).dump([
        {"id": m.id, "name": m.name, "kind": m.kind, "org_unit_id": m.org_unit_id,
         "owed": settlement.owed(m.id), "owed_fen": settlement.owed_fen(m.id)}
        for m in settlement.visible_merchants(actor())
    ]))


def _month_arg() -> date | None:
    text = load_args(MonthArgs)["month"]
    return parse_month(text) if text else None


@bp.get("/settlement/merchants/<int:merchant_id>/statement")
@doc("A merchant's statement for a month", tag="settlement", args=MonthArgs, response=StatementOut,
     roles=STATEMENT_READERS)
def settlement_statement(merchant_id: int):
    """The statement of one month: opening balance, redemptions, corrections, payments, closing
    balance, in points and fen. The merchant's cashiers see volunteers' names masked (张*华);
    admins over the merchant see full names."""
    require_role(*STATEMENT_READERS)
    who = actor()
    st = settlement.statement(who, merchant_id, _month_arg())
    return respond(StatementOut().dump({
        "merchant_id": st.merchant.id, "merchant_name": st.merchant.name, "month": st.start.strftime("%Y-%m"),
        "first_day": st.start, "last_day": st.last_day, "closed": st.period is not None, "closable": st.closable,
        "opening": st.opening, "redeemed": st.redeemed, "corrected": st.corrected, "paid": st.paid,
        "closing": st.closing, "redeemed_fen": st.redeemed_fen, "paid_fen": st.paid_fen,
        "closing_fen": st.closing_fen, "owed_now": settlement.owed(merchant_id),
        "owed_now_fen": settlement.owed_fen(merchant_id),
        "months": [m.strftime("%Y-%m") for m in settlement.statement_months(who, merchant_id)],
        "lines": st.lines,
        "by_community": [{"community": c, "points": p, "fen": f} for c, p, f in st.by_community],
    }))


@bp.post("/settlement/merchants/<int:merchant_id>/close")
@idempotent
@doc("Close the merchant's next period", tag="settlement", response=PeriodOut, status=201, roles=ADMIN_ROLES,
     idempotent=True)
def settlement_close(merchant_id: int):
    """Close the next period (a calendar month that has ended): its statement never changes again.
    A retry with the same Idempotency-Key closes nothing more."""
    who = _admin()
    return respond(PeriodOut().dump(settlement.close_period(who, merchant_id)), 201)


@bp.post("/settlement/merchants/<int:merchant_id>/payments")
@idempotent
@doc("Record a payment to a merchant", tag="settlement", body=PaymentIn, response=PaymentOut, status=201,
     roles=ADMIN_ROLES, idempotent=True)
def settlement_payment(merchant_id: int):
    """Record money paid to the merchant: retire that many of its points, valued first in, first out.
    Paying more than is owed is refused (409 ``payment_exceeds_owed``)."""
    who = _admin()
    data = load_body(PaymentIn)
    payment = settlement.record_payment(who, merchant_id, key=derived_key("api")[:48], **data)
    return respond(PaymentOut().dump(payment), 201)


def _rates_out(street: OrgUnit) -> dict:
    table = settlement.rate_table(street.id)
    return RatesOut().dump({
        "street_id": street.id, "street_name": street.name,
        "current_fen_per_point": settlement.rate_on(local_today(), table),
        "rates": [{"effective_from": d, "fen_per_point": f} for d, f in table],
    })


def _my_street() -> OrgUnit:
    require_role(ROLE_STREET_ADMIN)
    street = settlement.administered_street(actor())
    if street is None:
        raise ApiError(_("You are not allowed to do this here."), "forbidden", 403)
    return street


@bp.get("/settlement/rates")
@doc("My street's points rates", tag="settlement", response=RatesOut, roles=("street_admin",))
def settlement_rates():
    """The value of a point in the street admin's street (fen per point), today and from each date on."""
    return respond(_rates_out(_my_street()))


@bp.post("/settlement/rates")
@doc("Set my street's points rate", tag="settlement", body=RateIn, response=RatesOut, status=201,
     roles=("street_admin",))
def settlement_rate_set():
    """Set the value of a point from a date on (tomorrow at the earliest), as yuan per point."""
    street = _my_street()
    data = load_body(RateIn)
    settlement.set_rate(actor(), street, data["effective_from"], settlement.fen_from_yuan(data["yuan_per_point"]))
    return respond(_rates_out(street), 201)


# --- reports and the volunteer's yearly statement -------------------------------------------


def _cell(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@bp.get("/reports")
@doc("Report tables of a subtree and months", tag="reports", args=ReportArgs, response=ReportsOut,
     roles=ADMIN_ROLES)
def report_tables():
    """Every report of the reports page (or only ``key``) for a node of the admin's subtree and a
    range of months (at most 36): the rows the page charts, with their headers."""
    who = _admin()
    args = load_args(ReportArgs)
    if args["org_unit_id"]:
        unit = _unit(args["org_unit_id"])
    else:
        unit = next((g.org_unit for g in who.grants(*ADMIN_ROLES) if g.org_unit is not None), None)
        if unit is None:
            raise NotFound()
    last = parse_month(args["last"], field="last") if args["last"] else local_today().replace(day=1)
    first = parse_month(args["first"], field="first") if args["first"] else reports.add_months(last, -5)
    r = reports.make_range(who, unit, first, last)
    zh = str(get_locale() or "zh_CN").startswith("zh")
    tables = reports.build(r, zh, only=args["key"])
    return respond(ReportsOut().dump({
        "org_unit_id": unit.id, "first": r.start.strftime("%Y-%m"),
        "last": reports.add_months(r.end, -1).strftime("%Y-%m"),
        "tables": [{"key": t.key, "title": str(t.title), "headers": [str(h) for h in t.headers],
                    "rows": [[_cell(c) for c in row] for row in t.rows]} for t in tables],
    }))


@bp.get("/me/statement")
@doc("My statement for a year", tag="volunteer", args=YearArgs, response=YearStatementOut, roles=("volunteer",))
def my_statement():
    """The volunteer's yearly statement: balance at the start and end, points earned, corrected and
    spent, hours and activities by category, redemptions, vouchers expired. Default: this year."""
    require_role(ROLE_VOLUNTEER)
    year = load_args(YearArgs)["year"] or local_today().year
    st = statements.volunteer_year(actor(), year)
    return respond(YearStatementOut().dump({
        **{k: getattr(st, k) for k in ("year", "opening", "earned", "corrected", "spent", "points_expired",
                                        "deducted", "closing", "activities", "expired_vouchers", "expired_points")},
        "hours": str(st.hours),
        "by_category": [{"category": c, "activities": n, "hours": str(h), "points": p} for c, n, h, p in st.by_category],
        "redemptions": [{"redeemed_at": w, "reward": r, "merchant": m, "points": p, "reversed": bool(x)}
                        for w, r, m, p, x in st.redemptions],
    }))


# --- lists an admin can export (the exports page's ledger and redemptions) --------------------


@bp.get("/ledger-entries")
@doc("Ledger entries of volunteers in my part of the tree", tag="admin", args=ListArgs,
     response=page_of(AdminEntryOut, "AdminEntryPage"), roles=ADMIN_ROLES)
def ledger_entry_list():
    """Every ledger entry on the accounts of volunteers in the admin's subtrees, newest first, with
    the volunteer; ``from``/``to`` filter by the transfer's local day, ``org_unit_id`` by node."""
    args = load_args(ListArgs)
    query = exports.ledger_entries_query(_admin()).where(*_between(Transfer.created_at, args)).options(
        selectinload(Entry.transfer).selectinload(Transfer.reverses), selectinload(Entry.account).selectinload(Account.user))
    within = _in_unit(OrgUnit.path, args, ADMIN_ROLES)
    if within is not None:
        query = query.where(within)
    return paginate(query, Entry.id, Entry.id, args, AdminEntryOut(many=True).dump)


@bp.get("/redemptions")
@doc("Redemptions in my part of the tree", tag="admin", args=ListArgs, response=page_of(RedemptionOut, "RedemptionPage"),
     roles=ADMIN_ROLES)
def redemption_list():
    """Redeemed vouchers of volunteers, or at merchants, in the admin's subtrees, newest first;
    ``from``/``to`` filter by the local day of redemption, ``org_unit_id`` by the volunteer's node."""
    args = load_args(ListArgs)
    vol_unit = aliased(OrgUnit)
    query = exports.redemptions_query(_admin(), vol_unit).where(*_between(Voucher.redeemed_at, args)).options(
        selectinload(Voucher.reward), selectinload(Voucher.merchant), selectinload(Voucher.volunteer))
    within = _in_unit(vol_unit.path, args, ADMIN_ROLES)
    if within is not None:
        query = query.where(within)
    return paginate(query, Voucher.redeemed_at, Voucher.id, args, _redemptions_out)


def _redemptions_out(rows) -> list[dict]:
    """A page of redeemed vouchers, each marked when an admin has reversed it."""
    reversed_ids = vouchers.reversed_voucher_ids([v.id for v in rows])
    return [{**out, "reversed": out["voucher_id"] in reversed_ids} for out in RedemptionOut(many=True).dump(rows)]


# --- admins: role revocation, password resets, reward pictures, the audit log ----------------


@bp.delete("/people/<int:user_id>/roles/<int:grant_id>")
@doc("Take a role away from a person", tag="admin", response=PersonOut, roles=ADMIN_ROLES)
def person_revoke(user_id: int, grant_id: int):
    """Take one of a person's role grants away (``id`` as in ``roles``); a volunteer's points stay."""
    who = _admin()
    people.revoke_role(who, user_id, grant_id)
    return respond(_person_out(people.person_in_scope(who, user_id)))


@bp.post("/people/<int:user_id>/password")
@doc("Reset a person's password", tag="admin", response=TemporaryPasswordOut, status=201, roles=ADMIN_ROLES)
def person_reset_password(user_id: int):
    """Give a person a temporary password, shown once in the answer; they must change it at login."""
    person, temporary = people.reset_password(_admin(), user_id)
    return respond({"person": _person_out(person), "temporary_password": temporary}, 201)  # as TemporaryPasswordOut


@bp.put("/rewards/<int:reward_id>/picture")
@doc("Set a reward's picture", tag="admin", form=PictureFormIn, response=RewardOut, roles=ADMIN_ROLES)
def reward_picture_set(reward_id: int):
    """Give a reward the picture volunteers see in the catalogue (replacing the one it had), as the
    file part ``picture`` of a multipart/form-data body; it is re-encoded as JPEG."""
    who = _admin()
    if not is_multipart():
        raise ValidationError({"picture": ["Send the picture as a file part of a multipart/form-data body."]})
    picture = load_form(PictureFormIn)["picture"]
    return respond(RewardOut().dump(vouchers.set_reward_picture(who, reward_id, picture.read())))


@bp.get("/rewards/<int:reward_id>/picture")
@doc("A reward's picture", tag="volunteer", content="image/jpeg", roles=ALL)
def reward_picture(reward_id: int):
    """A reward's picture (JPEG), as in the catalogue; 404 when it has none. No secret: any role may see it."""
    path = uploads.reward_picture_path(reward_id) if db.session.get(Reward, reward_id) is not None else None
    if path is None:
        raise NotFound()
    resp = send_file(path, mimetype="image/jpeg", max_age=0)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.get("/audit")
@doc("The audit log of my part of the tree", tag="admin", args=PageArgs, response=page_of(AuditOut, "AuditPage"),
     roles=ADMIN_ROLES)
def audit_list():
    """The audit records of the admin's subtrees, newest first (``from``/``to`` filter by local day)."""
    who = _admin()
    args = load_args(PageArgs)
    query = select(AuditRecord).where(subtree_filter(AuditRecord.org_path, who, ADMIN_ROLES),
                                      *_between(AuditRecord.created_at, args))
    return paginate(query, AuditRecord.id, AuditRecord.id, args, AuditOut(many=True).dump)


@bp.post("/deductions")
@idempotent
@doc("Deduct points from a volunteer under a deduction rule", tag="staff", body=DeductionIn, response=DeductionOut,
     status=201, roles=STAFF_ROLES, idempotent=True)
def deduction_apply():
    """Apply a deduction rule to a volunteer with a reason: at most their available points are deducted."""
    require_role(*STAFF_ROLES)
    data = load_body(DeductionIn)
    done = deductions.apply_deduction(actor(), submission_key=derived_key("api"), **data)
    return respond(DeductionOut().dump(done), 201)


# --- budgets and the liability view -----------------------------------------------------------


def _liability_out(r: budgets.Liability) -> dict:
    figures = r.figures()
    b = r.budget
    return {
        "org_unit_id": r.unit.id, "name": r.unit.name, "fen_per_point": r.fen_per_point,
        "points": {name: points for name, points, _ in figures}, "fen": {name: fen for name, _, fen in figures},
        "budget": None if b is None else {"funded_fen": b.funded_fen, "fen_per_point": b.fen_per_point,
                                          "capacity": b.capacity, "used": b.used, "remaining": b.remaining},
    }


@bp.get("/budgets")
@doc("Liability and budgets of my street or community", tag="budgets", response=LiabilityOut(many=True),
     roles=ADMIN_ROLES)
def budget_liability():
    """Per street and per funded community in the admin's subtrees: points issued, redeemed, expired,
    deducted, held by volunteers, owed to and paid to merchants (in points and in fen: redemptions and
    what was paid and is owed for them at the rate of each redemption's day, as settlement values
    them; the rest at today's rate), and the budget: funded fen, capacity in points, used and remaining."""
    return respond(LiabilityOut(many=True).dump([_liability_out(r) for r in budgets.liabilities(_admin())]))


@bp.post("/budgets/funding")
@idempotent
@doc("Record funding for a street's or community's points", tag="budgets", body=FundingIn, response=FundingOut,
     status=201, roles=ADMIN_ROLES, idempotent=True)
def budget_funding():
    """Record money for the points of a street or community below the admin's node, or of the
    street for its street admin (negative: a correction, with the reason in ``note``). An admin
    cannot fund the budget they spend from: a community admin's own community is refused with
    ``403 funding_from_above``. Records are never edited."""
    who = _admin()
    data = load_body(FundingIn)
    record = budgets.record_funding(
        who, _unit(data["org_unit_id"]), fen=budgets.fen_from_yuan(data["amount"]), source=data["source"],
        funded_on=data["funded_on"], note=data["note"], key=derived_key("api"),
    )
    return respond(FundingOut().dump({
        "id": record.id, "org_unit_id": data["org_unit_id"], "fen": record.fen, "source": record.source,
        "funded_on": record.funded_on, "note": record.note,
    }), 201)


# --- check-in events ------------------------------------------------------------------------

from ..domain import checkin as checkin_events  # noqa: E402  (kept beside its endpoints)
from ..schemas import (  # noqa: E402
    AttendeeIn,
    AttendeeOut,
    CheckinIn,
    CheckinOut,
    EventClosedOut,
    EventIn,
    EventOut,
    EventUpdateIn,
)


@bp.get("/events")
@doc("Check-in events in my part of the tree", tag="staff", args=PageArgs, response=page_of(EventOut, "EventPage"),
     roles=STAFF_ROLES)
def event_list():
    """Check-in events whose node lies in the actor's staff subtrees, newest first."""
    require_role(*STAFF_ROLES)
    args = load_args(PageArgs)
    from ..models import CheckinEvent

    query = checkin_events.events_query(actor()).order_by(None)
    return paginate(query, CheckinEvent.id, CheckinEvent.id, args, EventOut(many=True).dump)


@bp.post("/events")
@idempotent
@doc("Create a check-in event", tag="staff", body=EventIn, response=EventOut, status=201, roles=STAFF_ROLES,
     idempotent=True)
def event_create():
    """Create an open event (activity type, time window, place, node) for volunteers to sign in to."""
    require_role(*STAFF_ROLES)
    data = load_body(EventIn)
    return respond(EventOut().dump(checkin_events.create_event(actor(), **data)), 201)


@bp.put("/events/<int:event_id>")
@idempotent
@doc("Change a check-in event", tag="staff", body=EventUpdateIn, response=EventOut, roles=STAFF_ROLES,
     idempotent=True)
def event_update(event_id: int):
    """Change an open event's title, place or time window before it ends; the start stays once
    someone has signed in. The activity type and node cannot change."""
    require_role(*STAFF_ROLES)
    data = load_body(EventUpdateIn)
    return respond(EventOut().dump(checkin_events.update_event(actor(), event_id, **data)))


@bp.post("/events/<int:event_id>/attendees")
@idempotent
@doc("Add an attendee without a phone to an event", tag="staff", body=AttendeeIn, response=AttendeeOut, status=201,
     roles=STAFF_ROLES, idempotent=True)
def event_add_attendee(event_id: int):
    """Back-fill a volunteer who was at the event; ``hours`` null counts the whole event."""
    require_role(*STAFF_ROLES)
    data = load_body(AttendeeIn)
    row = checkin_events.add_attendee(actor(), event_id, data["volunteer_id"], data["hours"])
    return respond(AttendeeOut().dump(row), 201)


@bp.post("/events/<int:event_id>/close")
@idempotent
@doc("Close an event and credit its attendees", tag="staff", response=EventClosedOut, roles=STAFF_ROLES,
     idempotent=True)
def event_close(event_id: int):
    """Close the event: one activity per attendee, credited or pending approval. Closing again changes nothing."""
    require_role(*STAFF_ROLES)
    done = checkin_events.close_event(actor(), event_id)
    return respond(EventClosedOut().dump({"event": done.event, "closed_now": done.changed, "items": done.activities}))


@bp.post("/events/<int:event_id>/checkin")
@doc("Sign in to or out of an event with the token of its QR code", tag="volunteer", body=CheckinIn,
     response=CheckinOut, roles=("volunteer",))
def event_checkin(event_id: int):
    """Sign in (``in``) or out (``out``); doing it again changes nothing (``changed`` false)."""
    require_role(ROLE_VOLUNTEER)
    data = load_body(CheckinIn)
    checkin_events.require_fresh(event_id, data["token"])
    who = actor()
    if data["action"] == "in":
        done = checkin_events.sign_in(who, event_id)
    else:
        done = checkin_events.sign_out(who, event_id)
    row = done.attendance
    return respond(CheckinOut().dump({"event_id": event_id, "signed_in_at": row.signed_in_at,
                                      "signed_out_at": row.signed_out_at, "changed": done.changed}))


# --- approval votes and public notice ------------------------------------------------------


@bp.get("/claims/<int:activity_id>/votes")
@doc("The votes on a claim", tag="staff", response=VotesOut, roles=STAFF_ROLES)
def claim_votes(activity_id: int):
    """Who has voted on a claim so far, and how many approvals its rule needs."""
    require_role(*STAFF_ROLES)
    act = claims.scoped_activity(actor(), activity_id)
    votes = claims.votes_for([act.id])[act.id]
    return respond(VotesOut().dump({
        "activity_id": act.id, "status": act.status, "votes": votes,
        "approvals": sum(1 for v in votes if v.decision == "approve"),
        "approvals_required": act.rule_version.approvals_required,
    }))


@bp.get("/notices")
@doc("Activities on public notice in my part of the tree", tag="staff", response=NoticeOut(many=True), roles=STAFF_ROLES)
def notice_list():
    """Activities on public notice (approved, not yet credited) with their objections."""
    require_role(*STAFF_ROLES)
    acts = notice.notices_in_scope(actor())
    objections = notice.objections_for([a.id for a in acts])
    for a in acts:
        a.notice_objections = objections[a.id]  # not a column: read by NoticeOut only
    return respond(NoticeOut(many=True).dump(acts))


@bp.post("/notices/<int:activity_id>/objections")
@idempotent
@doc("Object to an activity on public notice", tag="staff", body=ObjectionIn, response=ObjectionOut, status=201,
     roles=STAFF_ROLES, idempotent=True)
def objection_file(activity_id: int):
    """File an objection, with a reason, to an activity on notice (residents use the public page)."""
    require_role(*STAFF_ROLES)
    data = load_body(ObjectionIn)
    objection = notice.file_objection(activity_id, data["reason"], data["contact"], filed_by=actor())
    return respond(ObjectionOut().dump(objection), 201)


@bp.post("/objections/<int:objection_id>/resolve")
@doc("Uphold or dismiss an objection", tag="staff", body=ResolveIn, response=ObjectionOut, roles=STAFF_ROLES)
def objection_resolve(objection_id: int):
    """Uphold (the activity is withheld, never credited) or dismiss (it proceeds) an objection."""
    require_role(*STAFF_ROLES)
    data = load_body(ResolveIn)
    objection = notice.resolve_objection(actor(), objection_id, data["decision"] == "uphold", data["note"])
    return respond(ObjectionOut().dump(objection))


# --- honour rolls and how they show me --------------------------------------------------------


def _hours(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def _place_out(p: honours.Place) -> dict:
    return {"place": p.place, "name": p.name, "points": p.points, "hours": _hours(p.hours), "is_me": p.is_me}


@bp.get("/honours")
@doc("The honour roll of a grid, community or street", tag="honours", args=HonourArgs, response=HonourRollOut,
     roles=honours.ROLL_ROLES)
def honour_roll():
    """The top volunteers of a node by points earned and by hours served in a month or a year
    (approved activities by their date, less deductions); equal scores share a place. Volunteers
    see their own grid, community and street; staff and admins their subtrees. A volunteer who chose
    it is shown by surname only (王**) to everyone but themselves."""
    require_role(*honours.ROLL_ROLES)
    args = load_args(HonourArgs)
    who = actor()
    unit = honours.roll_unit(who, args["org_unit_id"])
    r = honours.roll(who, unit, honours.parse_period(args["period"]), args["top"])
    return respond(HonourRollOut().dump({
        "org_unit_id": unit.id, "org_unit_name": unit.name, "period": r.period.label, "top": r.top,
        "by_points": [_place_out(p) for p in r.by_points], "by_hours": [_place_out(p) for p in r.by_hours],
    }))


def _display_out(who) -> dict:
    shown = who.full_name if who.honour_display != "initials" else initials_name(who.full_name)
    return {"honour_display": who.honour_display, "shown_as": shown}


@bp.get("/me/honour-display")
@doc("How honour rolls show me", tag="volunteer", response=HonourDisplayOut, roles=("volunteer",))
def my_honour_display():
    """Whether honour rolls show me to others by full name or by surname only."""
    require_role(ROLE_VOLUNTEER)
    return respond(HonourDisplayOut().dump(_display_out(actor().user)))


@bp.put("/me/honour-display")
@idempotent
@doc("Choose how honour rolls show me", tag="volunteer", body=HonourDisplayIn, response=HonourDisplayOut,
     roles=("volunteer",), idempotent=True)
def my_honour_display_set():
    """Show me on honour rolls by full name (``name``) or by surname only (``initials``, 王**).
    I always see my own full name."""
    require_role(ROLE_VOLUNTEER)
    data = load_body(HonourDisplayIn)
    return respond(HonourDisplayOut().dump(_display_out(honours.set_honour_display(actor(), data["honour_display"]))))
