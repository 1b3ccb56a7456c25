"""Language choice: Simplified Chinese first, English second."""
from __future__ import annotations

from babel import Locale
from flask import Flask, g, has_request_context, request, session
from flask_babel import get_locale, get_translations

from .extensions import babel

LANG_COOKIE = "lang"
LANG_COOKIE_AGE = 365 * 24 * 3600
# Parsed once: Flask-Babel takes a Locale as it is, where parsing a name again on every request
# costs a pass over every locale Babel knows.
LOCALES = {"zh_CN": Locale.parse("zh_CN"), "en": Locale.parse("en")}


def select_locale() -> Locale:
    """Return the page's language: the person's choice, else the browser's, else Chinese.

    Outside a request (CLI commands, the operator's terminal) messages are in English.
    """
    if not has_request_context():
        return LOCALES["en"]
    chosen = session.get("lang") or request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return LOCALES[chosen]
    best = request.accept_languages.best_match(["zh_CN", "zh", "en"])
    if best == "en":
        return LOCALES["en"]
    return LOCALES["zh_CN"]


def page_is_zh() -> bool:
    """Say whether the page is shown in Chinese (its locale's language, without building its name)."""
    locale = get_locale()
    return locale is None or locale.language == "zh"


def gettext(string: str, **variables) -> str:
    """Flask-Babel's ``gettext`` (the string translated, then ``%`` its ``variables``), with the
    request's translations looked up once (``_request_translations``)."""
    s = _request_translations().ugettext(string)
    return s % variables if variables else s


def _request_translations():
    """The request's translations (Flask-Babel's), kept on ``g`` with the locale they are for,
    so that a locale chosen anew within the request (``flask_babel.refresh``) is followed."""
    if not has_request_context():
        return get_translations()
    locale = get_locale()
    kept = g.get("_points_translations")
    if kept is None or kept[0] is not locale:
        kept = g._points_translations = (locale, get_translations())
    return kept[1]


def init_i18n(app: Flask) -> None:
    from pathlib import Path

    app.config.setdefault(
        "BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).resolve().parent / "translations")
    )
    babel.init_app(app, locale_selector=select_locale)

    # The templates' gettext looks the request's translations up once: Flask-Babel's own
    # callables look up its domain, locale and catalogue again on every string of every page.
    app.jinja_env.install_gettext_callables(
        gettext=gettext,
        ngettext=lambda s, p, n: _request_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _request_translations().unpgettext(c, s, p, n),
    )

    @app.context_processor
    def _lang():
        return {"current_locale": str(get_locale() or "zh_CN"), "is_zh": page_is_zh()}
