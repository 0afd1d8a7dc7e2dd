"""Scan one photo file: hash, EXIF, a thumbnail and its QR texts, from one read and (most often) one decode.

The file is read once; the SHA-256 is of the same bytes that are decoded. A camera JPEG is decoded at 1/8
(DCT scaling) for the thumbnail and a glimpse for cards; only a frame where one may be that the glimpse cannot
read is decoded again, finer, and only down to that place (detection.read_qr_glimpsed, jpeg_rows). Smaller
images are decoded once, at the coarse scale detection.py asks for.
Bad input never raises: it gives ok=False and a reason a person can act on.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import multiprocessing
import os
import re
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from functools import cache
from pathlib import Path

import pillow_heif
from PIL import Image, UnidentifiedImageError

from engine.detection import draft_glimpse, jpeg_rows, read_qr, read_qr_glimpsed

# Every camera up to 150 MP fits; it stays under Pillow's own hard limit (2 x MAX_IMAGE_PIXELS, ~179 MP).
EXIF_TEXT_MAX = 100
MAX_PIXELS = 160_000_000
THUMB_LONG_SIDE = 400
THUMB_QUALITY = 85

_EXIF_IFD = 0x8769
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Scan workers run this much nicer than the web workers (0 is the default, 19 the nicest).
SCAN_NICENESS = 10
_ORIENTATION, _MAKE, _MODEL, _DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
_BODY_SERIAL, _DNG_CAMERA_SERIAL = 0xA431, 0xC62F
# (date tag, sub-second tag) in order of preference: when the shutter fired, when digitised, file time.
_CAPTURE_TAGS = ((0x9003, 0x9291), (0x9004, 0x9292), (_DATETIME, 0x9290))
_EXIF_DATE = re.compile(r"(\d{4})[:-](\d\d)[:-](\d\d)[ T](\d\d):(\d\d):(\d\d)")
# EXIF orientation -> the transpose that shows the image upright (as PIL.ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ScanResult:
    """What one scan learnt about a file. Plain data; width/height are as stored, before orientation."""

    sha256: str | None
    size: int
    ok: bool
    error: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
    captured_at: datetime | None = None
    qr_texts: tuple[str, ...] = ()
    unreadable_card: bool = False  # a QR symbol was seen that no decoder read

    def to_dict(self) -> dict:
        """JSON-able: the time as ISO 8601, texts as a list."""
        data = asdict(self)
        data["captured_at"] = self.captured_at.isoformat() if self.captured_at else None
        data["qr_texts"] = list(self.qr_texts)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ScanResult:
        known = {field.name for field in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("captured_at"):
            values["captured_at"] = datetime.fromisoformat(values["captured_at"])
        values["qr_texts"] = tuple(values.get("qr_texts", ()))
        return cls(**values)


class BadImage(Exception):
    """The file is not a usable image; the message is the reason shown to people."""


def scan_file(path: str | os.PathLike, thumb_path: str | os.PathLike | None = None) -> ScanResult:
    """Scan one file; with `thumb_path`, also write a ~400 px upright JPEG thumbnail there (atomically).

    A bad file gives ok=False and the reason; failing to write the thumbnail (disk full) raises: that is not
    the photo's fault and must not mark it rejected.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return ScanResult(sha256=None, size=0, ok=False, error=f"unreadable: {error.strerror or error}")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ScanResult(sha256=digest, size=0, ok=False, error="empty file")
    try:
        fields_, thumbnail = _decode(data, want_thumbnail=thumb_path is not None)
    except BadImage as error:
        return ScanResult(sha256=digest, size=len(data), ok=False, error=str(error))
    if thumbnail is not None:
        _write_atomically(thumbnail, Path(thumb_path))
    return ScanResult(sha256=digest, size=len(data), ok=True, **fields_)


def _decode(data: bytes, want_thumbnail: bool) -> tuple[dict, Image.Image | None]:
    """Fields read from the image, and its thumbnail; raises BadImage with the reason."""
    image = None
    try:
        image = open_image(data)
        width, height = image.size
        metadata = _exif_fields(image.getexif())
        glimpsed = draft_glimpse(image)
        image.load()
        if glimpsed:
            reading = read_qr_glimpsed(
                image, (width, height), lambda rows: Image.open(io.BytesIO(jpeg_rows(data, rows)))
            )
        else:
            reading = read_qr(image)
        thumbnail = _thumbnail(image, metadata["orientation"]) if want_thumbnail else None
    except BadImage:
        raise
    except Image.DecompressionBombError as error:
        raise BadImage("image too large (decompression bomb)") from error
    except UnidentifiedImageError as error:
        raise BadImage("not an image") from error
    except OSError as error:
        if "truncated" in str(error):
            raise BadImage(f"truncated {getattr(image, 'format', None) or 'image'}") from error
        raise BadImage(f"unreadable: {error}") from error
    except Exception as error:  # decoders raise anything on malformed input; one file must not stop a batch
        raise BadImage(f"unreadable: {type(error).__name__}: {error}") from error
    qr = {"qr_texts": reading.texts, "unreadable_card": reading.unreadable_card}
    return {"width": width, "height": height, **qr, **metadata}, thumbnail


def open_image(data: bytes) -> Image.Image:
    """An image from its bytes, HEIC too, refused (BadImage) past MAX_PIXELS before anything is decoded."""
    _register_heif()
    with warnings.catch_warnings():
        # Pillow warns from 89 MP; MAX_PIXELS below is the limit that applies here
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
    if image.width * image.height > MAX_PIXELS:
        raise BadImage("image too large (decompression bomb)")
    return image


@cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF once per process, on first use rather than at import."""
    pillow_heif.register_heif_opener()


def _exif_fields(exif: Image.Exif) -> dict:
    sub = exif.get_ifd(_EXIF_IFD)
    orientation = exif.get(_ORIENTATION)
    return {
        "orientation": orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        "camera_make": _text(exif.get(_MAKE)),
        "camera_model": _text(exif.get(_MODEL)),
        "camera_serial": _text(sub.get(_BODY_SERIAL)) or _text(exif.get(_DNG_CAMERA_SERIAL)),
        "captured_at": _captured_at(exif, sub),
    }


def _text(value: object) -> str | None:
    """An EXIF ASCII value up to its NUL terminator (what follows is padding or junk), trimmed; None if empty."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    # Bounded and printable: camera fields are stored in 100-character columns and shown in pages.
    text = "".join(ch for ch in value.split("\x00", 1)[0] if ch.isprintable())
    return text.strip()[:EXIF_TEXT_MAX] or None


def _captured_at(exif: Image.Exif, sub: dict) -> datetime | None:
    for date_tag, subsec_tag in _CAPTURE_TAGS:
        stamp = _exif_datetime(sub.get(date_tag) or exif.get(date_tag))
        if stamp:
            return stamp.replace(microsecond=_microseconds(sub.get(subsec_tag) or exif.get(subsec_tag)))
    return None


def _exif_datetime(value: object) -> datetime | None:
    match = _EXIF_DATE.match(_text(value) or "")
    if not match:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders


def _microseconds(subsec: object) -> int:
    """SubSecTime holds the decimal digits of the fraction: "5" is .5 s, "05" is .05 s."""
    digits = re.match(r"\d*", _text(subsec) or "").group()
    return int((digits + "000000")[:6])


def _thumbnail(image: Image.Image, orientation: int | None) -> Image.Image:
    scale = THUMB_LONG_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # Area averaging (BOX) is what a 400 px preview of a shrunk image needs: from the 1/8 glimpse it costs a
    # sixth of LANCZOS's ~5 ms, a cost every frame pays (bench/README.md)
    thumb = rgb.resize(size, Image.Resampling.BOX)
    return thumb.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else thumb


def _write_atomically(image: Image.Image, path: Path) -> None:
    """Write a JPEG beside `path` and rename it over: readers never see half a thumbnail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            image.save(out, "JPEG", quality=THUMB_QUALITY)
        os.chmod(temp, 0o644)  # mkstemp makes it private; thumbnails are served to the web app
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def scan_files(
    paths: Iterable[str | os.PathLike],
    workers: int = 2,
    thumb_for: Callable[[str | os.PathLike], str | os.PathLike | None] | None = None,
) -> Iterator[tuple[str | os.PathLike, ScanResult]]:
    """Scan many files on `workers` processes, yielding (path, result) as each finishes.

    `thumb_for(path)` names the thumbnail to write (or None); it runs here, not in the workers. workers=1
    scans inline, in order. Processes are spawned, not forked: safe beside the web app's threads and sockets.
    """
    jobs = [(path, thumb_for(path) if thumb_for else None) for path in paths]
    if workers <= 1:
        for path, thumb in jobs:
            yield path, scan_file(path, thumb)
        return
    executor = scan_pool(workers)
    try:
        pending = {executor.submit(scan_file, path, thumb): path for path, thumb in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    finally:
        # a consumer that stops early must not wait for the rest of the batch
        executor.shutdown(wait=True, cancel_futures=True)


def scan_pool(workers: int) -> ProcessPoolExecutor:
    """Scan processes, spawned rather than forked (safe beside the web app's threads and sockets).

    All of them start now, from the calling thread: the pool's owner pays the start-up before the first photo,
    and each worker's parent-death signal is tied to this thread, so the owner must outlive the pool (the
    processor's own thread, or the CLI's main thread).
    """
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=prepare_worker, initargs=(os.getpid(),)
    )
    # One task per worker, all submitted before any can finish, makes the executor start every process.
    for started in [pool.submit(os.getpid) for _ in range(workers)]:
        started.result()
    return pool


def prepare_worker(parent_pid: int | None = None) -> None:
    """Process-pool initializer for scan workers: die with the parent, yield the CPU to the web workers, and let
    glibc reuse freed decode buffers rather than unmap them.

    A scan allocates ~50 MB in 6-18 MB pieces; by default glibc maps and unmaps each one, and re-faulting
    those pages cost ~28 ms of system time per 24 MP photo, a quarter of the scan (measured, bench/README.md).
    """
    _exit_with_parent(parent_pid)
    # A full-speed scan must not slow the pages and registrations served on the same cores.
    os.nice(SCAN_NICENESS)
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc only; elsewhere keep the defaults
    if mallopt:
        mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's maximum: buffers below this come from the heap
        mallopt(_M_TRIM_THRESHOLD, 256 * 2**20)  # and the heap keeps up to this much free memory


def _exit_with_parent(parent_pid: int | None) -> None:
    """A worker whose parent dies, however (kill -9 included), is killed by the kernel rather than left running.

    PR_SET_PDEATHSIG asks Linux to send SIGKILL when the parent goes; the parent may already have gone before
    this ran, which the parent's pid, passed in rather than read here, tells.
    """
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None or prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "scan workers need Linux's PR_SET_PDEATHSIG to die with their parent")
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)
