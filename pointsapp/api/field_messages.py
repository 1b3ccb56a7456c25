"""Field messages of the API's 422 answers in the request's language.

marshmallow writes its messages in English. Each one the API can give is listed here, marked for
the catalogue: the fixed ones as they are, those with numbers or choices as a pattern and the
sentence to say instead. ``translate`` turns one message into the request's language; a message
not listed stays as marshmallow wrote it (``tests/api`` checks that every listed English text is
still what marshmallow writes).
"""
from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l

FIXED = {
    # marshmallow's fields and schemas
    "Missing data for required field.": _l("Missing data for required field."),
    "Field may not be null.": _l("Field may not be null."),
    "Invalid value.": _l("Invalid value."),
    "Unknown field.": _l("Unknown field."),
    "Invalid input type.": _l("Invalid input type."),
    "Invalid type.": _l("Invalid type."),
    "Not a valid string.": _l("Not a valid string."),
    "Not a valid utf-8 string.": _l("Not a valid utf-8 string."),
    "Not a valid integer.": _l("Not a valid integer."),
    "Not a valid number.": _l("Not a valid number."),
    "Number too large.": _l("Number too large."),
    "Not a valid boolean.": _l("Not a valid boolean."),
    "Not a valid date.": _l("Not a valid date."),
    "Not a valid datetime.": _l("Not a valid datetime."),
    "Not a valid aware datetime.": _l("Not a valid aware datetime."),
    "Not a valid list.": _l("Not a valid list."),
    "Not a valid mapping type.": _l("Not a valid mapping type."),
    "Special numeric values (nan or infinity) are not permitted.":
        _l("Special numeric values (nan or infinity) are not permitted."),
    # the API's own
    "The body must be a JSON object.": _l("The body must be a JSON object."),
    "Give this field once.": _l("Give this field once."),
    "Give this parameter once.": _l("Give this parameter once."),
    "Text may not contain NUL characters.": _l("Text may not contain NUL characters."),
    "Text must be valid Unicode.": _l("Text must be valid Unicode."),
    "The end date is before the start date.": _l("The end date is before the start date."),
    "Send the photo as a file part of a multipart/form-data body.":
        _l("Send the photo as a file part of a multipart/form-data body."),
    "Send the picture as a file part of a multipart/form-data body.":
        _l("Send the picture as a file part of a multipart/form-data body."),
    "Out of range.": _l("Out of range."),
}

# (marshmallow's message as a pattern, what to say instead with the same numbers or choices)
PATTERNS = [
    (re.compile(r"Must be greater than or equal to (?P<min>\S+) and less than or equal to (?P<max>\S+)\."),
     _l("Must be from %(min)s to %(max)s.")),
    (re.compile(r"Must be greater than or equal to (?P<min>\S+)\."), _l("Must be at least %(min)s.")),
    (re.compile(r"Must be less than or equal to (?P<max>\S+)\."), _l("Must be at most %(max)s.")),
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\."),
     _l("Must have from %(min)s to %(max)s characters (or items).")),
    (re.compile(r"Length must be (?P<equal>\d+)\."), _l("Must have exactly %(equal)s characters (or items).")),
    (re.compile(r"Longer than maximum length (?P<max>\d+)\."), _l("Must have at most %(max)s characters (or items).")),
    (re.compile(r"Shorter than minimum length (?P<min>\d+)\."), _l("Must have at least %(min)s characters (or items).")),
    (re.compile(r"Must be one of: (?P<choices>.*)\."), _l("Must be one of: %(choices)s.")),
]


def translate(message: str) -> str:
    """One field message in the request's language."""
    if message in FIXED:
        return str(FIXED[message])
    for pattern, sentence in PATTERNS:
        found = pattern.fullmatch(message)
        if found:
            return str(sentence) % found.groupdict()  # the translated sentence, then its numbers
    return message
