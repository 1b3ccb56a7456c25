"""Flask-WTF forms (CSRF on every one). Domain functions do the business validation.

Forms check shape (required, a number, one of the offered choices); the domain checks meaning
(caps, dates, scope). ``show_domain_error`` puts a domain refusal back on the form, at the field
it names, so that every form shows its errors where the person typed.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext, ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import (
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)

from .domain.errors import InvalidInput, PointsError
from .models.rewards import MERCHANT_KINDS
from .models.rules import (
    CATEGORIES,
    EXPIRY_MONTHS,
    EXPIRY_NEVER,
    EXPIRY_NEXT_YEAR_END,
    RULE_DEDUCT,
    RULE_EARN,
    UNIT_HOUR,
    UNIT_OCCURRENCE,
    PointRuleVersion,
)
from .models.user import (
    ROLE_COMMUNITY_ADMIN,
    ROLE_GRID_STAFF,
    ROLE_STREET_ADMIN,
    ROLE_VOLUNTEER,
    TITLES,
)


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as a list of checkboxes."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def show_domain_error(form: FlaskForm, exc: PointsError, fallback: str | None = None) -> int:
    """Attach a domain refusal to the field it names (or ``fallback``, or the form); return its status."""
    name = getattr(exc, "field", None) if isinstance(exc, InvalidInput) else None
    field = form._fields.get(name or "") or form._fields.get(fallback or "")
    if field is not None and not isinstance(field, HiddenField):
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)
    return exc.status


def _pairs(mapping: dict[str, tuple[str, str]], zh: bool) -> list[SelectChoice]:
    return [SelectChoice(code, names[0] if zh else names[1]) for code, names in mapping.items()]


def rule_choices(versions: list[PointRuleVersion], zh: bool) -> list[SelectChoice]:
    """Return rule versions as select choices that say what they pay; each option carries its unit."""
    out = []
    for v in versions:
        name = v.name_zh if zh else v.name_en
        if v.unit == UNIT_HOUR:
            label = ngettext("%(name)s: %(num)s point per hour", "%(name)s: %(num)s points per hour", v.points, name=name)
        else:
            label = ngettext("%(name)s: %(num)s point", "%(name)s: %(num)s points", v.points, name=name)
        out.append(SelectChoice(v.rule_id, label, {"data-unit": v.unit}))
    return out


def title_choices(zh: bool) -> list[SelectChoice]:
    """Return the volunteer titles as select choices in the page's language."""
    return _pairs(TITLES, zh)


def category_choices(zh: bool) -> list[SelectChoice]:
    """Return the rule categories as select choices in the page's language."""
    return _pairs(CATEGORIES, zh)


def merchant_kind_choices(zh: bool) -> list[SelectChoice]:
    """Return the kinds of merchant as select choices in the page's language."""
    return _pairs(MERCHANT_KINDS, zh)


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=256)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=256)])
    confirm_password = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("new_password", message=_l("The two new passwords differ."))],
    )


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


# --- volunteers -----------------------------------------------------------------------------


class ClaimForm(FlaskForm):
    rule_id = SelectField(_l("Activity"), coerce=int, validators=[InputRequired()])
    activity_date = DateField(_l("Date"), validators=[InputRequired(message=_l("Enter the date of the activity."))])
    hours = StringField(_l("Hours"), validators=[Optional(), Length(max=8)], render_kw={"inputmode": "decimal"})
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)], render_kw={"rows": 3})
    photo = FileField(_l("Photo (optional)"), render_kw={"accept": "image/*"})
    submission_key = HiddenField()


# --- grid staff -------------------------------------------------------------------------------


class RejectForm(FlaskForm):
    reason = StringField(
        _l("Reason for the volunteer"),
        validators=[DataRequired(message=_l("Give the volunteer a reason for the rejection.")), Length(max=1000)],
    )


class AttendanceForm(FlaskForm):
    rule_id = SelectField(_l("Activity"), coerce=int, validators=[InputRequired()])
    activity_date = DateField(_l("Date"), validators=[InputRequired(message=_l("Enter the date of the activity."))])
    hours = StringField(_l("Hours"), validators=[Optional(), Length(max=8)], render_kw={"inputmode": "decimal"})
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)], render_kw={"rows": 2})
    volunteer_ids = MultiCheckboxField(
        _l("Volunteers who took part"),
        coerce=int,
        validators=[DataRequired(message=_l("Choose at least one volunteer."))],
    )
    batch_key = HiddenField()


class DeductionForm(FlaskForm):
    volunteer_id = SelectField(_l("Volunteer"), coerce=int, validators=[InputRequired()])
    rule_id = SelectField(_l("Deduction rule"), coerce=int, validators=[InputRequired()])
    reason = TextAreaField(
        _l("Reason (the volunteer will read it)"),
        validators=[DataRequired(message=_l("Give a reason for the deduction.")), Length(max=1000)],
        render_kw={"rows": 2},
    )
    submission_key = HiddenField()


# --- admins -----------------------------------------------------------------------------------


class RuleForm(FlaskForm):
    org_unit_id = SelectField(_l("Applies to volunteers under"), coerce=int, validators=[InputRequired()])
    name_zh = StringField(_l("Name in Chinese"), validators=[DataRequired(), Length(max=100)])
    name_en = StringField(_l("Name in English"), validators=[DataRequired(), Length(max=100)])
    category = SelectField(_l("Category"), validators=[InputRequired()])
    unit = RadioField(
        _l("Points are given"),
        choices=[SelectChoice(UNIT_OCCURRENCE, _l("per occurrence")), SelectChoice(UNIT_HOUR, _l("per hour"))],
        default=UNIT_OCCURRENCE,
        validators=[InputRequired()],
    )
    points = IntegerField(_l("Points"), validators=[InputRequired(), NumberRange(min=1, max=10000)])
    daily_cap = IntegerField(_l("Daily cap per volunteer (empty: none)"), validators=[Optional(), NumberRange(min=1, max=1_000_000)])
    monthly_cap = IntegerField(_l("Monthly cap per volunteer (empty: none)"), validators=[Optional(), NumberRange(min=1, max=1_000_000)])
    needs_approval = BooleanField(_l("Needs approval by grid staff"), default=True)
    requires_note = BooleanField(_l("Requires a note"))
    requires_photo = BooleanField(_l("Requires a photo"))
    active_from = DateField(_l("Active from (empty: always)"), validators=[Optional()])
    active_to = DateField(_l("Active to (empty: no end)"), validators=[Optional()])
    titles = MultiCheckboxField(_l("Only for these titles (none ticked: every title)"))
    is_active = BooleanField(_l("Active"), default=True)
    expiry_policy = RadioField(
        _l("Points expire"),
        choices=[
            SelectChoice(EXPIRY_NEVER, _l("never")),
            SelectChoice(EXPIRY_MONTHS, _l("a number of months after the activity")),
            SelectChoice(EXPIRY_NEXT_YEAR_END, _l("at the end of the year after the activity")),
        ],
        default=EXPIRY_NEVER,
        validators=[Optional()],
    )
    expiry_months = IntegerField(_l("Months until the points expire"), validators=[Optional(), NumberRange(min=1, max=120)])
    kind = RadioField(
        _l("The rule"),
        choices=[SelectChoice(RULE_EARN, _l("gives points")), SelectChoice(RULE_DEDUCT, _l("deducts points (applied by staff)"))],
        default=RULE_EARN,
        validators=[Optional()],
    )
    checkin_hours_cap = DecimalField(
        _l("Check-in events: most hours counted per event (empty: no cap)"),
        places=None, validators=[Optional(), NumberRange(min=0.5, max=24)], render_kw={"inputmode": "decimal"},
    )
    hours_rounding_minutes = SelectField(
        _l("Check-in events: round hours down to"),
        coerce=int,
        choices=[SelectChoice(m, lazy_ngettext("%(num)s minute", "%(num)s minutes", m)) for m in (1, 5, 10, 15, 20, 30, 60)],
        default=30,
    )
    backfill_earns_points = BooleanField(
        _l("Attendees added by staff (no phone) earn points; unticked: hours only"), default=True
    )
    approvals_required = IntegerField(
        _l("Approvals needed (verifiers who must approve a claim)"), default=1,
        validators=[Optional(), NumberRange(min=1, max=5)],
    )


class ObjectionForm(FlaskForm):
    reason = TextAreaField(
        _l("What is wrong with this entry?"),
        validators=[DataRequired(message=_l("Say what is wrong with this entry: a reason is required.")), Length(max=2000)],
    )
    contact = StringField(_l("Your phone or name, if we may contact you (optional)"), validators=[Optional(), Length(max=100)])


class ResolveObjectionForm(FlaskForm):
    decision = RadioField(
        _l("Decision"),
        choices=[SelectChoice("dismiss", _l("Dismiss: the entry stands")), SelectChoice("uphold", _l("Uphold: withhold the points"))],
        validators=[InputRequired(message=_l("Choose uphold or dismiss."))],
    )
    note = StringField(_l("Note (the volunteer sees it when upheld)"), validators=[Optional(), Length(max=1000)])


class NoticeSettingForm(FlaskForm):
    notice_days = IntegerField(
        _l("Public notice days (0: off)"), validators=[InputRequired(), NumberRange(min=0, max=15)]
    )


class MerchantForm(FlaskForm):
    org_unit_id = SelectField(_l("Serves volunteers under"), coerce=int, validators=[InputRequired()])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    kind = SelectField(_l("Kind"), validators=[InputRequired()])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=255)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])


class PersonFields(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(min=3, max=64)])
    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=100)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])
    password = PasswordField(_l("First password (at least 10 characters)"), validators=[DataRequired(), Length(max=256)])


class CashierForm(PersonFields):
    """A new cashier (merchant staff account) for one merchant."""


PERSON_ROLES = (ROLE_VOLUNTEER, ROLE_GRID_STAFF, ROLE_COMMUNITY_ADMIN)
GRANTABLE_ROLES = (ROLE_VOLUNTEER, ROLE_GRID_STAFF, ROLE_COMMUNITY_ADMIN, ROLE_STREET_ADMIN)
ROLE_LABELS = {
    ROLE_VOLUNTEER: _l("Volunteer"),
    ROLE_GRID_STAFF: _l("Grid staff"),
    ROLE_COMMUNITY_ADMIN: _l("Community admin"),
    ROLE_STREET_ADMIN: _l("Street admin"),
}


class PersonForm(PersonFields):
    org_unit_id = SelectField(_l("Belongs to"), coerce=int, validators=[InputRequired()])
    title = SelectField(_l("Title (volunteers)"), validators=[Optional()])
    roles = MultiCheckboxField(
        _l("Roles"),
        choices=[SelectChoice(r, ROLE_LABELS[r]) for r in PERSON_ROLES],
        default=[ROLE_VOLUNTEER],
        validators=[DataRequired(message=_l("Choose at least one role."))],
    )


class PersonDetailsForm(FlaskForm):
    """A person's details an admin corrects: not the username, the node or the roles."""

    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=100)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])
    title = SelectField(_l("Title (volunteers)"), validators=[Optional()])


class MovePersonForm(FlaskForm):
    """Where a person moves to: a node of their street in the admin's subtrees."""

    org_unit_id = SelectField(_l("Move to"), coerce=int, validators=[InputRequired()])


class GrantRoleForm(FlaskForm):
    role = SelectField(
        _l("Role"), choices=[SelectChoice(r, ROLE_LABELS[r]) for r in GRANTABLE_ROLES], validators=[InputRequired()]
    )
    org_unit_id = SelectField(_l("Applies to"), coerce=int, validators=[InputRequired()])


class ReverseForm(FlaskForm):
    reason = StringField(
        _l("Reason"),
        validators=[DataRequired(message=_l("A reversal needs a reason.")), Length(max=1000)],
    )


class RewardForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)], render_kw={"rows": 2})
    price = IntegerField(_l("Price in points"), validators=[InputRequired(), NumberRange(min=1, max=1_000_000)])
    stock = IntegerField(_l("Stock (empty: unlimited)"), validators=[Optional(), NumberRange(min=0, max=1_000_000)])
    per_volunteer_limit = IntegerField(_l("Limit per volunteer (empty: none)"), validators=[Optional(), NumberRange(min=1, max=1_000_000)])
    active_from = DateField(_l("Available from (empty: now)"), validators=[Optional()])
    active_to = DateField(_l("Available to (empty: no end)"), validators=[Optional()])
    is_active = BooleanField(_l("Listed"), default=True)


STOCK_LIMITED = "limited"
STOCK_UNLIMITED = "unlimited"


class RewardEditForm(RewardForm):
    stock = None  # stock is changed by a delta, never overwritten (reservations may happen meanwhile)
    stock_mode = RadioField(
        _l("Stock"),
        choices=[SelectChoice(STOCK_LIMITED, _l("Limited")), SelectChoice(STOCK_UNLIMITED, _l("Unlimited"))],
        validators=[InputRequired()],
    )
    stock_change = IntegerField(
        _l("Change stock by (e.g. 20 to add, -5 to remove)"),
        default=0,
        validators=[Optional(), NumberRange(min=-1_000_000, max=1_000_000)],
    )


class OrgUnitForm(FlaskForm):
    parent_id = SelectField(_l("Under"), coerce=int, validators=[InputRequired()])
    level = SelectField(_l("Level"), validators=[InputRequired()])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])


# --- merchants --------------------------------------------------------------------------------


class RewardPictureForm(FlaskForm):
    picture = FileField(
        _l("Picture of the reward"),
        validators=[DataRequired(message=_l("Choose a picture."))],
        render_kw={"accept": "image/*"},
    )


class RedeemForm(FlaskForm):
    code = StringField(
        _l("Scan the QR code or type the 8-character code"),
        validators=[DataRequired(message=_l("Scan or type a code.")), Length(max=80)],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "autofocus": True},
    )
    # Optional: a cashier of one merchant need not send it; a value sent must be one of theirs.
    merchant_id = SelectField(_l("Merchant"), coerce=int, validators=[Optional()])


class PaymentForm(FlaskForm):
    """Money paid to a merchant, in points (the ledger's unit)."""

    points = IntegerField(_l("Points paid for"), validators=[InputRequired(), NumberRange(min=1, max=2**31 - 1)])
    paid_on = DateField(_l("Paid on"), validators=[InputRequired(message=_l("Enter the date of the payment."))])
    reference = StringField(_l("Reference (bank transfer, receipt)"), validators=[DataRequired(), Length(max=100)])
    key = HiddenField()


class RateForm(FlaskForm):
    effective_from = DateField(_l("From"), validators=[InputRequired()])
    yuan_per_point = StringField(_l("Yuan per point"), validators=[DataRequired(), Length(max=12)],
                                 render_kw={"inputmode": "decimal"})


class ImportForm(FlaskForm):
    file = FileField(_l("Spreadsheet (XLSX or CSV)"))
    dry_run = BooleanField(_l("Check only (dry run)"), default=True)


class FundingForm(FlaskForm):
    """Money recorded for the points of a street or community (negative: a correction)."""

    org_unit_id = SelectField(_l("For"), coerce=int, validate_choice=False)
    amount = StringField(_l("Amount in yuan"), validators=[DataRequired(), Length(max=20)],
                         render_kw={"inputmode": "decimal"})
    source = SelectField(_l("Source"), validate_choice=False)
    funded_on = DateField(_l("Date"), validators=[InputRequired(message=_l("Enter the date the money was provided."))])
    note = TextAreaField(_l("Note (required for a correction)"), validators=[Optional(), Length(max=500)])
    key = HiddenField()
# --- check-in events ------------------------------------------------------------------------


class EventForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=100)])
    rule_id = SelectField(_l("Activity"), coerce=int, validators=[InputRequired()])
    org_unit_id = SelectField(_l("For the volunteers of"), coerce=int, validators=[InputRequired()])
    place = StringField(_l("Place"), validators=[DataRequired(), Length(max=200)])
    starts_at = DateTimeLocalField(
        _l("Starts"), format="%Y-%m-%dT%H:%M", validators=[InputRequired(message=_l("Enter the start time."))]
    )
    ends_at = DateTimeLocalField(
        _l("Ends"), format="%Y-%m-%dT%H:%M", validators=[InputRequired(message=_l("Enter the end time."))]
    )


class AttendeeForm(FlaskForm):
    volunteer_id = SelectField(_l("Volunteer without a phone"), coerce=int, validators=[InputRequired()])
    hours = StringField(
        _l("Hours (empty: the whole event)"), validators=[Optional(), Length(max=8)], render_kw={"inputmode": "decimal"}
    )


class CheckinForm(FlaskForm):
    """The volunteer's confirm button: sign in or out (the scan's pass is in their session)."""

    action = HiddenField()
