"""marshmallow schemas of the JSON API: a load schema and a dump schema per resource.

Load schemas (``...In``) say exactly what a request may carry; anything else is refused with a
422 naming the field. Dump schemas (``...Out``) say exactly what a response shows, per audience:
a cashier's view of a voucher (``CashierVoucherOut``) has the volunteer's masked name only,
never their full name, phone number or id.
"""
from __future__ import annotations

from datetime import date, timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..models.rewards import MERCHANT_KINDS
from ..models.rules import CATEGORIES
from ..models.user import ROLES, TITLES

DB_INT_MAX = 2**31 - 1
# Dates a filter may name: wide enough for any record, narrow enough that local midnight converts
# to UTC without leaving the calendar.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


class Text(fields.String):
    """A string the databases can store: no NUL characters, no lone surrogates."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Text may not contain NUL characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Text must be valid Unicode.")
        return text


def Id(**kwargs):  # noqa: N802 (a field factory reads like a field)
    """A database id: a strict integer from 1 to 2^31-1."""
    return fields.Integer(strict=True, validate=validate.Range(1, DB_INT_MAX), **kwargs)


def Count(low=0, high=1_000_000, **kwargs):  # noqa: N802
    return fields.Integer(strict=True, validate=validate.Range(low, high), **kwargs)


class In(Schema):
    """Base of request bodies: unknown fields are an error (marshmallow's default, made explicit)."""

    class Meta:
        unknown = "raise"


# --- errors and pages ---------------------------------------------------------------------


class ErrorOut(Schema):
    code = fields.String(required=True, metadata={"description": "Stable, machine-readable reason."})
    message = fields.String(required=True, metadata={"description": "A sentence for a person (zh or en)."})
    field_errors = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Validation errors: messages per field (422 only)."},
    )


# --- the acting user, the tree, people ---------------------------------------------------


class GrantOut(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    org_unit_id = fields.Integer(allow_none=True)
    merchant_id = fields.Integer(allow_none=True)


class TokenOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "The first characters of the secret."})
    role = fields.String(allow_none=True)
    org_unit_id = fields.Integer(allow_none=True)
    merchant_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreatedOut(Schema):
    token = fields.Nested(TokenOut, required=True)
    secret = fields.String(required=True, metadata={"description": "Shown once; send as `Authorization: Bearer`."})


class TokenIn(In):
    name = Text(required=True, validate=validate.Length(1, 100))
    role = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(ROLES))
    org_unit_id = Id(load_default=None, allow_none=True)
    merchant_id = Id(load_default=None, allow_none=True)


class MeOut(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    org_unit_id = fields.Integer(allow_none=True)
    title = fields.String(allow_none=True)
    roles = fields.List(fields.Nested(GrantOut), required=True, metadata={"description": "As the token narrows them."})


class OrgUnitOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    level = fields.String(required=True, attribute="level.code")
    parent_id = fields.Integer(allow_none=True)
    path = fields.String(required=True)
    notice_days = fields.Integer(
        allow_none=True,
        metadata={"description": "A community's public notice (公示) in days before crediting; null: off"},
    )


class NoticeSettingIn(In):
    notice_days = fields.Integer(
        required=True, allow_none=True, validate=validate.Range(0, 15),
        metadata={"description": "1 to 15 days of public notice; 0 or null turns it off"},
    )


class OrgUnitIn(In):
    parent_id = Id(required=True)
    name = Text(required=True, validate=validate.Length(1, 100))
    level = Text(required=True, validate=validate.Length(1, 32))


class PersonOut(Schema):
    """A person as an admin over them sees them."""

    id = fields.Integer(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    phone = fields.String(allow_none=True)
    org_unit_id = fields.Integer(allow_none=True)
    title = fields.String(allow_none=True)
    is_active = fields.Boolean(required=True)
    roles = fields.List(fields.Nested(GrantOut), required=True)
    created_at = fields.DateTime(required=True)


class PersonIn(In):
    username = Text(required=True, validate=validate.Length(3, 64))
    full_name = Text(required=True, validate=validate.Length(1, 100))
    password = Text(required=True, validate=validate.Length(1, 200), load_only=True)
    phone = Text(load_default=None, allow_none=True, validate=validate.Length(0, 32))
    org_unit_id = Id(required=True)
    title = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(list(TITLES)))
    roles = fields.List(
        fields.String(validate=validate.OneOf([r for r in ROLES if r != "merchant_staff"])),
        load_default=lambda: ["volunteer"],
        validate=validate.Length(1, 4),
    )


class PersonDetailsIn(In):
    """A person's details an admin corrects; the username, node and roles stay."""

    full_name = Text(required=True, validate=validate.Length(1, 100))
    phone = Text(load_default=None, allow_none=True, validate=validate.Length(0, 32))
    title = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(list(TITLES)))


class MoveIn(In):
    """Where a person moves: a node of their street in the admin's subtrees."""

    org_unit_id = Id(required=True)


class ActiveIn(In):
    active = fields.Boolean(required=True)


class GrantIn(In):
    role = fields.String(required=True, validate=validate.OneOf([r for r in ROLES if r != "merchant_staff"]))
    org_unit_id = Id(required=True)


class CashierIn(In):
    username = Text(required=True, validate=validate.Length(3, 64))
    full_name = Text(required=True, validate=validate.Length(1, 100))
    password = Text(required=True, validate=validate.Length(1, 200), load_only=True)
    phone = Text(load_default=None, allow_none=True, validate=validate.Length(0, 32))


# --- rules and claims ----------------------------------------------------------------------


class RuleOut(Schema):
    """A point rule with the terms of its current version."""

    id = fields.Integer(required=True, attribute="rule_id")
    org_unit_id = fields.Integer(required=True, attribute="rule.org_unit_id")
    version = fields.Integer(required=True)
    name_zh = fields.String(required=True)
    name_en = fields.String(required=True)
    category = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.OneOf(["occurrence", "hour"]))
    points = fields.Integer(required=True)
    daily_cap = fields.Integer(allow_none=True)
    monthly_cap = fields.Integer(allow_none=True)
    needs_approval = fields.Boolean(required=True)
    requires_note = fields.Boolean(required=True)
    requires_photo = fields.Boolean(required=True)
    active_from = fields.Date(allow_none=True)
    active_to = fields.Date(allow_none=True)
    titles = fields.List(fields.String(), required=True)
    is_active = fields.Boolean(required=True)
    expiry_policy = fields.String(required=True, validate=validate.OneOf(["never", "months", "next_year_end"]))
    expiry_months = fields.Integer(allow_none=True)
    kind = fields.String(required=True, validate=validate.OneOf(["earn", "deduct"]))
    checkin_hours_cap = fields.Float(allow_none=True)
    hours_rounding_minutes = fields.Integer(required=True)
    backfill_earns_points = fields.Boolean(required=True)
    approvals_required = fields.Integer(required=True, metadata={"description": "Verifiers who must approve a claim."})


class RuleTermsIn(In):
    name_zh = Text(required=True, validate=validate.Length(1, 100))
    name_en = Text(required=True, validate=validate.Length(1, 100))
    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES)))
    unit = fields.String(required=True, validate=validate.OneOf(["occurrence", "hour"]))
    points = Count(1, 10000, required=True)
    daily_cap = Count(1, load_default=None, allow_none=True)
    monthly_cap = Count(1, load_default=None, allow_none=True)
    needs_approval = fields.Boolean(load_default=True)
    requires_note = fields.Boolean(load_default=False)
    requires_photo = fields.Boolean(load_default=False)
    active_from = fields.Date(load_default=None, allow_none=True)
    active_to = fields.Date(load_default=None, allow_none=True)
    titles = fields.List(fields.String(validate=validate.OneOf(list(TITLES))), load_default=list)
    is_active = fields.Boolean(load_default=True)
    expiry_policy = fields.String(load_default="never", validate=validate.OneOf(["never", "months", "next_year_end"]))
    expiry_months = Count(1, 120, load_default=None, allow_none=True)
    kind = fields.String(load_default="earn", validate=validate.OneOf(["earn", "deduct"]))
    checkin_hours_cap = fields.Float(
        load_default=None, allow_none=True, allow_nan=False, validate=validate.Range(0.5, 24),
        metadata={"description": "Most hours counted per check-in event, in steps of 0.5; null: no cap."},
    )
    hours_rounding_minutes = fields.Integer(
        strict=True, load_default=30, validate=validate.OneOf([1, 5, 10, 15, 20, 30, 60]),
        metadata={"description": "Check-in hours are rounded down to this many minutes."},
    )
    backfill_earns_points = fields.Boolean(
        load_default=True, metadata={"description": "Whether attendees added by staff earn points or hours only."}
    )
    approvals_required = Count(1, 5, load_default=1)


class RuleCreateIn(RuleTermsIn):
    org_unit_id = Id(required=True)


class ClaimOut(Schema):
    id = fields.Integer(required=True)
    volunteer_id = fields.Integer(required=True)
    org_unit_id = fields.Integer(required=True)
    rule_id = fields.Integer(required=True)
    rule_version = fields.Integer(required=True, attribute="rule_version.version")
    rule_name_zh = fields.String(required=True, attribute="rule_version.name_zh")
    rule_name_en = fields.String(required=True, attribute="rule_version.name_en")
    activity_date = fields.Date(required=True)
    hours = fields.Decimal(as_string=True, allow_none=True)
    note = fields.String(allow_none=True)
    source = fields.String(required=True, validate=validate.OneOf(["claim", "recorded", "checkin"]))
    status = fields.String(required=True, validate=validate.OneOf(
        ["pending", "approved", "rejected", "reversed", "on_notice", "withheld"]))
    points_requested = fields.Integer(required=True)
    points_credited = fields.Integer(required=True)
    cap_note = fields.String(allow_none=True)
    reject_reason = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    decided_at = fields.DateTime(allow_none=True)
    notice_until = fields.DateTime(allow_none=True, metadata={"description": "End of the public notice (on_notice)."})


class StaffClaimOut(ClaimOut):
    """A claim as grid staff and admins over the volunteer see it: with the volunteer's name."""

    volunteer_name = fields.String(required=True, attribute="volunteer.full_name")


class ClaimIn(In):
    rule_id = Id(required=True)
    activity_date = fields.Date(required=True)
    hours = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                         validate=validate.Range(0.5, 24), metadata={"description": "In steps of 0.5."})
    note = Text(load_default=None, allow_none=True, validate=validate.Length(0, 2000))


class RejectIn(In):
    reason = Text(required=True, validate=validate.Length(2, 2000))


class ApproveManyIn(In):
    activity_ids = fields.List(Id(), required=True, validate=validate.Length(1, 100),
                               metadata={"description": "The claims to approve (at most 100, of one street)."})
    comment = Text(load_default=None, allow_none=True, validate=validate.Length(0, 1000))


class ApproveManyOut(Schema):
    items = fields.List(fields.Nested(StaffClaimOut), required=True,
                        metadata={"description": "The claims in id order, each as approving it alone leaves it."})
    approved = fields.Integer(required=True, metadata={"description": "Claims approved and credited now."})
    on_notice = fields.Integer(required=True, metadata={"description": "Claims posted for public notice."})
    pending = fields.Integer(required=True, metadata={"description": "Claims still waiting for another verifier."})
    total_points = fields.Integer(required=True)


class AttendanceIn(In):
    rule_id = Id(required=True)
    activity_date = fields.Date(required=True)
    volunteer_ids = fields.List(Id(), required=True, validate=validate.Length(1, 500))
    hours = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                         validate=validate.Range(0.5, 24), metadata={"description": "In steps of 0.5."})
    note = Text(load_default=None, allow_none=True, validate=validate.Length(0, 2000))


class AttendanceOut(Schema):
    items = fields.List(fields.Nested(StaffClaimOut), required=True)
    total_points = fields.Integer(required=True)


# --- the ledger -----------------------------------------------------------------------------


class BalanceOut(Schema):
    balance = fields.Integer(required=True)
    held = fields.Integer(required=True, metadata={"description": "Reserved by unredeemed vouchers."})
    available = fields.Integer(required=True)
    earned = fields.Integer(required=True, metadata={"description": "Lifetime points credited."})
    expiring_soon = fields.Integer(
        required=True, metadata={"description": "Points that expire within 30 days (less what open vouchers hold)."}
    )
    expiring_first_date = fields.Date(
        allow_none=True, metadata={"description": "The earliest last day of those points; null when none expire soon."}
    )


class ReversedEntryOut(Schema):
    """The transfer a reversal reverses, as a line of history names it."""

    transfer_id = fields.Integer(required=True, attribute="id")
    kind = fields.String(required=True)
    reason = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class EntryOut(Schema):
    id = fields.Integer(required=True)
    transfer_id = fields.Integer(required=True)
    amount = fields.Integer(required=True, metadata={"description": "Signed: + credited, - spent."})
    balance_after = fields.Integer(required=True)
    kind = fields.String(required=True, attribute="transfer.kind")
    reason = fields.String(required=True, attribute="transfer.reason")
    activity_id = fields.Integer(allow_none=True, attribute="transfer.activity_id")
    voucher_id = fields.Integer(allow_none=True, attribute="transfer.voucher_id")
    created_at = fields.DateTime(required=True, attribute="transfer.created_at")
    reverses = fields.Nested(ReversedEntryOut, allow_none=True, attribute="transfer.reverses", metadata={
        "description": "For a correction (kind reversal): the transfer it reverses, its kind, reason and time "
                       "(its activity_id and voucher_id are the correction's own); null otherwise."})


class TransferOut(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(
        required=True,
        validate=validate.OneOf(["credit", "capture", "reversal", "settlement", "expiry", "deduction"]),
    )
    amount = fields.Integer(required=True)
    from_account_id = fields.Integer(required=True)
    to_account_id = fields.Integer(required=True)
    reason = fields.String(required=True)
    activity_id = fields.Integer(allow_none=True)
    voucher_id = fields.Integer(allow_none=True)
    reverses_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)


class ReverseIn(In):
    reason = Text(required=True, validate=validate.Length(2, 1000))


# --- merchants, rewards, vouchers ---------------------------------------------------------


class MerchantOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(list(MERCHANT_KINDS)))
    address = fields.String(required=True)
    phone = fields.String(allow_none=True)
    org_unit_id = fields.Integer(required=True)
    is_active = fields.Boolean(required=True)


class MerchantIn(In):
    org_unit_id = Id(required=True)
    name = Text(required=True, validate=validate.Length(1, 100))
    kind = fields.String(required=True, validate=validate.OneOf(list(MERCHANT_KINDS)))
    address = Text(load_default="", validate=validate.Length(0, 255))
    phone = Text(load_default=None, allow_none=True, validate=validate.Length(0, 32))


class RewardOut(Schema):
    id = fields.Integer(required=True)
    merchant_id = fields.Integer(required=True)
    merchant_name = fields.String(required=True, attribute="merchant.name")
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = fields.Integer(required=True)
    stock = fields.Integer(allow_none=True, metadata={"description": "null: unlimited."})
    per_volunteer_limit = fields.Integer(allow_none=True)
    active_from = fields.Date(allow_none=True)
    active_to = fields.Date(allow_none=True)
    is_active = fields.Boolean(required=True)


class RewardTermsIn(In):
    name = Text(required=True, validate=validate.Length(1, 100))
    price = Count(1, required=True)
    description = Text(load_default="", validate=validate.Length(0, 2000))
    per_volunteer_limit = Count(1, load_default=None, allow_none=True)
    active_from = fields.Date(load_default=None, allow_none=True)
    active_to = fields.Date(load_default=None, allow_none=True)
    is_active = fields.Boolean(load_default=True)


class RewardCreateIn(RewardTermsIn):
    stock = Count(0, load_default=None, allow_none=True, metadata={"description": "null: unlimited."})


class RewardUpdateIn(RewardTermsIn):
    stock_change = fields.Integer(strict=True, load_default=0, validate=validate.Range(-1_000_000, 1_000_000))
    unlimited = fields.Boolean(load_default=None, allow_none=True)


class VoucherOut(Schema):
    """A voucher as its volunteer sees it; ``token`` and ``code`` only while it can be redeemed."""

    id = fields.Integer(required=True)
    reward_id = fields.Integer(required=True)
    reward_name = fields.String(required=True, attribute="reward.name")
    merchant_id = fields.Integer(required=True)
    merchant_name = fields.String(required=True, attribute="merchant.name")
    points = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["issued", "redeemed", "cancelled", "expired"]))
    issued_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    redeemed_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    token = fields.String(allow_none=True, metadata={"description": "The QR code's content."})
    code = fields.String(allow_none=True, metadata={"description": "The 8-character fallback code."})


class CashierVoucherOut(Schema):
    """A voucher as a cashier sees it: the volunteer's masked name only."""

    id = fields.Integer(required=True)
    reward_name = fields.String(required=True, attribute="reward.name")
    merchant_id = fields.Integer(required=True)
    merchant_name = fields.String(required=True, attribute="merchant.name")
    points = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["issued", "redeemed", "cancelled", "expired"]))
    volunteer_name = fields.String(required=True, attribute="volunteer.masked_name")
    expires_at = fields.DateTime(required=True)
    redeemed_at = fields.DateTime(allow_none=True)
    reversed = fields.Boolean(metadata={
        "description": "In today's redemptions only: an admin reversed this redemption (its points went back "
                       "to the volunteer); it is not in the day's total."})


class IssueVoucherIn(In):
    reward_id = Id(required=True)


class RedemptionIn(In):
    code = Text(required=True, validate=validate.Length(1, 100),
                metadata={"description": "The scanned QR token (PV1-...) or the typed fallback code."})
    merchant_id = Id(load_default=None, allow_none=True)


# --- list arguments ------------------------------------------------------------------------


class PageArgs(In):
    cursor = Text(load_default=None, validate=validate.Length(1, 200),
                  metadata={"description": "Opaque; the `next_cursor` of the previous page."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))
    date_from = fields.Date(load_default=None, data_key="from", validate=validate.Range(FIRST_DAY, LAST_DAY),
                            metadata={"description": "First day (local), inclusive."})
    date_to = fields.Date(load_default=None, data_key="to", validate=validate.Range(FIRST_DAY, LAST_DAY),
                          metadata={"description": "Last day (local), inclusive."})

    @validates_schema
    def _range(self, data, **kwargs):
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise ValidationError("The end date is before the start date.", "to")


class ListArgs(PageArgs):
    org_unit_id = fields.Integer(load_default=None, validate=validate.Range(1, DB_INT_MAX),
                                 metadata={"description": "Only this node and the nodes below it."})


class PeopleArgs(ListArgs):
    q = Text(load_default=None, validate=validate.Length(1, 100), metadata={"description": "Part of a name or username."})


class MerchantArgs(In):
    merchant_id = fields.Integer(load_default=None, validate=validate.Range(1, DB_INT_MAX))


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    """Return a page schema: ``items`` and ``next_cursor`` (null on the last page)."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
        name=name,
    )


# --- evidence photos ------------------------------------------------------------------------


class Upload(fields.Field):
    """A file part of a multipart/form-data request."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"type": "string", "format": "binary", **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        from werkzeug.datastructures import FileStorage

        if not isinstance(value, FileStorage):
            raise ValidationError("Send the photo as a file part of a multipart/form-data body.")
        return value


class ClaimFormIn(In):
    """A claim sent as multipart/form-data, with its evidence photo (the same fields as ``ClaimIn``)."""

    rule_id = fields.Integer(required=True, validate=validate.Range(1, DB_INT_MAX))
    activity_date = fields.Date(required=True)
    hours = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                         validate=validate.Range(0.5, 24), metadata={"description": "In steps of 0.5."})
    note = Text(load_default=None, allow_none=True, validate=validate.Length(0, 2000))
    photo = Upload(required=True, metadata={"description": "A JPEG, PNG, WebP or GIF photo (up to 5 MB)."})


# --- settlement -----------------------------------------------------------------------------


class MerchantOwedOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(list(MERCHANT_KINDS)))
    org_unit_id = fields.Integer(required=True)
    owed = fields.Integer(required=True, metadata={"description": "Points the street owes the merchant now."})
    owed_fen = fields.Integer(required=True, metadata={"description": "Their value in fen (1/100 yuan)."})


class StatementLineOut(Schema):
    when = fields.DateTime(required=True, metadata={"description": "Local time of the street."})
    kind = fields.String(required=True, validate=validate.OneOf(["capture", "reversal", "settlement"]))
    points = fields.Integer(required=True, metadata={"description": "Signed, as the merchant's account moved."})
    fen = fields.Integer(required=True, metadata={"description": "Value in fen, signed like points."})
    voucher_id = fields.Integer(allow_none=True)
    reward = fields.String(allow_none=True)
    volunteer = fields.String(allow_none=True, metadata={"description": "Masked (张*华) for the merchant's cashiers."})
    community = fields.String(allow_none=True, metadata={"description": "null: the volunteer is at street level."})
    reference = fields.String(allow_none=True, metadata={"description": "Payments only."})
    paid_on = fields.Date(allow_none=True, metadata={"description": "Payments only."})


class CommunityTotalOut(Schema):
    community = fields.String(allow_none=True)
    points = fields.Integer(required=True)
    fen = fields.Integer(required=True)


class StatementOut(Schema):
    merchant_id = fields.Integer(required=True)
    merchant_name = fields.String(required=True)
    month = fields.String(required=True, metadata={"description": "YYYY-MM."})
    first_day = fields.Date(required=True)
    last_day = fields.Date(required=True)
    closed = fields.Boolean(required=True)
    closable = fields.Boolean(required=True, metadata={"description": "The next period to close, and it has ended."})
    opening = fields.Integer(required=True)
    redeemed = fields.Integer(required=True)
    corrected = fields.Integer(required=True)
    paid = fields.Integer(required=True)
    closing = fields.Integer(required=True)
    redeemed_fen = fields.Integer(required=True)
    paid_fen = fields.Integer(required=True)
    closing_fen = fields.Integer(required=True, metadata={"description": "Value of the points still unpaid."})
    owed_now = fields.Integer(required=True)
    owed_now_fen = fields.Integer(required=True)
    months = fields.List(fields.String(), required=True, metadata={"description": "Months with a statement, newest first."})
    lines = fields.List(fields.Nested(StatementLineOut), required=True)
    by_community = fields.List(fields.Nested(CommunityTotalOut), required=True)


class MonthArgs(In):
    month = Text(load_default=None, validate=validate.Length(1, 20),
                 metadata={"description": "YYYY-MM; default: the next period to close."})


class PeriodOut(Schema):
    id = fields.Integer(required=True)
    merchant_id = fields.Integer(required=True)
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True, metadata={"description": "Exclusive."})
    opening_balance = fields.Integer(required=True)
    closing_balance = fields.Integer(required=True)


class PaymentIn(In):
    points = Count(1, 100_000_000, required=True)
    paid_on = fields.Date(required=True, validate=validate.Range(FIRST_DAY, LAST_DAY))
    reference = Text(required=True, validate=validate.Length(1, 100))


class PaymentOut(Schema):
    id = fields.Integer(required=True)
    merchant_id = fields.Integer(required=True)
    points = fields.Integer(required=True)
    fen = fields.Integer(required=True, metadata={"description": "What the retired points were worth, first in first out."})
    paid_on = fields.Date(required=True)
    reference = fields.String(required=True)
    transfer_id = fields.Integer(required=True)


class RateOut(Schema):
    effective_from = fields.Date(required=True)
    fen_per_point = fields.Integer(required=True)


class RatesOut(Schema):
    street_id = fields.Integer(required=True)
    street_name = fields.String(required=True)
    current_fen_per_point = fields.Integer(required=True)
    rates = fields.List(fields.Nested(RateOut), required=True)


class RateIn(In):
    effective_from = fields.Date(required=True, validate=validate.Range(FIRST_DAY, LAST_DAY))
    yuan_per_point = Text(required=True, validate=validate.Length(1, 20),
                          metadata={"description": "Yuan per point as a decimal string, e.g. \"0.50\"."})


# --- reports and statements -----------------------------------------------------------------


class ReportArgs(In):
    org_unit_id = fields.Integer(load_default=None, validate=validate.Range(1, DB_INT_MAX),
                                 metadata={"description": "The subtree; default: the admin's first node."})
    first = Text(load_default=None, validate=validate.Length(1, 20), metadata={"description": "First month, YYYY-MM."})
    last = Text(load_default=None, validate=validate.Length(1, 20),
                metadata={"description": "Last month, YYYY-MM; default: this month (six months back for first)."})
    key = fields.String(load_default=None, validate=validate.OneOf([
        "points_by_month", "points_by_community", "points_by_category", "active_volunteers", "top_activities",
        "claims", "rewards_redeemed", "low_stock", "liability"]), metadata={"description": "Only this report."})


class ReportTableOut(Schema):
    key = fields.String(required=True)
    title = fields.String(required=True)
    headers = fields.List(fields.String(), required=True)
    rows = fields.List(fields.List(fields.Raw(allow_none=True)), required=True,
                       metadata={"description": "One list per row, in the order of headers: text or numbers."})


class ReportsOut(Schema):
    org_unit_id = fields.Integer(required=True)
    first = fields.String(required=True)
    last = fields.String(required=True)
    tables = fields.List(fields.Nested(ReportTableOut), required=True)


class YearArgs(In):
    year = fields.Integer(load_default=None, validate=validate.Range(2000, 2100))


class CategoryTotalOut(Schema):
    category = fields.String(required=True)
    activities = fields.Integer(required=True)
    hours = fields.String(required=True, metadata={"description": "A decimal, e.g. \"2.5\"."})
    points = fields.Integer(required=True)


class YearRedemptionOut(Schema):
    redeemed_at = fields.DateTime(required=True)
    reward = fields.String(required=True)
    merchant = fields.String(required=True)
    points = fields.Integer(required=True)
    reversed = fields.Boolean(required=True, metadata={
        "description": "An admin reversed the redemption since: its points went back (counted in corrected)."})


class YearStatementOut(Schema):
    year = fields.Integer(required=True)
    opening = fields.Integer(required=True)
    earned = fields.Integer(required=True)
    corrected = fields.Integer(required=True)
    spent = fields.Integer(required=True)
    points_expired = fields.Integer(required=True, metadata={"description": "Points that passed their last day."})
    deducted = fields.Integer(required=True, metadata={"description": "Points deducted (a reversed deduction counts "
                                                                      "in corrected)."})
    closing = fields.Integer(required=True, metadata={
        "description": "opening + earned + corrected - spent - points_expired - deducted."})
    hours = fields.String(required=True, metadata={"description": "A decimal, e.g. \"12.5\"."})
    activities = fields.Integer(required=True)
    by_category = fields.List(fields.Nested(CategoryTotalOut), required=True)
    redemptions = fields.List(fields.Nested(YearRedemptionOut), required=True)
    expired_vouchers = fields.Integer(required=True, metadata={"description": "Vouchers that expired unused."})
    expired_points = fields.Integer(required=True, metadata={
        "description": "The points those vouchers held, given back to the volunteer (not points_expired)."})


# --- lists an admin can export --------------------------------------------------------------


class AdminEntryOut(EntryOut):
    """A volunteer's ledger entry as an admin over them sees it."""

    volunteer_id = fields.Integer(required=True, attribute="account.user_id")
    volunteer_name = fields.String(required=True, attribute="account.user.full_name")


class RedemptionOut(Schema):
    """A redeemed voucher as an admin sees it."""

    voucher_id = fields.Integer(required=True, attribute="id")
    redeemed_at = fields.DateTime(required=True)
    volunteer_id = fields.Integer(required=True)
    volunteer_name = fields.String(required=True, attribute="volunteer.full_name")
    reward_id = fields.Integer(required=True)
    reward_name = fields.String(required=True, attribute="reward.name")
    merchant_id = fields.Integer(required=True)
    merchant_name = fields.String(required=True, attribute="merchant.name")
    points = fields.Integer(required=True)
    reversed = fields.Boolean(required=True, metadata={
        "description": "An admin reversed this redemption: its points went back to the volunteer."})


# --- people's passwords, reward pictures, the audit log --------------------------------------


class TemporaryPasswordOut(Schema):
    person = fields.Nested(PersonOut, required=True)
    temporary_password = fields.String(required=True, metadata={
        "description": "Shown once; the person must change it at their next login."})


class PictureFormIn(In):
    picture = Upload(required=True, metadata={"description": "A JPEG, PNG, WebP or GIF picture (up to 5 MB)."})


class AuditOut(Schema):
    id = fields.Integer(required=True)
    seq = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    actor_id = fields.Integer(allow_none=True)
    action = fields.String(required=True)
    target_type = fields.String(required=True)
    target_id = fields.Integer(allow_none=True)
    org_path = fields.String(allow_none=True)
    summary = fields.String(required=True)
    hash = fields.String(required=True, metadata={"description": "Chains each record to the one before."})


class DeductionIn(In):
    volunteer_id = Id(required=True)
    rule_id = Id(required=True, metadata={"description": "A rule of kind 'deduct' that applies to the volunteer."})
    reason = Text(required=True, validate=validate.Length(2, 1000))


class DeductionOut(Schema):
    transfer_id = fields.Integer(required=True, attribute="transfer.id")
    volunteer_id = fields.Integer(required=True, attribute="transfer.from_account.user_id")
    requested = fields.Integer(required=True, metadata={"description": "The rule's points."})
    deducted = fields.Integer(required=True, metadata={"description": "At most the volunteer's available points."})
    shortfall = fields.Integer(required=True, metadata={"description": "requested - deducted."})


# --- budgets and the liability view ---------------------------------------------------------


class FundingIn(In):
    org_unit_id = Id(required=True, metadata={"description": "The street or community funded."})
    amount = Text(required=True, validate=validate.Length(1, 20), metadata={
        "description": "Yuan as a decimal string, e.g. \"350000\"; negative for a correction (needs a note)."})
    source = fields.String(required=True, validate=validate.OneOf(["street_grant", "donation", "partner", "other"]))
    funded_on = fields.Date(required=True, validate=validate.Range(FIRST_DAY, LAST_DAY))
    note = Text(load_default=None, allow_none=True, validate=validate.Length(0, 500))


class FundingOut(Schema):
    id = fields.Integer(required=True)
    org_unit_id = fields.Integer(required=True)
    fen = fields.Integer(required=True)
    source = fields.String(required=True)
    funded_on = fields.Date(required=True)
    note = fields.String(allow_none=True)


class BudgetOut(Schema):
    funded_fen = fields.Integer(required=True)
    fen_per_point = fields.Integer(required=True)
    capacity = fields.Integer(required=True, metadata={"description": "Budget in points: funded fen // fen per point."})
    used = fields.Integer(required=True)
    remaining = fields.Integer(required=True, metadata={"description": "Below zero when overdrawn by a correction or a rate change."})


class LiabilityOut(Schema):
    org_unit_id = fields.Integer(required=True)
    name = fields.String(required=True)
    fen_per_point = fields.Integer(required=True)
    points = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True, metadata={
        "description": "issued, redeemed, expired, deducted, held, owed, outstanding, paid."})
    fen = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True), required=True, metadata={
        "description": "The same figures in fen: redeemed, owed and paid at the rate of each redemption's day, "
                       "as settlement values them; held at the current rate; outstanding = held + owed. "
                       "issued, expired and deducted are null: they have no value in yuan of their own."})
    budget = fields.Nested(BudgetOut, allow_none=True, required=True)


# --- check-in events ------------------------------------------------------------------------


class EventUpdateIn(In):
    """An event's title, place and time window: what can change while it is open and not ended."""

    title = Text(required=True, validate=validate.Length(1, 100))
    place = Text(required=True, validate=validate.Length(1, 200))
    starts_at = fields.AwareDateTime(required=True, metadata={"description": "With its time zone offset."})
    ends_at = fields.AwareDateTime(required=True, metadata={"description": "With its time zone offset."})

    @validates_schema
    def _window(self, data, **kwargs):
        for name in ("starts_at", "ends_at"):
            try:  # the year where it is stored (UTC), not as the caller's offset writes it
                year = data[name].astimezone(timezone.utc).year
            except OverflowError:
                year = 0
            if not FIRST_DAY.year <= year <= LAST_DAY.year:
                raise ValidationError("Out of range.", name)


class EventIn(EventUpdateIn):
    rule_id = Id(required=True)
    org_unit_id = Id(required=True)


class UtcDateTime(fields.DateTime):
    """A moment written in UTC, as every time the API answers, whatever offset it was sent with."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


class EventOut(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    rule_id = fields.Integer(required=True)
    org_unit_id = fields.Integer(required=True)
    place = fields.String(required=True)
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "closed"]))
    closed_at = UtcDateTime(allow_none=True)
    attendee_count = fields.Integer(required=True, attribute="attendee_count")


class AttendeeIn(In):
    volunteer_id = Id(required=True)
    hours = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                         validate=validate.Range(0.5, 24), metadata={"description": "In steps of 0.5; null: the whole event."})


class AttendeeOut(Schema):
    id = fields.Integer(required=True)
    event_id = fields.Integer(required=True)
    volunteer_id = fields.Integer(required=True)
    volunteer_name = fields.String(required=True, attribute="volunteer.full_name")
    signed_in_at = fields.DateTime(allow_none=True)
    signed_out_at = fields.DateTime(allow_none=True)
    backfilled = fields.Boolean(required=True)
    hours = fields.Decimal(as_string=True, allow_none=True)
    activity_id = fields.Integer(allow_none=True)


class EventClosedOut(Schema):
    event = fields.Nested(EventOut, required=True)
    closed_now = fields.Boolean(required=True, metadata={"description": "False: it was closed already."})
    items = fields.List(fields.Nested(StaffClaimOut), required=True)


class CheckinIn(In):
    token = Text(required=True, validate=validate.Length(1, 64), metadata={"description": "From the event's QR code."})
    action = fields.String(required=True, validate=validate.OneOf(["in", "out"]))


class CheckinOut(Schema):
    event_id = fields.Integer(required=True)
    signed_in_at = fields.DateTime(allow_none=True)
    signed_out_at = fields.DateTime(allow_none=True)
    changed = fields.Boolean(required=True, metadata={"description": "False: it was already so."})


# --- approval votes and public notice ------------------------------------------------------


class VoteOut(Schema):
    id = fields.Integer(required=True)
    activity_id = fields.Integer(required=True)
    voter_id = fields.Integer(required=True)
    voter_name = fields.String(required=True, attribute="voter.full_name")
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    comment = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)


class VotesOut(Schema):
    activity_id = fields.Integer(required=True)
    status = fields.String(required=True)
    approvals = fields.Integer(required=True)
    approvals_required = fields.Integer(required=True)
    votes = fields.List(fields.Nested(VoteOut), required=True)


class ObjectionOut(Schema):
    id = fields.Integer(required=True)
    activity_id = fields.Integer(required=True)
    reason = fields.String(required=True)
    contact = fields.String(allow_none=True)
    filed_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "upheld", "dismissed"]))
    resolved_by_id = fields.Integer(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    resolution_note = fields.String(allow_none=True)


class NoticeOut(StaffClaimOut):
    objections = fields.List(fields.Nested(ObjectionOut), required=True, attribute="notice_objections")


class ObjectionIn(In):
    reason = Text(required=True, validate=validate.Length(2, 2000))
    contact = Text(load_default=None, allow_none=True, validate=validate.Length(0, 100))


class ResolveIn(In):
    decision = fields.String(required=True, validate=validate.OneOf(["uphold", "dismiss"]))
    note = Text(load_default=None, allow_none=True, validate=validate.Length(0, 1000))
# --- honour rolls and lifetime figures --------------------------------------------------------


class MyBalanceOut(BalanceOut):
    lifetime_hours = fields.String(required=True, metadata={
        "description": "Hours of approved activities ever, a decimal, e.g. \"12.5\"; never reduced."})
    year = fields.Integer(required=True, metadata={"description": "This year (the street's calendar)."})
    year_earned = fields.Integer(required=True, metadata={
        "description": "Points of approved activities dated this year, less this year's deductions."})
    year_hours = fields.String(required=True, metadata={"description": "Hours of approved activities dated this year."})


class HonourArgs(In):
    org_unit_id = fields.Integer(load_default=None, validate=validate.Range(1, DB_INT_MAX), metadata={
        "description": "A grid, community or street; default: a volunteer's own grid, a staff member's node."})
    period = Text(load_default=None, validate=validate.Length(1, 20),
                  metadata={"description": "A year (2026) or a month (2026-09); default: this year."})
    top = fields.Integer(load_default=20, validate=validate.Range(1, 100), metadata={"description": "Places shown."})


class HonourPlaceOut(Schema):
    place = fields.Integer(required=True, metadata={"description": "Equal scores share a place: 1, 1, 3."})
    name = fields.String(required=True, metadata={
        "description": "Full name, or surname only (王**) when the volunteer chose so and is not the caller."})
    points = fields.Integer(required=True)
    hours = fields.String(required=True, metadata={"description": "A decimal, e.g. \"2.5\"."})
    is_me = fields.Boolean(required=True)


class HonourRollOut(Schema):
    org_unit_id = fields.Integer(required=True)
    org_unit_name = fields.String(required=True)
    period = fields.String(required=True)
    top = fields.Integer(required=True)
    by_points = fields.List(fields.Nested(HonourPlaceOut), required=True)
    by_hours = fields.List(fields.Nested(HonourPlaceOut), required=True)


class HonourDisplayIn(In):
    honour_display = fields.String(required=True, validate=validate.OneOf(["name", "initials"]), metadata={
        "description": "How honour rolls show me to others: full name, or surname only (王**)."})


class HonourDisplayOut(Schema):
    honour_display = fields.String(required=True)
    shown_as = fields.String(required=True, metadata={"description": "My name as others see it on a roll."})
