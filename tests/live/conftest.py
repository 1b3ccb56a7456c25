"""A real HTTP server (werkzeug, threaded) around the test app, and a small browser-like client."""
from __future__ import annotations

import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.serving import make_server

from tests.conftest import connection_burst, csrf_from
from pointsapp.extensions import db
from tests.factories import PASSWORD


@pytest.fixture
def live_server(app):
    """Serve the app on 127.0.0.1 (a free port) in a background thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


class Response:
    def __init__(self, status: int, text: str, url: str):
        self.status, self.text, self.url = status, text, url


class WebSession:
    """Cookies, CSRF tokens and form posts over real HTTP, like one phone's browser."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _open(self, req) -> Response:
        try:
            with self.opener.open(req, timeout=60) as resp:
                return Response(resp.status, resp.read().decode(), resp.url)
        except urllib.error.HTTPError as err:
            return Response(err.code, err.read().decode(), err.url)

    def get(self, path: str) -> Response:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, data: dict, token_from: str | None = None) -> Response:
        token = csrf_from(self.get(token_from or path).text)
        body = urllib.parse.urlencode({"csrf_token": token, **data}).encode()
        return self._open(urllib.request.Request(self.base + path, data=body, method="POST"))

    def post_with_token(self, path: str, data: dict, token: str) -> Response:
        body = urllib.parse.urlencode({"csrf_token": token, **data}).encode()
        return self._open(urllib.request.Request(self.base + path, data=body, method="POST"))

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self.get(path).text)

    def login(self, username: str, password: str = PASSWORD) -> Response:
        resp = self.post("/login", {"username": username, "password": password})
        assert resp.status == 200 and "/login" not in resp.url, f"login failed for {username}"
        return resp


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def all_at_once(n: int, fn, *, timeout: float = 60):
    """Call ``fn(i)`` from ``n`` threads released together; return the results in order."""
    db.session.rollback()  # the test's own session must not hold SQLite's write lock meanwhile
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=timeout)
        return fn(i)

    with connection_burst(), ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
