"""Static files have versioned addresses: a page names each file with the digest of its content,
the browser keeps a file asked for by its current version for a year, and anything else (no
version, an old one, the service worker) is checked again each time."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pointsapp

STATIC = Path(pointsapp.__file__).parent / "static"


def _version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def test_pages_name_each_static_file_with_the_digest_of_its_content(client):
    body = client.get("/login").get_data(as_text=True)
    for name in ("app.css", "js/app.js", "vendor/pico/pico.min.css"):
        assert f'/static/{name}?v={_version(name)}"' in body, name
    assert not re.search(r'/static/[^"?]+"', body)  # no static address without its version


def test_a_file_asked_for_by_its_current_version_is_kept_for_a_year(client):
    resp = client.get(f"/static/app.css?v={_version('app.css')}")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.get_data() == (STATIC / "app.css").read_bytes()


def test_without_a_version_or_with_another_one_a_file_is_checked_again_each_time(client):
    for url in ("/static/app.css", "/static/app.css?v=000000000000", "/static/app.css?v="):
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert resp.headers["Cache-Control"] == "no-cache", url
        assert resp.get_data() == (STATIC / "app.css").read_bytes(), url
    assert client.get("/sw.js").headers["Cache-Control"] == "no-cache"


def test_a_changed_file_gets_a_new_address_in_debug_mode_and_at_the_next_start(client, app, tmp_path, monkeypatch):
    """A release restarts the app; ``flask run --debug`` looks at the files on every address."""
    (tmp_path / "x.js").write_text("var a = 1;\n")
    monkeypatch.setattr(app, "static_folder", str(tmp_path))
    monkeypatch.setattr(app, "debug", True)
    with app.test_request_context():
        from flask import url_for

        first = url_for("static", filename="x.js")
        (tmp_path / "x.js").write_text("var a = 22;\n")
        second = url_for("static", filename="x.js")
        assert url_for("static", filename="../x.js") == "/static/../x.js"  # outside the folder: no version
    assert first != second and first.startswith("/static/x.js?v=") and second.startswith("/static/x.js?v=")
    assert client.get(second).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(first).headers["Cache-Control"] == "no-cache"


def test_a_running_release_reads_each_file_once(app, tmp_path, monkeypatch):
    (tmp_path / "y.js").write_text("var b = 1;\n")
    monkeypatch.setattr(app, "static_folder", str(tmp_path))
    with app.test_request_context():
        from flask import url_for

        first = url_for("static", filename="y.js")
        (tmp_path / "y.js").write_text("var b = 22;\n")  # not how a release changes files
        assert url_for("static", filename="y.js") == first
        monkeypatch.setattr(app, "debug", True)
        assert url_for("static", filename="y.js") != first

