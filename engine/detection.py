"""QR decoding for photo-day frames: a cheap pass over a reduced frame, closer looks only where a symbol shows.

Measured on 20-24 MP JPEGs (bench/README.md): decoding at 1/2 scale costs ~10 ms more than at 1/8 (entropy
decoding dominates) and zxing-cpp reads a 3000x2000 frame in ~9 ms, so the coarse pass keeps the long side
>= 2500 px, where a card 5% of the frame wide still has ~2-4 px per module (at 1/4, blurred 5% cards are lost).
zxing-cpp does not even see a card with glare over one finder pattern, so a cheap card-like test
(card_like_boxes, a few ms) looks for a patch of QR texture with finder patterns in it. Where zxing-cpp saw
a symbol it could not read, or the test saw a card-like object, that region is re-read at full resolution,
upscaled, and by zbar (whose misses differ). If none reads it, the frame is marked `unreadable_card`.
Small images (phone crops, the corpus) are read whole every way: each pass costs a few ms there.
The scan of a camera frame (read_qr_glimpsed) first decodes it at 1/8, as the floor does, and runs the texture
part of that test and zxing-cpp there (~5 ms); only a frame that shows a symbol zxing-cpp could not read, or a
patch of QR texture off the symbols it read that is small or has a finder pattern (or, blurred, is sparser but sits
on a card's white), is decoded again at the coarse scale, and only down to the lowest such place (jpeg_rows), and
read as above. Most frames hold no card; a large card is read on the glimpse.

Texts are exact: raw bytes as UTF-8 where valid. zbar guesses charsets (UTF-8 "Britain’s" comes out
as Shift_JIS mojibake), so its raw bytes are taken, and a zbar read that is not UTF-8 is dropped.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable, Iterator
from ctypes import c_void_p, cast, string_at
from dataclasses import dataclass
from pathlib import Path

import zxingcpp
from PIL import Image, ImageChops, ImageFilter
from pyzbar import pyzbar
from pyzbar import wrapper as zbar

# Scan for the whole QR family: a blurred card often shows up as a failed Micro QR, which is evidence.
# Accept regular QR texts only: cards are regular QR, and Micro QR's weak checks would add false reads.
SCAN_FORMATS = zxingcpp.BarcodeFormat.QRCode
_MICRO_FORMATS = (zxingcpp.BarcodeFormat.MicroQRCode, zxingcpp.BarcodeFormat.RMQRCode)
COARSE_LONG_SIDE = 2500  # the coarse pass keeps the long side at least this large
GLIMPSE_SCALE = 8  # frames read reduced are first decoded at 1/8 (the floor's scale) to see if a card may be there
SMALL_PIXELS = 2_000_000  # an image or crop this small is cheap to upscale or to hand to pyzbar
# Crop this many evidence sizes around it: a failed Micro QR is often one finder pattern of a larger symbol.
_EVIDENCE_MARGIN = 2
_MAX_EVIDENCE = 6  # of each kind: bounds the cost of a frame full of finder-like texture
_MIN_REGION = 8  # pixels; zxing-cpp rejects empty crops and nothing smaller holds a readable symbol
# The card-like test (see card_like_boxes). A block counts as QR-like texture when this share of its pixels
# (of 255) step sharply across, and as many down; the step is a quarter of the frame's contrast (dark frames count).
_TEXTURE_BLOCK = 4
_TEXTURE_DENSITY = 96
_TEXTURE_LEVELS = (4, 8, 16, 32)  # reductions of the coarse image: a 5-25% card has ~1-2 px modules at one
_FINDER_SIDE = 120  # candidates are searched for finder patterns at this size: modules of ~3-5 px
_FINDER_RUN = re.compile(rb"a{2,8}b{2,8}a{5,24}b{2,8}a{2,8}")  # dark-light-dark-light-dark; ratios checked after
_RUNS = re.compile(rb"a+|b+")
_DENSE_RUN = re.compile(rb"[^\x00]+")
# Rows through a finder's 3-module core hit it several times; stray crossings of lines hit once or twice
_MIN_FINDER_HITS = 3
# A texture patch this small (px) in a 1/8 glimpse may be a 5% card with ~1 px modules: no finder shows there
_GLIMPSE_FINE = 40
# The code of a card 5% of the frame wide shows as a patch 2.7-4.3% of the frame wide (bench/README.md): under 2%
# a patch is no card's
_GLIMPSE_TINY = 0.02
# Blur smears a 5-7% card's ~1 px modules at 1/8 into blocks under _TEXTURE_DENSITY (64-143); at this density such a
# code still shows as a patch, which counts when it looks like ink on a card (_on_card)
_GLIMPSE_SOFT_DENSITY = 64
_CARD_RING = 1 / 4  # of a patch's side: a card's quiet zone and margin around its code are wider at any turn
_CARD_PAPER_SHARE = (
    0.7  # of that ring as light as the patch's paper: blurred cards 0.82-0.98, bench plain frames' <= 0.54
)
# Regions of a glimpse up to this long side (px) are read upscaled this many times before any finer decode
_GLIMPSE_UPSCALED = 160
_GLIMPSE_UPSCALE = 3
# JPEG frame markers: baseline and extended sequential Huffman (one scan, top to bottom), then every other kind
_SEQUENTIAL_FRAMES = (0xC0, 0xC1)
_OTHER_FRAMES = (0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDA)
_ZBAR_GREY = int.from_bytes(b"Y800", "little")  # zbar's fourcc for 8-bit greyscale
_ZBAR_CFG_BINARY = 4  # zbar >= 0.23: return the payload's raw bytes instead of a charset guess

Box = tuple[int, int, int, int]
ImageLoader = Callable[[], Image.Image]
RowsLoader = Callable[[int], Image.Image]  # the top rows of an image


@dataclass(frozen=True)
class QrReading:
    """The QR texts of an image, and whether it showed a symbol that no decoder could read."""

    texts: tuple[str, ...] = ()
    unreadable_card: bool = False


def coarse_scale(size: tuple[int, int]) -> int:
    """The largest reduction (1, 2, 4 or 8) that keeps the long side at least COARSE_LONG_SIDE pixels."""
    long_side = max(size)
    return next(scale for scale in (8, 4, 2, 1) if scale == 1 or long_side // scale >= COARSE_LONG_SIDE)


def draft_for_detection(image: Image.Image, mode: str = "RGB") -> bool:
    """Ask a not-yet-loaded JPEG to decode at the coarse scale; True if it will come out reduced."""
    full_size = image.size
    scale = coarse_scale(full_size)
    if scale > 1:
        image.draft(mode, (image.width // scale, image.height // scale))
    return image.size != full_size


def draft_glimpse(image: Image.Image) -> bool:
    """Ask a not-yet-loaded JPEG that the coarse pass would read reduced to decode at 1/8 first, as the floor
    does; True if it will come out reduced (see read_qr_glimpsed)."""
    full_size = image.size
    if coarse_scale(full_size) > 1:
        image.draft("RGB", (image.width // GLIMPSE_SCALE, image.height // GLIMPSE_SCALE))
    return image.size != full_size


def read_qr_glimpsed(glimpse: Image.Image, full_size: tuple[int, int], open_rows: RowsLoader) -> QrReading:
    """read_qr for a frame glimpsed at 1/8 (draft_glimpse): zxing-cpp and the card-like test's texture stage
    run on the glimpse, and only where they leave something unread is the frame decoded again, finer.

    A frame is done with no second decode when every place that may hold a card (a symbol zxing-cpp could not
    read, a texture patch that is small or shows finder patterns) was read on the glimpse, directly (a large
    card) or upscaled 3x (many 5-6% cards), and most frames show no such place. Otherwise `open_rows(rows)`
    gives the frame's top rows down to the lowest place still unread (the entropy decode stops there, see
    jpeg_rows), and the coarse pass reads them. The glimpse's texture levels are the coarse pass's, so a card
    that pass would look at shows here too.
    """
    gray = glimpse.convert("L")
    texts, regions = _glimpse_regions(gray, full_size[0] / gray.width / coarse_scale(full_size))
    found, regions = _read_upscaled(gray, regions)
    texts += found
    if not regions:
        return QrReading(tuple(sorted(set(texts))))
    lowest = max(_padded_by(box, 1 / 2, gray.size)[3] for box in regions)
    rows = min(full_size[1], -(-lowest * full_size[1] // gray.height))
    detail = open_rows(rows)
    draft_for_detection(detail, "L")  # greyscale straight from the JPEG: 20% cheaper than RGB, then convert
    reading = read_qr(detail, full_image=lambda: open_rows(rows))
    return QrReading(tuple(sorted(set(texts + list(reading.texts)))), reading.unreadable_card)


def _glimpse_regions(gray: Image.Image, reduction: float) -> tuple[list[str], list[Box]]:
    """The QR texts zxing-cpp reads on a glimpse, and the boxes that need a finer look: symbols it could not
    read, and QR-like texture patches (at the card-like test's levels) that are small (but not smaller than a
    card's code can be) or show finder patterns as the card-like test counts them, where they are not on a
    symbol it read. Cards' patches show 6-19 finder hits here, plain frames' 0-2 (bench/README.md). A blurred
    small card's code may fall short of that density: a sparser patch of that size counts where it is ink on a
    card (_on_card)."""
    texts, read, unread = _read_zxing(gray, try_invert=False)
    # as read_qr does, a symbol without a place is nothing to read; a long thin one (a failed rMQR on a line)
    # is no card, which is square
    unread = [box for box in unread if _squarish(box) and not any(_overlaps(box, symbol) for symbol in read)]
    regions = [_padded(box, gray.size) for box in unread]
    levels = [round(level / reduction) for level in _TEXTURE_LEVELS if level >= reduction]
    shades = _shades(gray.histogram())
    for texture, scale in _texture_maps(gray, levels):
        for patch in _scaled_patches(texture, scale, _TEXTURE_DENSITY):
            if _may_be_code(patch, gray.width, read):
                box = _padded_by(patch, 1 / 3, gray.size)
                # a patch this small may be a 5% card with ~1 px modules, where no finder pattern can show
                if _side(patch) <= _GLIMPSE_FINE or _finder_patterns(gray.crop(box)) >= _MIN_FINDER_HITS:
                    regions.append(box)
        if 3 * scale > _GLIMPSE_FINE:
            continue  # a patch is 3 blocks or more: at this level none is small
        for patch in _scaled_patches(texture, scale, _GLIMPSE_SOFT_DENSITY):
            # square, as a code is (a card's name under its code is wide), and not a place already chosen
            small = _side(patch) <= _GLIMPSE_FINE and 2 * _side(patch) <= 3 * min(_sides(patch))
            new = small and not any(_mostly_on(patch, region) for region in regions)
            if new and _may_be_code(patch, gray.width, read) and _on_card(gray, patch, shades):
                regions.append(_padded_by(patch, 1 / 3, gray.size))
    return texts, regions


def _may_be_code(patch: Box, width: int, read: list[Box]) -> bool:
    """Not smaller than any card's code in a glimpse `width` wide, and not on a card read there."""
    return _side(patch) >= _GLIMPSE_TINY * width and not any(_mostly_on(patch, symbol) for symbol in read)


def _on_card(gray: Image.Image, patch: Box, shades: tuple[int, int]) -> bool:
    """The patch looks like a code printed on a card: it spans the frame's dark to light (black ink, white paper,
    however blurred), and most of a ring around it is as light as its paper (the quiet zone and the card's
    margin). Texture on clothes or clutter lacks the paper, or the light ring around it."""
    darkest, lightest = shades
    inside = gray.crop(patch).histogram()
    ink, paper = _percentile(inside, 0.05), _percentile(inside, 0.95)
    if paper < lightest - (lightest - darkest) // 8 or paper - ink < 3 * (lightest - darkest) // 4:
        return False
    around = gray.crop(_padded_by(patch, _CARD_RING, gray.size)).histogram()
    ring = [outer - inner for outer, inner in zip(around, inside, strict=True)]
    return sum(ring[paper - (paper - ink) // 4 :]) >= _CARD_PAPER_SHARE * sum(ring)


def _shades(histogram: list[int]) -> tuple[int, int]:
    """The frame's dark and light ends: its 1st and 99th percentile."""
    return _percentile(histogram, 0.01), _percentile(histogram, 0.99)


def _percentile(histogram: list[int], share: float) -> int:
    total, seen = sum(histogram), 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= share * total:
            return value
    return len(histogram) - 1


def _read_upscaled(gray: Image.Image, regions: list[Box]) -> tuple[list[str], list[Box]]:
    """Texts zxing-cpp reads in glimpse regions upscaled 3x (a 5-6% card's ~1 px modules often read so), and
    the regions that stay unread: those with no text, or with a symbol beside the ones read, unless mostly on a
    region that read (the same card seen at two texture levels)."""
    texts, done, unread = [], [], []
    for region in regions:
        crop = gray.crop(region)
        found, read, failed = [], [], []
        if _MIN_REGION <= min(crop.size) and max(crop.size) <= _GLIMPSE_UPSCALED:
            size = (crop.width * _GLIMPSE_UPSCALE, crop.height * _GLIMPSE_UPSCALE)
            found, read, failed = _read_zxing(crop.resize(size, Image.Resampling.BICUBIC), try_invert=False)
        texts += found
        if not found or any(not any(_overlaps(box, symbol) for symbol in read) for box in failed):
            unread.append(region)
        else:
            done.append(region)
    return texts, [region for region in unread if not any(_mostly_on(region, other) for other in done)]


def jpeg_rows(data: bytes, rows: int) -> bytes:
    """The JPEG `data` with its frame header claiming only its top `rows` rows: a decoder then entropy-decodes
    those and skips the rest of the scan (about as fast as it reads bytes). Only sequential JPEGs, decoded top
    to bottom in one scan, are cut; anything else comes back whole."""
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1  # a fill byte before a marker
            continue
        if marker in _SEQUENTIAL_FRAMES:
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            if not 0 < rows < height:
                return data
            return data[: at + 5] + rows.to_bytes(2, "big") + data[at + 7 :]
        if marker in _OTHER_FRAMES:
            return data
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return data


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
    if not texts and full_image is None and _is_small(coarse):
        texts = _read_closer(coarse)
    unread = [box for box in evidence if not any(_overlaps(box, symbol) for symbol in read)]
    # a card-like region mostly on a symbol already read is part of that card; one beside it may be a sibling's
    cards = [box for box in card_like_boxes(coarse) if not any(_mostly_on(box, symbol) for symbol in read)]
    regions = _largest([_padded(box, coarse.size) for box in unread]) + _largest(cards)
    found, unreadable = _read_regions(coarse, regions, full_image)
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


def _read_zbar(gray: Image.Image) -> list[str]:
    """zbar's QR texts: the raw bytes as UTF-8; a read that is not UTF-8 is dropped.

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
        return [text for data in _zbar_payloads(image) if (text := _utf8(data)) is not None]
    finally:
        zbar.zbar_image_destroy(image)
        zbar.zbar_image_scanner_destroy(scanner)


def _zbar_payloads(image: object) -> list[bytes]:
    payloads = []
    symbol = zbar.zbar_image_first_symbol(image)
    while symbol:
        payloads.append(string_at(zbar.zbar_symbol_get_data(symbol), zbar.zbar_symbol_get_data_length(symbol)))
        symbol = zbar.zbar_symbol_next(symbol)
    return payloads


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
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
    # zbar takes ~25 ms per megapixel: full resolution only when that is affordable. Each view is also read at
    # half size: sensor noise defeats zbar at full resolution where half reads (glare over a finder pattern).
    views = [full, coarse] if full is not None and _is_small(full) else [coarse]
    for view in views:
        if texts := _read_zbar(view) or _read_zbar(view.reduce(2)):
            return texts
    return []


def _read_regions(coarse: Image.Image, regions: list[Box], full_image: ImageLoader | None) -> tuple[list[str], bool]:
    """Read each region where an unreadable symbol or a card-like object showed more closely.

    Also says whether some region gave no text and overlaps none that did: a card-like object nobody could read
    (a failed finder pattern of a card that its card-like region read is that card, not another).
    """
    full = _gray_full(full_image) if full_image and regions else None
    texts, read, unread = [], [], []
    for region in regions:
        if min(region[2] - region[0], region[3] - region[1]) < _MIN_REGION:
            continue  # a degenerate or off-image detection: nothing to read
        full_region = full.crop(_scaled(region, full.width / coarse.width)) if full is not None else None
        found = _read_closer(coarse.crop(region), full_region)
        texts += found
        (read if found else unread).append(region)
    return texts, any(not any(_overlaps(box, other) for other in read) for box in unread)


def card_like_boxes(coarse: Image.Image) -> list[Box]:
    """Regions of `coarse` that hold a card-like object: a squarish patch of dense fine texture in which QR
    finder patterns show (glare can hide one of the three; two are enough).

    The cheapest test first: most frames hold no card, and a few ms of texture statistics on reduced
    images prove it; only a patch that passes is searched for finder patterns.
    """
    boxes = []
    for patch in _textured_patches(coarse, _TEXTURE_LEVELS):
        box = _padded_by(patch, 1 / 3, coarse.size)
        if _finder_patterns(coarse.crop(box)) >= _MIN_FINDER_HITS:
            boxes.append(box)
    return boxes


def _textured_patches(gray: Image.Image, levels: Iterable[int]) -> Iterator[Box]:
    """Boxes (in `gray`'s pixels) of the QR-like texture patches of `gray` reduced by each of `levels`."""
    for texture, scale in _texture_maps(gray, levels):
        yield from _scaled_patches(texture, scale, _TEXTURE_DENSITY)


def _texture_maps(gray: Image.Image, levels: Iterable[int]) -> Iterator[tuple[Image.Image, int]]:
    """The texture (see _texture) of `gray` reduced by each of `levels`, and the size of its blocks in `gray`."""
    reduced, done, step = gray, 1, None
    for level in levels:
        reduced, done = reduced.reduce(level // done), level  # each level from the last: one pass over the frame
        if min(reduced.size) < 4 * _TEXTURE_BLOCK:
            break
        step = step or _contrast_step(reduced)  # from the finest level, where module edges show
        yield _texture(reduced, step), level * _TEXTURE_BLOCK


def _scaled_patches(texture: Image.Image, scale: int, density: int) -> Iterator[Box]:
    for blocks in _texture_patches(texture, density):
        yield _scaled(blocks, scale)


def _contrast_step(gray: Image.Image) -> int:
    """A quarter of the range between the 1st and 99th percentile: what a module edge steps at least."""
    darkest, lightest = _shades(gray.histogram())
    return max(12, (lightest - darkest) // 4)


def _texture(gray: Image.Image, step: int) -> Image.Image:
    """Per block, the lesser of the shares (0-255) of pixels with a sharp step to the right and downwards."""
    width, height = gray.size
    here = gray.crop((0, 0, width - 1, height - 1))
    sharp = [0] * step + [255] * (256 - step)
    across = ImageChops.difference(here, gray.crop((1, 0, width, height - 1))).point(sharp)
    down = ImageChops.difference(here, gray.crop((0, 1, width - 1, height))).point(sharp)
    return ImageChops.darker(across.reduce(_TEXTURE_BLOCK), down.reduce(_TEXTURE_BLOCK))


def _texture_patches(texture: Image.Image, density: int) -> list[Box]:
    """Boxes (in blocks) of connected blocks of at least `density` texture that are squarish and mostly filled,
    as a QR is; lines and edges make thin or hollow shapes."""
    dense = texture.point([0] * density + [1] * (256 - density))
    if dense.getbbox() is None:
        return []
    patches = []
    for box, members in _connected(dense.tobytes(), dense.width):
        sides = sorted(_sides(box))
        if sides[0] >= 3 and sides[1] <= 2.5 * sides[0] and members >= _area(box) / 2:
            patches.append(box)
    return patches


def _connected(cells: bytes, width: int) -> Iterator[tuple[Box, int]]:
    """The bounding box and size of each 8-connected group of non-zero cells (rows of `width`), found run by run:
    a frame's texture map has few runs, and a union-find over them is much cheaper than visiting every cell."""
    parent: list[int] = []
    boxes: list[list[int]] = []  # left, top, right, bottom, cells of each run
    above: list[tuple[int, int, int]] = []  # the previous row's runs: start, end, index

    def root(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    for y in range(len(cells) // width):
        row, first = [], 0
        for match in _DENSE_RUN.finditer(cells, y * width, (y + 1) * width):
            start, end = match.start() - y * width, match.end() - y * width
            index = len(parent)
            parent.append(index)
            boxes.append([start, y, end, y + 1, end - start])
            while first < len(above) and above[first][1] < start:
                first += 1  # ends left of this run, diagonals included: touches no later run either
            for other_start, _, other in above[first:]:
                if other_start > end:
                    break
                parent[root(other)] = root(index)
            row.append((start, end, index))
        above = row
    groups: dict[int, list[int]] = {}
    for index, box in enumerate(boxes):
        group = groups.setdefault(root(index), [*box[:4], 0])
        group[:4] = min(group[0], box[0]), min(group[1], box[1]), max(group[2], box[2]), max(group[3], box[3])
        group[4] += box[4]
    for left, top, right, bottom, members in groups.values():
        yield (left, top, right, bottom), members


def _finder_patterns(crop: Image.Image) -> int:
    """How many points show a finder pattern's 1:1:3:1:1 dark-light runs both across and down."""
    scale = _FINDER_SIDE / max(crop.size)  # up too: a small card's modules are under 2 px at the coarse scale
    size = (max(8, round(crop.width * scale)), max(8, round(crop.height * scale)))
    crop = crop.resize(size, Image.Resampling.BICUBIC)
    # dark = darker than the neighbourhood by a bit of the local contrast: survives glare and dark gyms
    low, high = crop.getextrema()
    offset = max(4, (high - low) // 16)
    darker = ImageChops.subtract(crop.filter(ImageFilter.BoxBlur(max(3, crop.width // 10))), crop)
    runs = darker.point([ord("b")] * offset + [ord("a")] * (256 - offset))
    across = _finder_runs(runs)
    down = [(x, y) for y, x in _finder_runs(runs.transpose(Image.Transpose.TRANSPOSE))]
    return sum(any(abs(x - u) <= 2 and abs(y - v) <= 2 for u, v in down) for x, y in across)


def _finder_runs(runs: Image.Image) -> list[tuple[int, int]]:
    """Centres of the rows' dark-light-dark-light-dark runs in the ratio 1:1:3:1:1 (loosely: blur, tilt)."""
    width, data = runs.width, runs.tobytes()
    centres = []
    for match in _FINDER_RUN.finditer(data):
        start, end = match.span()
        if start // width != (end - 1) // width:
            continue  # the match wraps from one row into the next
        lengths = [len(run) for run in _RUNS.findall(match.group())]
        outer = [lengths[0], lengths[1], lengths[3], lengths[4]]
        module = sum(outer) / 4
        if all(0.5 * module <= run <= 1.6 * module for run in outer) and 2.2 * module <= lengths[2] <= 4 * module:
            centre = start + lengths[0] + lengths[1] + lengths[2] // 2
            centres.append((centre % width, centre // width))
    return centres


def _sides(box: Box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _side(box: Box) -> int:
    return max(_sides(box))


def _squarish(box: Box) -> bool:
    sides = sorted((box[2] - box[0], box[3] - box[1]))
    return sides[0] > 0 and sides[1] <= 2.5 * sides[0]


def _largest(regions: list[Box]) -> list[Box]:
    return sorted(regions, key=_area, reverse=True)[:_MAX_EVIDENCE]


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


def _mostly_on(box: Box, symbol: Box) -> bool:
    """At least a third of `box` lies on `symbol` (a padded region of a read card still does; a sibling's not)."""
    width = min(box[2], symbol[2]) - max(box[0], symbol[0])
    height = min(box[3], symbol[3]) - max(box[1], symbol[1])
    return width > 0 and height > 0 and 3 * width * height >= _area(box)


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _padded(box: Box, size: tuple[int, int]) -> Box:
    return _padded_by(box, _EVIDENCE_MARGIN, size)


def _padded_by(box: Box, margin: float, size: tuple[int, int]) -> Box:
    left, top, right, bottom = box
    pad = round(max(right - left, bottom - top) * margin)
    return max(0, left - pad), max(0, top - pad), min(size[0], right + pad), min(size[1], bottom + pad)


def _scaled(box: Box, factor: float) -> Box:
    left, top, right, bottom = (round(value * factor) for value in box)
    return left, top, right, bottom
