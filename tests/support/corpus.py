"""The team's shared photo corpora (shared/corpus beside the repository), read in place, never copied."""

from pathlib import Path

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpus"
QR_PHOTOS = CORPORA / "qr-photos"
QR_REAL = CORPORA / "qr-real"
