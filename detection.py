"""QR decoding for photo-day frames: a cheap pass over a reduced frame, closer looks only where a symbol shows.

Measured on 20-24 MP JPEGs (bench/README.md): decoding at 1/2 scale costs ~10 ms more than at 1/8 (entropy
decoding dominates) and zxing-cpp reads a 3000x2000 frame in ~9 ms, so the coarse pass keeps the long side
>= 2500 px, where a card 5% of the frame wide still has ~2-4 px per module. When zxing-cpp sees a symbol it
cannot read, that region is re-read at full resolution, upscaled, and by zbar (whose misses differ).
zbar also reads every camera frame at ~1500 px: it reads a card with glare over one finder pattern, which
zxing-cpp does not even see. A symbol seen but read by no decoder marks the frame `unreadable_card`.
Small images (phone crops, the corpus) are read whole every way: each pass costs a few ms there.

Texts are exact: raw bytes as UTF-8 where valid. zbar guesses charsets (UTF-8 "Britain’s" comes out
as Shift_JIS mojibake), so its raw bytes are taken, and a zbar read that is not UTF-8 is dropped.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from ctypes import c_void_p, cast, string_at
from dataclasses import dataclass
from pathlib import Path

import zxingcpp
from PIL import Image
from pyzbar import pyzbar
from pyzbar import wrapper as zbar

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
# zbar's whole-frame pass: ~25 ms per megapixel, so ~1500 px long side; a card 10% wide still has ~2 px/module
ZBAR_LONG_SIDE = 1600
_ZBAR_GREY = int.from_bytes(b"Y800", "little")  # zbar's fourcc for 8-bit greyscale
_ZBAR_CFG_BINARY = 4  # zbar >= 0.23: return the payload's raw bytes instead of a charset guess

Box = tuple[int, int, int, int]
ImageLoader = Callable[[], Image.Image]


@dataclass(frozen=True)
class QrReading:
    """The QR texts of an image, and whether it showed a symbol that no decoder could read."""

    texts: tuple[str, ...] = ()
    unreadable_card: bool = False


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
    """Texts of the QR codes in `source`, deduplicated and sorted (see read_qr)."""
    return read_qr(source, full_image=full_image).texts


def read_qr(source: Image.Image | bytes | str | os.PathLike, *, full_image: ImageLoader | None = None) -> QrReading:
    """The QR texts in `source` (deduplicated, sorted), and whether a symbol was seen that none could read.

    `source` is an image (possibly a JPEG draft) or the bytes or path of an image file. `full_image` returns
    the full-resolution image when `source` is a reduced one; called only if a symbol needs a closer look.
    """
    if not isinstance(source, Image.Image):
        source, full_image = _open_coarse(source)
    gray = source.convert("L")
    coarse = _reduced(gray)
    if coarse is not gray:
        full_image = lambda: gray  # noqa: E731 - the full resolution is already in memory
    texts, read, evidence = _read_zxing(coarse, try_invert=False)
    if full_image is None and _is_small(coarse):
        if not texts:
            texts = _read_closer(coarse)
    else:
        zbar_texts, zbar_read = _read_zbar_frame(coarse)
        texts, read = texts + zbar_texts, read + zbar_read
    unread = [box for box in evidence if not any(_overlaps(box, symbol) for symbol in read)]
    found, unreadable = _read_evidence(coarse, unread, full_image)
    return QrReading(tuple(sorted(set(texts + found))), unreadable)


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


def _read_zxing(gray: Image.Image, try_invert: bool = True) -> tuple[list[str], list[Box], list[Box]]:
    """Texts zxing-cpp reads, the boxes of those symbols, and the boxes of symbols it could not read.

    The coarse pass skips light-on-dark symbols (saves 25% of its time): cards are printed dark on light.
    """
    texts, read, unread = [], [], []
    for barcode in zxingcpp.read_barcodes(gray, formats=SCAN_FORMATS, return_errors=True, try_invert=try_invert):
        if not barcode.valid:
            unread.append(_box(barcode.position))
        elif barcode.format not in _MICRO_FORMATS:
            texts.append(_zxing_text(barcode))
            read.append(_box(barcode.position))
    return texts, read, unread


def _zxing_text(barcode: zxingcpp.Barcode) -> str:
    """The raw bytes as UTF-8 when they are (exact, CRLF kept), else zxing's charset-aware text (Latin-1)."""
    try:
        return barcode.bytes.decode("utf-8")
    except UnicodeDecodeError:
        return barcode.text


def _read_zbar_frame(coarse: Image.Image) -> tuple[list[str], list[Box]]:
    """zbar over the whole frame at ~ZBAR_LONG_SIDE px: texts, and their boxes in `coarse` pixels."""
    factor = max(1, math.ceil(max(coarse.size) / ZBAR_LONG_SIDE))
    reads = _read_zbar(coarse.reduce(factor) if factor > 1 else coarse)
    return [text for text, _ in reads], [_scaled(box, factor) for _, box in reads]


def _read_zbar(gray: Image.Image) -> list[tuple[str, Box]]:
    """zbar's QR reads as (text, box): raw bytes as UTF-8, and a read that is not UTF-8 is dropped.

    pyzbar cannot ask for raw bytes, so this drives libzbar through pyzbar's ctypes bindings.
    """
    scanner = zbar.zbar_image_scanner_create()
    image = zbar.zbar_image_create()
    try:
        zbar.zbar_image_scanner_set_config(scanner, 0, zbar.ZBarConfig.CFG_ENABLE, 0)
        zbar.zbar_image_scanner_set_config(scanner, pyzbar.ZBarSymbol.QRCODE, zbar.ZBarConfig.CFG_ENABLE, 1)
        zbar.zbar_image_scanner_set_config(scanner, pyzbar.ZBarSymbol.QRCODE, _ZBAR_CFG_BINARY, 1)
        pixels = gray.tobytes()
        zbar.zbar_image_set_format(image, _ZBAR_GREY)
        zbar.zbar_image_set_size(image, gray.width, gray.height)
        zbar.zbar_image_set_data(image, cast(pixels, c_void_p), len(pixels), None)
        zbar.zbar_scan_image(scanner, image)
        return [read for read in _zbar_symbols(image) if read is not None]
    finally:
        zbar.zbar_image_destroy(image)
        zbar.zbar_image_scanner_destroy(scanner)


def _zbar_symbols(image: object) -> list[tuple[str, Box] | None]:
    reads = []
    symbol = zbar.zbar_image_first_symbol(image)
    while symbol:
        data = string_at(zbar.zbar_symbol_get_data(symbol), zbar.zbar_symbol_get_data_length(symbol))
        points = range(zbar.zbar_symbol_get_loc_size(symbol))
        xs = [zbar.zbar_symbol_get_loc_x(symbol, i) for i in points]
        ys = [zbar.zbar_symbol_get_loc_y(symbol, i) for i in points]
        reads.append(_zbar_read(data, (min(xs), min(ys), max(xs), max(ys)) if xs else (0, 0, 0, 0)))
        symbol = zbar.zbar_symbol_next(symbol)
    return reads


def _zbar_read(data: bytes, box: Box) -> tuple[str, Box] | None:
    try:
        return data.decode("utf-8"), box
    except UnicodeDecodeError:
        return None  # Shift_JIS, Latin-1 or a misread: zbar alone cannot be trusted with it, and cards are ASCII


def _read_closer(coarse: Image.Image, full: Image.Image | None = None) -> list[str]:
    """Slower reads of a small image or a symbol's region, first success wins: zxing-cpp on the full
    resolution, zxing-cpp on a 2x upscale (it misses modules under ~3 px), then zbar."""
    texts = _read_zxing(full)[0] if full is not None else []
    if not texts and _is_small(coarse):
        texts = _read_zxing(coarse.resize((coarse.width * 2, coarse.height * 2), Image.Resampling.BICUBIC))[0]
    if texts:
        return texts
    # zbar takes ~25 ms per megapixel: give it the full resolution only when that is affordable
    texts = [text for text, _ in _read_zbar(full)] if full is not None and _is_small(full) else []
    return texts or [text for text, _ in _read_zbar(coarse)]


def _read_evidence(coarse: Image.Image, evidence: list[Box], full_image: ImageLoader | None) -> tuple[list[str], bool]:
    """Read the region around each unreadable symbol more closely, largest symbols first.

    Also says whether some region gave no text: a card-like object that nobody could read.
    """
    full = _gray_full(full_image) if full_image and evidence else None
    texts, unreadable = [], False
    for box in sorted(evidence, key=_area, reverse=True)[:_MAX_EVIDENCE]:
        region = _padded(box, coarse.size)
        if min(region[2] - region[0], region[3] - region[1]) < _MIN_REGION:
            continue  # a degenerate or off-image detection: nothing to read
        full_region = full.crop(_scaled(region, full.width / coarse.width)) if full is not None else None
        found = _read_closer(coarse.crop(region), full_region)
        texts, unreadable = texts + found, unreadable or not found
    return texts, unreadable


def _gray_full(full_image: ImageLoader) -> Image.Image:
    image = full_image()
    image.draft("L", image.size)  # a JPEG decodes straight to greyscale, skipping colour conversion
    return image.convert("L")


def _box(position: zxingcpp.Position) -> Box:
    points = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    xs, ys = [p.x for p in points], [p.y for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(box: Box, other: Box) -> bool:
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _padded(box: Box, size: tuple[int, int]) -> Box:
    left, top, right, bottom = box
    pad = max(right - left, bottom - top) * _EVIDENCE_MARGIN
    return max(0, left - pad), max(0, top - pad), min(size[0], right + pad), min(size[1], bottom + pad)


def _scaled(box: Box, factor: float) -> Box:
    left, top, right, bottom = (round(value * factor) for value in box)
    return left, top, right, bottom
