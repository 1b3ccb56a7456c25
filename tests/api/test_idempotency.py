"""Idempotency-Key: the same key and body moves points once, however often and however fast it comes."""
import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

from sqlalchemy import func, select

from pointsapp.domain.clock import now_utc
from pointsapp.extensions import db
from pointsapp.models import IdempotencyKey, Transfer, Voucher
from tests.api.conftest import make_token
from tests.factories import balance, give_points
from tests.live.conftest import live_server  # noqa: F401  (fixture)


def test_the_same_redemption_sent_five_times_in_a_row_redeems_once(api_as, street, issued_voucher, check_ledger):
    c = api_as("cashier")
    answers = [c.post("/redemptions", {"code": issued_voucher.code}, key="till-7-sale-1001") for _ in range(5)]
    assert [a.status_code for a in answers] == [201] * 5
    assert all(a.json == answers[0].json for a in answers)
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None] + ["true"] * 4
    assert balance(street.vol_a).balance == 40
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.kind == "capture")) == 1
    check_ledger()


def test_the_same_voucher_request_five_times_issues_one_voucher(api_as, street, check_ledger):
    give_points(street, street.vol_a, 50)
    v = api_as("vol_a")
    answers = [v.post("/vouchers", {"reward_id": street.rice.id}, key="phone-tap-1") for _ in range(5)]
    assert {a.json["id"] for a in answers} == {answers[0].json["id"]}
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 1
    assert balance(street.vol_a).held == 10
    check_ledger()


def test_the_same_key_with_another_body_is_refused_with_422(api_as, street, issued_voucher):
    c = api_as("cashier")
    assert c.post("/redemptions", {"code": issued_voucher.code}, key="k-1").status_code == 201
    other = c.post("/redemptions", {"code": "AAAA-BBBB"}, key="k-1")
    assert other.status_code == 422
    assert other.json["code"] == "idempotency_key_reused"
    elsewhere = c.post("/redemptions/lookup", {"code": issued_voucher.code}, key="k-1")
    assert elsewhere.json["code"] == "voucher_already_redeemed"  # the look-up moves nothing and ignores keys


def test_keys_are_per_user(api_as, street, check_ledger):
    give_points(street, street.vol_a, 50)
    give_points(street, street.vol_a2, 50)
    a = api_as("vol_a").post("/vouchers", {"reward_id": street.rice.id}, key="same")
    b = api_as("vol_a2").post("/vouchers", {"reward_id": street.rice.id}, key="same")
    assert a.status_code == b.status_code == 201 and a.json["id"] != b.json["id"]
    check_ledger()


def test_a_request_that_moves_points_needs_a_key(api_as, street, issued_voucher):
    resp = api_as("cashier").post("/redemptions", {"code": issued_voucher.code}, key=None)
    assert resp.status_code == 400
    assert resp.json["code"] == "idempotency_key_required"
    assert db.session.get(Voucher, issued_voucher.voucher.id).status == "issued"


def test_a_refused_request_does_not_spend_its_key(api_as, street):
    v = api_as("vol_a")
    refused = v.post("/vouchers", {"reward_id": street.rice.id}, key="retry-me")
    assert refused.status_code == 409 and refused.json["code"] == "insufficient_points"
    give_points(street, street.vol_a, 50)
    retried = v.post("/vouchers", {"reward_id": street.rice.id}, key="retry-me")
    assert retried.status_code == 201


def test_a_key_still_running_gets_409_and_an_abandoned_one_is_taken_over(api_as, street, issued_voucher, check_ledger):
    c = api_as("cashier")
    body = {"code": issued_voucher.code}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    import hashlib

    row = IdempotencyKey(user_id=street.cashier.id, key="busy", method_path="POST /api/v1/redemptions",
                         body_hash=hashlib.sha256(canonical).hexdigest(), state="running", created_at=now_utc())
    db.session.add(row)
    db.session.commit()
    busy = c.post("/redemptions", body, key="busy")
    assert busy.status_code == 409 and busy.json["code"] == "idempotency_in_flight"
    assert db.session.get(Voucher, issued_voucher.voucher.id).status == "issued"
    db.session.execute(
        IdempotencyKey.__table__.update().values(created_at=now_utc() - timedelta(minutes=11))
    )
    db.session.commit()
    taken = c.post("/redemptions", body, key="busy")
    assert taken.status_code == 201
    check_ledger()


def test_purge_keeps_keys_for_a_day(app, runner, api_as, street, issued_voucher):
    api_as("cashier").post("/redemptions", {"code": issued_voucher.code}, key="old")
    api_as("cashier").post("/redemptions/lookup", {"code": issued_voucher.code}, key=None)
    db.session.execute(IdempotencyKey.__table__.update().values(created_at=now_utc() - timedelta(hours=25)))
    give_points(street, street.vol_a, 50)
    api_as("vol_a").post("/vouchers", {"reward_id": street.rice.id}, key="new")
    db.session.commit()
    result = runner.invoke(args=["points", "purge-idempotency-keys"])
    assert result.exit_code == 0, result.output
    assert "purged 1 " in result.output
    db.session.rollback()
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["new"]
    assert runner.invoke(args=["points", "purge-idempotency-keys", "--older-than-hours", "2"]).exit_code != 0


def _post(url: str, secret: str, body: dict, key: str):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {secret}", "Idempotency-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get("Idempotent-Replayed")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), None


def test_the_same_redemption_sent_ten_times_at_once_redeems_once(live_server, street, issued_voucher, check_ledger):  # noqa: F811
    secret = make_token(street.cashier)
    code = issued_voucher.code
    db.session.rollback()
    barrier = threading.Barrier(10)
    results = [None] * 10

    def send(i):
        barrier.wait(timeout=30)
        results[i] = _post(f"{live_server}/api/v1/redemptions", secret, {"code": code}, "till-9-sale-77")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = sorted(r[0] for r in results)
    assert set(statuses) <= {201, 409}, results
    firsts = [r for r in results if r[0] == 201 and r[2] is None]
    assert len(firsts) == 1, results
    for status, body, replayed in results:
        if status == 201:
            assert body == firsts[0][1]
        else:
            assert body["code"] == "idempotency_in_flight"
    db.session.rollback()
    assert balance(street.vol_a).balance == 40
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.kind == "capture")) == 1
    # Once the first has finished, the same key replays its answer.
    db.session.rollback()  # release SQLite's write lock taken by the reads above
    status, body, replayed = _post(f"{live_server}/api/v1/redemptions", secret, {"code": issued_voucher.code}, "till-9-sale-77")
    assert (status, body, replayed) == (201, firsts[0][1], "true")
    check_ledger()


def test_ten_approvals_of_one_claim_at_once_credit_it_once(live_server, street, pending_claim, check_ledger):  # noqa: F811
    secret = make_token(street.staff_a)
    claim_id = pending_claim.id
    db.session.rollback()
    barrier = threading.Barrier(10)
    results = [None] * 10

    def send(i):
        barrier.wait(timeout=30)
        results[i] = _post(f"{live_server}/api/v1/claims/{claim_id}/approve", secret, {}, "approve-1")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(1 for r in results if r[0] == 200 and r[2] is None) == 1, results
    assert all(r[0] in (200, 409) for r in results), results
    db.session.rollback()
    assert balance(street.vol_a).balance == 10
    check_ledger()


def test_a_view_that_rolls_back_and_redoes_its_work_still_stores_its_answer(app, api_as, street, issued_voucher, check_ledger, monkeypatch):
    from pointsapp.domain import vouchers

    confirm = vouchers.confirm_redemption

    def rolled_back_then_done(*args, **kwargs):
        db.session.rollback()  # the key row, inserted in this transaction, goes too
        return confirm(*args, **kwargs)

    monkeypatch.setattr(vouchers, "confirm_redemption", rolled_back_then_done)
    c = api_as("cashier")
    first = c.post("/redemptions", {"code": issued_voucher.code}, key="redo")
    assert first.status_code == 201
    again = c.post("/redemptions", {"code": issued_voucher.code}, key="redo")
    assert (again.status_code, again.json, again.headers.get("Idempotent-Replayed")) == (201, first.json, "true")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Transfer).where(Transfer.kind == "capture")) == 1
    check_ledger()
