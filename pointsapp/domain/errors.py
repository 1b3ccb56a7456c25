"""Domain errors. Each has a stable ``code`` for programs and a message for people."""
from __future__ import annotations

from flask import has_app_context
from flask_babel import gettext
from flask_babel import lazy_gettext as _l


class PointsError(Exception):
    """Base of every refusal the domain can give. Nothing has been written when it is raised."""

    code = "points_error"
    status = 409
    template = _l("The request was refused.")

    def __init__(self, message=None, **params):
        self.params = params
        self._message = message
        super().__init__(self.code)

    @property
    def message(self) -> str:
        text = self._message if self._message is not None else self.template
        if isinstance(text, str) and has_app_context():
            # Plain-string messages are catalogue entries too (babel.cfg extracts them).
            text = gettext(text)
        text = str(text)
        return text % self.params if self.params else text

    def __str__(self) -> str:
        try:
            return self.message
        except Exception:  # outside an app context lazy strings cannot render
            return self.code


class InvalidInput(PointsError):
    """Input that breaks a rule the form cannot express; ``field`` names the culprit."""

    code = "invalid_input"
    status = 422

    def __init__(self, message, field: str | None = None, **params):
        self.field = field
        super().__init__(message, **params)


class NotFound(PointsError):
    code = "not_found"
    status = 404
    template = _l("Not found, or not yours to see.")


class Forbidden(PointsError):
    code = "forbidden"
    status = 403
    template = _l("You are not allowed to do this here.")


class AccountInactive(PointsError):
    code = "account_inactive"
    status = 403
    template = _l("This account is deactivated. Ask the community office to reactivate it.")


class VolunteerInactive(PointsError):
    """Staff act for a volunteer whose account is deactivated (a state to resolve, not a permission)."""

    code = "volunteer_inactive"
    status = 409
    template = _l("This volunteer's account is deactivated. Ask an admin to reactivate it, or reject the claim.")


class InsufficientPoints(PointsError):
    code = "insufficient_points"
    template = _l("Not enough points: %(needed)s needed, %(available)s available.")


class OutOfStock(PointsError):
    code = "out_of_stock"
    template = _l("This reward is out of stock.")


class LimitReached(PointsError):
    code = "limit_reached"
    template = _l("You have already redeemed this reward the most times allowed (%(limit)s).")


class RewardUnavailable(PointsError):
    code = "reward_unavailable"
    template = _l("This reward is not available now.")


class RuleNotApplicable(PointsError):
    code = "rule_not_applicable"
    status = 422
    template = _l("This activity type does not apply: %(why)s")


class AlreadyDecided(PointsError):
    code = "already_decided"
    template = _l("This claim was already %(status)s; nothing was changed.")


class AlreadyRecorded(PointsError):
    code = "already_recorded"
    template = _l("This was already submitted; nothing was recorded twice.")


class VoucherNotFound(PointsError):
    code = "voucher_not_found"
    status = 404
    template = _l("Unknown code. Check the code and try again, or scan the QR code.")


class PhotosUnavailable(PointsError):
    code = "photos_unavailable"
    status = 503
    template = _l("The server cannot store photos right now, so nothing was recorded. Send it again later, or "
                  "without the photo, and tell the street office.")


class VoucherKeyMismatch(PointsError):
    code = "voucher_key_mismatch"
    status = 503
    template = _l("This server cannot make vouchers now: its voucher key is not the one this database's "
                  "vouchers were made with. Nothing was changed. Tell the street office: every machine needs "
                  "the same POINTS_VOUCHER_KEY.")


class WrongMerchant(PointsError):
    code = "wrong_merchant"
    status = 403
    template = _l("This voucher is for %(merchant)s, not for this merchant. Do not hand over goods.")


class VoucherAlreadyRedeemed(PointsError):
    code = "voucher_already_redeemed"
    template = _l("Already redeemed at %(when)s by %(merchant)s (cashier: %(cashier)s). Do not hand over goods again.")


class VoucherJustRedeemed(VoucherAlreadyRedeemed):
    """The cashier asking redeemed this voucher a few minutes ago: most likely the answer to
    their confirm was lost on the way, and the goods may still be on the counter."""

    template = _l("You redeemed this voucher at %(when)s: %(reward)s for %(name)s; points taken: %(points)s. "
                  "If you have not handed the goods over yet, hand them over now. Do not redeem it again.")


class VoucherExpired(PointsError):
    code = "voucher_expired"
    template = _l("This voucher expired at %(when)s. Do not hand over goods; its points are returned to the volunteer.")


class VoucherCancelled(PointsError):
    code = "voucher_cancelled"
    template = _l("This voucher was cancelled by the volunteer.")


class CannotReverse(PointsError):
    code = "cannot_reverse"
    template = _l("This entry cannot be reversed: %(why)s")


class PeriodNotEnded(PointsError):
    code = "period_not_ended"
    template = _l("This settlement period runs until %(end)s; it can be closed once it has ended.")


class PeriodClosed(PointsError):
    code = "period_closed"
    template = _l("This settlement period is already closed; later corrections go into the next open period.")


class PaymentExceedsOwed(PointsError):
    code = "payment_exceeds_owed"
    template = _l("A payment of %(points)s points is more than the %(owed)s points owed to this merchant; nothing was recorded.")


class NothingToDeduct(PointsError):
    code = "nothing_to_deduct"
    template = _l("%(name)s has no available points, so nothing was deducted. Points held for vouchers cannot be deducted.")


class BudgetExhausted(PointsError):
    """Crediting would take a street's or community's budget beyond the money funded for it."""

    code = "budget_exhausted"
    template = _l(
        "The points budget of %(unit)s is used up: %(used)s points issued of a budget of %(capacity)s, "
        "so %(needed)s more cannot be credited; nothing was recorded. Ask the street admin to record "
        "more funding."
    )


class FundingFromAbove(Forbidden):
    """An admin records funding for the budget they spend from: funding is the level above's
    decision (a street admin funds the street's communities, and the street, which has no level
    above it)."""

    code = "funding_from_above"
    template = _l(
        "The budget of %(unit)s is funded by the level above it, not by its own admins: ask the "
        "street admin to record the funding. Nothing was recorded."
    )


class CheckinCodeExpired(PointsError):
    """The scanned check-in code is older than a minute (a photo of it, or a stale page)."""

    code = "checkin_code_expired"
    template = _l("This QR code has expired. Scan the QR code at the event again.")


class CheckinNotOpen(PointsError):
    code = "checkin_not_open"
    template = _l("Signing in is not possible now: %(why)s")


class CheckinNotForYou(PointsError):
    code = "checkin_not_for_you"
    status = 403
    template = _l("This event is not for you: %(why)s Ask the staff at the event.")


class EventClosed(PointsError):
    code = "event_closed"
    template = _l("This event has been closed; its attendance is final.")


class EventNotEditable(PointsError):
    code = "event_not_editable"
    template = _l("This event can no longer be changed.")


class AlreadyVoted(PointsError):
    code = "already_voted"
    template = _l("You already voted on this claim (%(decision)s, %(when)s); another verifier must decide it. Nothing was changed.")


class NotOnNotice(PointsError):
    code = "not_on_notice"
    template = _l("This activity is no longer on public notice; objections are closed.")


class ObjectionResolved(PointsError):
    code = "objection_resolved"
    template = _l("This objection was already resolved; nothing was changed.")
