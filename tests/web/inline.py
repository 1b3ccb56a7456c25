"""Find inline code in HTML: the Content-Security-Policy allows scripts and styles from files only.

A ``<script type="application/json">`` block is data that no browser runs (the reports keep their
chart numbers in one), so it is not inline code.
"""
from __future__ import annotations

import re

PATTERNS = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
    "inline handler": re.compile(r"<[^>]+\son[a-z]+\s*=|javascript:", re.I),
    "style attribute": re.compile(r"<[^>]+\sstyle\s*=", re.I),
    "style element": re.compile(r"<style[\s>]", re.I),
}


def inline_code(html: str) -> list[str]:
    """Return the kinds of inline code found in ``html`` (empty when there is none)."""
    return [name for name, pattern in PATTERNS.items() if pattern.search(html)]
