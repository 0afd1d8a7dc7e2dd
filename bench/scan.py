"""Benchmark the per-photo scan on generated camera frames: ours vs the floor vs a typical peer.

    .venv/bin/python bench/scan.py [--photos 80] [--megapixels 24] [--repeat 3] [--workers 2] [--no-recall]

Frames are generated once into bench/.cache (reused while the parameters match). Runs are interleaved
(floor, ours, peer per round) so background load hits all three alike; photos/second are medians of rounds.
Then recall: both corpora beside the repo, and the trouble set (every trouble class at 12, 24 and 45 MP,
cards 5-25% wide, random placement) against what zxing-cpp or pyzbar read on the full frame.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pillow_heif  # noqa: E402
import zxingcpp  # noqa: E402
from PIL import Image  # noqa: E402
from pyzbar import pyzbar  # noqa: E402

from engine.cards import card_text  # noqa: E402
from engine.detection import read_qr  # noqa: E402
from engine.scanning import scan_files  # noqa: E402
from tests.support.photogen import make_batch, make_photo  # noqa: E402

GENERATOR_VERSION = 1  # bump when the plan or photogen changes, so cached frames are remade
SIZES = {20: (5472, 3648), 24: (6000, 4000)}
# One photo in five is a card; sizes cycle so that small (5-6% of frame width) cards are well represented.
CARD_EVERY = 5
CARD_FRACTIONS = (0.05, 0.055, 0.06, 0.08, 0.1, 0.15, 0.2)
CARD_POSES = (
    {},
    {"rotate_deg": 15, "blur": 1},
    {"rotate_deg": 90, "tilt": 0.2},
    {"rotate_deg": 200, "blur": 1.5},
    {"rotate_deg": 330, "tilt": 0.15, "blur": 0.8},
)
PEER_LONG_SIDE = 1200
CORPORA = ROOT.parent / "shared" / "corpus"
TROUBLE_VERSION = 1  # bump when the trouble plan or photogen changes
TROUBLE_SIZES = {12: (4000, 3000), 24: (6000, 4000), 45: (8256, 5504)}
TROUBLE_FRACTIONS = (0.05, 0.1, 0.25)
SIBLINGS = (card_text("SIB2"), card_text("SIB3"))


def batch_plan(photos: int) -> list[tuple]:
    """Cards at indexes 0, 5, 10...; each gets the next size and pose in the cycles."""
    plan = []
    for index in range(photos):
        if index % CARD_EVERY:
            plan.append(("photo",))
            continue
        number = index // CARD_EVERY
        options = {
            "card_fraction": CARD_FRACTIONS[number % len(CARD_FRACTIONS)],
            "card_centre": (0.3 + 0.4 * (number % 3) / 2, 0.35 + 0.3 * (number % 2)),
            **CARD_POSES[number % len(CARD_POSES)],
        }
        plan.append(("card", card_text(f"BENCH{number:03d}"), options))
    return plan


def cached_batch(cache: Path, photos: int, megapixels: int) -> tuple[list[Path], dict[str, str]]:
    """The generated photos and {file name: card text}, made on first use."""
    folder = cache / f"scan-v{GENERATOR_VERSION}-{megapixels}mp-{photos}"
    manifest = folder / "cards.json"
    if not manifest.exists():
        plan = batch_plan(photos)
        started = time.perf_counter()
        make_batch(folder, plan, size=SIZES[megapixels], workers=2)
        print(f"generated {photos} frames in {time.perf_counter() - started:.1f} s -> {folder}")
        cards = {f"IMG_{index:04d}.JPG": entry[1] for index, entry in enumerate(plan, start=1) if entry[0] == "card"}
        manifest.write_text(json.dumps(cards, indent=1))
    return sorted(folder.glob("IMG_*.JPG")), json.loads(manifest.read_text())


def floor_task(path: Path) -> int:
    """The least any scan must do: read the file, hash it, entropy-decode it (JPEG draft at 1/8)."""
    data = path.read_bytes()
    hashlib.sha256(data).hexdigest()
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (image.width // 8, image.height // 8))
    image.load()
    return image.width


class Timed:
    """Wall time and CPU time (this process plus reaped worker processes) of a with-block."""

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc_info) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    """CPU time is what contention from other work on the machine does not inflate much, unlike wall time."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def run_floor(paths: list[Path], workers: int) -> tuple[Timed, dict]:
    with Timed() as timed, ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(floor_task, paths, chunksize=4))
    return timed, {}


def run_ours(paths: list[Path], workers: int) -> tuple[Timed, dict[str, tuple[str, ...]]]:
    with tempfile.TemporaryDirectory() as thumbs, Timed() as timed:
        results = {
            Path(path).name: result.qr_texts
            for path, result in scan_files(
                paths, workers=workers, thumb_for=lambda path: Path(thumbs) / Path(path).name
            )
        }
    return timed, results


def run_peer(paths: list[Path], workers: int) -> tuple[Timed, dict[str, tuple[str, ...]]]:
    """What open-source photo sorters do: decode fully, shrink to 1200 px, one pyzbar pass, one process."""
    results = {}
    with Timed() as timed:
        for path in paths:
            image = Image.open(path).convert("RGB")
            image.thumbnail((PEER_LONG_SIDE, PEER_LONG_SIDE))
            texts = {symbol.data.decode("utf-8", "replace") for symbol in pyzbar.decode(image)}
            results[path.name] = tuple(sorted(texts))
    return timed, results


def recall(results: dict[str, tuple[str, ...]], cards: dict[str, str]) -> tuple[int, int]:
    """(cards found, texts that are not the frame's card: wrong or invented)."""
    found = sum(cards[name] in results.get(name, ()) for name in cards)
    false = sum(text != cards.get(name) for name, texts in results.items() for text in texts)
    return found, false


def trouble_plan(seed: int = 13) -> list[tuple[str, int, float, dict]]:
    """(class, megapixels, card fraction, make_photo options): each class at each size and fraction (HEIC at
    12 MP only), placed, turned and blurred at random (seeded), so no class is tuned to one pose."""
    rng, plan = random.Random(seed), []
    for megapixels, size in TROUBLE_SIZES.items():
        for fraction in TROUBLE_FRACTIONS:
            plan += [
                ("glare", megapixels, fraction, {**_pose(rng, size, fraction), "glare": True}),
                ("perspective", megapixels, fraction, {**_pose(rng, size, fraction), "tilt": rng.uniform(0.3, 0.45)}),
                ("dark, noisy", megapixels, fraction, {**_pose(rng, size, fraction), "exposure": 0.3, "noise": 20}),
                ("siblings", megapixels, fraction, {**_pose(rng, size, fraction), **_siblings(rng)}),
            ]
            if megapixels == min(TROUBLE_SIZES):  # x265 takes ~30 s of CPU per 12 MP frame, minutes at 45 MP
                plan.append(("HEIC", megapixels, fraction, {**_pose(rng, size, fraction), "image_format": "HEIF"}))
    return plan


def _pose(rng: random.Random, size: tuple[int, int], fraction: float) -> dict:
    """A card anywhere it fits whole, at any angle, slightly out of focus."""
    margin = 0.1 + fraction / 2
    where = (rng.uniform(margin, 1 - margin), rng.uniform(0.3, 0.7))
    turn, blur, seed = rng.uniform(0, 360), rng.uniform(0, 1), rng.randrange(1000)
    pose = {"card_centre": where, "rotate_deg": turn, "blur": blur}
    return {"size": size, "card_fraction": fraction, "seed": seed, **pose}


def _siblings(rng: random.Random) -> dict:
    """Three cards side by side in thirds of the frame, held alike and turned a little."""
    rows = [rng.uniform(0.35, 0.65) for _ in range(3)]
    more = tuple((text, (0.5 + third / 3, row)) for text, third, row in zip(SIBLINGS, (0, 1), rows[1:], strict=True))
    return {"card_centre": (1 / 6, rows[0]), "more_cards": more, "rotate_deg": rng.uniform(-15, 15)}


def cached_trouble(cache: Path) -> list[tuple[str, int, float, Path, tuple[str, ...]]]:
    """The trouble frames (made on first use; HEIC encoding is slow, ~30 s per 12 MP frame) and their cards."""
    folder = cache / f"trouble-v{TROUBLE_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    frames, jobs = [], []
    for index, (name, megapixels, fraction, options) in enumerate(trouble_plan()):
        path = folder / f"T{index:03d}.{'HEIC' if options.get('image_format') else 'JPG'}"
        texts = (card_text("TROUBLE"), *(text for text, _ in options.get("more_cards", ())))
        frames.append((name, megapixels, fraction, path, tuple(sorted(texts))))
        if not path.exists():
            jobs.append((path, {**options, "card_text": card_text("TROUBLE")}))
    if jobs:
        started = time.perf_counter()
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_make_trouble_frame, jobs))
        print(f"generated {len(jobs)} trouble frames in {time.perf_counter() - started:.0f} s -> {folder}")
    return frames


def _make_trouble_frame(job: tuple[Path, dict]) -> Path:
    path, options = job
    partial = path.with_suffix(".part" + path.suffix)  # an interrupted run leaves no half frame behind
    make_photo(partial, **options)
    return partial.rename(path)


def full_frame_reference(path: Path) -> set[str]:
    """What zxing-cpp or pyzbar reads on the full-resolution, upright frame (the issue's yardstick)."""
    pillow_heif.register_heif_opener()
    image = Image.open(path)
    full = image.convert("L")
    texts = {read.text for read in zxingcpp.read_barcodes(full, formats=zxingcpp.BarcodeFormat.QRCode)}
    symbols = pyzbar.decode(full, symbols=[pyzbar.ZBarSymbol.QRCODE])
    return texts | {symbol.data.decode("utf-8", "replace") for symbol in symbols}


def report_trouble(cache: Path) -> None:
    """Per class and size: cards found, of those a full-frame decoder reads how many we read, and flags."""
    frames = cached_trouble(cache)
    results = dict(scan_files([path for *_, path, _ in frames], workers=2))
    rows: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    missed = []
    for name, megapixels, fraction, path, texts in frames:
        result, reference = results[path], full_frame_reference(path) & set(texts)
        row = rows[name, megapixels]
        row[0] += len(set(texts) & set(result.qr_texts))
        row[1] += len(texts)
        row[2] += len(reference - set(result.qr_texts))
        row[3] += bool(set(texts) - set(result.qr_texts)) and result.unreadable_card
        row[4] += len(set(result.qr_texts) - set(texts))
        if set(texts) - set(result.qr_texts):
            missed.append(f"{name} {megapixels} MP {fraction:.0%} {path.name} flagged={result.unreadable_card}")
    print("trouble set: cards found / cards; readable at full resolution but missed; missed frames flagged; wrong")
    for (name, megapixels), (found, total, lost, flagged, wrong) in sorted(rows.items()):
        counts = f"{found:2d}/{total:2d}  missed-readable {lost}  flagged {flagged}  wrong {wrong}"
        print(f"  {name:12s} {megapixels:2d} MP  {counts}")
    for line in missed:
        print(f"  missed: {line}")


def report_corpora() -> None:
    """Both real-photo corpora: images read completely, wrong texts, and unread images flagged."""
    photos = CORPORA / "qr-photos"
    truth = {png.name: [png.with_suffix(".txt").read_bytes().decode("utf-8")] for png in photos.glob("*.png")}
    real = CORPORA / "qr-real"
    for folder, expected in ((photos, truth), (real, json.loads((real / "truth.json").read_text(encoding="utf-8")))):
        full, wrong, flagged = 0, [], 0
        for name, texts in sorted(expected.items()):
            reading = read_qr(folder / name)
            wrong += [(name, text) for text in reading.texts if text not in texts]
            complete = set(reading.texts) >= set(texts)
            full += complete
            flagged += not complete and reading.unreadable_card
        print(
            f"corpus {folder.name}: {full}/{len(expected)} read completely, wrong texts {wrong or 0}, "
            f"{flagged} of the {len(expected) - full} others flagged unreadable"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--megapixels", type=int, choices=sorted(SIZES), default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--no-recall", action="store_true", help="skip the corpora and the trouble set")
    args = parser.parse_args()

    paths, cards = cached_batch(args.cache, args.photos, args.megapixels)
    mean_mb = statistics.mean(path.stat().st_size for path in paths) / 1e6
    print(
        f"{len(paths)} photos, {SIZES[args.megapixels][0]}x{SIZES[args.megapixels][1]}, "
        f"{mean_mb:.1f} MB mean, {len(cards)} cards; {args.workers} workers; {args.repeat} rounds"
    )
    runs = {"floor": run_floor, "ours": run_ours, "peer": run_peer}
    timings: dict[str, list[Timed]] = {name: [] for name in runs}
    texts = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            timed, texts[name] = run(paths, args.workers)
            timings[name].append(timed)
    rate = {name: len(paths) / statistics.median(t.wall for t in timed) for name, timed in timings.items()}
    cpu_ms = {name: 1000 * statistics.median(t.cpu for t in timed) / len(paths) for name, timed in timings.items()}
    for name, label in (
        ("floor", f"read + SHA-256 + 1/8 draft decode, {args.workers} processes"),
        ("ours", f"scan_files: hash, EXIF, thumbnail, QR, {args.workers} processes"),
        ("peer", "full decode, 1200 px, one pyzbar pass, 1 process"),
    ):
        print(f"{name:6s} {rate[name]:6.2f} photos/s  {cpu_ms[name]:6.1f} CPU ms/photo  ({label})")
    print(
        f"ours/floor {rate['ours'] / rate['floor']:.2f} by throughput, {cpu_ms['floor'] / cpu_ms['ours']:.2f} by CPU;"
        f"  ours/peer {rate['ours'] / rate['peer']:.2f} by throughput, {cpu_ms['peer'] / cpu_ms['ours']:.2f} by CPU"
    )
    for name in ("ours", "peer"):
        results = texts[name]
        found, false = recall(results, cards)
        missed = sorted(name_ for name_ in cards if cards[name_] not in results.get(name_, ()))
        print(f"recall {name:4s} {found}/{len(cards)}  false texts {false}  missed {missed}")
    plain = [path for path in paths if path.name not in cards]
    flags = sum(result.unreadable_card for _, result in scan_files(plain, workers=args.workers))
    print(f"false 'unreadable card?' flags on the {len(plain)} card-less frames: {flags}")
    if not args.no_recall:
        report_corpora()
        report_trouble(args.cache)


if __name__ == "__main__":
    main()
