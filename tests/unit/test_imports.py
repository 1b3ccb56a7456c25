"""Importing people and org nodes: row problems with row numbers, all or nothing, idempotent."""
import io
import re
from datetime import timedelta

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

import pytest

from pointsapp.domain import people
from pointsapp.domain.errors import InvalidInput
from pointsapp.domain.imports import import_people, template_headers
from pointsapp.extensions import db
from pointsapp.models import Account, OrgUnit, User
from pointsapp.spreadsheets import csv_bytes, read_rows, xlsx_bytes, Sheet

HEADER = ["社区", "网格", "楼栋", "单元", "用户名", "姓名", "电话", "职务"]
GOOD = [
    HEADER,
    ["青山社区", "第二网格", "", "", "", "", "", ""],  # a node only
    ["青山社区", "第二网格", "3号楼", "", "lz3", "王楼长", "13800000003", "楼长"],
    ["青山社区", "第二网格", "3号楼", "2单元", "dy32", "李单元", "", "单元长"],
    ["新华社区", "第1网格", "1号楼", "", "lz-xh", "赵楼长", "", "building_leader"],
]


def counts():
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count()).select_from(User)),
        db.session.scalar(select(func.count()).select_from(OrgUnit)),
        db.session.scalar(select(func.count()).select_from(Account)),
    )


def test_a_good_file_creates_nodes_and_volunteers_and_a_second_import_changes_nothing(street):
    before = counts()
    result = import_people(street.street_admin, GOOD)
    assert result.errors == []
    assert (result.rows, result.people_created, result.units_created, result.unchanged) == (4, 3, 6, 0)
    db.session.commit()
    lz3 = db.session.scalar(select(User).where(User.username == "lz3"))
    assert (lz3.full_name, lz3.title, lz3.org_unit.name, lz3.org_unit.parent.name) == ("王楼长", "building_leader", "3号楼", "第二网格")
    assert lz3.has_role("volunteer")
    assert counts() == (before[0] + 3, before[1] + 6, before[2] + 3)
    # Each new person gets an activation code to hand out, instead of a password from the file.
    assert [(u, n) for u, n, _ in result.codes] == [("lz3", "王楼长"), ("dy32", "李单元"), ("lz-xh", "赵楼长")]
    assert len({c for _, _, c in result.codes}) == 3
    assert all(re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", c) for _, _, c in result.codes)
    assert lz3.must_change_password and lz3.activation_hash is not None

    again = import_people(street.street_admin, GOOD)
    db.session.commit()
    assert again.errors == []
    assert (again.people_created, again.units_created, again.unchanged) == (0, 0, 4)
    assert again.codes == []
    assert counts() == (before[0] + 3, before[1] + 6, before[2] + 3)


def test_one_bad_row_imports_nothing_and_every_problem_is_named_with_its_row(street):
    before = counts()
    rows = GOOD + [
        ["青山社区", "", "5号楼", "", "lz5", "钱楼长", "", ""],  # a gap in the path
        ["青山社区", "第二网格", "", "", "x", "短名", "", ""],  # username too short
        ["青山社区", "第二网格", "", "", "lz7", "孙", "", "厨师"],  # unknown title
        ["青山社区", "第二网格", "", "", "vol_a", "别人", "", ""],  # taken, other details
        ["青山社区", "第二网格", "", "", "lz9", "", "13800000009", ""],  # no name
    ]
    result = import_people(street.street_admin, rows)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [6, 7, 8, 9, 10]
    messages = dict(result.errors)
    assert "vol_a" in messages[9]
    assert counts() == before
    assert db.session.scalar(select(User).where(User.username == "lz3")) is None


def test_a_file_with_initial_passwords_is_refused_on_row_one_with_what_to_do(street):
    result = import_people(street.street_admin, [HEADER + ["初始密码"], ["青山社区", "第二网格", "", "", "lz3", "王", "", "", "secret-pass-1"]])
    db.session.rollback()
    assert result.errors and result.errors[0][0] == 1 and "初始密码" in result.errors[0][1]
    assert result.people_created == 0


def test_an_imported_person_logs_in_once_with_the_code_and_then_only_with_their_own_password(street):
    result = import_people(street.street_admin, GOOD)
    db.session.commit()
    username, _name, code = result.codes[0]
    assert people.authenticate(username, "") is None
    assert people.authenticate(username, "abcd-efgh-jkmn-pqrs") is None
    user = people.authenticate(username, code.upper().replace("-", " - "))  # as read out or typed
    assert user is not None and user.must_change_password
    with pytest.raises(InvalidInput):
        people.change_password(user, "wrong-code", "a-new-password-77")
    people.change_password(user, code, "a-new-password-77")
    db.session.commit()
    assert user.activation_hash is None and not user.must_change_password
    assert people.authenticate(username, code) is None  # one-time: gone once a password is set
    assert people.authenticate(username, "a-new-password-77").id == user.id


def test_an_activation_code_expires_and_a_password_reset_replaces_it(street):
    result = import_people(street.street_admin, GOOD)
    db.session.commit()
    (username, _n, code), (other, _m, other_code) = result.codes[:2]
    user = db.session.scalar(select(User).where(User.username == username))
    assert people.activation_matches(user, code)
    assert not people.activation_matches(user, code, now=user.activation_expires_at + timedelta(seconds=1))
    user.activation_expires_at = user.activation_expires_at - timedelta(days=15)
    db.session.commit()
    assert people.authenticate(username, code) is None
    second = db.session.scalar(select(User).where(User.username == other))
    _user, temporary = people.reset_password(street.street_admin, second.id)
    db.session.commit()
    assert people.authenticate(other, other_code) is None
    assert people.authenticate(other, temporary).id == second.id


def test_an_unknown_column_is_reported_on_row_one(street):
    result = import_people(street.street_admin, [["社区", "爱好"], ["青山社区", "下棋"]])
    assert result.errors and result.errors[0][0] == 1 and "爱好" in result.errors[0][1]


def test_a_community_admin_cannot_import_into_another_community(street):
    rows = [HEADER, ["友谊社区", "第一网格", "7号楼", "", "lz7", "吴", "", ""]]
    result = import_people(street.admin_a, rows)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [2]


def test_the_template_and_read_rows_round_trip_through_xlsx_and_csv(street):
    headers = template_headers(zh=True)
    assert headers == HEADER
    wb = load_workbook(io.BytesIO(xlsx_bytes([Sheet("import", headers, GOOD[1:])])))
    assert [list(r) for r in wb.active.iter_rows(values_only=True)][0] == HEADER
    assert read_rows(xlsx_bytes([Sheet("import", headers, GOOD[1:])]), "roster.xlsx")[2][4] == "lz3"
    data = csv_bytes(headers, GOOD[1:])
    assert data.startswith(b"\xef\xbb\xbf")
    assert read_rows(data, "roster.csv") == [[c for c in r] for r in GOOD]
    gbk = "\n".join(",".join(r) for r in GOOD).encode("gb18030")
    assert read_rows(gbk, "roster.csv")[3][5] == "李单元"


def test_the_cli_checks_then_imports_all_rows_with_a_progress_bar(street, runner, tmp_path):
    wb = Workbook()
    for row in GOOD:
        wb.active.append(row)
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    db.session.commit()
    before = counts()
    dry = runner.invoke(args=["points", "import-people", str(path), "--dry-run", "--as", "street_admin"])
    assert dry.exit_code == 0, dry.output
    assert "would import 4 row(s): 3 new people, 6 new nodes" in dry.output
    assert counts() == before
    real = runner.invoke(args=["points", "import-people", str(path), "--as", "street_admin"])
    assert real.exit_code == 0, real.output
    assert counts()[0] == before[0] + 3
    assert "activation codes" in real.output and "  lz3\t王楼长\t" in real.output
    again = runner.invoke(args=["points", "import-people", str(path), "--as", "street_admin"])
    assert "0 new people, 0 new nodes, 4 unchanged" in again.output

    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(HEADER, [["青山社区", "", "5号楼", "", "lz5", "钱", "", ""]]))
    out = runner.invoke(args=["points", "import-people", str(bad), "--as", "street_admin"])
    assert out.exit_code == 1
    assert "row 2:" in out.output and "nothing imported" in out.output
