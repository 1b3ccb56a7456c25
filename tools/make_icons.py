"""Draw the app icons (a white star on the street's red) into pointsapp/static/icons/.

Run once with the project's Python when the design changes; the PNGs are committed.
"""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "pointsapp" / "static" / "icons"
RED = (179, 38, 30, 255)
WHITE = (255, 255, 255, 255)


def star(cx: float, cy: float, outer: float, inner: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        r = outer if i % 2 == 0 else inner
        a = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def icon(size: int, maskable: bool) -> Image.Image:
    scale = 4  # draw large, then shrink: smooth edges without anti-aliasing support
    s = size * scale
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if maskable:  # full bleed; the launcher cuts its own shape, keep the star in the safe zone
        d.rectangle((0, 0, s, s), fill=RED)
        outer = s * 0.28
    else:
        d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s * 0.2, fill=RED)
        outer = s * 0.36
    d.polygon(star(s / 2, s * 0.52, outer, outer * 0.45), fill=WHITE)
    return img.resize((size, size), Image.LANCZOS)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        icon(size, maskable=False).save(OUT / f"icon-{size}.png", optimize=True)
    icon(512, maskable=True).save(OUT / "icon-maskable-512.png", optimize=True)
