"""Screen-size copies of photos: what a gallery's large view shows instead of a 6-12 MB original, which a
phone would fetch slowly and a browser cannot show at all when it is HEIC."""

import os
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

SCREEN_SIDE = 2048  # sharp on a laptop and on a phone's high-density screen


def screen_copy(image: Image.Image, target: Path, side: int = SCREEN_SIDE) -> None:
    """Write `image` upright as a JPEG at most `side` pixels on its long side. Written beside `target` and
    renamed into place, so a reader never sees half a file and two writers do not mix."""
    # A JPEG decodes at the nearest DCT scale that still covers half the side: far cheaper than full size.
    image.draft("RGB", (side // 2, side // 2))
    upright = ImageOps.exif_transpose(image)
    upright.thumbnail((side, side), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".part")
    with os.fdopen(handle, "wb") as out:
        upright.convert("RGB").save(out, "JPEG", quality=85)
    os.replace(partial, target)
