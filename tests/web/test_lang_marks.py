"""On a page in English, what people typed in Chinese (names, nodes, rewards, merchants, events,
notes) is marked as Chinese (``lang="zh-CN"``), so that a screen reader reads it with a Chinese
voice and the browser draws it with Chinese glyphs; on a page in Chinese nothing is marked.

The pages are read as a browser reads them: each piece of text has the language of the nearest
element around it that says one (``<html lang>`` at the top)."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from pointsapp.domain import checkin, claims, rules, vouchers
from pointsapp.domain.clock import local_today, now_utc
from pointsapp.extensions import db
from tests.factories import rule_terms, yesterday
from tests.web.conftest import use_english

CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uff60]")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class LanguageReader(HTMLParser):
    """Read a page's text, each piece with the language it is in (``texts``: (text, lang, tag)),
    the elements that say a language of their own (``marked``: (tag, lang)), and the ``<option>``
    texts with their language."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str]] = []
        self.texts: list[tuple[str, str, str]] = []
        self.marked: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        lang = attrs.get("lang")
        if lang is not None:
            self.marked.append((tag, lang))
        if tag in VOID:
            return
        self.stack.append((tag, lang if lang is not None else (self.stack[-1][1] if self.stack else "")))

    def handle_startendtag(self, tag, attrs):
        if dict(attrs).get("lang") is not None:
            self.marked.append((tag, dict(attrs)["lang"]))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        # Close up to the element's start tag (an element left open is closed with its parent).
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return
        raise AssertionError(f"</{tag}> closes nothing")

    def handle_data(self, data):
        if data.strip() and self.stack:
            self.texts.append((data.strip(), self.stack[-1][1], self.stack[-1][0]))


def read_languages(html: str) -> LanguageReader:
    reader = LanguageReader()
    reader.feed(html)
    reader.close()
    assert reader.stack == [], f"elements left open: {reader.stack}"
    return reader


def chinese_text_in(reader: LanguageReader, lang: str) -> list[str]:
    """The pieces of visible text with a Chinese character that are in ``lang`` (the document's
    title and scripts are not read out as text)."""
    return [text for text, in_lang, tag in reader.texts
            if in_lang == lang and tag not in ("title", "script", "style") and CHINESE.search(text)]


def text_in(reader: LanguageReader, lang: str) -> set[str]:
    return {text for text, in_lang, tag in reader.texts if in_lang == lang and tag not in ("title", "script")}


@pytest.fixture
def a_street_in_use(street, pending_claim, issued_voucher):
    """A street whose people did a bit of everything, all of it named in Chinese: a claim with a
    note waiting for approval, a voucher to use and one redeemed, a deduction and its correction
    with their reasons, an event with its place and an attendee, an attendance record with a cap,
    a claim on public notice with an objection, funding, a payment and an API token."""
    from pointsapp.domain import budgets, deductions, notice, settlement, tokens
    from pointsapp.models import Transfer

    redeemed = vouchers.issue_voucher(street.vol_a, street.rice.id)
    db.session.commit()
    vouchers.confirm_redemption(street.cashier, redeemed.code)
    rule = rules.create_rule(street.street_admin, street.street,
                             rule_terms(name_zh="乱扔垃圾", name_en="Littering", points=5, kind="deduct"))
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="楼道堆物",
                               submission_key="d1")
    db.session.commit()
    deduction = db.session.scalar(db.select(Transfer).where(Transfer.kind == "deduction"))
    claims.reverse_transfer(street.street_admin, deduction.id, "扣错了人")
    service = rules.create_rule(street.street_admin, street.street, rule_terms(
        name_zh="社区服务", name_en="Community service", category="helping", unit="hour", points=10,
        needs_approval=False, checkin_hours_cap=Decimal("2")))
    start = now_utc() - timedelta(minutes=5)
    event = checkin.create_event(street.staff_a, title="楼道清洁", rule_id=service.id, org_unit_id=street.grid_a.id,
                                 place="1号楼下", starts_at=start, ends_at=start + timedelta(hours=2),
                                 now=start - timedelta(hours=1))
    db.session.commit()
    checkin.sign_in(street.vol_a, event.id, now=start)
    claims.record_attendance(street.staff_a, rule_id=street.patrol.id, activity_date=local_today(), hours=Decimal("5"),
                             volunteer_ids=[street.vol_a.id], batch_key="patrol-1")
    budgets.record_funding(street.street_admin, street.community_a, fen=100_000, source="donation",
                           funded_on=local_today(), note="爱心企业捐款", key="fund-1")
    settlement.record_payment(street.street_admin, street.shop.id, points=10, paid_on=local_today(),
                              reference="转账第一笔", key="pay-1")
    tokens.create_token(street.street_admin, name="收银机")
    notice.set_notice_days(street.admin_a, street.community_a, 7)
    db.session.commit()
    on_notice = claims.submit_claim(street.vol_a2, rule_id=street.meeting.id, activity_date=yesterday(), note="楼道议事")
    db.session.commit()
    claims.approve_claim(street.staff_a, on_notice.id)
    db.session.commit()
    notice.file_objection(on_notice.id, "那天不在场", contact="王先生")
    db.session.commit()
    return {"pending": pending_claim, "open": issued_voucher, "redeemed": redeemed, "event": event}


def pages_of(street, used) -> dict[str, dict[str, set[str]]]:
    """The pages each person opens (by username), each with texts that must be marked Chinese
    on it in English."""
    vol_a, shop = street.vol_a.id, street.shop.id
    return {
        "vol_a": {
            "/volunteer/": {"大米 5kg", "友谊慈善超市", "扣分：乱扔垃圾（楼道堆物）", "扣错了人"},
            "/volunteer/history": {"大米 5kg", "友谊慈善超市", "扣分：乱扔垃圾（楼道堆物）", "扣错了人"},
            "/volunteer/vouchers": {"大米 5kg", "友谊慈善超市"},
            f"/volunteer/vouchers/{used['open'].voucher.id}": {"大米 5kg", "友谊慈善超市", "友谊大街1号"},
            f"/volunteer/vouchers/{used['redeemed'].voucher.id}": {"大米 5kg", "友谊慈善超市", "友谊大街1号"},
            "/volunteer/claims": {"楼栋会议"},
            "/volunteer/rewards": {"大米 5kg", "友谊慈善超市", "友谊大街1号", "上门理发", "12349便民为老服务平台"},
            "/volunteer/statement": {"大米 5kg", "友谊慈善超市"},
            "/volunteer/events": {"楼道清洁", "1号楼下"},
            "/volunteer/claim": set(),
            "/honours/": {"第一网格", "· 青山社区", "张秀华", "张**"},
        },
        "staff_a": {
            "/staff/": {"张秀华", "1单元", "楼栋会议"},
            "/staff/attendance": {"张秀华 · 1单元", "刘建国 · 1号楼"},
            "/staff/attendance/patrol-1": {"张秀华"},
            "/staff/deductions": {"张秀华 · 1单元", "刘建国 · 1号楼"},
            "/staff/notice": {"刘建国", "1号楼", "那天不在场", "王先生"},
            "/staff/events": {"楼道清洁", "1号楼下"},
            "/staff/events/new": {"第一网格", "第一网格 › 1号楼"},
            f"/staff/events/{used['event'].id}": {"楼道清洁", "1号楼下", "张秀华", "刘建国 · 1号楼"},
        },
        "cashier": {
            "/merchant/": set(),
            "/merchant/today": {"大米 5kg", "张*华", "钱收银"},
            "/settlement/": {"友谊慈善超市"},
            f"/settlement/{shop}": {"友谊慈善超市", "大米 5kg", "张*华", "青山社区", "转账第一笔"},
        },
        "street_admin": {
            "/admin/people": {"张秀华", "1单元", "王街道", "友谊街道"},
            f"/admin/people/{vol_a}": {"张秀华", "青山社区 › 第一网格 › 1号楼 › 1单元", "1单元", "友谊社区 › 第一网格"},
            f"/admin/people/{vol_a}/ledger": {"张秀华", "大米 5kg", "友谊慈善超市", "扣错了人"},
            "/admin/people/new": {"青山社区", "青山社区 › 第一网格 › 1号楼 › 1单元"},
            "/admin/org": {"友谊街道", "青山社区", "1单元", "青山社区 › 第一网格 › 1号楼"},
            "/admin/rules": {"友谊街道"},
            f"/admin/rules/{street.meeting.id}": {"参加会议"},
            "/admin/merchants": {"友谊慈善超市", "友谊大街1号", "12349便民为老服务平台"},
            f"/admin/merchants/{shop}": {"友谊慈善超市", "友谊大街1号", "大米 5kg", "钱收银"},
            f"/admin/rewards/{street.rice.id}": {"大米 5kg"},
            "/admin/audit": {"王街道", "陈网格", "张秀华", "大米 5kg"},
            "/budgets/": {"友谊街道", "青山社区", "爱心企业捐款"},
            "/reports/": {"友谊街道", "· 青山社区", "大米 5kg", "友谊慈善超市"},
            f"/settlement/{shop}/print": {"友谊慈善超市", "大米 5kg", "张秀华", "转账第一笔"},
            "/settlement/rates": {"友谊街道"},
            "/honours/print": {"友谊街道", "张秀华"},
            "/notice/": {"刘*国", "1号楼"},
            "/account/tokens/": {"收银机"},
        },
    }


def open_pages(client, auth, login, street, used, english: bool):
    """Open every page of ``pages_of`` as its person, in English or in Chinese; yield each
    page's path, what must be marked on it, and its HTML. The till, with a voucher looked up,
    and a volunteer's check-in page come with them."""
    for username, pages in pages_of(street, used).items():
        auth.logout()
        if english:
            use_english(client)
        login(username)
        for path, marked in pages.items():
            resp = client.get(path)
            assert resp.status_code == 200, path
            yield path, marked, resp.get_data(as_text=True)
            if path == f"/staff/events/{used['event'].id}":
                checkin_url = re.search(r'id="checkin-url" href="([^"]+)"', resp.get_data(as_text=True)).group(1)
        if username == "cashier":
            resp = auth.post("/merchant/lookup", {"code": used["open"].code})
            yield "till", {"大米 5kg", "张*华"}, resp.get_data(as_text=True)
    auth.logout()
    if english:
        use_english(client)
    login("vol_a")
    resp = client.get(checkin_url)
    assert resp.status_code == 200
    yield "check-in", {"楼道清洁", "1号楼下"}, resp.get_data(as_text=True)


def test_on_english_pages_every_chinese_text_is_marked_chinese(a_street_in_use, street, client, login, auth):
    unmarked, missing, opened = {}, {}, 0
    for path, must_be_marked, html in open_pages(client, auth, login, street, a_street_in_use, english=True):
        opened += 1
        reader = read_languages(html)
        assert reader.marked[0] == ("html", "en"), path
        if chinese_text_in(reader, "en"):
            unmarked[path] = chinese_text_in(reader, "en")
        if not must_be_marked <= text_in(reader, "zh-CN"):
            missing[path] = must_be_marked - text_in(reader, "zh-CN")
        # Marked as text, never inside an attribute (where a span would be written out as text).
        assert "&lt;span" not in html and "&#34;zh-CN&#34;" not in html, path
        # What is marked is an element of its own: a span, an option, or the language button.
        assert {tag for tag, lang in reader.marked if lang == "zh-CN"} <= {"span", "option", "button"}, path
    assert unmarked == {}, f"Chinese text read as English: {unmarked}"
    assert missing == {}, f"not marked Chinese: {missing}"
    assert opened == 43


def test_on_chinese_pages_nothing_is_marked(a_street_in_use, street, client, login, auth):
    for path, must_be_marked, html in open_pages(client, auth, login, street, a_street_in_use, english=False):
        reader = read_languages(html)
        # The page is Chinese (<html lang="zh-CN">), the one button to English says it is English.
        assert reader.marked[0] == ("html", "zh-CN"), path
        assert reader.marked[1:] == ([] if path.endswith("/print") else [("button", "en")]), path
        assert 'lang="zh-CN"' not in html.split(">", 2)[2], path
        # The same texts are on it, unmarked, within the page's own Chinese.
        visible = " ".join(text for text, _lang, _tag in reader.texts)
        assert [text for text in must_be_marked if text not in visible] == [], path


# --- the filter and its helpers ----------------------------------------------------------------


def in_language(app, language: str):
    return app.test_request_context(headers={"Accept-Language": "en" if language == "en" else "zh-CN"})


def test_zh_marks_chinese_text_on_an_english_page_and_escapes_it(app):
    from markupsafe import Markup

    from pointsapp.web.template_helpers import zh

    with in_language(app, "en"):
        assert zh("张秀华") == Markup('<span lang="zh-CN">张秀华</span>')
        assert zh("Li Lei 李雷") == Markup('<span lang="zh-CN">Li Lei 李雷</span>')
        assert zh('<script>alert("张")</script>') == Markup(
            '<span lang="zh-CN">&lt;script&gt;alert(&#34;张&#34;)&lt;/script&gt;</span>')
        # Chinese punctuation, full-width forms and the ideographs beyond the first plane count.
        for text in ("，", "（一）", "１２３", "￥5", "𠀀", "〇"):
            assert zh(text) == Markup(f'<span lang="zh-CN">{text}</span>'), text
        # Text with nothing Chinese in it is given back as it is, for the page to escape.
        for value in ("Li Lei", "<script>", "", 12, Decimal("1.5"), "カタカナ", "한국어"):
            assert zh(value) == value and type(zh(value)) is type(value), value
        assert zh(None) == ""


def test_zh_marks_nothing_on_a_chinese_page(app):
    from pointsapp.web.template_helpers import zh

    with in_language(app, "zh"):
        assert zh("张秀华") == "张秀华" and type(zh("张秀华")) is str
        assert zh("<b>张</b>") == "<b>张</b>" and type(zh("<b>张</b>")) is str


def test_templates_mark_text_and_options_but_never_attributes(app):
    from flask import render_template_string

    page = ('<p title="{{ name }}">{{ name|zh }}</p><p>{{ _("Ledger of %(name)s", name=name|zh) }}</p>'
            '<option{{ zh_lang(name) }}>{{ name }}</option><option{{ zh_lang("Li") }}>Li</option>{{ none|zh }}')
    with in_language(app, "en"):
        english = render_template_string(page, name="<张>", none=None)
    with in_language(app, "zh"):
        chinese = render_template_string(page, name="<张>", none=None)
    assert english == ('<p title="&lt;张&gt;"><span lang="zh-CN">&lt;张&gt;</span></p>'
                       '<p>Ledger of <span lang="zh-CN">&lt;张&gt;</span></p>'
                       '<option lang="zh-CN">&lt;张&gt;</option><option>Li</option>')
    assert chinese == ('<p title="&lt;张&gt;">&lt;张&gt;</p><p>&lt;张&gt; 的积分账目</p>'
                       '<option>&lt;张&gt;</option><option>Li</option>')


def test_a_sentence_marks_its_chinese_variables_and_escapes_the_rest(app):
    from markupsafe import Markup

    from pointsapp.web.template_helpers import zh_sentence

    sentence = "Redeemed %(reward)s at %(merchant)s"
    with in_language(app, "en"):
        assert zh_sentence(sentence, reward="<大米>", merchant="Tom & Co") == Markup(
            'Redeemed <span lang="zh-CN">&lt;大米&gt;</span> at Tom &amp; Co')
        plain = zh_sentence(sentence, reward="<rice>", merchant="Tom & Co")
        assert plain == "Redeemed <rice> at Tom & Co" and type(plain) is str
    with in_language(app, "zh"):
        plain = zh_sentence(sentence, reward="<大米>", merchant="Tom & Co")
        assert plain == "Redeemed <大米> at Tom & Co" and type(plain) is str


def test_choices_named_in_chinese_say_so_on_an_english_page(app):
    from markupsafe import Markup

    from pointsapp.web.template_helpers import zh_checkbox_choices, zh_choices

    pairs = [(1, "张秀华 · 1单元"), (2, "Li Lei")]
    with in_language(app, "en"):
        options = zh_choices(pairs)
        boxes = zh_checkbox_choices(pairs)
    assert [(c.value, c.label, c.render_kw) for c in options] == [
        (1, "张秀华 · 1单元", {"lang": "zh-CN"}), (2, "Li Lei", {})]
    assert [(c.value, c.label) for c in boxes] == [(1, Markup('<span lang="zh-CN">张秀华 · 1单元</span>')), (2, "Li Lei")]
    with in_language(app, "zh"):
        options = zh_choices(pairs)
        boxes = zh_checkbox_choices(pairs)
    assert [(c.value, c.label, c.render_kw) for c in options] == [(1, "张秀华 · 1单元", {}), (2, "Li Lei", {})]
    assert [(c.value, c.label) for c in boxes] == [(1, "张秀华 · 1单元"), (2, "Li Lei")]
