"""Claims, approvals, directly recorded attendance and reversals.

Approval and crediting happen in one transaction: the claim's status moves from ``pending``
with a conditional UPDATE (so a double click finds it decided and changes nothing), then the
volunteer's account row is locked, the caps are computed under that lock, and the credit is
written with the cause key ``activity:<id>`` (unique in the ledger).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from ..database import among, dialect, insert_rows, insert_unless_taken, update_rows
from ..extensions import db
from ..models import Account, Activity, ApprovalVote, OrgUnit, PointRule, PointRuleVersion, Reward, RoleGrant, Transfer, User
from ..models.ledger import ACCOUNT_VOLUNTEER, TRANSFER_CAPTURE, TRANSFER_CREDIT
from ..models.rules import (
    STATUS_APPROVED,
    STATUS_ON_NOTICE,
    STATUS_PENDING,
    STATUS_REJECTED,
    STATUS_REVERSED,
    RULE_EARN,
    STATUS_WITHHELD,
    UNIT_HOUR,
    VOTE_APPROVE,
    VOTE_REJECT,
)
from ..models.user import ADMIN_ROLES, ROLE_VOLUNTEER, STAFF_ROLES
from . import activity_totals, audit, ledger, notice
from .access import ancestor_paths, in_scope, require_in_scope, require_merchant_admin, subtree_filter
from .clock import local_today, now_utc
from .errors import (
    AccountInactive,
    AlreadyDecided,
    AlreadyVoted,
    AlreadyRecorded,
    BudgetExhausted,
    CannotReverse,
    Forbidden,
    InvalidInput,
    NotFound,
    RuleNotApplicable,
    VolunteerInactive,
)

CLAIM_MAX_AGE_DAYS = 90
BATCH_KEY_MAX = 64  # Activity.batch_key
STATUS_LABELS = {
    STATUS_APPROVED: _l("approved"),
    STATUS_REJECTED: _l("rejected"),
    STATUS_REVERSED: _l("reversed"),
    STATUS_ON_NOTICE: _l("approved and posted for public notice"),
    STATUS_WITHHELD: _l("withheld after an objection"),
}
VOTE_LABELS = {VOTE_APPROVE: _l("approved"), VOTE_REJECT: _l("rejected")}
MAX_HOURS = Decimal("24")
APPROVER_ROLES = STAFF_ROLES  # grid staff and admins approve in their subtree


def parse_hours(value) -> Decimal:
    """Return hours as a Decimal in half-hour steps, or raise ``InvalidInput``."""
    if value is None or not str(value).strip():
        raise InvalidInput("This activity earns points by the hour: enter how many hours, e.g. 1.5.", field="hours")
    try:
        hours = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput("Enter the hours as a number, e.g. 1.5.", field="hours")
    if not hours.is_finite() or hours <= 0 or hours > MAX_HOURS or (hours * 2) % 1 != 0:
        raise InvalidInput("Hours must be between 0.5 and 24, in steps of half an hour.", field="hours")
    return hours


def points_for(version: PointRuleVersion, hours: Decimal | None) -> int:
    """Return the points a rule version gives, before caps (per hour: rounded half up)."""
    if version.unit == UNIT_HOUR:
        return int((Decimal(version.points) * hours).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return version.points


def _check_rule_applies(version: PointRuleVersion, rule: PointRule, volunteer: User, on: date) -> None:
    if volunteer.org_unit is None or rule.org_unit.path not in ancestor_paths(volunteer.org_unit):
        raise RuleNotApplicable(why=_l("it is not defined for this volunteer's community"))
    if not version.is_active:
        raise RuleNotApplicable(why=_l("it has been switched off"))
    if version.kind != RULE_EARN:
        raise RuleNotApplicable(why=_l("it is a deduction, not a way to earn points"))
    if not version.applies_on(on):
        raise RuleNotApplicable(why=_l("it is not in force on that date"))
    if version.titles and volunteer.title not in version.titles:
        raise RuleNotApplicable(why=_l("it is not for this volunteer's title"))


def _check_date(on: date, today: date) -> None:
    if on > today:
        raise InvalidInput("The date cannot be in the future.", field="activity_date")
    if on < today - timedelta(days=CLAIM_MAX_AGE_DAYS):
        raise InvalidInput(
            "Claims older than %(n)s days are not accepted.", field="activity_date", n=CLAIM_MAX_AGE_DAYS
        )


def _current_version(rule_id: int) -> tuple[PointRule, PointRuleVersion]:
    rule = db.session.get(PointRule, rule_id)
    if rule is None or rule.current is None:
        raise InvalidInput("Choose an activity type from the list.", field="rule_id")
    return rule, rule.current


def submit_claim(
    volunteer: User,
    *,
    rule_id: int,
    activity_date: date,
    hours=None,
    note: str | None = None,
    photo_name: str | None = None,
    submission_key: str | None = None,
    now: datetime | None = None,
) -> Activity:
    """Record a volunteer's claim; rules that need no approval are credited at once."""
    now = now or now_utc()
    if not volunteer.is_active:
        raise AccountInactive()
    if not volunteer.has_role(ROLE_VOLUNTEER):
        raise Forbidden()
    rule, version = _current_version(rule_id)
    _check_date(activity_date, local_today(now))
    _check_rule_applies(version, rule, volunteer, activity_date)
    note = (note or "").strip() or None
    parsed_hours = parse_hours(hours) if version.unit == UNIT_HOUR else None
    if version.requires_note and not note:
        raise InvalidInput("This activity needs a note describing what you did.", field="note")
    if version.requires_photo and not photo_name:
        raise InvalidInput("This activity needs a photo as evidence.", field="photo")
    if submission_key and db.session.scalar(
        select(Activity.id).where(Activity.volunteer_id == volunteer.id, Activity.batch_key == submission_key)
    ):
        raise AlreadyRecorded()
    act = Activity(
        volunteer_id=volunteer.id,
        org_unit_id=volunteer.org_unit_id,
        rule_id=rule.id,
        rule_version_id=version.id,
        activity_date=activity_date,
        hours=parsed_hours,
        note=note,
        photo_path=photo_name,
        source="claim",
        status=STATUS_PENDING,
        points_requested=points_for(version, parsed_hours),
        points_credited=0,
        batch_key=submission_key,
        created_by_id=volunteer.id,
        created_at=now,
    )
    db.session.add(act)
    _flush_unique(AlreadyRecorded)
    # A rule that needs no approval credits at once, except someone who verifies claims where
    # the work was done: their claim waits for another verifier, as their attendance does.
    if not version.needs_approval and not verifies_own_work(volunteer, act.org_unit):
        _approve(act, volunteer, now)
    return act


def pending_count(volunteer_id: int) -> int:
    """How many of a volunteer's claims wait for a verifier's decision."""
    return db.session.scalar(select(func.count()).select_from(Activity).where(
        Activity.volunteer_id == volunteer_id, Activity.status == STATUS_PENDING))


def verifies_own_work(volunteer: User, unit: OrgUnit | None) -> bool:
    """Say whether ``volunteer`` is grid staff or an admin over ``unit``, where their own work is
    recorded: then no work of theirs is credited without another verifier."""
    return in_scope(volunteer, unit, APPROVER_ROLES)


def _flush_unique(error_cls) -> None:
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise error_cls() from exc


@lru_cache(maxsize=None)
def _activity_to_decide():
    return select(Activity).where(Activity.id == bindparam("activity_id")).options(
        joinedload(Activity.org_unit), joinedload(Activity.rule_version),
        joinedload(Activity.volunteer).lazyload(User.roles),
    )


def _while_pending():
    """An UPDATE of activity ``activity_id`` that changes it only while it is pending."""
    t = Activity.__table__
    return update(t).where(t.c.id == bindparam("activity_id"), t.c.status == STATUS_PENDING)


@lru_cache(maxsize=None)
def _activity_update(names: tuple[str, ...]):
    """Set ``names`` (parameters ``new_<name>``) of a still pending activity: the conditional
    UPDATE that decides it."""
    t = Activity.__table__
    return _while_pending().values({name: bindparam(f"new_{name}", type_=t.c[name].type) for name in names})


@lru_cache(maxsize=None)
def _credited_update():
    """Set what an approved activity credited (``points_credited``, ``cap_note``)."""
    t = Activity.__table__
    return update(t).where(t.c.id == bindparam("activity_id")).values(
        points_credited=bindparam("new_points_credited", type_=t.c.points_credited.type),
        cap_note=bindparam("new_cap_note", type_=t.c.cap_note.type),
    )


@lru_cache(maxsize=None)
def _credited_update_if_active():
    """``_credited_update`` only while the activity's volunteer is active. Run after their
    account's lock, which a deactivation takes before it commits (``people.set_active``), it sees
    a deactivation that committed after the volunteer was loaded."""
    t, u = Activity.__table__, User.__table__
    active = select(u.c.id).where(u.c.id == t.c.volunteer_id, u.c.is_active.is_(True)).exists()
    return _credited_update().where(active)


@lru_cache(maxsize=None)
def _lock_pending_update():
    """Lock a still pending activity's row without changing it."""
    return _while_pending().values(status=Activity.__table__.c.status)


def scoped_activity(actor: User, activity_id: int, roles=APPROVER_ROLES) -> Activity:
    """Return an activity of a volunteer in the actor's subtree, else raise ``NotFound``.

    One statement: the activity with its node (for the scope), its rule version and its volunteer
    (whether active), but not the volunteer's role grants, which deciding a claim does not read."""
    act = db.session.scalars(_activity_to_decide(), {"activity_id": activity_id}).unique().first()
    if act is None:
        raise NotFound()
    require_in_scope(actor, act.org_unit, roles)
    return act


def _decide(activity_id: int, status: str, actor: User, now: datetime, reason: str | None = None,
            notice_until: datetime | None = None) -> None:
    values = {"status": status, "decided_at": now, "decided_by_id": actor.id}
    if reason is not None:
        values["reject_reason"] = reason
    if notice_until is not None:
        values["notice_until"] = notice_until
    result = db.session.execute(
        _activity_update(tuple(values)), {"activity_id": activity_id, **{f"new_{k}": v for k, v in values.items()}}
    )
    obj = db.session.get(Activity, activity_id)
    if result.rowcount != 1:
        db.session.refresh(obj)
        raise AlreadyDecided(status=STATUS_LABELS.get(obj.status, obj.status))
    # The row now holds exactly these values: set them on the loaded object instead of reloading
    # it (a refresh would reload its volunteer, rule version and node too).
    for key, value in values.items():
        set_committed_value(obj, key, value)


def _approve(act: Activity, actor: User, now: datetime) -> None:
    """Decide a pending activity approved: credit it now, or post it for public notice first."""
    if _decide_approved(act, actor, now):
        _credit(act, actor)


def _decide_approved(act: Activity, actor: User, now: datetime) -> bool:
    """Decide a pending activity approved, or posted for public notice where its community has
    notice on; say whether it is to be credited now."""
    days = notice.notice_days_for(act.org_unit)
    if days:
        _decide(act.id, STATUS_ON_NOTICE, actor, now, notice_until=notice.notice_end(now, days))
        return False
    _decide(act.id, STATUS_APPROVED, actor, now)
    return True


def _lock_pending(act: Activity) -> None:
    """Lock the activity row (first, as every decision does) while it is pending, else refuse.

    A no-op conditional UPDATE takes the row lock on PostgreSQL; a second verifier voting at the
    same moment waits here, then finds the claim decided (or sees the first one's vote).
    """
    result = db.session.execute(_lock_pending_update(), {"activity_id": act.id})
    if result.rowcount != 1:
        db.session.refresh(act)
        raise AlreadyDecided(status=STATUS_LABELS.get(act.status, act.status))
    # Locked and pending: nothing else of a pending activity changes, so the loaded copy holds.
    set_committed_value(act, "status", STATUS_PENDING)


def _vote(act: Activity, actor: User, decision: str, comment: str | None, now: datetime) -> None:
    """Record one verifier's vote on the locked claim; a verifier votes once."""
    t = ApprovalVote.__table__
    taken = insert_unless_taken(
        t, {"activity_id": act.id, "voter_id": actor.id, "decision": decision, "comment": comment, "created_at": now},
        key=["activity_id", "voter_id"], returning=t.c.id,
    )
    if taken is None:
        mine = db.session.execute(
            select(t.c.decision, t.c.created_at).where(t.c.activity_id == act.id, t.c.voter_id == actor.id)
        ).first()
        if mine is None:  # not seen in this statement's snapshot: say so without the details
            raise AlreadyVoted(decision="", when="")
        raise AlreadyVoted(decision=VOTE_LABELS[mine.decision], when=mine.created_at.isoformat(timespec="minutes"))


def approvals_of(activity_id: int) -> int:
    """Return how many verifiers have approved the claim so far."""
    return db.session.scalar(
        select(func.count(ApprovalVote.id)).where(
            ApprovalVote.activity_id == activity_id, ApprovalVote.decision == VOTE_APPROVE
        )
    )


def votes_for(activity_ids: list[int]) -> dict[int, list[ApprovalVote]]:
    """Return the votes on each of the claims, oldest first, with their voters loaded."""
    from sqlalchemy.orm import selectinload

    out: dict[int, list[ApprovalVote]] = {i: [] for i in activity_ids}
    if activity_ids:
        for v in db.session.scalars(
            select(ApprovalVote).where(ApprovalVote.activity_id.in_(activity_ids))
            .options(selectinload(ApprovalVote.voter)).order_by(ApprovalVote.id)
        ):
            out[v.activity_id].append(v)
    return out


def approve_claim(actor: User, activity_id: int, now: datetime | None = None, comment: str | None = None) -> Activity:
    """Vote to approve a pending claim; when the rule's approvals are reached, approve and credit it.

    Any verifier over the volunteer may vote, once. With public notice on in the volunteer's
    community, the approved claim goes on notice and is credited after the objection window.
    """
    now = now or now_utc()
    act = scoped_activity(actor, activity_id)
    if act.volunteer_id == actor.id:
        raise Forbidden("You cannot approve your own claim; another staff member must.")
    if not act.volunteer.is_active:
        # As for recorded attendance: no new points for a deactivated account.
        raise VolunteerInactive()
    db.session.flush()
    comment = (comment or "").strip()[:1000] or None
    required = act.rule_version.approvals_required or 1
    if required > 1:
        _lock_pending(act)
        _vote(act, actor, VOTE_APPROVE, comment, now)
        approvals = approvals_of(act.id)
        if approvals < required:
            audit.record(
                actor, audit.CLAIM_VOTED, "activity", act.id,
                {"volunteer_id": act.volunteer_id, "decision": VOTE_APPROVE, "approvals": approvals,
                 "required": required, "comment": comment},
                org_path=act.org_unit.path, now=now,
            )
            return act
        _approve(act, actor, now)
    else:
        # One approval needed: this vote is it. The deciding conditional UPDATE locks the row
        # and refuses a claim no longer pending, as _lock_pending would; a pending claim of
        # such a rule has no votes yet (the first would have decided it).
        # The vote is written once the claim is decided and before it is credited, which
        # holds the street's issuance account locked to the end of the transaction.
        approvals = 1
        credit_now = _decide_approved(act, actor, now)
        _vote(act, actor, VOTE_APPROVE, comment, now)
        if credit_now:
            _credit(act, actor)
    audit.record(
        actor, audit.CLAIM_APPROVED, "activity", act.id,
        {"volunteer_id": act.volunteer_id, "points_requested": act.points_requested,
         "points_credited": act.points_credited, "cap_note": act.cap_note,
         "approvals": approvals, "required": required, "status": act.status,
         "notice_until": act.notice_until.isoformat() if act.notice_until else None},
        org_path=act.org_unit.path, now=now,
    )
    return act


APPROVE_MANY_MAX = 100  # claims approved at once: one page of the queue
ID_MAX = 2 ** 31 - 1  # the id columns are 32-bit integers


def approve_claims(actor: User, activity_ids, now: datetime | None = None, comment: str | None = None) -> list[Activity]:
    """Vote to approve many pending claims at once (a verifier's "approve the selected"), in one
    transaction: all of them, or, when one cannot be approved, none (the error names it).

    Each claim ends as ``approve_claim`` would leave it, one after another in id order: credited
    up to its rule's caps (counting the batch's earlier claims of the same volunteer and rule),
    posted for public notice, or still pending for another verifier's vote; the same votes,
    ledger rows, yearly totals and audit records are written. What is shared is written
    together: the claims' rows are locked by one statement (ascending id), decided by one, the
    accounts locked by one (``_locked_accounts_of``, ascending id), the credits written by one
    ``ledger.credit_many`` and the audit records appended by one. The claims must be of one
    street (the issuance account and budgets of a second street would be locked after the
    first's budget, against the global lock order of pointsapp.domain.ledger).
    """
    now = now or now_utc()
    ids = sorted({int(i) for i in activity_ids})
    if not ids:
        raise InvalidInput("Choose at least one claim.", field="activity_ids")
    if len(ids) > APPROVE_MANY_MAX:
        raise InvalidInput("Approve at most %(n)s claims at a time.", field="activity_ids", n=APPROVE_MANY_MAX)
    if ids[0] < 1 or ids[-1] > ID_MAX:  # no such row (and not a value for the id column)
        raise NotFound()
    on = dialect()
    acts = list(db.session.scalars(_activities_to_decide(on), {"ids": ids}).unique())
    if len(acts) != len(ids):
        raise NotFound()
    for act in acts:
        require_in_scope(actor, act.org_unit, APPROVER_ROLES)
    for act in acts:
        if act.volunteer_id == actor.id:
            raise Forbidden("You cannot approve your own claim; another staff member must.")
        if not act.volunteer.is_active:
            raise VolunteerInactive(
                _l("%(name)s's account is deactivated: ask an admin to reactivate it, or leave their claim out. "
                   "Nothing was approved."), name=act.volunteer.full_name)
    if len({act.org_unit.root_id for act in acts}) > 1:
        raise InvalidInput("Approve the claims of one street at a time.", field="activity_ids")
    comment = (comment or "").strip()[:1000] or None
    db.session.flush()

    # The claims' rows, locked in ascending id (as each single decision locks its one row first).
    status_now = dict(db.session.execute(_lock_activities(on), {"ids": ids}).all())
    for act in acts:
        if status_now[act.id] != STATUS_PENDING:
            raise AlreadyDecided(
                _l("The claim of %(name)s (%(rule)s, %(day)s) was already %(status)s; nothing was approved. "
                   "Reload the queue and choose again."),
                name=act.volunteer.full_name, rule=act.rule_version.name_zh, day=act.activity_date.isoformat(),
                status=STATUS_LABELS.get(status_now[act.id], status_now[act.id]),
            )
    # The votes: a claim of a one-approval rule has none while pending (the first decides it);
    # a claim needing several gets this verifier's vote and is decided when it has enough.
    approvals: dict[int, int] = {}
    for act in acts:
        required = act.rule_version.approvals_required or 1
        if required == 1:
            approvals[act.id] = 1
            continue
        try:
            _vote(act, actor, VOTE_APPROVE, comment, now)
        except AlreadyVoted as exc:
            raise AlreadyVoted(
                _l("You already voted on the claim of %(name)s (%(rule)s, %(day)s); another verifier must decide "
                   "it. Nothing was approved: leave it out and approve again."),
                name=act.volunteer.full_name, rule=act.rule_version.name_zh, day=act.activity_date.isoformat(),
            ) from exc
        approvals[act.id] = approvals_of(act.id)
    firsts = [act for act in acts if (act.rule_version.approvals_required or 1) == 1]
    vote_t = ApprovalVote.__table__
    try:
        insert_rows(vote_t, [{"activity_id": act.id, "voter_id": actor.id, "decision": VOTE_APPROVE, "comment": comment,
                              "created_at": now} for act in firsts])
    except IntegrityError as exc:  # not while the rows are locked and pending; kept as the check
        raise AlreadyVoted(_l("One of these claims was voted on meanwhile; nothing was approved. Reload the "
                              "queue and choose again.")) from exc
    deciding = [act for act in acts if approvals[act.id] >= (act.rule_version.approvals_required or 1)]

    # The decisions: approved now, or posted for public notice where the community has it on.
    days_at = notice.notice_days_for_units({act.org_unit for act in deciding})
    decided = []
    for act in deciding:
        days = days_at[act.org_unit_id]
        decided.append({"id": act.id, "status": STATUS_ON_NOTICE if days else STATUS_APPROVED, "decided_at": now,
                        "decided_by_id": actor.id, "notice_until": notice.notice_end(now, days) if days else None})
    update_rows(Activity.__table__, decided)
    for act, row in zip(deciding, decided):
        for key in ("status", "decided_at", "decided_by_id", "notice_until"):
            set_committed_value(act, key, row[key])
    to_credit = [act for act in deciding if act.status == STATUS_APPROVED]
    if to_credit:
        _credit_approved(to_credit, actor, now)

    entries = []
    for act in acts:
        required = act.rule_version.approvals_required or 1
        if act.status == STATUS_PENDING:
            entries.append(audit.Entry(
                audit.CLAIM_VOTED, "activity", act.id,
                {"volunteer_id": act.volunteer_id, "decision": VOTE_APPROVE, "approvals": approvals[act.id],
                 "required": required, "comment": comment},
                act.org_unit.path,
            ))
        else:
            entries.append(audit.Entry(
                audit.CLAIM_APPROVED, "activity", act.id,
                {"volunteer_id": act.volunteer_id, "points_requested": act.points_requested,
                 "points_credited": act.points_credited, "cap_note": act.cap_note,
                 "approvals": approvals[act.id], "required": required, "status": act.status,
                 "notice_until": act.notice_until.isoformat() if act.notice_until else None},
                act.org_unit.path,
            ))
    audit.record_many(actor, entries, now=now)
    return acts


def _credit_approved(acts: list[Activity], actor: User, now: datetime) -> None:
    """Credit claims of one street just decided approved (ascending id), as ``_credit`` credits
    each in turn: their volunteers' accounts locked first (ascending id), each claim capped by what
    its rule credited the volunteer that day and month, this batch's earlier claims included."""
    accounts = _locked_accounts_of(list({act.volunteer_id: act.volunteer for act in acts}.values()))
    used = _credited_by_day(acts)
    rows = []
    for act in acts:
        version = act.rule_version
        first, nxt = _month_bounds(act.activity_date)
        mine = used.setdefault((act.volunteer_id, act.rule_id), {})
        grant, cap_note = _capped(
            version, act.points_requested,
            mine.get(act.activity_date, 0) if version.daily_cap else 0,
            sum(p for day, p in mine.items() if first <= day < nxt) if version.monthly_cap else 0,
        )
        mine[act.activity_date] = mine.get(act.activity_date, 0) + grant
        rows.append({"id": act.id, "points_credited": grant, "cap_note": cap_note})
        set_committed_value(act, "points_credited", grant)
        set_committed_value(act, "cap_note", cap_note)
    update_rows(Activity.__table__, rows)
    credits = [_credit_of(act, act.rule_version, accounts[act.volunteer_id], actor)
               for act in acts if act.points_credited > 0]
    try:
        if credits:  # (the street's issuance account is made by its first credit, not before)
            ledger.credit_many(ledger.issuance_account(acts[0].volunteer.org_unit).id, credits, created_at=now)
    except BudgetExhausted as exc:
        raise _over_budget(exc, _l(
            "The points budget of %(unit)s cannot cover these approvals: they need %(needed)s points and "
            "only %(left)s are left (%(used)s issued of a budget of %(capacity)s); nothing was approved. "
            "Approve fewer claims, or ask the street admin to record more funding."
        )) from exc
    # After the ledger's writes, as in _credit.
    activity_totals.add(acts)


def _credited_by_day(acts: list[Activity]) -> dict[tuple[int, int], dict[date, int]]:
    """What each (volunteer, capped rule) of ``acts`` was credited, by activity day, in the months
    of their claims, leaving the claims themselves out: one query per capped rule."""
    out: dict[tuple[int, int], dict[date, int]] = {}
    capped = {}
    for act in acts:
        if act.rule_version.daily_cap or act.rule_version.monthly_cap:
            capped.setdefault(act.rule_id, []).append(act)
    for rule_id, mine in capped.items():
        params = {
            "volunteer_ids": sorted({a.volunteer_id for a in mine}), "rule_id": rule_id,
            "since": min(_month_bounds(a.activity_date)[0] for a in mine),
            "until": max(_month_bounds(a.activity_date)[1] for a in mine),
            "but": [a.id for a in acts],
        }
        for vid, day, points in db.session.execute(_credited_by_day_query(dialect()), params):
            out.setdefault((vid, rule_id), {})[day] = points
    return out


@lru_cache(maxsize=None)
def _credited_by_day_query(dialect_name: str):
    return select(Activity.volunteer_id, Activity.activity_date, func.sum(Activity.points_credited)).where(
        among(Activity.volunteer_id, "volunteer_ids", dialect_name),
        Activity.rule_id == bindparam("rule_id"),
        Activity.status == STATUS_APPROVED,
        Activity.activity_date >= bindparam("since", type_=Activity.activity_date.type),
        Activity.activity_date < bindparam("until", type_=Activity.activity_date.type),
        ~among(Activity.id, "but", dialect_name),
    ).group_by(Activity.volunteer_id, Activity.activity_date)


@lru_cache(maxsize=None)
def _activities_to_decide(dialect_name: str):
    """``_activity_to_decide`` for the activities ``ids``."""
    return select(Activity).where(among(Activity.id, "ids", dialect_name)).order_by(Activity.id).options(
        joinedload(Activity.org_unit), joinedload(Activity.rule_version),
        joinedload(Activity.volunteer).lazyload(User.roles),
    )


@lru_cache(maxsize=None)
def _lock_activities(dialect_name: str):
    """Lock the activities ``ids`` in ascending id (PostgreSQL sorts, then locks) and read their status."""
    return (select(Activity.id, Activity.status).where(among(Activity.id, "ids", dialect_name))
            .order_by(Activity.id).with_for_update())


def reject_claim(actor: User, activity_id: int, reason: str, now: datetime | None = None) -> Activity:
    """Reject a pending claim with a reason the volunteer will see.

    One rejection vote with a reason rejects the claim, even when its rule needs several
    approvals: approval by several verifiers is asked for where confidence matters, so one
    verifier's reasoned doubt is enough to stop it (the volunteer can claim again with more).
    """
    now = now or now_utc()
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput("Give the volunteer a reason for the rejection.", field="reason")
    act = scoped_activity(actor, activity_id)
    if act.volunteer_id == actor.id:
        raise Forbidden("You cannot decide your own claim; another staff member must.")
    db.session.flush()
    _lock_pending(act)
    _vote(act, actor, VOTE_REJECT, reason[:1000], now)
    _decide(act.id, STATUS_REJECTED, actor, now, reason=reason[:1000])
    audit.record(
        actor, audit.CLAIM_REJECTED, "activity", act.id,
        {"volunteer_id": act.volunteer_id, "points_requested": act.points_requested, "reason": reason[:1000]},
        org_path=act.org_unit.path, now=now,
    )
    return act


def _month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt


def _credit(act: Activity, actor: User, *, while_active: bool = True) -> None:
    """Credit an approved activity, capped by its rule version, under the volunteer's account lock.

    ``while_active``: refuse (``VolunteerInactive``) if the volunteer's deactivation committed
    since they were loaded. Work approved before a deactivation and credited after its public
    notice passes ``False``: its points are kept, as a deactivated volunteer's are."""
    volunteer = act.volunteer
    # Lock the account row first: caps are a read-then-write and must not interleave.
    acc = ledger.locked_account_for_volunteer(volunteer)
    version = act.rule_version

    def used(since: date, until: date) -> int:
        return _credited_under_rule([volunteer.id], act.rule_id, since, until, but=act.id).get(volunteer.id, 0)

    day = act.activity_date
    grant, cap_note = _capped(
        version, act.points_requested,
        used(day, day + timedelta(days=1)) if version.daily_cap else 0,
        used(*_month_bounds(day)) if version.monthly_cap else 0,
    )
    # A plain UPDATE of the two columns, then set on the loaded object (an ORM flush of it costs
    # several times the statement's own Python).
    written = db.session.execute(
        _credited_update_if_active() if while_active else _credited_update(),
        {"activity_id": act.id, "new_points_credited": grant, "new_cap_note": cap_note},
    )
    if written.rowcount != 1:
        raise VolunteerInactive(_DEACTIVATED_MEANWHILE, name=volunteer.full_name)
    set_committed_value(act, "points_credited", grant)
    set_committed_value(act, "cap_note", cap_note)
    if grant > 0:
        ledger.credit_from_street(
            volunteer.org_unit.root_id,
            acc,
            grant,
            reason=f"{version.name_zh} {act.activity_date.isoformat()}",
            cause_key=f"activity:{act.id}",
            activity_id=act.id,
            created_by_id=actor.id,
            earned_on=act.activity_date,
            expires_on=version.expires_on(act.activity_date),
        )
    # After the ledger's writes (activity_totals: closing a check-in event writes the yearly
    # totals of attendees whose accounts it does not lock, after the street's issuance account).
    activity_totals.add([act])


def record_attendance(
    actor: User,
    *,
    rule_id: int,
    activity_date: date,
    volunteer_ids: list[int],
    hours=None,
    note: str | None = None,
    batch_key: str,
    now: datetime | None = None,
) -> list[Activity]:
    """Record one activity for many volunteers at once (one meeting, forty attendees) and credit them."""
    now = now or now_utc()
    if not actor.has_role(*STAFF_ROLES):
        raise Forbidden()
    if not batch_key:
        raise InvalidInput("The form is missing its submission key; reload the page.")
    if len(batch_key) > BATCH_KEY_MAX:
        raise InvalidInput("The form's submission key is not valid; reload the page.")
    ids = sorted(set(int(i) for i in volunteer_ids))
    if not ids:
        raise InvalidInput("Choose at least one volunteer.", field="volunteer_ids")
    if db.session.scalar(select(Activity.id).where(Activity.batch_key == batch_key).limit(1)):
        raise AlreadyRecorded()
    rule, version = _current_version(rule_id)
    _check_date(activity_date, local_today(now))
    parsed_hours = parse_hours(hours) if version.unit == UNIT_HOUR else None
    on = dialect()
    volunteers = list(db.session.scalars(_users_among(on), {"ids": ids}))
    if len(volunteers) != len(ids):
        raise NotFound()
    # Their role grants are not loaded (with their units and merchants) only to ask this.
    volunteering = set(db.session.scalars(_volunteers_among(on), {"ids": ids}))
    days_at = notice.notice_days_for_units({v.org_unit for v in volunteers if v.org_unit is not None})
    notice_days = {v.id: days_at[v.org_unit_id] for v in volunteers if v.org_unit is not None}
    requested = points_for(version, parsed_hours)
    for v in volunteers:
        if not in_scope(actor, v.org_unit, STAFF_ROLES) or v.id not in volunteering:
            raise NotFound()
        if v.id == actor.id:
            raise Forbidden(_l("You cannot record points for yourself; another staff member must."))
        if not v.is_active:
            raise InvalidInput("%(name)s is deactivated and cannot be credited.", field="volunteer_ids", name=v.full_name)
        try:
            _check_rule_applies(version, rule, v, activity_date)
        except RuleNotApplicable as exc:
            raise InvalidInput("%(name)s: %(why)s", field="volunteer_ids", name=v.full_name, why=exc.message)
    # Those not on public notice are credited now: their accounts are locked and their caps read
    # before the activities are written, so each activity is written once with what it credits.
    accounts, grants = _capped_grants([v for v in volunteers if not notice_days.get(v.id)], version,
                                      activity_date, requested)
    rows = []
    for v in volunteers:
        grant, cap_note = grants.get(v.id, (0, None))
        rows.append(dict(
            volunteer_id=v.id,
            org_unit_id=v.org_unit_id,
            rule_id=rule.id,
            rule_version_id=version.id,
            activity_date=activity_date,
            hours=parsed_hours,
            note=(note or "").strip() or None,
            source="recorded",
            status=STATUS_ON_NOTICE if notice_days.get(v.id) else STATUS_APPROVED,
            notice_until=notice.notice_end(now, notice_days[v.id]) if notice_days.get(v.id) else None,
            points_requested=requested,
            points_credited=grant,
            cap_note=cap_note,
            batch_key=batch_key,
            created_by_id=actor.id,
            created_at=now,
            decided_at=now,
            decided_by_id=actor.id,
        ))
    # Written as rows (one statement, see database.insert_rows), then read back as objects: the
    # volunteers they point to are already loaded.
    db.session.flush()
    try:
        ids = insert_rows(Activity.__table__, rows, returning=Activity.__table__.c.id)
    except IntegrityError as exc:
        raise AlreadyRecorded() from exc
    acts = list(db.session.scalars(_activities_among(on), {"ids": ids}))
    # Each activity points to objects already loaded: given to it here, they stay with it (the
    # session holds objects only while something refers to them) and need no query of their own.
    by_id = {v.id: v for v in volunteers}
    for act in acts:
        set_committed_value(act, "volunteer", by_id[act.volunteer_id])
        set_committed_value(act, "rule_version", version)
    to_credit = [a for a in acts if a.status == STATUS_APPROVED]
    try:
        _credit_batch(to_credit, accounts, version, actor, now)
    except BudgetExhausted as exc:
        raise _batch_over_budget(exc) from exc
    activity_totals.add(to_credit)
    audit.record(
        actor, audit.ATTENDANCE_RECORDED, "activity_batch", None,
        {"batch_key": batch_key, "rule_id": rule.id, "rule_version": version.version,
         "activity_date": activity_date.isoformat(), "hours": str(parsed_hours) if parsed_hours else None,
         "credited": {str(a.volunteer_id): a.points_credited for a in to_credit},
         "on_notice": [a.volunteer_id for a in acts if a.status == STATUS_ON_NOTICE]},
        org_path=audit.common_path([v.org_unit.path for v in volunteers]), now=now,
    )
    return acts


# A meeting's attendees, their accounts and activities, read by lists of ids (see database.among).

@lru_cache(maxsize=None)
def _users_among(dialect_name: str):
    return (
        select(User).options(joinedload(User.org_unit), lazyload(User.roles))
        .where(among(User.id, "ids", dialect_name)).order_by(User.id)
    )


@lru_cache(maxsize=None)
def _volunteers_among(dialect_name: str):
    """Those of the users ``ids`` who hold the volunteer role."""
    return select(RoleGrant.user_id).where(among(RoleGrant.user_id, "ids", dialect_name),
                                           RoleGrant.role == ROLE_VOLUNTEER).distinct()


@lru_cache(maxsize=None)
def _accounts_of_users(dialect_name: str):
    return select(Account.user_id, Account.id).where(among(Account.user_id, "ids", dialect_name))


@lru_cache(maxsize=None)
def _activities_among(dialect_name: str):
    return select(Activity).where(among(Activity.id, "ids", dialect_name)).order_by(Activity.id)


def _capped_grants(volunteers: list[User], version: PointRuleVersion, day: date,
                   requested: int | dict[int, int]) -> tuple[dict[int, int], dict[int, tuple[int, str | None]]]:
    """Lock the accounts of volunteers about to be credited for one activity of ``version`` on
    ``day``, and cap what each is granted (``requested``: the same for all, or by volunteer id) as
    ``_credit`` does, with one query per cap for all of them. Return their account ids and (points
    granted, cap note), by volunteer id.

    Every attendee's account is locked (ascending id) before anything touches the street's
    issuance account, keeping the global lock order of pointsapp.domain.ledger; the caps are read
    under those locks, so no other credit of theirs can interleave."""
    if not volunteers:
        return {}, {}
    vol_ids = [v.id for v in volunteers]
    accounts = _locked_accounts_of(volunteers)

    daily = _credited_under_rule(vol_ids, version.rule_id, day, day + timedelta(days=1)) if version.daily_cap else {}
    monthly = _credited_under_rule(vol_ids, version.rule_id, *_month_bounds(day)) if version.monthly_cap else {}
    grants = {
        vid: _capped(version, requested[vid] if isinstance(requested, dict) else requested,
                     daily.get(vid, 0), monthly.get(vid, 0))
        for vid in vol_ids
    }
    return accounts, grants


def _locked_accounts_of(volunteers: list[User]) -> dict[int, int]:
    """Lock the accounts of ``volunteers`` (ascending id, creating those not yet used) and return
    their ids by volunteer id."""
    volunteers = sorted(volunteers, key=lambda v: v.id)  # accounts created in id order too
    accounts = dict(db.session.execute(_accounts_of_users(dialect()), {"ids": [v.id for v in volunteers]}).all())
    for v in volunteers:
        if v.id not in accounts:  # a first credit: the account is created on first use
            accounts[v.id] = ledger.account_for_volunteer(v).id
    ledger.lock_accounts(accounts.values())
    # A deactivation locks the account before it commits (``people.set_active``): read under the
    # locks, the flags are current even for volunteers loaded before a deactivation committed.
    deactivated = db.session.scalar(_deactivated_among(dialect()), {"ids": [v.id for v in volunteers]})
    if deactivated is not None:
        raise VolunteerInactive(_DEACTIVATED_MEANWHILE, name=deactivated)
    return accounts


_DEACTIVATED_MEANWHILE = _l(
    "%(name)s's account was deactivated while this was being saved. Nothing was saved; reload the page "
    "and try again."
)


@lru_cache(maxsize=None)
def _deactivated_among(dialect_name: str):
    """The name of one of the users ``ids`` whose account is deactivated, if any."""
    return (select(User.full_name).where(among(User.id, "ids", dialect_name), User.is_active_flag.is_(False))
            .order_by(User.id).limit(1))


def _credited_under_rule(volunteer_ids: list[int], rule_id: int, since: date, until: date,
                         but: int | None = None) -> dict[int, int]:
    """Return the points each volunteer was credited under a rule for activities dated in
    [since, until) (what its caps count), leaving out activity ``but``; volunteers with none are absent."""
    params = {"volunteer_ids": volunteer_ids, "rule_id": rule_id, "since": since, "until": until}
    if but is not None:
        params["but"] = but
    return dict(db.session.execute(_credited_under_rule_query(but is not None, dialect()), params).all())


@lru_cache(maxsize=None)
def _credited_under_rule_query(leaving_one_out: bool, dialect_name: str):
    query = select(Activity.volunteer_id, func.coalesce(func.sum(Activity.points_credited), 0)).where(
        among(Activity.volunteer_id, "volunteer_ids", dialect_name),
        Activity.rule_id == bindparam("rule_id"),
        Activity.status == STATUS_APPROVED,
        Activity.activity_date >= bindparam("since", type_=Activity.activity_date.type),
        Activity.activity_date < bindparam("until", type_=Activity.activity_date.type),
    )
    if leaving_one_out:
        query = query.where(Activity.id != bindparam("but"))
    return query.group_by(Activity.volunteer_id)


# The cap note an activity keeps (``cap_note``), in one fixed form that the API and the audit log
# give as it is; ``read_cap_note`` reads it back for pages to say in their language.
_CAP_NOTE = re.compile(r"capped: (\d+) of (\d+) credited \((.*)\)")
_CAP_PART = re.compile(r"(daily|monthly) cap (\d+)")


@dataclass(frozen=True)
class CapNote:
    credited: int
    asked: int
    caps: list[tuple[str, int]]  # ("daily" or "monthly", the cap), in the order they bit


def _cap_note(grant: int, asked: int, caps: list[tuple[str, int]]) -> str:
    return f"capped: {grant} of {asked} credited ({', '.join(f'{kind} cap {cap}' for kind, cap in caps)})"


def read_cap_note(note: str | None) -> CapNote | None:
    """The figures of a cap note, or None when ``note`` is not one (empty, or written by hand)."""
    found = _CAP_NOTE.fullmatch(note or "")
    parts = [_CAP_PART.fullmatch(p) for p in found.group(3).split(", ")] if found else []
    if not found or not all(parts):
        return None
    return CapNote(int(found.group(1)), int(found.group(2)), [(p.group(1), int(p.group(2))) for p in parts])


def _capped(version: PointRuleVersion, asked: int, used_that_day: int, used_that_month: int) -> tuple[int, str | None]:
    """Return what a volunteer is granted of ``asked`` under the version's daily and monthly caps,
    given what the same rule already credited them that day and month, and the cap note (None
    when no cap bit)."""
    grant, caps = asked, []
    if version.daily_cap and grant > max(0, version.daily_cap - used_that_day):
        grant = max(0, version.daily_cap - used_that_day)
        caps.append(("daily", version.daily_cap))
    if version.monthly_cap and grant > max(0, version.monthly_cap - used_that_month):
        grant = max(0, version.monthly_cap - used_that_month)
        caps.append(("monthly", version.monthly_cap))
    return grant, (_cap_note(grant, asked, caps) if caps else None)


def _credit_batch(acts: list[Activity], accounts: dict[int, int], version: PointRuleVersion, actor: User,
                  now: datetime) -> None:
    """Credit the written, capped activities of one batch (one per volunteer, accounts locked by
    ``_capped_grants``, all in one street) with ``ledger.credit_many``, the transfers stamped
    ``now`` as the activities are."""
    by_street: dict[int, list[ledger.Credit]] = {}
    issuance: dict[int, int] = {}
    for act in acts:
        if act.points_credited <= 0:
            continue
        unit = act.volunteer.org_unit
        if unit.root_id not in issuance:
            issuance[unit.root_id] = ledger.issuance_account(unit).id
        by_street.setdefault(unit.root_id, []).append(_credit_of(act, version, accounts[act.volunteer_id], actor))
    if len(by_street) > 1:
        # The rule's subtree keeps a batch inside one street; two would lock the second street's
        # issuance account after the first's budget, against the global lock order.
        raise RuntimeError("an attendance batch spans more than one street")
    for root, credits in by_street.items():
        ledger.credit_many(issuance[root], credits, created_at=now)


def _credit_of(act: Activity, version: PointRuleVersion, account_id: int, actor: User) -> ledger.Credit:
    """The credit of an approved, capped activity of ``version``, as ``_credit`` writes it, for
    ``credit_many``."""
    return ledger.Credit(
        account_id=account_id, amount=act.points_credited,
        reason=f"{version.name_zh} {act.activity_date.isoformat()}", cause_key=f"activity:{act.id}",
        activity_id=act.id, created_by_id=actor.id, earned_on=act.activity_date,
        expires_on=version.expires_on(act.activity_date),
    )


def _over_budget(exc: BudgetExhausted, message) -> BudgetExhausted:
    """Restate a refused batch for the person sending it, with ``message``: what it needs from
    that budget, what is left."""
    return BudgetExhausted(message, **{key: exc.params[key] for key in
                                       ("needed", "left", "used", "capacity", "unit", "budget_id")})


def _batch_over_budget(exc: BudgetExhausted) -> BudgetExhausted:
    """Restate a refused attendance batch for the person recording it."""
    return _over_budget(exc, _l(
        "The points budget of %(unit)s cannot cover this attendance: it needs %(needed)s points and only "
        "%(left)s are left (%(used)s issued of a budget of %(capacity)s); nothing was recorded. Record "
        "fewer volunteers, or ask the street admin to record more funding."
    ))


def pending_claims_query(actor: User):
    """Return a select of the pending claims in the actor's subtrees, oldest first."""
    return (
        select(Activity)
        .join(OrgUnit, OrgUnit.id == Activity.org_unit_id)
        .where(Activity.status == STATUS_PENDING, subtree_filter(OrgUnit.path, actor, APPROVER_ROLES))
        .order_by(Activity.created_at, Activity.id)
    )


def reverse_transfer(actor: User, transfer_id: int, reason: str, *, now: datetime | None = None) -> Transfer:
    """Undo a credit or a redemption with a reversal entry; only admins over the volunteer.
    ``now``: the time of the request (default: now), whose day decides which points are past
    their last day."""
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise InvalidInput("A reversal needs a reason that the volunteer and the auditor will read.", field="reason")
    original = db.session.get(Transfer, transfer_id)
    if original is None:
        raise NotFound()
    volunteer_acc = next(
        (a for a in (original.to_account, original.from_account) if a.kind == ACCOUNT_VOLUNTEER), None
    )
    if volunteer_acc is None:
        raise NotFound()
    require_in_scope(actor, volunteer_acc.user.org_unit, ADMIN_ROLES)
    if volunteer_acc.user_id == actor.id:
        # As with approving, deducting and redeeming: no one corrects their own points (undoing a
        # deduction of theirs, or getting back the points of goods they took home).
        raise Forbidden(_l("You cannot reverse an entry of your own points; another admin must."))
    if original.voucher_id is not None:
        # A redemption's reversal takes points back from the merchant: admins of both only.
        require_merchant_admin(actor, original.voucher.merchant_id)
    db.session.flush()
    if original.kind == TRANSFER_CREDIT and original.activity_id:
        # The activity row first (as approval does), then the accounts.
        result = db.session.execute(
            update(Activity.__table__)
            .where(Activity.__table__.c.id == original.activity_id, Activity.__table__.c.status == STATUS_APPROVED)
            .values(status=STATUS_REVERSED)
        )
        act = db.session.get(Activity, original.activity_id)
        db.session.expire(act)
        if result.rowcount != 1:
            raise CannotReverse(why=_l("it was already reversed"))
    reversal = ledger.reverse(original, reason=reason[:1000], created_by_id=actor.id, today=local_today(now))
    if original.kind == TRANSFER_CREDIT and original.activity_id:
        activity_totals.add([act], sign=-1)  # after the ledger's writes, as every change of the totals
    if original.kind == TRANSFER_CAPTURE and original.voucher_id is not None:
        # The redemption did not happen (the goods were not handed over): its unit goes back to
        # the stock, as a cancelled voucher's does (the reward row after the accounts).
        reward_t = Reward.__table__
        db.session.execute(
            update(reward_t)
            .where(reward_t.c.id == original.voucher.reward_id, reward_t.c.stock.is_not(None))
            .values(stock=reward_t.c.stock + 1)
        )
        db.session.expire(original.voucher.reward, ["stock"])
    audit.record(
        actor, audit.TRANSFER_REVERSED, "transfer", original.id,
        {"reversal_id": reversal.id, "kind": original.kind, "amount": original.amount,
         "volunteer_id": volunteer_acc.user_id, "reason": reason[:1000]},
        org_path=volunteer_acc.user.org_unit.path if volunteer_acc.user.org_unit else None,
    )
    return reversal
