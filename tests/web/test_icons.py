"""Icons are drawn inline (``icon`` in pointsapp/web/template_helpers.py), not written as
emoji: an emoji is drawn by the device's fonts, and a phone or computer without an emoji font
shows an empty box instead."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.conftest import use_english

# Pictographs and emoji (U+1F000 onwards): only an emoji font has them.
EMOJI = re.compile("[\U0001F000-\U0001FAFF]")
GLYPH = re.compile(r'<svg class="glyph" aria-hidden="true" focusable="false"')
ROOT = Path(__file__).resolve().parents[2]


def test_no_template_stylesheet_or_script_of_the_app_writes_an_emoji():
    files = [*(ROOT / "templates").rglob("*.html"), *(ROOT / "pointsapp/static").glob("*.css"),
             *(ROOT / "pointsapp/static/js").glob("*.js")]
    assert len(files) > 50
    found = {str(f.relative_to(ROOT)): EMOJI.findall(f.read_text(encoding="utf-8")) for f in files}
    assert {name: hits for name, hits in found.items() if hits} == {}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_volunteers_and_cashiers_pages_draw_their_icons_inline(street, client, login, auth, language):
    if language == "en":
        use_english(client)
    page = client.get("/login").get_data(as_text=True)
    assert len(GLYPH.findall(page)) == 1  # the language button's globe
    login("vol_a")
    home = client.get("/volunteer/").get_data(as_text=True)
    # The seven big buttons and the language button, nothing left as an emoji.
    assert len(GLYPH.findall(home)) == 8 and not EMOJI.search(home)
    rewards = client.get("/volunteer/rewards").get_data(as_text=True)
    assert not EMOJI.search(rewards)
    auth.logout()
    login("cashier")
    till = client.get("/merchant/").get_data(as_text=True)
    assert len(GLYPH.findall(till)) == 2 and not EMOJI.search(till)  # the camera button and the globe
