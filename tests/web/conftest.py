"""Helpers for the request tests: read values out of pages, log in, post real forms."""
from __future__ import annotations

import html as html_lib
import re

import pytest

from pointsapp.domain import vouchers
from pointsapp.extensions import db
from pointsapp.models import Activity
from tests.factories import give_points, yesterday


def page_text(resp) -> str:
    """Return a response's visible text, tags stripped and whitespace collapsed. The span that marks
    Chinese text on an English page (``|zh``) is part of its sentence: it leaves no space."""
    body = resp.get_data(as_text=True)
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.DOTALL)
    body = re.sub(r'<span lang="zh-CN">([^<]*)</span>', r"\1", body)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def input_value(resp, name: str) -> str:
    """Return the value of the first input named ``name`` on the page."""
    body = resp.get_data(as_text=True)
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', body)
    assert match, f"no input named {name}"
    return html_lib.unescape(match.group(1))


def hidden_inputs(resp) -> dict[str, str]:
    """Return the hidden inputs of the page by name (the first of each name)."""
    body = resp.get_data(as_text=True)
    found: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", body):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and value:
            found.setdefault(name.group(1), html_lib.unescape(value.group(1)))
    return found


def field_errors(resp) -> list[str]:
    """Return the messages shown at fields and for the whole form."""
    body = resp.get_data(as_text=True)
    found = re.findall(r'<p class="(?:field-error|error)"(?: id="[^"]*")? role="alert">(.*?)</p>', body, flags=re.DOTALL)
    return [html_lib.unescape(m).strip() for m in found]


def errors_at(resp, field_id: str) -> list[str]:
    """Return the error messages shown at one field of a form (by the field's id)."""
    body = resp.get_data(as_text=True)
    match = re.search(rf'<div class="field has-error" id="field-{re.escape(field_id)}">(.*?)</div>', body, flags=re.DOTALL)
    if not match:
        return []
    errors = re.findall(r'<p class="field-error" id="([^"]+)" role="alert">(.*?)</p>', match.group(1))
    # Each error is tied to its input: the input names it (aria-describedby) and is marked invalid.
    input_tag = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{re.escape(field_id)}"[^>]*>', match.group(1))
    if errors and input_tag:
        described = re.search(r'aria-describedby="([^"]*)"', input_tag.group(0))
        assert described and {i for i, _ in errors} <= set(described.group(1).split()), input_tag.group(0)
        assert 'aria-invalid="true"' in input_tag.group(0), input_tag.group(0)
    return [html_lib.unescape(m).strip() for _, m in errors]


def use_english(client) -> None:
    """Show the pages in English from now on (the session's language choice)."""
    with client.session_transaction() as session:
        session["lang"] = "en"


@pytest.fixture
def login(auth):
    """Log in as a user of the street and return the auth helper."""

    def do(username: str):
        resp = auth.login(username)
        assert resp.status_code == 302, f"login failed for {username}"
        return auth

    return do


@pytest.fixture
def pending_claim(street):
    """Return a pending meeting claim of vol_a (community A), made yesterday."""
    from pointsapp.domain import claims

    act = claims.submit_claim(street.vol_a, rule_id=street.meeting.id, activity_date=yesterday(), note="楼栋会议")
    db.session.commit()
    return db.session.get(Activity, act.id)


@pytest.fixture
def issued_voucher(street):
    """Give vol_a 50 points and issue a voucher for rice (10 points at the charity supermarket)."""
    give_points(street, street.vol_a, 50)
    issued = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    return issued
