"""Evidence photos: checked, re-encoded and stored under ``instance/uploads``."""
from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from .errors import InvalidInput, PhotosUnavailable

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
MAX_PIXELS = 40_000_000  # a JPEG: decoded at a reduced scale (below)
# Other formats decode whole, 3 to 4 bytes a pixel: a tiny file of one colour could otherwise
# take hundreds of MB of a worker. 16 megapixels covers a phone's screenshot or photo.
MAX_PIXELS_DECODED_WHOLE = 16_000_000
MAX_SIDE = 1600
PHOTO_TOO_LARGE = _l("The photo is larger than %(mb)s MB. Choose a smaller one, or set the phone's camera to a "
                     "lower resolution.")


def upload_dir() -> Path:
    return Path(current_app.instance_path) / "uploads"


def _reencode(data: bytes, max_side: int) -> bytes:
    """Check an uploaded image and return it re-encoded as a JPEG of at most ``max_side`` pixels."""
    limit = current_app.config["PHOTO_MAX_BYTES"]
    if not data:
        raise InvalidInput("The photo is empty.", field="photo")
    if len(data) > limit:
        raise InvalidInput(PHOTO_TOO_LARGE, field="photo", mb=limit // (1024 * 1024))
    from PIL import Image, ImageOps, UnidentifiedImageError  # only claims with photos need Pillow

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            if fmt not in ALLOWED_FORMATS:
                raise InvalidInput("Upload a JPEG, PNG, WebP or GIF photo.", field="photo")
            if probe.width * probe.height > (MAX_PIXELS if fmt == "JPEG" else MAX_PIXELS_DECODED_WHOLE):
                raise InvalidInput("The photo has too many pixels.", field="photo")
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            # A JPEG decodes straight at a fraction of its size (a 12-megapixel phone photo at a
            # quarter: 9 MB of pixels, not 36), since only max_side survives anyway.
            scale = min(1.0, max_side / max(img.size))
            img.draft("RGB", (max(1, int(img.width * scale)), max(1, int(img.height * scale))))
            # A phone held upright saves its photo sideways with an EXIF note to turn it: turn it
            # now, since the EXIF does not survive the re-encoding.
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((max_side, max_side))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=82)
    except InvalidInput:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("This file is not a photo we can read. Upload a JPEG, PNG, WebP or GIF photo.", field="photo")
    return out.getvalue()


def _write_atomically(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:  # a full disk, a folder not writable: not the person's fault
        current_app.logger.error("cannot store an uploaded picture in %s: %s", target.parent, exc)
        raise PhotosUnavailable() from exc


REWARD_PICTURE_SIDE = 480


def reward_picture_dir() -> Path:
    return upload_dir() / "rewards"


def store_reward_picture(reward_id: int, data: bytes) -> None:
    """Validate a reward's picture and store it re-encoded, replacing the one it had."""
    _write_atomically(reward_picture_dir() / f"{int(reward_id)}.jpg", _reencode(data, REWARD_PICTURE_SIDE))


def reward_picture_path(reward_id: int) -> Path | None:
    """Return the path of a reward's picture, or None when it has none."""
    path = reward_picture_dir() / f"{int(reward_id)}.jpg"
    return path if path.is_file() else None


def store_photo(data: bytes) -> str:
    """Validate an uploaded image and store it re-encoded as JPEG; return its file name.

    Re-encoding drops anything that is not the picture (EXIF location, scripts in polyglot
    files) and caps the size a phone photo takes on disk.
    """
    encoded = _reencode(data, MAX_SIDE)
    name = secrets.token_hex(16) + ".jpg"
    _write_atomically(upload_dir() / name, encoded)
    return name


def photo_path(name: str) -> Path | None:
    """Return the stored photo's path, or None for a name that is not one of ours."""
    if not name or "/" in name or "\\" in name or not name.endswith(".jpg"):
        return None
    path = upload_dir() / name
    return path if path.is_file() else None
