"""The audit log: an append-only, hash-chained record of every admin and staff action that
changes money-like state (rules, claim decisions, recorded attendance, reversals, rewards and
stock, merchants, people and roles, deactivation, password resets, settlement: rates,
closed periods and payments to merchants).

Design
    ``record()`` is called by the domain function that makes the change, in the same
    transaction, after its last other write: the record exists exactly when the change does.
    ``record_many()`` appends the records of many changes at once (a bulk import's people), in
    order, each chained to the one before, under one lock of the head; ``record()`` is its case
    of one.

    Each record carries ``seq`` (1, 2, 3 ... without gaps) and ``hash = sha256(prev_hash +
    canonical record)``, where the canonical record is the JSON of its fields with sorted keys.
    Editing a record breaks its own hash; deleting one leaves a gap in ``seq`` and breaks the
    next record's ``prev_hash``; deleting the newest ones leaves the chain head pointing past
    the end. ``verify_chain()`` (``flask points verify-audit``) finds each of these.

    The database refuses UPDATE and DELETE on ``audit_record`` (triggers, as for the ledger).

Concurrency
    Appenders take turns on the single ``audit_chain_head`` row: ``SELECT ... FOR UPDATE`` on
    PostgreSQL; on SQLite every write transaction already runs alone (``BEGIN IMMEDIATE``). The
    head is locked last, after every ledger lock (see ``pointsapp.domain.ledger``), so it adds no
    deadlock. UNIQUE ``seq`` and ``prev_hash`` make a fork impossible even if a writer skipped
    the lock: the second of two records claiming the same place is refused by the database.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..database import insert_rows
from ..extensions import db
from ..models import AuditChainHead, AuditRecord, OrgUnit, User
from ..models.audit import GENESIS_HASH
from .clock import now_utc

head_t = AuditChainHead.__table__
audit_t = AuditRecord.__table__

# Actions, with the words the audit page shows for them (translated there).
RULE_CREATED = "rule.created"
RULE_CHANGED = "rule.changed"
CLAIM_APPROVED = "claim.approved"
CLAIM_REJECTED = "claim.rejected"
ATTENDANCE_RECORDED = "attendance.recorded"
TRANSFER_REVERSED = "transfer.reversed"
MERCHANT_CREATED = "merchant.created"
REWARD_CREATED = "reward.created"
REWARD_CHANGED = "reward.changed"
PERSON_CREATED = "person.created"
ROLE_GRANTED = "role.granted"
ROLE_REVOKED = "role.revoked"
PERSON_DEACTIVATED = "person.deactivated"
PERSON_CHANGED = "person.changed"
PERSON_MOVED = "person.moved"
PERSON_REACTIVATED = "person.reactivated"
PASSWORD_RESET = "person.password_reset"
RATE_SET = "settlement.rate_set"
PERIOD_CLOSED = "settlement.period_closed"
PAYMENT_RECORDED = "settlement.payment_recorded"
DEDUCTION_APPLIED = "deduction.applied"
BUDGET_FUNDED = "budget.funded"
EVENT_CREATED = "checkin.event_created"
EVENT_UPDATED = "checkin.event_updated"
EVENT_ATTENDEE_ADDED = "checkin.attendee_added"
EVENT_CLOSED = "checkin.event_closed"
CLAIM_VOTED = "claim.voted"
NOTICE_POSTED = "notice.posted"
NOTICE_SETTING_CHANGED = "notice.setting_changed"
OBJECTION_FILED = "notice.objection_filed"
OBJECTION_UPHELD = "notice.objection_upheld"
OBJECTION_DISMISSED = "notice.objection_dismissed"
NOTICE_CREDITED = "notice.credited"


def canonical_json(data) -> str:
    """Return ``data`` as JSON with sorted keys and no spaces: one text for one meaning."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(prev_hash: str, rec) -> str:
    """Return the hash that chains a record to the one before it."""
    get = rec.get if hasattr(rec, "get") else (lambda name: getattr(rec, name))
    created = get("created_at")
    body = canonical_json(
        {
            "seq": get("seq"),
            "created_at": created.isoformat(timespec="microseconds") if isinstance(created, datetime) else created,
            "actor_id": get("actor_id"),
            "action": get("action"),
            "target_type": get("target_type"),
            "target_id": get("target_id"),
            "org_path": get("org_path"),
            "summary": get("summary"),
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@lru_cache(maxsize=None)
def _head_locked():
    return select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1).with_for_update()


@lru_cache(maxsize=None)
def _head_update():
    return (
        update(head_t).where(head_t.c.id == 1)
        .values(seq=bindparam("head_seq", type_=head_t.c.seq.type), hash=bindparam("head_hash", type_=head_t.c.hash.type))
    )


def _lock_head() -> tuple[int, str]:
    """Lock the chain head and return (last seq, last hash), creating the head on first use."""
    query = _head_locked()
    row = db.session.execute(query).first()
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.execute(insert(head_t).values(id=1, seq=0, hash=GENESIS_HASH))
        except IntegrityError:
            pass  # another writer created it first; lock theirs
        row = db.session.execute(query).first()
    return row.seq, row.hash


def record(
    actor: User | None,
    action: str,
    target_type: str,
    target_id: int | None,
    summary: dict,
    *,
    org_path: str | None = None,
    now: datetime | None = None,
) -> None:
    """Append one audit record, chained to the newest, in the caller's transaction."""
    record_many(actor, [Entry(action, target_type, target_id, summary, org_path)], now=now)


@dataclass
class Entry:
    """One record to append with ``record_many``: what was done, to what, where in the tree."""

    action: str
    target_type: str
    target_id: int | None
    summary: dict
    org_path: str | None = None


def record_many(actor: User | None, entries: list[Entry], *, now: datetime | None = None) -> None:
    """Append ``entries`` in their order, each chained to the one before, in the caller's
    transaction: one lock of the head and one INSERT for all of them (a bulk import's people)."""
    if not entries:
        return
    db.session.flush()  # the change itself is written first, then the head is locked (lock order)
    seq, prev_hash = _lock_head()
    created_at = (now or now_utc()).astimezone(timezone.utc)
    actor_id = actor.id if actor is not None else None
    rows = []
    for entry in entries:
        seq += 1
        row = dict(
            seq=seq,
            created_at=created_at,
            actor_id=actor_id,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            org_path=entry.org_path,
            summary=canonical_json(entry.summary),
            prev_hash=prev_hash,
        )
        row["hash"] = prev_hash = record_hash(prev_hash, row)
        rows.append(row)
    insert_rows(audit_t, rows, then=_head_update(), then_params={"head_seq": seq, "head_hash": prev_hash})


def common_path(paths: list[str]) -> str | None:
    """Return the deepest node path above every one of ``paths`` (``/1/5/`` for ``/1/5/7/``, ``/1/5/9/``)."""
    split = [p.strip("/").split("/") for p in paths if p]
    if not split:
        return None
    prefix = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return "/" + "/".join(prefix) + "/" if prefix else None


def path_of(unit: OrgUnit | None) -> str | None:
    """Return a node's path, or None."""
    return unit.path if unit is not None else None


@dataclass
class ChainReport:
    records: int
    problem: str | None  # the first broken record, described; None when the chain is whole
    head_hash: str | None = None  # the newest record's hash: kept outside, it shows a rewritten chain


def verify_chain(batch: int = 1000) -> ChainReport:
    """Walk the chain from the first record and report the first one that is missing or altered."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    last_seq = 0
    while True:
        # Plain rows, not objects: a long chain does not pile up in the session.
        rows = db.session.execute(
            select(audit_t).where(audit_t.c.seq >= expected_seq).order_by(audit_t.c.seq).limit(batch)
        ).all()
        if not rows:
            break
        for rec in rows:
            if rec.seq != expected_seq:
                return ChainReport(
                    count, f"record seq {expected_seq} is missing (deleted) before record id {rec.id} (seq {rec.seq})"
                )
            if rec.prev_hash != prev_hash:
                return ChainReport(
                    count, f"record id {rec.id} (seq {rec.seq}) does not follow the record before it (changed or replaced)"
                )
            if record_hash(prev_hash, rec._mapping) != rec.hash:
                return ChainReport(count, f"record id {rec.id} (seq {rec.seq}) does not match its hash (edited)")
            prev_hash, last_seq = rec.hash, rec.seq
            expected_seq += 1
            count += 1
    head = db.session.execute(select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1)).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (last_seq, prev_hash):
        if head_seq > last_seq:
            return ChainReport(count, f"records after seq {last_seq} up to seq {head_seq} are missing (deleted)")
        return ChainReport(count, f"the chain head (seq {head_seq}) does not point at the newest record (seq {last_seq})")
    return ChainReport(count, None, prev_hash)
