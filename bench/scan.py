"""Benchmark the per-photo scan on generated camera frames: ours vs the floor vs a typical peer.

    .venv/bin/python bench/scan.py [--photos 80] [--megapixels 24] [--repeat 3] [--workers 2]

Frames are generated once into bench/.cache (reused while the parameters match). Runs are interleaved
(floor, ours, peer per round) so background load hits all three alike; photos/second are medians of rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from pyzbar import pyzbar  # noqa: E402

from engine.cards import card_text  # noqa: E402
from engine.scanning import scan_files  # noqa: E402
from tests.support.photogen import make_batch  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--megapixels", type=int, choices=sorted(SIZES), default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
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


if __name__ == "__main__":
    main()
