"""Scanning one photo file: hash, EXIF, thumbnail, QR texts, and clear reasons for bad input."""

import hashlib
import json
import os
import struct
import zlib
from datetime import datetime
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from engine.filetypes import HEAD_BYTES, refusal
from engine.scanning import SCAN_NICENESS, ScanResult, scan_file, scan_files, scan_pool
from tests.support.corpus import QR_PHOTOS
from tests.support.photogen import SMALL_SIZE, make_photo

T0 = datetime(2025, 5, 17, 9, 30, 12)
CARD = "INTAKE:7Q2K9XH4"


@pytest.fixture(scope="module")
def card_jpeg(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scan")
    return make_photo(
        folder / "IMG_0001.JPG",
        size=SMALL_SIZE,
        card_text=CARD,
        card_fraction=0.3,
        captured_at=T0,
        subsec="37",
        orientation=6,
        camera=("Nikon", "Z 6II", "6012345"),
    )


def jpeg_with_exif(path: Path, ifd0: dict, exif_ifd: dict) -> Path:
    """A small plain JPEG carrying exactly the given EXIF tags."""
    exif = Image.Exif()
    exif.update(ifd0)
    exif.get_ifd(0x8769).update(exif_ifd)
    Image.new("RGB", (64, 48), (120, 130, 140)).save(path, "JPEG", exif=exif)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims `width` x `height` pixels: decoding it would allocate them all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_scan_reads_hash_size_exif_and_card(card_jpeg):
    """A camera JPEG gives its SHA-256, size, stored dimensions, camera, capture time to the 1/100 s and QR."""
    result = scan_file(card_jpeg)
    data = card_jpeg.read_bytes()
    assert result == ScanResult(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        ok=True,
        error=None,
        width=1200,
        height=800,
        orientation=6,
        camera_make="Nikon",
        camera_model="Z 6II",
        camera_serial="6012345",
        captured_at=T0.replace(microsecond=370000),
        qr_texts=(CARD,),
    )


def test_result_round_trips_through_json(card_jpeg):
    """to_dict is JSON-able and from_dict restores an equal result."""
    result = scan_file(card_jpeg)
    assert ScanResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_thumbnail_is_upright_small_and_written_atomically(card_jpeg, tmp_path):
    """The thumbnail is a ~400 px JPEG with EXIF orientation applied, and no temporary file is left."""
    thumb = tmp_path / "thumbs" / "IMG_0001.jpg"
    scan_file(card_jpeg, thumb)
    with Image.open(thumb) as image:
        assert (image.format, image.size) == ("JPEG", (267, 400))  # orientation 6: portrait
    assert [path.name for path in thumb.parent.iterdir()] == ["IMG_0001.jpg"]


@pytest.mark.parametrize(
    ("ifd0", "exif_ifd", "expected"),
    [
        ({}, {0x9003: "2025:05:17 09:30:12", 0x9291: "5"}, datetime(2025, 5, 17, 9, 30, 12, 500000)),
        ({}, {0x9003: "2025:05:17 09:30:12", 0x9291: "123456789"}, datetime(2025, 5, 17, 9, 30, 12, 123456)),
        ({}, {0x9004: "2025:05:17 09:30:13", 0x9292: "07"}, datetime(2025, 5, 17, 9, 30, 13, 70000)),
        ({0x0132: "2025:05:17 09:30:14"}, {}, datetime(2025, 5, 17, 9, 30, 14)),
        ({0x0132: "2025:05:17 09:30:14"}, {0x9003: "0000:00:00 00:00:00"}, datetime(2025, 5, 17, 9, 30, 14)),
        ({}, {}, None),
    ],
)
def test_capture_time_falls_back_from_original_to_digitized_to_file_time(tmp_path, ifd0, exif_ifd, expected):
    """DateTimeOriginal with its sub-seconds first, then DateTimeDigitized, then DateTime; None if none."""
    assert scan_file(jpeg_with_exif(tmp_path / "t.jpg", ifd0, exif_ifd)).captured_at == expected


def test_serial_falls_back_to_the_dng_camera_serial(tmp_path):
    """Without BodySerialNumber the DNG CameraSerialNumber tag is used; padding is stripped."""
    result = scan_file(jpeg_with_exif(tmp_path / "s.jpg", {0xC62F: " A7-9911 \x00\x00"}, {}))
    assert (result.ok, result.camera_serial, result.camera_make) == (True, "A7-9911", None)


def test_exif_text_ends_at_its_nul_terminator(tmp_path):
    """EXIF ASCII is NUL-terminated: bytes after the NUL are junk and never reach the database."""
    result = scan_file(jpeg_with_exif(tmp_path / "n.jpg", {0x010F: "Canon", 0x0110: "Mod\x00el"}, {}))
    assert (result.camera_make, result.camera_model) == ("Canon", "Mod")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("half.jpg", lambda jpeg: jpeg[: len(jpeg) // 2], "truncated JPEG"),
        ("no-end.jpg", lambda jpeg: jpeg[:-2], "truncated JPEG"),
        ("notes.jpg", lambda jpeg: b"these are my notes, not a photo\n" * 40, "not an image"),
        ("empty.jpg", lambda jpeg: b"", "empty file"),
        ("bomb.png", lambda jpeg: png_claiming(100_000, 100_000), "image too large (decompression bomb)"),
        ("big.png", lambda jpeg: png_claiming(13_000, 13_000), "image too large (decompression bomb)"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(card_jpeg, tmp_path, name, content, reason):
    """Truncated, non-image, empty and oversized files give ok=False and a clear reason, never an exception."""
    path = tmp_path / name
    path.write_bytes(content(card_jpeg.read_bytes()))
    thumb = tmp_path / "thumb.jpg"
    result = scan_file(path, thumb)
    assert (result.ok, result.error, result.qr_texts) == (False, reason, ())
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not thumb.exists()


def test_missing_file_is_reported_not_raised(tmp_path):
    """A path that cannot be read gives ok=False with the operating system's reason."""
    result = scan_file(tmp_path / "gone.jpg")
    assert (result.ok, result.sha256, result.error) == (False, None, "unreadable: No such file or directory")


def test_heic_is_scanned_and_a_truncated_one_rejected(tmp_path):
    """An HEIC photo gives its EXIF and QR; cut in half it is rejected, not raised."""
    pillow_heif.register_heif_opener()
    frame = Image.open(make_photo(tmp_path / "src.jpg", size=SMALL_SIZE, card_text=CARD, card_fraction=0.3))
    path = tmp_path / "IMG_0001.HEIC"
    frame.save(path, "HEIF", quality=90, exif=frame.getexif())
    result = scan_file(path)
    assert (result.ok, result.camera_make, result.captured_at, result.qr_texts) == (
        True,
        "Canon",
        datetime(2025, 5, 17, 9, 30),
        (CARD,),
    )
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert scan_file(path).ok is False


def test_corpus_png_is_scanned():
    """PNG input works: a real phone photo from the corpus gives its QR text."""
    png = QR_PHOTOS / "qrcode-1_01.png"
    assert png.exists(), f"corpus not found at {png.parent}"
    result = scan_file(png)
    assert (result.ok, result.width, result.height) == (True, 640, 480)
    assert result.qr_texts == (png.with_suffix(".txt").read_text(encoding="utf-8"),)


def test_camera_frame_is_scanned_from_a_reduced_decode(tmp_path):
    """A 24 MP frame with a 5% card reports full dimensions and the card; its thumbnail is 400 px wide."""
    path = make_photo(tmp_path / "IMG_0001.JPG", card_text=CARD, card_fraction=0.05, rotate_deg=200, blur=1)
    result = scan_file(path, tmp_path / "thumb.jpg")
    assert (result.ok, result.width, result.height, result.qr_texts) == (True, 6000, 4000, (CARD,))
    with Image.open(tmp_path / "thumb.jpg") as thumb:
        assert thumb.size == (400, 267)


@pytest.mark.parametrize("workers", [1, 2])
def test_scan_files_yields_every_path_once(card_jpeg, tmp_path, workers):
    """Each path comes back once with its result, bad files included, with one or two worker processes."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 broken")
    paths = [card_jpeg, bad, card_jpeg.with_name("missing.jpg")]
    results = dict(scan_files(paths, workers=workers, thumb_for=lambda path: tmp_path / f"{Path(path).stem}.t.jpg"))
    assert set(results) == set(paths)
    assert results[card_jpeg].qr_texts == (CARD,)
    assert [results[path].ok for path in paths] == [True, False, False]
    assert (tmp_path / "IMG_0001.t.jpg").exists() and not (tmp_path / "bad.t.jpg").exists()


def test_scan_files_can_be_abandoned_midway(card_jpeg):
    """A consumer that stops after the first result is not kept waiting for the rest."""
    iterator = scan_files([card_jpeg] * 40, workers=2)
    path, result = next(iterator)
    assert result.ok
    iterator.close()


def test_jpeg_bytes_after_the_end_marker_are_fine(card_jpeg, tmp_path):
    """Cameras and tools append data after the JPEG end marker; that is not truncation."""
    path = tmp_path / "tail.jpg"
    path.write_bytes(card_jpeg.read_bytes() + b"\0trailer")
    assert scan_file(path).qr_texts == (CARD,)


def test_scan_pool_workers_are_started_and_run_nicer_than_their_parent():
    """Every scan process is up when scan_pool returns, at a lower CPU priority than the web workers."""
    pool = scan_pool(2)
    try:
        niceness = {pool.submit(os.nice, 0).result() for _ in range(4)}
        assert len(pool._processes) == 2
    finally:
        pool.shutdown()
    assert niceness == {min(os.nice(0) + SCAN_NICENESS, 19)}


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"%PDF-1.4\n%", "not an image: a PDF document"),
        (b"", "empty file"),
        (b"GIF89a not really", "not an image: a GIF image"),
        (b"this is not a photo\n", "not an image: not a JPEG, PNG, HEIC, TIFF or WebP file"),
        (b"\xff\xd8\xff\xe1\x00\x10Exif", None),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", None),
    ],
)
def test_file_type_is_told_by_its_first_bytes(head, reason):
    """A file is kept or refused by its signature, whatever its name says, with the reason."""
    assert refusal(head[:HEAD_BYTES]) == reason
