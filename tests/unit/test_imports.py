"""Importing people and org nodes: row problems with row numbers, all or nothing, idempotent."""
import io
import json
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


def test_names_and_phones_longer_than_the_database_holds_are_named_with_their_row(street):
    """On PostgreSQL an over-long value would fail the whole import with the database's error;
    it is refused on its row, like any other bad value, on both databases."""
    before = counts()
    rows = GOOD + [
        ["青山社区", "第二网格", "", "", "lz6", "王" * 101, "", ""],  # full name over 100
        ["青山社区", "网" * 101, "", "", "", "", "", ""],  # node name over 100
        ["青山社区", "第二网格", "", "", "lz8", "周楼长", "1" * 33, ""],  # phone over 32
        ["青山社区", "第二网格", "", "", "lz9", "王" * 100, "1" * 32, ""],  # at the limits: fine
    ]
    result = import_people(street.street_admin, rows)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [6, 7, 8]
    messages = dict(result.errors)
    assert "100" in messages[6] and "100" in messages[7] and "32" in messages[8]
    assert counts() == before
    with pytest.raises(InvalidInput) as exc:
        people.create_person(street.street_admin, username="longname", full_name="李" * 101, password=None,
                             org_unit=street.grid_a)
    assert exc.value.field == "full_name"
    db.session.rollback()
    assert counts() == before


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


def test_an_activation_code_is_accepted_however_its_groups_are_separated(street):
    """Typed from the slip with its dashes, without them, in capitals, or with spaces between
    the groups as it is read aloud; a code stored with its dashes (before) is found the same way."""
    result = import_people(street.street_admin, GOOD)
    db.session.commit()
    username, _n, code = result.codes[0]
    user = db.session.scalar(select(User).where(User.username == username))
    letters = code.replace("-", "")
    for typed in (code, letters, letters.upper(), code.replace("-", " "), f" {code.upper()} ", code.replace("-", "—")):
        assert people.activation_matches(user, typed), typed
    assert not people.activation_matches(user, letters[:-1] + ("a" if letters[-1] != "a" else "b"))
    assert not people.activation_matches(user, letters[:-1])
    user.activation_hash = people._keyed_activation_hash(code)  # as codes given out earlier were stored
    assert people.activation_matches(user, letters) and people.activation_matches(user, code.replace("-", " "))
    assert people.authenticate(username, letters.upper()).id == user.id


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
    # The importer's username in any case; someone who may not import is told so, without a traceback.
    assert runner.invoke(args=["points", "import-people", str(path), "--dry-run", "--as", "STREET_ADMIN"]).exit_code == 0
    refused = runner.invoke(args=["points", "import-people", str(path), "--as", "vol_a"])
    assert refused.exit_code == 1 and "vol_a:" in refused.output and "Traceback" not in refused.output
    assert isinstance(refused.exception, SystemExit)  # a message, not a crash


# --- many rows at once: the same outcome as creating each person on their own -------------------


def roster(n, prefix="imp", start=0):
    """``n`` rows of volunteers spread over new and existing nodes: a few people per unit."""
    rows = [HEADER]
    for i in range(start, start + n):
        building, unit = divmod(i, 6)
        rows.append(["青山社区", "第一网格" if i % 2 else "第七网格", f"{building % 20 + 1}号楼", f"{unit % 3 + 1}单元",
                     f"{prefix}{i}", f"王{i}", f"1380000{i:04d}" if i % 3 else "", ["楼长", "单元长", ""][i % 3]])
    return rows


def people_written(usernames):
    """What the database holds for these people, in a form that does not depend on ids or times."""
    from pointsapp.models import AuditRecord, RoleGrant

    db.session.expire_all()
    users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(usernames)))}
    out = {}
    for name in usernames:
        u = users[name]
        grants = sorted((g.role, g.org_unit_id, g.merchant_id) for g in db.session.scalars(
            select(RoleGrant).where(RoleGrant.user_id == u.id)))
        accounts = [(a.kind, a.balance, a.held, a.earned) for a in db.session.scalars(
            select(Account).where(Account.user_id == u.id))]
        records = [(r.action, r.actor_id, r.target_type, r.org_path, json.loads(r.summary)) for r in db.session.scalars(
            select(AuditRecord).where(AuditRecord.target_type == "user", AuditRecord.target_id == u.id))]
        out[name] = dict(
            user=(u.full_name, u.phone, u.title, u.org_unit_id, u.is_active, u.password_hash, u.must_change_password,
                  u.honour_display, u.session_version),
            grants=grants, accounts=accounts, records=records,
        )
    return out


def test_three_hundred_rows_write_what_creating_each_person_on_their_own_writes(street, check_ledger, monkeypatch):
    import pointsapp.domain.imports as imports
    from pointsapp.domain.audit import verify_chain
    from pointsapp.models import AuditRecord

    monkeypatch.setattr(imports, "BATCH", 64)  # several batches
    rows = roster(300)
    last_seq = db.session.scalar(select(func.max(AuditRecord.seq))) or 0
    result = import_people(street.street_admin, rows)
    assert result.errors == []
    assert (result.rows, result.people_created, result.unchanged) == (300, 300, 0)
    # 第七网格 is new: 20 buildings of 3 units under it. 第一网格 exists, with 1号楼 and its 1单元:
    # 19 buildings of 3 units, and 2单元 and 3单元 of 1号楼.
    assert result.units_created == (1 + 20 + 60) + (19 + 57 + 2)
    db.session.commit()
    usernames = [r[4] for r in rows[1:]]
    bulk = people_written(usernames)
    titles = {"楼长": "building_leader", "单元长": "unit_leader", "": None}
    for r in rows[1:]:
        written = bulk[r[4]]
        unit_id = written["user"][3]
        unit = db.session.get(OrgUnit, unit_id)
        assert (unit.name, unit.parent.name, unit.parent.parent.name) == (r[3], r[2], r[1])
        assert written["user"] == (r[5], r[6] or None, titles[r[7]], unit_id, True, people.NO_PASSWORD, True, "name", 0)
        assert written["grants"] == [("volunteer", unit_id, None)]
        assert written["accounts"] == [("volunteer", 0, 0, 0)]
        assert written["records"] == [("person.created", street.street_admin.id, "user", unit.path, {
            "username": r[4], "full_name": r[5], "title": titles[r[7]], "roles": ["volunteer"],
            "org_unit_id": unit_id, "merchant_id": None})]

    # The same people, one by one, through the admin pages' function, into the same nodes.
    one_by_one = []
    for r in rows[1:]:
        u = db.session.scalar(select(User).where(User.username == r[4]))
        p = people.create_person(street.street_admin, username="one" + r[4], full_name=r[5], password=None,
                                 org_unit=u.org_unit, phone=r[6] or None, title=u.title)
        _code, stored = people.new_activation_code()  # what the import stores beside each person
        for name, value in stored.items():
            setattr(p, name, value)
        one_by_one.append(p.username)
    db.session.commit()
    single = people_written(one_by_one)
    for name in usernames:
        mine, theirs = bulk[name], single["one" + name]
        theirs["records"][0][4]["username"] = name
        assert mine == theirs

    # Each person's code is theirs; the audit records follow the file's order, chained.
    users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(usernames)))}
    assert [c[0] for c in result.codes] == usernames
    assert all(people.activation_matches(users[name], code) for name, _, code in result.codes)
    assert all(users[name].full_name == full for name, full, _ in result.codes)
    recs = list(db.session.scalars(select(AuditRecord).where(AuditRecord.seq > last_seq).order_by(AuditRecord.seq)))
    assert [r.target_id for r in recs[:300]] == [users[name].id for name in usernames]
    assert [r.seq for r in recs] == list(range(last_seq + 1, last_seq + 601))
    assert verify_chain().problem is None
    check_ledger()


def test_progress_is_reported_for_every_row_across_batches(street, monkeypatch):
    import pointsapp.domain.imports as imports

    monkeypatch.setattr(imports, "BATCH", 40)
    steps, seen = imports.import_steps(street.street_admin, roster(150)), []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as finished:
            result = finished.value
            break
    assert seen == list(range(150))
    assert result.ok and result.people_created == 150
    db.session.rollback()


def test_a_username_twice_in_the_file_is_one_person_or_a_refused_row(street):
    before = counts()
    rows = [
        HEADER,
        ["青山社区", "第二网格", "", "", "twice", "王二", "", ""],
        ["青山社区", "第二网格", "", "", "TWICE", "王二", "", ""],  # the same details: unchanged
    ]
    result = import_people(street.street_admin, rows)
    assert result.errors == []
    assert (result.people_created, result.units_created, result.unchanged) == (1, 1, 1)
    assert [c[0] for c in result.codes] == ["twice"]
    db.session.commit()
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)

    clash = rows + [
        ["青山社区", "第二网格", "", "", "Twice", "李二", "", ""],  # another name
        ["青山社区", "第三网格", "", "", "twice", "王二", "", ""],  # another node
        ["青山社区", "第二网格", "", "", "fresh", "赵", "", ""],
        ["青山社区", "第二网格", "", "", "FRESH", "赵", "13800000000", ""],  # another phone than row 6
    ]
    result = import_people(street.street_admin, clash)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [4, 5, 7]
    assert all("already belongs to a person with other details" in m for _, m in result.errors)
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_bad_rows_in_every_batch_are_all_named_and_nothing_is_written(street, monkeypatch):
    import pointsapp.domain.imports as imports
    from pointsapp.models import AuditRecord

    monkeypatch.setattr(imports, "BATCH", 50)
    audit_before = db.session.scalar(select(func.count()).select_from(AuditRecord))
    before = counts()
    rows = roster(300)
    rows[3][4] = "x"  # row 4: username too short
    rows[120][7] = "厨师"  # row 121: unknown title
    rows[200][5] = ""  # row 201: no name
    rows[250][1] = ""  # row 251: a gap in the path
    rows[299][4] = "vol_a"  # row 300: an existing person's username, other details
    result = import_people(street.street_admin, rows)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [4, 121, 201, 251, 300]
    messages = dict(result.errors)
    assert "厨师" in messages[121] and "vol_a" in messages[300]
    assert counts() == before
    assert db.session.scalar(select(func.count()).select_from(AuditRecord)) == audit_before


def test_a_bad_row_after_a_written_batch_still_leaves_nothing(street, monkeypatch):
    import pointsapp.domain.imports as imports

    monkeypatch.setattr(imports, "BATCH", 50)
    before = counts()
    rows = roster(120)
    rows[110][4] = "no spaces"
    result = import_people(street.street_admin, rows)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [111]
    assert counts() == before


def test_importing_many_rows_again_changes_nothing(street):
    from pointsapp.models import AuditRecord

    rows = roster(200)
    first = import_people(street.street_admin, rows)
    assert first.ok and first.people_created == 200
    db.session.commit()
    before = counts()
    audit_before = db.session.scalar(select(func.count()).select_from(AuditRecord))
    again = import_people(street.street_admin, [[c.upper() if i == 4 else c for i, c in enumerate(r)] for r in rows])
    assert again.errors == []
    assert (again.rows, again.people_created, again.units_created, again.unchanged) == (200, 0, 0, 200)
    assert again.codes == []
    db.session.commit()
    assert counts() == before
    assert db.session.scalar(select(func.count()).select_from(AuditRecord)) == audit_before


def test_a_node_made_by_an_earlier_row_is_used_by_later_rows_in_other_batches(street, monkeypatch):
    import pointsapp.domain.imports as imports

    monkeypatch.setattr(imports, "BATCH", 2)
    rows = [
        HEADER,
        ["和平社区", "第1网格", "", "", "hp1", "甲", "", ""],
        ["和平社区", "第1网格", "2号楼", "", "hp2", "丙", "", ""],
        ["和平社区", "第2网格", "", "", "", "", "", ""],
        ["和平社区", "第1网格", "2号楼", "", "hp3", "丁", "", ""],
    ]
    result = import_people(street.street_admin, rows)
    assert result.errors == []
    assert (result.people_created, result.units_created, result.unchanged) == (3, 4, 0)
    db.session.commit()
    hp = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(["hp1", "hp2", "hp3"])))}
    assert hp["hp2"].org_unit_id == hp["hp3"].org_unit_id
    assert hp["hp2"].org_unit.parent_id == hp["hp1"].org_unit_id
    community = hp["hp1"].org_unit.parent
    assert (community.name, community.parent_id) == ("和平社区", street.street.id)
    assert [c.name for c in community.children] == ["第1网格", "第2网格"]
    building = hp["hp3"].org_unit
    assert building.path == f"{street.street.path}{community.id}/{hp['hp1'].org_unit_id}/{building.id}/"

    # A refused row's nodes are not kept for the rows after it: they are counted where made.
    result = import_people(street.street_admin, [
        HEADER,
        ["团结社区", "第1网格", "", "", "x", "乙", "", ""],
        ["团结社区", "第1网格", "", "", "tj1", "戊", "", ""],
    ])
    db.session.rollback()
    assert [n for n, _ in result.errors] == [2]
    assert result.units_created == 2


def test_a_username_taken_meanwhile_is_reported_on_its_row_and_nothing_is_written(street, monkeypatch):
    import pointsapp.domain.imports as imports

    looked_up = imports._Plan.look_up_usernames

    def then_someone_else_creates_one(plan, rows):
        looked_up(plan, rows)
        with db.session.begin_nested():  # as another admin's request would, between look-up and write
            people.create_person(street.street_admin, username="imp7", full_name="别人", password=None,
                                 org_unit=street.unit_a)

    monkeypatch.setattr(imports._Plan, "look_up_usernames", then_someone_else_creates_one)
    before = counts()
    result = import_people(street.street_admin, roster(20))
    assert result.errors == [(9, "This row clashes with another row or an existing record.")]
    assert result.codes == []
    db.session.rollback()
    assert counts() == before


def test_only_the_street_and_the_subtrees_of_the_communities_named_are_read(street):
    """A street has thousands of nodes; a file filling one community reads that community's."""
    from pointsapp.domain import imports

    level_cols, person_cols = imports._columns(HEADER)
    levels = {lv.rank: lv for lv in imports.levels_below_street()}
    plan = imports._Plan(street.street_admin, street.street, levels, level_cols, person_cols)
    plan.read_nodes([["青山社区", "第一网格", "", "", "qs1", "甲", "", ""], ["和平社区", "", "", "", "", "", "", ""]])
    community_a = {u.id for u in db.session.scalars(select(OrgUnit).where(OrgUnit.path.startswith(street.community_a.path)))}
    assert set(plan.nodes_by_id) == {street.street.id} | community_a
    assert street.community_b.id not in plan.nodes_by_id and street.grid_b.id not in plan.nodes_by_id

    whole = imports._Plan(street.street_admin, street.street, levels, level_cols, person_cols)
    whole.read_nodes([[f"社区{i}", "", "", "", "", "", "", ""] for i in range(imports.TOPS_READ_APART + 1)])
    in_street = {u.id for u in db.session.scalars(select(OrgUnit).where(OrgUnit.path.startswith(street.street.path)))}
    assert set(whole.nodes_by_id) == in_street


@pytest.mark.parametrize("apart", [20, 0], ids=["subtrees", "whole street"])
def test_an_import_does_the_same_whether_subtrees_or_the_whole_street_are_read(street, monkeypatch, apart):
    from pointsapp.domain import imports

    monkeypatch.setattr(imports, "TOPS_READ_APART", apart)
    rows = GOOD + [
        ["青山社区", "第一网格", "1号楼", "1单元", "vol_a", "张秀华", "", "单元长"],  # exists, same details
        ["友谊社区", "第一网格", "9号楼", "", "vol_b", "孙丽", "", "楼长"],  # exists, same details
        ["", "", "", "", "lz-street", "街道志愿者", "", ""],  # placed at the street itself
    ]
    result = import_people(street.street_admin, rows)
    assert result.errors == []
    assert (result.rows, result.people_created, result.units_created, result.unchanged) == (7, 4, 6, 2)
    db.session.commit()
    assert db.session.scalar(select(User).where(User.username == "lz-street")).org_unit_id == street.street.id
    before = counts()
    again = import_people(street.street_admin, rows)
    assert (again.errors, again.unchanged) == ([], 7)
    assert counts() == before

    # A person living in a community the file does not name is someone else, not "unchanged".
    moved = import_people(street.street_admin, [HEADER, ["新华社区", "第1网格", "", "", "vol_b", "孙丽", "", "楼长"]])
    db.session.rollback()
    assert [n for n, _ in moved.errors] == [2] and "vol_b" in moved.errors[0][1]


def test_rows_holding_a_nul_character_are_refused_with_their_numbers(street):
    """A CSV file can carry NUL characters, which PostgreSQL refuses in any text: each such row
    is named, whichever cell holds it, and nothing is written."""
    before = counts()
    csv = "社区,网格,用户名,姓名\n青山\x00社区,第一网格,,\n青山社区,第一网格,nul\x00user,甲\n青山社区,第一网格,ok1,乙\x00\n" \
          "青山社区,第一网格,ok2,丙\n"
    rows = read_rows(csv.encode("utf-8"), "roster.csv")
    result = import_people(street.street_admin, rows)
    db.session.rollback()
    assert [n for n, _ in result.errors] == [2, 3, 4]
    assert all("NUL" in message for _, message in result.errors)
    assert counts() == before


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_rows_problem_is_said_in_the_pages_language_and_an_unknown_title_lists_the_known_ones(app, street, lang):
    rows = GOOD + [
        ["青山社区", "", "5号楼", "", "lz5", "钱楼长", "", ""],  # a gap in the path
        ["青山社区", "第二网格", "", "", "lz7", "孙", "", "厨师"],  # unknown title
        ["青山社区", "第二网格", "", "", "lz9", "", "13800000009", ""],  # no name
    ]
    with app.test_request_context(headers={"Accept-Language": lang}):
        result = import_people(street.street_admin, rows)
        db.session.rollback()
        messages = [m for _, m in result.errors]
    if lang == "en":
        assert messages[0] == "The grid is missing."
        assert messages[1].startswith("Unknown title 厨师. Write one of: Building leader, Unit leader")
        assert messages[2] == "Enter the person's full name."
    else:
        assert "网格" in messages[0] and "grid" not in messages[0]
        assert "厨师" in messages[1] and "楼长、单元长" in messages[1]
        assert messages[2] == "请填写姓名。"
