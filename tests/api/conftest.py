"""Helpers for the API tests: tokens made through the domain, and a client that sends them."""
from __future__ import annotations

import uuid

import pytest

from pointsapp.domain import tokens
from pointsapp.extensions import db


class ApiClient:
    """The Flask test client, sending ``Authorization: Bearer`` and JSON."""

    def __init__(self, client, secret: str | None):
        self.client, self.secret = client, secret

    def _headers(self, key: str | None = None, extra: dict | None = None) -> dict:
        headers = {}
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        if key:
            headers["Idempotency-Key"] = key
        headers.update(extra or {})
        return headers

    def get(self, path: str, **params):
        return self.client.get("/api/v1" + path, query_string=params, headers=self._headers())

    def post(self, path: str, json=None, key: str | None = "auto", headers: dict | None = None):
        if key == "auto":
            key = str(uuid.uuid4())
        return self.client.post("/api/v1" + path, json=json, headers=self._headers(key, headers))

    def post_form(self, path: str, data: dict, key: str | None = "auto"):
        """POST a multipart/form-data body (``data`` values may be ``(file, name)`` pairs)."""
        if key == "auto":
            key = str(uuid.uuid4())
        return self.client.post("/api/v1" + path, data=data, content_type="multipart/form-data",
                                headers=self._headers(key))

    def put(self, path: str, json=None, key: str | None = "auto"):
        if key == "auto":
            key = str(uuid.uuid4())
        return self.client.put("/api/v1" + path, json=json, headers=self._headers(key))

    def delete(self, path: str):
        return self.client.delete("/api/v1" + path, headers=self._headers())


def make_token(user, **narrowing) -> str:
    """Create a token for ``user`` (optionally narrowed) and return its secret."""
    _token, secret = tokens.create_token(user, name=narrowing.pop("name", "test"), **narrowing)
    db.session.commit()
    return secret


@pytest.fixture
def api_as(app, street):
    """Return a function: an API client acting as one of the street's people."""

    def make(username: str, **narrowing) -> ApiClient:
        user = getattr(street, username)
        return ApiClient(app.test_client(), make_token(user, **narrowing))

    return make


from tests.web.conftest import issued_voucher, pending_claim  # noqa: E402,F401  (shared fixtures)
