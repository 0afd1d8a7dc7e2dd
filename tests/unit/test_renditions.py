"""The gallery's screen-size copy: upright, at most the screen side, a JPEG, written whole or not at all."""

import io

from PIL import Image

from engine.renditions import screen_copy
from engine.scanning import open_image

ROTATED_90 = 6  # EXIF orientation: the camera was turned; viewers rotate the picture 90 degrees


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), "teal")
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_a_large_photo_becomes_an_upright_jpeg_within_the_screen_side(tmp_path):
    """A 24 MP frame shot with the camera turned comes out rotated, 2048 pixels on its long side."""
    target = tmp_path / "screen" / "copy.jpg"
    screen_copy(open_image(jpeg(6000, 4000, ROTATED_90)), target)
    with Image.open(target) as copy:
        assert copy.format == "JPEG" and copy.size in {(1365, 2048), (1366, 2048)}
    assert [path.name for path in target.parent.iterdir()] == ["copy.jpg"]  # no partial file left


def test_a_small_photo_is_not_enlarged(tmp_path):
    """A photo already smaller than a screen keeps its size."""
    target = tmp_path / "copy.jpg"
    screen_copy(open_image(jpeg(800, 600)), target)
    with Image.open(target) as copy:
        assert copy.size == (800, 600)
