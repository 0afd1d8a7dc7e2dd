"""Synthetic camera frames for tests and benchmarks: printed QR cards inside textured JPEGs with EXIF.

A 24 MP frame (~8.5 MB) takes ~0.8 s of one core to make, most of it JPEG encoding; a 1200x800 frame ~30 ms.
make_batch(..., workers=2) uses both cores.
"""

from __future__ import annotations

import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pillow_heif
import segno
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

DEFAULT_CAPTURED_AT = datetime(2025, 5, 17, 9, 30, 0)
DEFAULT_CAMERA = ("Canon", "EOS R6", "SN123")
SMALL_SIZE = (1200, 800)

_MODULE_PX = 12  # card master resolution; make_photo resamples it to the requested size
_NOISE_TILE = 509  # odd size so the tiling does not line up with JPEG's 8x8 blocks
_EXIF_IFD = 0x8769


def render_qr(text: str, module_px: int = _MODULE_PX) -> Image.Image:
    """A bare QR symbol (4-module quiet zone) as a greyscale image, `module_px` pixels per module."""
    qr = segno.make(text, error="m", micro=False)
    rows = [bytes(0 if dark else 255 for dark in row) for row in qr.matrix_iter(scale=1, border=4)]
    symbol = Image.frombytes("L", (len(rows[0]), len(rows)), b"".join(rows))
    return symbol.resize((symbol.width * module_px, symbol.height * module_px), Image.Resampling.NEAREST)


def make_card_image(
    text: str, *, name: str = "Alex Example", module_px: int = _MODULE_PX, glare: bool = False
) -> Image.Image:
    """A printed separator card: the QR on off-white paper with the person's name under it (RGB).

    `glare` washes out the top-left finder pattern, as a reflection on a laminated card does.
    """
    symbol = render_qr(text, module_px)
    margin = symbol.width // 10
    font = ImageFont.load_default(size=max(10, symbol.width // 10))
    text_height = font.size * 2
    card_size = (symbol.width + 2 * margin, symbol.height + 2 * margin + text_height)
    card = Image.new("RGB", card_size, (246, 244, 238))
    card.paste(symbol.convert("RGB"), (margin, margin))
    draw = ImageDraw.Draw(card)
    name_centre = (card.width // 2, margin + symbol.height + text_height // 2)
    draw.text(name_centre, name, fill=(20, 20, 20), font=font, anchor="mm")
    return _with_glare(card, margin + 4 * module_px, 7 * module_px) if glare else card


def _with_glare(card: Image.Image, corner: int, finder: int) -> Image.Image:
    """A soft near-white blob over the top-left finder pattern (its 7x7 modules start at `corner`)."""
    mask = Image.new("L", card.size, 0)
    centre = corner + finder // 2
    radius = finder * 0.3  # its bright core only: zbar still reads such a card, zxing-cpp does not
    ImageDraw.Draw(mask).ellipse((centre - radius, centre - radius, centre + radius, centre + radius), fill=235)
    mask = mask.filter(ImageFilter.GaussianBlur(finder / 8))
    return Image.composite(Image.new("RGB", card.size, (252, 252, 250)), card, mask)


@lru_cache(maxsize=4)
def _noise_tile(sigma: float = 9) -> Image.Image:
    """Sensor-like RGB noise centred on 128, made once and tiled: random pixels make JPEGs camera-sized."""
    channels = [Image.effect_noise((_NOISE_TILE, _NOISE_TILE), sigma) for _ in range(3)]
    return Image.merge("RGB", channels)


def _scene(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A background with gradients, edges and clutter, so detectors see something besides flat colour."""
    gradients = [Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))) for _ in range(3)]
    base = Image.merge("RGB", gradients)
    scene = base.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(scene)
    w, h = size
    for _ in range(60):
        x, y = rng.randrange(w), rng.randrange(h)
        box = (x, y, x + rng.randrange(w // 40, w // 4), y + rng.randrange(h // 40, h // 4))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    for _ in range(150):
        points = [(rng.randrange(w), rng.randrange(h)) for _ in range(2)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.line(points, fill=colour, width=rng.randrange(1, max(2, w // 300)))
    # a checked shirt: square-ish dark blocks are the classic source of false QR finder patterns
    cx, cy, cell = w // 3, h // 2, max(4, w // 150)
    for i in range(12):
        for j in range(12):
            if (i + j) % 2:
                x, y = cx + i * cell, cy + j * cell
                draw.rectangle((x, y, x + cell, y + cell), fill=(30, 30, 60))
    return scene


def _add_noise(image: Image.Image, sigma: float = 9) -> Image.Image:
    tile = _noise_tile(sigma)
    noise = Image.new("RGB", image.size)
    for x in range(0, image.width, tile.width):
        for y in range(0, image.height, tile.height):
            noise.paste(tile, (x, y))
    return ImageChops.add(image, noise, scale=1.0, offset=-128)


def _perspective_coeffs(seen: list[tuple[float, float]], source: list[tuple[float, float]]) -> list[float]:
    """Pillow's 8 PERSPECTIVE coefficients mapping output corners `seen` to input corners `source`."""
    rows = []
    for (x, y), (u, v) in zip(seen, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    for col in range(8):  # Gauss-Jordan elimination with partial pivoting
        pivot = max(range(col, 8), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [value / rows[col][col] for value in rows[col]]
        for r in range(8):
            if r != col:
                rows[r] = [a - rows[r][col] * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [row[8] for row in rows]


def _place(
    frame: Image.Image,
    patch: Image.Image,
    width: int,
    rotate_deg: float,
    blur: float,
    tilt: float,
    centre: tuple[int, int],
) -> None:
    """Paste `patch` scaled to `width` px, tilted, rotated and blurred, centred at `centre` (in place)."""
    height = round(patch.height * width / patch.width)
    patch = patch.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    mask = Image.new("L", patch.size, 255)
    if tilt:
        # the top edge leans away from the camera: a true perspective warp, as a lens sees a tilted card
        spread = tilt * width / 2
        coeffs = _perspective_coeffs(
            [(spread, 0), (width - spread, 0), (width, height), (0, height)],
            [(0, 0), (width, 0), (width, height), (0, height)],
        )
        patch = patch.transform(patch.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
        mask = mask.transform(mask.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    if rotate_deg:
        patch = patch.rotate(rotate_deg, Image.Resampling.BICUBIC, expand=True)
        mask = mask.rotate(rotate_deg, Image.Resampling.BICUBIC, expand=True)
    if blur:
        patch = patch.filter(ImageFilter.GaussianBlur(blur))
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    frame.paste(patch, (centre[0] - patch.width // 2, centre[1] - patch.height // 2), mask)


def _exif(
    camera: tuple[str, str, str] | None, captured_at: datetime | None, subsec: str | None, orientation: int
) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    sub = exif.get_ifd(_EXIF_IFD)
    if camera:
        exif[0x010F], exif[0x0110] = camera[0], camera[1]
        sub[0xA431] = camera[2]
    if captured_at:
        stamp = captured_at.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        sub[0x9003] = sub[0x9004] = stamp
        if subsec is not None:
            sub[0x9291] = subsec
    return exif


def make_photo(
    path: Path | str,
    *,
    size: tuple[int, int] = (6000, 4000),
    card_text: str | None = None,
    card_name: str = "Alex Example",
    card_fraction: float = 0.1,
    rotate_deg: float = 0,
    blur: float = 0,
    tilt: float = 0,
    card_centre: tuple[float, float] = (0.55, 0.45),
    camera: tuple[str, str, str] | None = DEFAULT_CAMERA,
    captured_at: datetime | None = DEFAULT_CAPTURED_AT,
    subsec: str | None = "00",
    orientation: int = 1,
    quality: int = 90,
    other_qr: str | None = None,
    glare: bool = False,
    exposure: float = 1.0,
    noise: float = 9,
    more_cards: tuple[tuple[str, tuple[float, float]], ...] = (),
    image_format: str = "JPEG",
    seed: int = 0,
) -> Path:
    """Write a camera-like JPEG (or HEIF); with `card_text`, a card `card_fraction` of the frame width wide is in it.

    `tilt` (0..0.5) foreshortens the card's top edge as if held leaning back; `card_centre` is a fraction
    of the frame size; `other_qr` adds a bare QR (e.g. a URL on a poster) at 8% width. The trouble of real
    photo days: `glare` over a finder pattern, `exposure` < 1 with more sensor `noise` (a dark gym), and
    `more_cards` ((text, centre), ...) held up beside the first, posed alike.
    """
    rng = random.Random(seed)
    frame = _scene(size, rng)
    cards = [(card_text, card_centre), *more_cards] if card_text is not None else []
    for text, where in cards:
        centre = (round(size[0] * where[0]), round(size[1] * where[1]))
        card = make_card_image(text, name=card_name, glare=glare)
        _place(frame, card, round(size[0] * card_fraction), rotate_deg, blur, tilt, centre)
    if other_qr is not None:
        _place(frame, render_qr(other_qr), round(size[0] * 0.08), 0, blur, 0, (size[0] // 6, size[1] // 4))
    if exposure != 1.0:
        frame = frame.point(lambda value: round(value * exposure))
    path = Path(path)
    exif = _exif(camera, captured_at, subsec, orientation)
    if image_format == "HEIF":
        _register_heif()
    _add_noise(frame, noise).save(path, image_format, quality=quality, exif=exif)
    return path


@lru_cache(maxsize=1)
def _register_heif() -> None:
    pillow_heif.register_heif_opener()


def make_batch(
    folder: Path | str,
    plan: list[tuple],
    *,
    start: datetime = DEFAULT_CAPTURED_AT,
    interval: timedelta = timedelta(seconds=3),
    workers: int = 1,
    **photo_options,
) -> list[Path]:
    """Write IMG_0001.JPG... with increasing capture times, one per plan entry; returns their paths in order.

    Entries are ("card", text), ("card", text, {make_photo options}) or ("photo",). Sub-second times are
    written as SubSecTimeOriginal so that photos inside one second still sort. workers > 1 uses processes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for index, entry in enumerate(plan, start=1):
        captured = start + interval * (index - 1)
        options = {**photo_options, **(entry[2] if len(entry) > 2 else {})}
        if entry[0] == "card":
            options["card_text"] = entry[1]
        options.update(
            captured_at=captured.replace(microsecond=0), subsec=f"{captured.microsecond // 10000:02d}", seed=index
        )
        jobs.append((folder / f"IMG_{index:04d}.JPG", options))
    if workers <= 1:
        return [_make_photo_job(job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_make_photo_job, jobs))


def _make_photo_job(job: tuple[Path, dict]) -> Path:
    path, options = job
    return make_photo(path, **options)
