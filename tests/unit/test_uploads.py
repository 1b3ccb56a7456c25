"""Evidence photos: checked, re-encoded as JPEG and kept under instance/uploads."""
import io
from pathlib import Path

import pytest
from PIL import Image

from pointsapp.domain import uploads
from pointsapp.domain.errors import InvalidInput


def image_bytes(fmt="PNG", size=(40, 30), exif=None) -> bytes:
    out = io.BytesIO()
    img = Image.new("RGB", size, (200, 30, 30))
    if exif is not None:
        img.save(out, fmt, exif=exif)
    else:
        img.save(out, fmt)
    return out.getvalue()


def test_a_photo_is_stored_re_encoded_as_jpeg_under_the_instance_folder(app):
    name = uploads.store_photo(image_bytes("PNG"))
    path = uploads.photo_path(name)
    assert path is not None and path.parent == Path(app.instance_path) / "uploads"
    with Image.open(path) as stored:
        assert stored.format == "JPEG" and stored.size == (40, 30)


def test_a_large_photo_is_scaled_down_and_its_exif_dropped(app):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # camera make; GPS tags would ride along the same way
    name = uploads.store_photo(image_bytes("JPEG", size=(3200, 100), exif=exif))
    with Image.open(uploads.photo_path(name)) as stored:
        assert max(stored.size) == uploads.MAX_SIDE
        assert dict(stored.getexif()) == {}


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"%PDF-1.4 fake", b"\x89PNG\r\n\x1a\n broken"])
def test_something_that_is_not_a_photo_is_refused(app, data):
    with pytest.raises(InvalidInput) as exc:
        uploads.store_photo(data)
    assert exc.value.field == "photo"


def test_a_photo_over_the_size_limit_is_refused(app):
    app.config["PHOTO_MAX_BYTES"] = 1000
    with pytest.raises(InvalidInput) as exc:
        uploads.store_photo(image_bytes("BMP", size=(100, 100)))
    assert exc.value.field == "photo"


def test_a_format_we_do_not_accept_is_refused(app):
    with pytest.raises(InvalidInput) as exc:
        uploads.store_photo(image_bytes("BMP"))
    assert "JPEG" in exc.value.message


def test_only_our_own_file_names_resolve_to_a_path(app):
    name = uploads.store_photo(image_bytes())
    assert uploads.photo_path(name) is not None
    for bad in ("../secret_key", "..\\secret_key", "secret_key", "", None, "nope.jpg", f"../uploads/{name}"):
        assert uploads.photo_path(bad) is None


def test_a_large_phone_jpeg_is_decoded_at_a_fraction_of_its_size_and_stored_at_1600_px(app, monkeypatch):
    from PIL import Image

    decoded = []
    real_convert = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: decoded.append(self.size) or real_convert(self, *a, **k))
    name = uploads.store_photo(image_bytes("JPEG", size=(4000, 3000)))
    assert decoded == [(2000, 1500)]  # JPEG's own scaling: a quarter of the pixels
    with Image.open(uploads.upload_dir() / name) as stored:
        assert stored.size == (1600, 1200)


def test_a_photo_taken_upright_is_stored_upright(app):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera saved it turned; viewers turn it 90° clockwise
    name = uploads.store_photo(image_bytes("JPEG", size=(400, 200), exif=exif))
    with Image.open(uploads.upload_dir() / name) as stored:
        assert stored.size == (200, 400) and dict(stored.getexif()) == {}


def test_a_tiny_file_that_would_decode_to_a_huge_picture_is_refused(app):
    # One colour, 6,300 × 6,300: about 130 KB as a PNG, 119 MB once decoded.
    with pytest.raises(InvalidInput) as exc:
        uploads.store_photo(image_bytes("PNG", size=(6300, 6300)))
    assert exc.value.field == "photo" and "too many pixels" in exc.value.message
    # A JPEG that large is read at an eighth of its size, and is taken.
    assert uploads.store_photo(image_bytes("JPEG", size=(6300, 6300))).endswith(".jpg")
