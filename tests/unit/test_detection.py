"""QR detection: the real-photo corpus, generated 20-24 MP camera frames, exact texts."""

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from engine.detection import decode_qr_texts, draft_for_detection
from tests.support.photogen import make_batch, make_photo, render_qr

CORPUS = Path(__file__).parents[2] / "shared" / "corpus" / "qr-photos"
CORPUS_TARGET = 121  # what pyzbar and zxing-cpp read between them at full resolution (SOURCE.md)
CARD = "INTAKE:7Q2K9XH4"
LONG_CARD = "https://intake.example/c/7Q2K9XH4M3ZP8W"
URL = "https://www.example.org/venue-wifi"

# (size, card text, make_photo options): small cards, rotations, tilt and mild blur, at 24 and 20 MP
BIG_CARD_FRAMES = {
    "5% rotated 15, blurred": ((6000, 4000), CARD, {"card_fraction": 0.05, "rotate_deg": 15, "blur": 1.0}),
    "5% upside down, tilted": (
        (6000, 4000),
        LONG_CARD,
        {"card_fraction": 0.05, "rotate_deg": 180, "blur": 1.5, "tilt": 0.15},
    ),
    "6% on its side, 20 MP": (
        (5472, 3648),
        CARD,
        {"card_fraction": 0.06, "rotate_deg": 90, "blur": 1.0, "card_centre": (0.2, 0.7)},
    ),
    "10% on its side, tilted": (
        (6000, 4000),
        LONG_CARD,
        {"card_fraction": 0.10, "rotate_deg": 90, "blur": 1.0, "tilt": 0.2},
    ),
    "20% upside down, blurred": ((6000, 4000), CARD, {"card_fraction": 0.20, "rotate_deg": 180, "blur": 2.0}),
}


@pytest.fixture(scope="module")
def big_frames(tmp_path_factory) -> dict[str, Path]:
    """Camera-sized frames, made once for the module on both cores (~10 s)."""
    folder = tmp_path_factory.mktemp("big")
    names = [*BIG_CARD_FRAMES, "no card", "no card, 20 MP", "poster URL"]
    plan = [("card", text, {"size": size, **options}) for size, text, options in BIG_CARD_FRAMES.values()]
    plan += [
        ("photo", None, {"size": (6000, 4000)}),
        ("photo", None, {"size": (5472, 3648)}),
        ("photo", None, {"size": (6000, 4000), "other_qr": URL}),
    ]
    return dict(zip(names, make_batch(folder, plan, workers=2), strict=True))


def corpus_cases() -> list[tuple[Path, bytes]]:
    return [(png, png.with_suffix(".txt").read_bytes()) for png in sorted(CORPUS.glob("*.png"))]


def test_corpus_recall_beats_both_decoders_and_never_misreads():
    """On 130 real photos we read at least as many as pyzbar and zxing-cpp together, and no wrong text."""
    if not CORPUS.is_dir():
        pytest.skip(f"QR photo corpus not found at {CORPUS} (it lives in the shared folder beside the repo)")
    cases = corpus_cases()
    found, wrong = [], []
    for png, expected in cases:
        texts = [text.encode("utf-8") for text in decode_qr_texts(png)]
        found += [png.name] if expected in texts else []
        wrong += [(png.name, text) for text in texts if text != expected]
    assert len(cases) == 130
    assert wrong == []
    assert len(found) >= CORPUS_TARGET, f"read {len(found)}/130"


@pytest.mark.parametrize("name", BIG_CARD_FRAMES)
def test_card_in_a_camera_frame_is_found(big_frames, name):
    """Cards 5-20% of the frame wide, rotated, tilted and mildly blurred, are read from 20-24 MP JPEGs."""
    assert decode_qr_texts(big_frames[name]) == (BIG_CARD_FRAMES[name][1],)


@pytest.mark.parametrize("name", ["no card", "no card, 20 MP"])
def test_frame_without_a_card_gives_no_texts(big_frames, name):
    """A textured frame with a checked shirt and no QR yields nothing."""
    assert decode_qr_texts(big_frames[name]) == ()


def test_non_card_qr_text_is_returned(big_frames):
    """A URL on a poster is returned like any QR text; deciding what is a card happens elsewhere."""
    assert decode_qr_texts(big_frames["poster URL"]) == (URL,)


def test_blurred_small_card_is_found_by_a_closer_look(tmp_path):
    """A 5% card blurred 3 px at 45 degrees is unreadable at the coarse scale; the full-resolution look finds it."""
    path = make_photo(
        tmp_path / "hard.jpg",
        card_text=LONG_CARD,
        card_fraction=0.05,
        rotate_deg=45,
        blur=3,
        card_centre=(0.52, 0.38),
        seed=9,
    )
    draft = Image.open(path)
    assert draft_for_detection(draft)
    coarse_reads = zxingcpp.read_barcodes(draft.convert("L"), return_errors=True)
    assert coarse_reads and not any(read.valid for read in coarse_reads), "the premise: seen but unreadable"
    loads = []

    def full_image() -> Image.Image:
        loads.append(path)
        return Image.open(io.BytesIO(path.read_bytes()))

    assert decode_qr_texts(draft, full_image=full_image) == (LONG_CARD,)
    assert loads == [path]


def test_texts_keep_exact_bytes_and_line_breaks():
    """CRLF, a trailing newline and non-ASCII text come back exactly as encoded."""
    for text in ("line one\r\nline two\n", "Zoë Müller-Øster", "名前 ✓"):
        assert decode_qr_texts(_png_bytes(render_qr(text, module_px=6))) == (text,)


def test_texts_are_deduplicated_and_sorted():
    """Two copies of one code give one text; different codes come back in sorted order."""
    sheet = Image.new("L", (1200, 400), 255)
    for slot, text in enumerate(["INTAKE:ZZZ", "INTAKE:AAA", "INTAKE:ZZZ"]):
        sheet.paste(render_qr(text, module_px=8), (20 + slot * 400, 20))
    assert decode_qr_texts(sheet) == ("INTAKE:AAA", "INTAKE:ZZZ")


def test_blank_and_tiny_images_give_no_texts():
    """Images with nothing to read, down to 1x1, return an empty tuple."""
    for size in ((1, 1), (7, 300), (640, 480)):
        assert decode_qr_texts(Image.new("RGB", size, (90, 90, 90))) == ()


def _png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
