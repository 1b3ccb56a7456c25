"""Template helpers every page uses: local time, names in the page's language, Chinese text
marked as such on English pages, ledger reasons."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import format_datetime as babel_format_datetime
from babel.dates import DateTimePattern, get_date_format, get_datetime_format, get_time_format, parse_pattern
from flask import Flask
from jinja2 import pass_context
from markupsafe import Markup, escape
from flask_babel import format_decimal, get_locale, get_timezone, lazy_gettext, lazy_pgettext
from wtforms import SelectChoice

from ..domain.claims import read_cap_note
from ..domain.clock import now_utc, to_local
from ..i18n import gettext as _
from ..i18n import page_is_zh
from ..models import LotUse, PointLot, Transfer, Voucher
from ..models.ledger import TRANSFER_CAPTURE, TRANSFER_CREDIT, TRANSFER_DEDUCTION, TRANSFER_EXPIRY, TRANSFER_REVERSAL
from ..models.rewards import VOUCHER_ISSUED
from ..models.user import initials_name

# Every page writes a day and a moment one way, in Chinese and in English alike: year first, with
# hyphens and two-digit months and days (GB/T 7408, as China's government systems write them),
# and a 24-hour clock. The short form fits a 360-pixel phone; spreadsheets and CSV files keep ISO
# 8601 on their own. Dates (``date.isoformat()``) and the moments of domain messages are written
# the same way.
DATE_TIME = "yyyy-MM-dd HH:mm"
DATE_TIME_STRFTIME = "%Y-%m-%d %H:%M"


def localtime(moment: datetime | None, fmt: str = DATE_TIME_STRFTIME) -> str:
    """Format a UTC timestamp in the street's local time (``DATE_TIME`` unless told)."""
    return to_local(moment).strftime(fmt) if moment else ""


NAMED_FORMATS = ("short", "medium", "long", "full")


def datetime_pattern(locale: Locale, fmt: str) -> str:
    """The one pattern that writes a date and time as Babel's ``format_datetime`` writes the
    named format ``fmt`` in ``locale``: the locale's date and time patterns, joined as the locale
    joins them (its literal text quoted). Babel formats a named format's date and time apart and
    joins them on every call; one pattern, parsed once, does the same in one pass."""
    parts = re.split(r"(\{0\}|\{1\})", get_datetime_format(fmt, locale=locale).replace("'", ""))
    out = []
    for part in parts:
        if part == "{0}":
            out.append(get_time_format(fmt, locale=locale).pattern)
        elif part == "{1}":
            out.append(get_date_format(fmt, locale=locale).pattern)
        elif re.search("[A-Za-z]", part):
            out.append("'" + part.replace("'", "''") + "'")
        else:
            out.append(part)
    return "".join(out)


@lru_cache(maxsize=64)
def parsed_pattern(locale: Locale, fmt: str) -> DateTimePattern:
    """The parsed pattern ``when`` writes ``fmt`` with in ``locale``, built once per locale:
    ``short`` is the app's one form (``DATE_TIME``), another named format the locale's own."""
    if fmt == "short":
        return parse_pattern(DATE_TIME)
    return parse_pattern(datetime_pattern(locale, fmt) if fmt in NAMED_FORMATS else fmt)


def when(moment: datetime | None, fmt: str = "short") -> str:
    """Format a UTC timestamp in the street's time zone: ``short`` (the default) as every page
    writes a moment (``DATE_TIME``: 2026-12-08 14:05, in both languages); another named format as
    the page's language writes it, or a Babel pattern such as ``HH:mm``. Patterns are parsed
    once per locale."""
    if not moment:
        return ""
    locale = get_locale()
    return babel_format_datetime(moment, parsed_pattern(locale, fmt), tzinfo=get_timezone(), locale=locale)


def nobreak(text: str) -> Markup:
    """Keep each word of a date or a moment whole: a browser breaks 2026-12-08 after a hyphen,
    and a line that ends in "2026-12-" on a phone with large text is misread. The day and the
    time may still go on two lines, where a narrow column needs it."""
    # Plain formatting over escaped words: Markup's own % and join cost five times as much.
    return Markup(" ".join(f'<span class="nowrap">{escape(word)}</span>' for word in str(text).split(" ")))


def day(value: date | None) -> Markup | str:
    """Write a day as every page writes one (2026-12-08), kept on one line."""
    return nobreak(value.isoformat()) if value else ""


# Chinese characters and what is written with them: CJK radicals and ideographic description
# characters, CJK symbols and punctuation (、。「」), the unified ideographs with extension A and
# the supplementary planes' extensions, compatibility ideographs, vertical and compatibility forms,
# and full-width forms (，１Ａ￥). Kana and Hangul are not Chinese and are left out.
_CHINESE = re.compile(
    "[\u2e80-\u2fff\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003ffff]"
)
ZH_LANG = Markup(' lang="zh-CN"')


def zh(text) -> Markup | str:
    """Mark text that people typed in Chinese (a name, a place, a note) as Chinese on an English
    page: ``<span lang="zh-CN">…</span>``, its content escaped, so that a screen reader reads it
    with a Chinese voice and the browser draws it with Chinese glyphs. On a Chinese page, and for
    text with no Chinese character in it ("Li Lei", a number), the value is given back as it is
    (the page escapes it); None is written as nothing. For text only: never in an attribute, an
    ``<option>`` (``zh_lang``) or a ``<title>``. Templates use it as ``|zh``."""
    if text is None:
        return ""
    return text if page_is_zh() else _marked(text)


def _marked(text) -> Markup | str:
    """``text`` in a span that says it is Chinese when it has a Chinese character in it."""
    if _CHINESE.search(text if type(text) is str else str(text)):
        return Markup(f'<span lang="zh-CN">{escape(text)}</span>')
    return text


def _context_is_zh(context) -> bool:
    """Whether the page a template writes is Chinese: its context's ``is_zh`` (set once per page,
    ``i18n.init_i18n``), read in a fraction of the time of the locale's lookup."""
    is_zh = context.get("is_zh")
    return page_is_zh() if is_zh is None else is_zh


@pass_context
def zh_filter(context, text) -> Markup | str:
    """``zh`` as the templates' ``|zh`` filter."""
    if text is None:
        return ""
    return text if _context_is_zh(context) else _marked(text)


def zh_sentence(sentence: str, **variables) -> Markup | str:
    """Fill in a translated sentence (``_("Redeemed %(reward)s at %(merchant)s")``) with things
    people typed (a reward, a merchant, a reason), each marked as Chinese on an English page
    (``zh``): the sentence is then Markup, its words and its other variables escaped. A Chinese
    page's sentence, and an English one with nothing Chinese in it, is plain text."""
    if not page_is_zh():
        marked = {key: _marked(value) for key, value in variables.items()}
        if any(type(value) is Markup for value in marked.values()):
            return escape(sentence) % marked
    return sentence % variables


@pass_context
def zh_lang(context, text) -> Markup | str:
    """The attribute ``lang="zh-CN"`` (with its leading space) for an element whose whole text is
    ``text``, when ``text`` is Chinese on an English page (``zh``); otherwise nothing. For an
    ``<option>``, which holds text only: ``<option{{ zh_lang(name) }}>{{ name }}</option>``."""
    if text is None or _context_is_zh(context) or not _CHINESE.search(text if type(text) is str else str(text)):
        return ""
    return ZH_LANG


def zh_choices(pairs) -> list[SelectChoice]:
    """Select choices named by text people typed (a node's path, a person's name), from
    ``(value, label)`` pairs: on an English page each ``<option>`` whose label is Chinese says so
    (``lang="zh-CN"``; an option holds text only). The page's language is looked up once."""
    if page_is_zh():
        return [SelectChoice(value, label) for value, label in pairs]
    return [SelectChoice(value, label, render_kw={"lang": "zh-CN"}) if _CHINESE.search(label) else SelectChoice(value, label)
            for value, label in pairs]


def zh_checkbox_choices(pairs) -> list[SelectChoice]:
    """A checkbox list's choices named by text people typed, from ``(value, label)`` pairs: each
    label (a ``<label>``, which may hold markup) is marked Chinese on an English page (``zh``)."""
    if page_is_zh():
        return [SelectChoice(value, label) for value, label in pairs]
    return [SelectChoice(value, _marked(label)) for value, label in pairs]


# Line icons drawn inline, in the text's colour: the same on every phone and computer, where an
# emoji depends on the device's fonts (and shows as an empty box where it has none). Made once:
# templates write ``{{ icon('gift') }}``.
_ICON_SHAPES = {
    "globe": '<circle cx="12" cy="12" r="9"/><ellipse cx="12" cy="12" rx="4" ry="9"/><path d="M3 12h18"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "qr": '<rect x="3" y="3" width="7" height="7" rx="1"/><rect x="14" y="3" width="7" height="7" rx="1"/>'
          '<rect x="3" y="14" width="7" height="7" rx="1"/><path d="M14 14h3v3M21 14v7h-7v-4M17 21v0"/>',
    "list": '<path d="M9 6h12M9 12h12M9 18h12M4 6h.01M4 12h.01M4 18h.01"/>',
    "gift": '<rect x="3" y="9" width="18" height="4" rx="1"/>'
            '<path d="M5 13v7h14v-7M12 9v11M12 9C10 5 6 5 7 8M12 9c2-4 6-4 5-1"/>',
    "calendar": '<rect x="3" y="5" width="18" height="16" rx="2"/><path d="M3 10h18M8 3v4M16 3v4"/>',
    "document": '<path d="M6 3h8l5 5v13H6z"/><path d="M14 3v5h5M9 13h7M9 17h7"/>',
    "medal": '<circle cx="12" cy="15" r="6"/><path d="M8.5 10 6 3h4l2 5M15.5 10 18 3h-4l-2 5"/>',
    "camera": '<path d="M3 8h4l2-3h6l2 3h4v12H3z"/><circle cx="12" cy="13.5" r="3.5"/>',
    "pin": '<path d="M12 21s-7-6.5-7-12a7 7 0 0 1 14 0c0 5.5-7 12-7 12z"/><circle cx="12" cy="9" r="2.5"/>',
}
ICONS = {
    name: Markup(
        '<svg class="glyph" aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="1.2em" height="1.2em" '
        'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
        f"{shape}</svg>"
    )
    for name, shape in _ICON_SHAPES.items()
}


def icon(name: str) -> Markup:
    """The inline icon ``name`` (``ICONS``); an unknown name is an error, not an empty space."""
    return ICONS[name]


def number(value) -> str:
    """Format a number of points as the page's language writes numbers (1,234)."""
    return format_decimal(value or 0)


def bilingual(thing) -> str:
    """Return the Chinese or English name of a rule version, a level, or a ``(zh, en)`` pair."""
    if thing is None:
        return ""
    if isinstance(thing, tuple):
        return thing[0] if page_is_zh() else thing[1]
    return thing.name_zh if page_is_zh() else thing.name_en


def cap_note_text(note: str | None) -> str:
    """Say an activity's cap note (``claims.read_cap_note``) in the page's language: how many
    points of how many were credited, and which caps bit. A note in another form is shown as it is."""
    read = read_cap_note(note)
    if read is None:
        return note or ""
    caps = [(_("daily cap %(points)s") if kind == "daily" else _("monthly cap %(points)s")) % {"points": cap}
            for kind, cap in read.caps]
    return _("capped: %(credited)s of %(asked)s credited (%(caps)s)",
             credited=read.credited, asked=read.asked, caps=_(", ").join(caps))


# The fields audit records keep, named for people (the record itself keeps the field's name).
AUDIT_FIELDS = {
    "amount": lazy_pgettext("audit", "Points"),
    "points": lazy_pgettext("audit", "Points"),
    "account_id": lazy_pgettext("audit", "Account"),
    "volunteer_id": lazy_pgettext("audit", "Volunteer"),
    "volunteer_ids": lazy_pgettext("audit", "Volunteers"),
    "transfer_id": lazy_pgettext("audit", "Transfer"),
    "reversal_id": lazy_pgettext("audit", "Reversal"),
    "activity_id": lazy_pgettext("audit", "Activity record"),
    "ids": lazy_pgettext("audit", "Records"),
    "id": lazy_pgettext("audit", "Number"),
    "merchant_id": lazy_pgettext("audit", "Merchant"),
    "org_unit_id": lazy_pgettext("audit", "Node"),
    "reason": lazy_pgettext("audit", "Reason"),
    "title": lazy_pgettext("audit", "Title"),
    "rule_id": lazy_pgettext("audit", "Rule"),
    "points_credited": lazy_pgettext("audit", "Points credited"),
    "points_requested": lazy_pgettext("audit", "Points asked"),
    "kind": lazy_pgettext("audit", "Kind"),
    "username": lazy_pgettext("audit", "Username"),
    "status": lazy_pgettext("audit", "Status"),
    "user_id": lazy_pgettext("audit", "Person"),
    "phone": lazy_pgettext("audit", "Phone"),
    "name": lazy_pgettext("audit", "Name"),
    "name_zh": lazy_pgettext("audit", "Chinese name"),
    "name_en": lazy_pgettext("audit", "English name"),
    "full_name": lazy_pgettext("audit", "Full name"),
    "hours": lazy_pgettext("audit", "Hours"),
    "decision": lazy_pgettext("audit", "Decision"),
    "comment": lazy_pgettext("audit", "Comment"),
    "cap_note": lazy_pgettext("audit", "Cap"),
    "approvals": lazy_pgettext("audit", "Approvals"),
    "voucher_id": lazy_pgettext("audit", "Voucher"),
    "notice_until": lazy_pgettext("audit", "On notice until"),
    "on_notice": lazy_pgettext("audit", "On notice"),
    "role": lazy_pgettext("audit", "Role"),
    "roles": lazy_pgettext("audit", "Roles"),
    "stock": lazy_pgettext("audit", "Stock"),
    "is_active": lazy_pgettext("audit", "Active"),
    "expires_on": lazy_pgettext("audit", "Expires on"),
    "budget_id": lazy_pgettext("audit", "Budget"),
    "price": lazy_pgettext("audit", "Price"),
    "place": lazy_pgettext("audit", "Place"),
    "per_volunteer_limit": lazy_pgettext("audit", "Limit per volunteer"),
    "note": lazy_pgettext("audit", "Note"),
    "starts_at": lazy_pgettext("audit", "Starts at"),
    "ends_at": lazy_pgettext("audit", "Ends at"),
    "before": lazy_pgettext("audit", "Before"),
    "after": lazy_pgettext("audit", "After"),
    "changes": lazy_pgettext("audit", "Changes"),
    "fen": lazy_pgettext("audit", "Fen"),
    "voter_id": lazy_pgettext("audit", "Verifier"),
    "rule_version": lazy_pgettext("audit", "Rule version"),
    # a rule's terms
    "version": lazy_pgettext("audit", "Version"),
    "category": lazy_pgettext("audit", "Category"),
    "unit": lazy_pgettext("audit", "Counted per"),
    "daily_cap": lazy_pgettext("audit", "Daily cap"),
    "monthly_cap": lazy_pgettext("audit", "Monthly cap"),
    "needs_approval": lazy_pgettext("audit", "Needs approval"),
    "approvals_required": lazy_pgettext("audit", "Approvals required"),
    "requires_note": lazy_pgettext("audit", "Requires a note"),
    "requires_photo": lazy_pgettext("audit", "Requires a photo"),
    "titles": lazy_pgettext("audit", "For titles"),
    "active_from": lazy_pgettext("audit", "Active from"),
    "active_to": lazy_pgettext("audit", "Active to"),
    "expiry_policy": lazy_pgettext("audit", "Expiry"),
    "expiry_months": lazy_pgettext("audit", "Expires after months"),
    "checkin_hours_cap": lazy_pgettext("audit", "Check-in hours cap"),
    "hours_rounding_minutes": lazy_pgettext("audit", "Hours rounded to minutes"),
    "backfill_earns_points": lazy_pgettext("audit", "Added attendees earn points"),
    "attendees": lazy_pgettext("audit", "Attendees"),
}


def audit_field(key: str) -> str:
    """Name a summary's field (``before.phone``: 修改前 · 电话); an unknown one as it is."""
    return " · ".join(str(AUDIT_FIELDS.get(part, part)) for part in key.split("."))


_ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)")


def audit_details(summary: str | None) -> list[tuple[str, str]]:
    """An audit record's summary (canonical JSON, kept as written) as (key, value) lines to read:
    nested objects as ``before.phone``, moments in the street's local time, lists joined. A summary
    that is not a JSON object is one line as it is."""
    import json

    try:
        data = json.loads(summary or "{}")
    except ValueError:
        return [("", summary or "")]
    if not isinstance(data, dict):
        return [("", summary or "")]
    lines: list[tuple[str, str]] = []

    def say(value) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "✓" if value else "✗"
        if isinstance(value, str) and _ISO_MOMENT.fullmatch(value):
            return localtime(datetime.fromisoformat(value.replace("Z", "+00:00")))
        if isinstance(value, list):
            return ", ".join(say(v) for v in value)
        return str(value)

    def walk(prefix: str, obj: dict) -> None:
        # As kept (keys sorted), but what was there before comes before what came after.
        for key, value in sorted(obj.items(), key=lambda kv: {"before": 0, "after": 1}.get(kv[0], 2)):
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(name + ".", value)
            else:
                lines.append((name, say(value)))

    walk("", data)
    return lines


def transfer_reason(transfer: Transfer) -> str:
    """Describe a transfer as a person would: what was credited, redeemed or corrected."""
    # Only the kind's own relations are read: each is a statement for an object not yet loaded.
    act = transfer.activity if transfer.kind == TRANSFER_CREDIT else None
    voucher = transfer.voucher if transfer.kind == TRANSFER_CAPTURE else None
    return ledger_reason(
        transfer.id, transfer.kind, transfer.reason,
        rule=(act.rule_version.name_zh, act.rule_version.name_en) if act is not None else None,
        activity_date=act.activity_date if act is not None else None,
        reward=voucher.reward.name if voucher is not None else None,
        merchant=voucher.merchant.name if voucher is not None else None,
    )


def ledger_reason(
    transfer_id: int, kind: str, reason: str, *, rule: tuple[str, str] | None = None,
    activity_date: date | None = None, reward: str | None = None, merchant: str | None = None,
    reverses: tuple[str, str, datetime] | None = None,
) -> str:
    """Describe a ledger line from plain fields: a credit by its rule ``(zh, en)`` and activity
    date, a redemption by its reward and merchant, a deduction or expiry by itself, a correction
    by the entry it corrects (``reverses``: that transfer's kind, reason and time; the rule,
    activity date, reward and merchant a reversal carries are its original's) and its reason.
    On an English page what people typed in Chinese is marked as Chinese (``zh_sentence``)."""
    if kind == TRANSFER_REVERSAL:
        return _correction(reason, reverses, rule, activity_date, reward, merchant)
    if kind == TRANSFER_CREDIT and rule is not None:
        return zh_sentence(_("%(activity)s on %(date)s"), activity=bilingual(rule), date=activity_date.isoformat())
    if kind == TRANSFER_CAPTURE and reward is not None:
        return zh_sentence(_("Redeemed %(reward)s at %(merchant)s"), reward=reward, merchant=merchant)
    if kind == TRANSFER_EXPIRY:
        from ..extensions import db

        lot = db.session.execute(
            db.select(PointLot.earned_on, PointLot.expires_on)
            .join(LotUse, LotUse.lot_id == PointLot.id)
            .where(LotUse.transfer_id == transfer_id)
        ).first()
        if lot is not None:
            return _(
                "Points expired (earned %(earned)s, valid until %(until)s)",
                earned=lot[0].isoformat(), until=lot[1].isoformat() if lot[1] else "",
            )
        return _("Points expired")
    if kind == TRANSFER_DEDUCTION:
        return zh_sentence(_("Deduction: %(reason)s"), reason=reason)
    return zh(reason)


def _correction(reason: str, reverses: tuple[str, str, datetime] | None, rule: tuple[str, str] | None,
                activity_date: date | None, reward: str | None, merchant: str | None) -> str:
    """Describe a reversal by the entry it reverses, so that the volunteer can find that line."""
    if reverses is None:
        return zh_sentence(_("Correction: %(reason)s"), reason=reason)
    kind, original_reason, original_at = reverses
    day = to_local(original_at).date().isoformat()
    if kind == TRANSFER_CREDIT:
        # As the credit's own line names it: its activity and the activity's day, or its reason.
        what, day = (bilingual(rule), activity_date.isoformat()) if rule is not None else (original_reason, day)
        return zh_sentence(_("Correction of %(what)s (earned %(date)s): %(reason)s"), what=what, date=day, reason=reason)
    if kind == TRANSFER_CAPTURE and reward is not None:
        return zh_sentence(_("Correction of the redemption of %(reward)s at %(merchant)s on %(date)s: %(reason)s"),
                           reward=reward, merchant=merchant, date=day, reason=reason)
    if kind == TRANSFER_DEDUCTION:
        return zh_sentence(_("Correction of the deduction of %(date)s (%(what)s): %(reason)s"),
                           what=original_reason, date=day, reason=reason)
    return zh_sentence(_("Correction of the entry of %(date)s: %(reason)s"), date=day, reason=reason)


def rule_terms_label(version) -> str:
    """Say whether a rule version deducts points and when the points it gives expire."""
    if version.kind == "deduct":
        return _("deducts points")
    if version.expiry_policy == "months":
        return _("expire %(n)s months after the activity", n=version.expiry_months)
    if version.expiry_policy == "next_year_end":
        return _("expire at the end of the following year")
    return _("never expire")


def voucher_state(voucher: Voucher) -> str:
    """Return the voucher's status as the volunteer sees it now (an issued voucher past its time is expired)."""
    if voucher.status == VOUCHER_ISSUED and voucher.expires_at <= now_utc():
        return "expired"
    return voucher.status


def hours_text(hours) -> str:
    """Return hours as plain decimals: 12, 1.5 (never 1.2E+1)."""
    return f"{Decimal(hours).normalize():f}" if hours else "0"


def language_next() -> str:
    """Where the language button brings the person back: this page when it was a GET; after a
    form was sent (a POST, which cannot be opened again), the page the form was on."""
    from urllib.parse import urlsplit

    from flask import request

    if request.method == "GET":
        return request.full_path if request.query_string else request.path
    came_from = urlsplit(request.referrer or "")
    if came_from.netloc == request.host and came_from.path.startswith("/"):
        return came_from.path + ("?" + came_from.query if came_from.query else "")
    return ""


# The main menu: (endpoint, label, roles that see it), in the order shown. The first
# MENU_SHOWN a person sees stay in the header; past that, the rest fold under "More" so that a
# street admin's dozen links do not fill a phone's first screen.
MENU = (
    ("volunteer.home", lazy_gettext("My points"), ("volunteer",)),
    ("staff.queue", lazy_gettext("Approvals"), ("grid_staff", "community_admin", "street_admin")),
    ("merchant.redeem", lazy_gettext("Redeem"), ("merchant_staff",)),
    ("admin.home", lazy_gettext("Admin"), ("community_admin", "street_admin")),
    ("reports.index", lazy_gettext("Reports"), ("community_admin", "street_admin")),
    ("events.index", lazy_gettext("Check-in events"), ("grid_staff", "community_admin", "street_admin")),
    # Volunteers reach the roll from their home page; the staff print it for the notice board.
    ("honours.index", lazy_gettext("Honour roll"), ("grid_staff", "community_admin", "street_admin")),
    ("budgets.index", lazy_gettext("Budgets"), ("community_admin", "street_admin")),
    ("sheets.index", lazy_gettext("Spreadsheets"), ("community_admin", "street_admin")),
    ("settlement.index", lazy_gettext("Settlement"), ("merchant_staff", "community_admin", "street_admin")),
    # Programs talk to the API for tills and admin scripts; volunteers do not need the link.
    ("tokens.index", lazy_gettext("API tokens"), ("merchant_staff", "community_admin", "street_admin")),
)
MENU_SHOWN = 3


def menu_links(user) -> tuple[list[dict], list[dict]]:
    """The person's menu links as (shown, folded): each a url, a label and whether it is the
    page being shown (or a page under it). Nothing is folded for three or four links."""
    from flask import request, url_for

    links = []
    for endpoint, label, roles in MENU:
        if user.has_role(*roles):
            url = url_for(endpoint)
            within = request.path == url or request.path.startswith(url.rstrip("/") + "/")
            links.append({"url": url, "label": label, "current": within})
    # The page is under the link with the longest address that holds it (/staff/events/new is
    # a check-in page, not an approvals page under /staff/).
    holding = [link for link in links if link["current"]]
    for link in holding:
        link["current"] = link is max(holding, key=lambda h: len(h["url"]))
    if len(links) <= MENU_SHOWN + 1:
        return links, []
    return links[:MENU_SHOWN], links[MENU_SHOWN:]


def register(app: Flask) -> None:
    # On a page a moment is kept on one line; ``when`` and ``localtime`` write plain text.
    app.add_template_filter(lambda moment, fmt=DATE_TIME_STRFTIME: nobreak(localtime(moment, fmt)) if moment else "",
                            "localtime")
    app.add_template_filter(lambda moment, fmt="short": nobreak(when(moment, fmt)) if moment else "", "when")
    app.add_template_filter(day, "day")
    app.add_template_filter(number, "number")
    for fn in (nobreak, bilingual, transfer_reason, voucher_state, rule_terms_label, cap_note_text, audit_details, audit_field):
        app.add_template_global(fn)
    # Text people typed in Chinese, marked as Chinese on an English page.
    app.add_template_filter(zh_filter, "zh")
    app.add_template_global(zh_lang)
    app.add_template_global(icon)
    app.add_template_global(initials_name, "initials")
    app.add_template_global(language_next)
    app.add_template_global(menu_links)
    app.add_template_filter(hours_text, "hours")
