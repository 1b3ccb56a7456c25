"""The pages speak Chinese first: every string the code shows has a Chinese translation that keeps
its placeholders, and English appears only when the person chooses it.

The catalogue check extracts the strings exactly as ``make messages`` does (same babel.cfg, same
keywords, read from the Makefile), so a new string in a template, a view or a domain error that
nobody translated fails here, by name.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from pointsapp.domain.errors import PointsError

ROOT = Path(__file__).resolve().parent.parent
# Babel names the zh_CN locale zh_Hans_CN, and Flask-Babel looks for the catalogue under that name.
CATALOGUE = ROOT / "pointsapp" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
# A Python named placeholder with its conversion: %(name)s, %(n)d, %(x).1f ...
PLACEHOLDER = re.compile(r"%\(([^)]+)\)[#0 +-]*\d*(?:\.\d+)?[a-zA-Z]")


def makefile_keywords() -> list[str]:
    """Return the extraction keywords of the `messages` target, as make expands them."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    recipe = re.search(r"pybabel extract (.*)", text)
    assert recipe, "the Makefile has no `pybabel extract` command"
    keywords = re.findall(r"-k (\w+(?::[\w,]+)?)", recipe.group(1))  # with a spec: lazy_pgettext:1c,2
    if "$(ERROR_KEYWORDS)" in recipe.group(1):
        defined = re.search(r"^ERROR_KEYWORDS\s*:?=(.*)$", text, flags=re.MULTILINE)
        assert defined, "the Makefile uses ERROR_KEYWORDS without defining it"
        keywords += defined.group(1).split()
    return keywords


def all_error_classes(cls=PointsError) -> set[str]:
    return {cls.__name__}.union(*(all_error_classes(sub) for sub in cls.__subclasses__()))


def placeholders(text: str) -> set[str]:
    return {m.group(0) for m in PLACEHOLDER.finditer(text)}


def forms(value) -> list[str]:
    """Return the msgid (or msgstr) forms of an entry as a list, plural or not."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Extract the catalogue template as `make messages` does, into a temporary .pot."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    args = ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg")]
    for keyword in makefile_keywords():
        args += ["-k", keyword]
    CommandLineInterface().run([*args, "--no-location", "-o", str(pot), str(ROOT)])
    with pot.open("rb") as f:
        return read_po(f)


@pytest.fixture(scope="module")
def chinese():
    with CATALOGUE.open("rb") as f:
        return read_po(f, locale="zh_Hans_CN")


def test_the_makefile_extracts_the_messages_of_every_domain_error():
    missing = all_error_classes() - set(makefile_keywords())
    assert not missing, f"add these PointsError classes to ERROR_KEYWORDS in the Makefile: {sorted(missing)}"


def test_extraction_finds_templates_views_and_domain_errors(extracted):
    ids = {forms(m.id)[0] for m in extracted if m.id}
    assert "Points you can spend" in ids  # a template
    assert "Thank you! Your claim is waiting for approval by your grid staff." in ids  # a view
    assert "You cannot approve your own claim; another staff member must." in ids  # Forbidden("...")
    assert "The password must have at least %(n)s characters." in ids  # InvalidInput("...")
    assert "This voucher is for %(merchant)s, not for this merchant. Do not hand over goods." in ids  # _l


def test_every_extracted_string_has_a_chinese_translation(extracted, chinese):
    problems = []
    for message in extracted:
        if not message.id:
            continue
        translated = chinese.get(message.id, context=message.context)  # "Place" of an event and of a roll
        if translated is None:
            problems.append(f"not in the catalogue (run `make messages`): {message.id!r}")
        elif translated.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        elif message.pluralizable and len(forms(translated.string)) != chinese.num_plurals:
            problems.append(f"needs exactly {chinese.num_plurals} plural form(s): {message.id!r}")
        elif not all(s.strip() for s in forms(translated.string)):
            problems.append(f"untranslated: {message.id!r}")
    assert not problems, "the Chinese catalogue is incomplete:\n" + "\n".join(problems)


def test_the_chinese_catalogue_is_not_fuzzy_and_has_one_plural_form(chinese):
    assert not chinese.fuzzy
    assert chinese.num_plurals == 1
    assert [m.id for m in chinese if m.id and m.fuzzy] == []


def test_every_translation_keeps_the_placeholders_of_its_msgid(chinese):
    problems = []
    for message in chinese:
        if not message.id:
            continue
        expected = set().union(*(placeholders(i) for i in forms(message.id)))
        for text in forms(message.string):
            if not text:
                continue
            if placeholders(text) != expected:
                problems.append(f"{message.id!r}: {text!r} has {sorted(placeholders(text))}, wants {sorted(expected)}")
            elif expected and "%" in PLACEHOLDER.sub("", text).replace("%%", ""):
                problems.append(f"{message.id!r}: {text!r} has a stray % that breaks formatting")
    assert not problems, "\n".join(problems)


def test_pages_are_chinese_until_the_person_chooses_english(client, auth, street):
    assert auth.login("vol_a").status_code == 302

    page = client.get("/volunteer/").get_data(as_text=True)
    assert '<html lang="zh-CN" ' in page
    assert "可用积分" in page and "我的兑换券" in page
    assert "Points you can spend" not in page and "My vouchers" not in page

    assert auth.post("/lang/en", {}, token_from="/login").status_code == 302

    page = client.get("/volunteer/").get_data(as_text=True)
    assert '<html lang="en" ' in page
    assert "Points you can spend" in page and "My vouchers" in page
    assert "可用积分" not in page and "我的兑换券" not in page


def test_names_follow_the_page_language_too(client, auth, street):
    assert auth.login("vol_a").status_code == 302
    assert "参加会议：10 积分" in client.get("/volunteer/claim").get_data(as_text=True)
    auth.post("/lang/en", {}, token_from="/login")
    assert "Attend a meeting: 10 points" in client.get("/volunteer/claim").get_data(as_text=True)


def test_english_chosen_on_the_login_page_stays_after_logging_in(client, auth, street):
    assert auth.post("/lang/en", {}, token_from="/login").status_code == 302
    assert "Log in" in client.get("/login").get_data(as_text=True)
    assert auth.login("vol_a").status_code == 302
    assert "Points you can spend" in client.get("/volunteer/").get_data(as_text=True)


def test_a_domain_refusal_is_shown_in_chinese(client, auth, street):
    assert auth.login("vol_a").status_code == 302
    resp = client.post(
        f"/volunteer/rewards/{street.rice.id}/redeem", data={"csrf_token": auth.csrf("/volunteer/rewards")}
    )
    page = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert "积分不够" in page and "Not enough points" not in page


def test_a_plain_string_domain_error_is_translated_when_shown(app):
    """InvalidInput("...") and Forbidden("...") carry English; the message is looked up at render time."""
    from pointsapp.domain.errors import Forbidden, InvalidInput

    with app.test_request_context("/"):
        assert InvalidInput("The password must have at least %(n)s characters.", n=8).message == "密码至少要 8 位。"
        assert Forbidden("You cannot approve your own claim; another staff member must.").message.startswith("不能")


def test_template_strings_follow_the_locale_of_their_request_even_when_it_changes_within_it(app):
    import flask_babel
    from flask import render_template_string, session

    page = "{{ _('Refused') }}|{{ ngettext('%(num)s point', '%(num)s points', 2) }}"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert render_template_string(page) == "Refused|2 points"
        session["lang"] = "zh_CN"
        flask_babel.refresh()
        assert render_template_string(page).startswith("无法办理|")
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert render_template_string(page).startswith("无法办理|")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert render_template_string(page) == "Refused|2 points"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_dates_and_ledger_lines_are_written_as_flask_babel_writes_them(app, language):
    """``when`` parses each pattern once per locale, and the ledger lines translate through the
    request's translations: what they write is what Flask-Babel writes, in both languages, for
    the pages' one form (``short``: ``DATE_TIME``), the locale's other named formats and a pattern
    of the templates' own."""
    from datetime import datetime, timedelta, timezone

    import flask_babel

    from pointsapp.i18n import gettext
    from pointsapp.web.template_helpers import DATE_TIME, NAMED_FORMATS, localtime, when

    moments = [datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc) + timedelta(days=d, hours=h, minutes=m)
               for d, h, m in ((0, 0, 0), (40, 15, 7), (200, 23, 59), (364, 4, 30))]
    with app.test_request_context(headers={"Accept-Language": language}):
        for fmt in (*NAMED_FORMATS, "HH:mm", "y-MM-dd 'at' HH:mm"):
            # The short form is the pages' one form in every language, not the locale's own
            # (2026/2/10 in Chinese, 2/10/26 in American English).
            written_as = DATE_TIME if fmt == "short" else fmt
            for moment in moments:
                assert when(moment, fmt) == flask_babel.format_datetime(moment, written_as), (fmt, moment)
        for moment in moments:
            assert when(moment) == localtime(moment)  # the two filters of the templates agree
        assert when(None) == ""
        for text, variables in (("Refused", {}), ("Correction: %(reason)s", {"reason": "重复"})):
            assert gettext(text, **variables) == flask_babel.gettext(text, **variables)
        assert when(moments[1]) == "2026-02-10 23:07"  # in the street's time zone (UTC+8), both languages
        if language == "zh-CN":
            assert gettext("Refused") == "无法办理"


def test_the_committed_compiled_catalogue_is_the_chinese_catalogue_compiled():
    """A server installed from the repository serves Chinese with no build step: the compiled
    catalogue is committed, and must be what ``make translations`` makes of the .po file."""
    import io

    from babel.messages.mofile import write_mo

    with open(CATALOGUE, "rb") as f:
        catalog = read_po(f)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    mo = CATALOGUE.with_suffix(".mo")
    assert mo.exists() and mo.read_bytes() == compiled.getvalue(), "run `make translations` and commit the .mo file"

