"""Write requests take turns within a process (``WRITE_SLOTS``); reads do not wait for them.

The test suite's own apps run with no limit (``TestConfig.WRITE_SLOTS = 0``) so that its races
meet in the database; these tests make apps with the production setting.
"""
from __future__ import annotations

import threading

import pytest

from pointsapp import create_app
from pointsapp.extensions import db

WRITE = "/api/v1/claims/1/approve"  # a write; without a token it is answered 401, the database untouched


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    monkeypatch.setenv("POINTS_INSTANCE_PATH", str(tmp_path / "instance"))
    made = []

    def make(slots: int, wait: float = 0.3):
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'slots.db'}", "SECRET_KEY": "k",
                          "TESTING": True, "WRITE_SLOTS": slots, "WRITE_SLOT_WAIT": wait})
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


class Holder:
    """A write request of ``app`` that has begun (its turn taken) and not yet ended."""

    def __init__(self, app):
        self.app = app
        self.ctx = app.test_request_context(WRITE, method="POST")
        self.ctx.push()
        self.app.preprocess_request()

    def end(self):
        self.app.do_teardown_request()
        self.ctx.pop()


def test_a_write_waits_for_its_turn_and_then_is_refused_with_retry_after(make_app):
    app = make_app(slots=1)
    client = app.test_client()
    holder = Holder(app)
    try:
        resp = client.post(WRITE)
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "5"
        assert resp.get_json()["code"] == "http_503"
        assert client.get("/healthz").status_code == 200  # a read does not wait
    finally:
        holder.end()
    assert client.post(WRITE).status_code == 401  # its turn now: on to the API's authentication


def test_two_slots_let_two_writes_run_at_once_and_no_third(make_app):
    app = make_app(slots=2)
    client = app.test_client()
    first = Holder(app)
    try:
        second = Holder(app)
        try:
            assert client.post(WRITE).status_code == 503
        finally:
            second.end()
        assert client.post(WRITE).status_code == 401
    finally:
        first.end()


def test_a_waiting_write_runs_as_soon_as_the_turn_is_given_back(make_app):
    app = make_app(slots=1, wait=30)
    holder = Holder(app)
    statuses = []
    waiting = threading.Thread(target=lambda: statuses.append(app.test_client().post(WRITE).status_code))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and statuses == []  # waiting for the turn (30 s allowed)
    holder.end()
    waiting.join(10)
    assert statuses == [401]

