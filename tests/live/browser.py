"""Debian's Chromium, driven by Playwright, at phone size; and a fake camera that shows an image.

No test downloads a browser: Chromium comes from the system (`.ci/run` installs it with apt-get).
Outside CI the browser tests skip, with a message, when it is missing; under CI they must run.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = os.environ.get("POINTS_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
PHONE = {"width": 360, "height": 640}
# Quiet, offline, reproducible: nothing but the page under test talks to the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
FAKE_CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def require_chromium() -> str:
    """Return Chromium's path; skip the test (outside CI) or fail it (in CI) when it is missing."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"Chromium is not installed at {CHROMIUM}: `apt-get install chromium` (the browser tests need it)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the browser tests (.ci/run installs it)")
    pytest.skip(message)


def launch(playwright, *, camera_file: Path | None = None):
    """Start a headless Chromium with a fresh profile; with ``camera_file`` as its camera."""
    args = list(CHROMIUM_ARGS)
    if camera_file is not None:
        args += [*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={camera_file}"]
    return playwright.chromium.launch(executable_path=require_chromium(), headless=True, args=args)


def phone(browser, *, locale: str, base_url: str, camera: bool = False):
    """Open a new phone-sized browser context (its own cookies, like a person's own phone)."""
    context = browser.new_context(
        viewport=PHONE,
        device_scale_factor=1,
        is_mobile=True,
        has_touch=True,
        locale=locale,
        base_url=base_url,
    )
    context.set_default_timeout(15_000)
    if camera:
        context.grant_permissions(["camera"], origin=base_url)
    return context


def snap(page, name: str) -> Path:
    """Save a phone-size screenshot of the whole page under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def write_y4m(picture: Image.Image, target: Path, *, width: int = 640, height: int = 480, frames: int = 4) -> Path:
    """Write ``picture`` centred on white as a grey Y4M video, the format Chromium's fake camera reads.

    Y4M: a one-line header, then per frame ``FRAME\\n`` and the Y, U and V planes (4:2:0, so U and
    V are a quarter of Y each; 128 is "no colour").
    """
    canvas = Image.new("L", (width, height), 255)
    side = min(width, height) - 80  # a white quiet zone all round
    qr = picture.convert("L").resize((side, side), Image.NEAREST)
    canvas.paste(qr, ((width - side) // 2, (height - side) // 2))
    y_plane = canvas.tobytes()
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    with target.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n")
            f.write(y_plane)
            f.write(chroma)
            f.write(chroma)
    return target


class CspWatch:
    """Collect the Content-Security-Policy violations a page reports in its console."""

    def __init__(self):
        self.violations: list[str] = []

    def attach(self, page) -> None:
        page.on("console", self._console)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="points-browser-"))


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
