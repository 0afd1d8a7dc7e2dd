"""QR decoding for photo-day frames: a cheap pass over a reduced frame, closer looks only where a symbol shows.

Measured on 20-24 MP JPEGs (bench/README.md): decoding at 1/2 scale costs ~10 ms more than at 1/8 (entropy
decoding dominates) and zxing-cpp reads a 3000x2000 frame in ~9 ms, so the coarse pass keeps the long side
>= 2500 px, where a card 5% of the frame wide still has ~2-4 px per module. When zxing-cpp sees a symbol it
cannot read, that region is re-read at full resolution, upscaled, and by pyzbar (whose misses differ).
Small images (phone crops, the corpus) are read whole every way: each pass costs a few ms there.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import zxingcpp
from PIL import Image
from pyzbar import pyzbar

# Scan for the whole QR family: a blurred card often shows up as a failed Micro QR, which is evidence.
# Accept regular QR texts only: cards are regular QR, and Micro QR's weak checks would add false reads.
SCAN_FORMATS = zxingcpp.BarcodeFormat.QRCode
_MICRO_FORMATS = (zxingcpp.BarcodeFormat.MicroQRCode, zxingcpp.BarcodeFormat.RMQRCode)
COARSE_LONG_SIDE = 2500  # the coarse pass keeps the long side at least this large
SMALL_PIXELS = 2_000_000  # an image or crop this small is cheap to upscale or to hand to pyzbar
# Crop this many evidence sizes around it: a failed Micro QR is often one finder pattern of a larger symbol.
_EVIDENCE_MARGIN = 2
_MAX_EVIDENCE = 6  # bounds the cost of a frame full of finder-like texture
_MIN_REGION = 8  # pixels; zxing-cpp rejects empty crops and nothing smaller holds a readable symbol

Box = tuple[int, int, int, int]
ImageLoader = Callable[[], Image.Image]


def coarse_scale(size: tuple[int, int]) -> int:
    """The largest reduction (1, 2, 4 or 8) that keeps the long side at least COARSE_LONG_SIDE pixels."""
    long_side = max(size)
    return next(scale for scale in (8, 4, 2, 1) if scale == 1 or long_side // scale >= COARSE_LONG_SIDE)


def draft_for_detection(image: Image.Image) -> bool:
    """Ask a not-yet-loaded JPEG to decode at the coarse scale; True if it will come out reduced."""
    full_size = image.size
    scale = coarse_scale(full_size)
    if scale > 1:
        image.draft("RGB", (image.width // scale, image.height // scale))
    return image.size != full_size


def decode_qr_texts(
    source: Image.Image | bytes | str | os.PathLike, *, full_image: ImageLoader | None = None
) -> tuple[str, ...]:
    """Texts of the QR codes in `source`, deduplicated and sorted.

    `source` is an image (possibly a JPEG draft) or the bytes or path of an image file. `full_image` returns
    the full-resolution image when `source` is a reduced one; called only if a symbol needs a closer look.
    """
    if not isinstance(source, Image.Image):
        source, full_image = _open_coarse(source)
    gray = source.convert("L")
    coarse = _reduced(gray)
    if coarse is not gray:
        full_image = lambda: gray  # noqa: E731 - the full resolution is already in memory
    texts, evidence = _read_zxing(coarse, try_invert=False)
    if not texts and full_image is None and _is_small(coarse):
        texts = _read_closer(coarse)
    if evidence:
        texts += _read_evidence(coarse, evidence, full_image)
    return tuple(sorted(set(texts)))


def _open_coarse(source: bytes | str | os.PathLike) -> tuple[Image.Image, ImageLoader | None]:
    """Open an image file as a coarse draft, with a loader for its full resolution if the draft is reduced."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    image = Image.open(io.BytesIO(data))
    if draft_for_detection(image):
        return image, lambda: Image.open(io.BytesIO(data))
    return image, None


def _reduced(gray: Image.Image) -> Image.Image:
    """Box-reduce a full-size image (not a JPEG draft) to the coarse scale."""
    scale = coarse_scale(gray.size)
    return gray.reduce(scale) if scale > 1 else gray


def _is_small(gray: Image.Image) -> bool:
    return gray.width * gray.height <= SMALL_PIXELS


def _read_zxing(gray: Image.Image, try_invert: bool = True) -> tuple[list[str], list[Box]]:
    """Texts zxing-cpp reads, and the boxes of symbols it found but could not read.

    The coarse pass skips light-on-dark symbols (saves 25% of its time): cards are printed dark on light.
    """
    texts, unread = [], []
    for barcode in zxingcpp.read_barcodes(gray, formats=SCAN_FORMATS, return_errors=True, try_invert=try_invert):
        if not barcode.valid:
            unread.append(_box(barcode.position))
        elif barcode.format not in _MICRO_FORMATS:
            texts.append(_zxing_text(barcode))
    return texts, unread


def _zxing_text(barcode: zxingcpp.Barcode) -> str:
    """The raw bytes as UTF-8 when they are (exact, CRLF kept), else zxing's charset-aware text (Latin-1)."""
    try:
        return barcode.bytes.decode("utf-8")
    except UnicodeDecodeError:
        return barcode.text


def _read_pyzbar(gray: Image.Image) -> list[str]:
    texts = []
    for symbol in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE]):
        try:
            texts.append(symbol.data.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # zbar converts to UTF-8; anything else is a misread, and wrong text is worse than none
    return texts


def _read_closer(coarse: Image.Image, full: Image.Image | None = None) -> list[str]:
    """Slower reads of a small image or a symbol's region, first success wins: zxing-cpp on the full
    resolution, zxing-cpp on a 2x upscale (it misses modules under ~3 px), then pyzbar."""
    texts = _read_zxing(full)[0] if full is not None else []
    if not texts and coarse.width * coarse.height * 4 <= SMALL_PIXELS:
        texts = _read_zxing(coarse.resize((coarse.width * 2, coarse.height * 2), Image.Resampling.BICUBIC))[0]
    if texts:
        return texts
    # pyzbar takes ~25 ms per megapixel: give it the full resolution only when that is affordable
    return _read_pyzbar(full if full is not None and _is_small(full) else coarse)


def _read_evidence(coarse: Image.Image, evidence: list[Box], full_image: ImageLoader | None) -> list[str]:
    """Read the region around each unreadable symbol more closely, largest symbols first."""
    full = _gray_full(full_image) if full_image else None
    texts = []
    for box in sorted(evidence, key=_area, reverse=True)[:_MAX_EVIDENCE]:
        region = _padded(box, coarse.size)
        if min(region[2] - region[0], region[3] - region[1]) < _MIN_REGION:
            continue  # a degenerate or off-image detection: nothing to read
        full_region = full.crop(_scaled(region, full.width / coarse.width)) if full is not None else None
        texts += _read_closer(coarse.crop(region), full_region)
    return texts


def _gray_full(full_image: ImageLoader) -> Image.Image:
    image = full_image()
    image.draft("L", image.size)  # a JPEG decodes straight to greyscale, skipping colour conversion
    return image.convert("L")


def _box(position: zxingcpp.Position) -> Box:
    points = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    xs, ys = [p.x for p in points], [p.y for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _padded(box: Box, size: tuple[int, int]) -> Box:
    left, top, right, bottom = box
    pad = max(right - left, bottom - top) * _EVIDENCE_MARGIN
    return max(0, left - pad), max(0, top - pad), min(size[0], right + pad), min(size[1], bottom + pad)


def _scaled(box: Box, factor: float) -> Box:
    left, top, right, bottom = (round(value * factor) for value in box)
    return left, top, right, bottom
