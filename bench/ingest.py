"""`flask ingest PATH --wait` end to end, as an operator waits for it, against the floor in the same run.

    .venv/bin/python bench/ingest.py [--photos 85] [--megapixels 24] [--repeat 3] [--workers 2]

Each round, on the same generated frames (bench/scan.py's cache): the floor (read + SHA-256 + JPEG entropy
decode at 1/8 on `--workers` processes at the scan's niceness, bench/scan.py's floor_task) and the real
command in a fresh data directory and SQLite database. The command's interpreter and app start-up (`flask
report`, which starts the same app and stops at once) is measured in the round too and subtracted. Prints
medians and ours/floor.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cache import CACHE  # noqa: E402
from scan import SIZES, Timed, cached_batch, floor_task  # noqa: E402

from engine.scanning import SCAN_NICENESS  # noqa: E402
from tests.support.apps import app_environment, migrate_to_head  # noqa: E402

FLASK = str(Path(sys.executable).parent / "flask")


def floor_seconds(paths: list[Path], workers: int) -> float:
    """bench/scan.py's floor, on processes as nice as the scan's: on a machine loaded by other work a nicer
    process gets less of it, and the floor must not be measured with a priority the scan does not have."""
    context = multiprocessing.get_context("spawn")
    with (
        Timed() as timed,
        ProcessPoolExecutor(workers, mp_context=context, initializer=os.nice, initargs=(SCAN_NICENESS,)) as pool,
    ):
        list(pool.map(floor_task, paths, chunksize=4))
    return timed.wall


def timed_command(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run([FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, result


def one_round(folder: Path, template: Path, workers: int) -> tuple[float, float]:
    """(seconds of the ingest, seconds of the start-up to subtract), in a fresh data directory."""
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        data = Path(scratch)
        shutil.copyfile(template, data / "intake.sqlite3")
        env = {
            **os.environ,
            **app_environment(data, f"sqlite:///{data / 'intake.sqlite3'}"),
            "INTAKE_SCAN_WORKERS": str(workers),
        }
        startup, _ = timed_command(["report", "0"], env)
        seconds, result = timed_command(["ingest", str(folder), "--wait", "--json"], env)
        if result.returncode != 0:
            raise SystemExit(f"ingest failed: {result.stderr[-2000:]}")
    return seconds, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=85)
    parser.add_argument("--megapixels", type=int, choices=sorted(SIZES), default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()

    paths, _ = cached_batch(args.cache, args.photos, args.megapixels)
    folder = paths[0].parent
    # Only the photos: the cache folder also holds the generator's manifest.
    photos = args.cache / f"ingest-{folder.name}"
    photos.mkdir(exist_ok=True)
    for path in paths:
        if not (photos / path.name).exists():
            os.link(path, photos / path.name)
    template_dir = Path(tempfile.mkdtemp(dir=args.cache))
    migrate_to_head(template_dir, f"sqlite:///{template_dir / 'intake.sqlite3'}")
    floors, ours, startups = [], [], []
    try:
        for _ in range(args.repeat):
            floors.append(floor_seconds(paths, args.workers))
            seconds, startup = one_round(photos, template_dir / "intake.sqlite3", args.workers)
            ours.append(seconds - startup)
            startups.append(startup)
    finally:
        shutil.rmtree(template_dir)
    floor, end_to_end = statistics.median(floors), statistics.median(ours)
    print(f"{len(paths)} photos, {SIZES[args.megapixels][0]}x{SIZES[args.megapixels][1]}, {args.workers} workers")
    print(f"floor       {floor:6.2f} s  ({len(paths) / floor:.2f} photos/s; rounds {[round(f, 2) for f in floors]})")
    print(
        f"flask ingest --wait {end_to_end:6.2f} s  ({len(paths) / end_to_end:.2f} photos/s; rounds "
        f"{[round(o, 2) for o in ours]}; start-up {statistics.median(startups):.2f} s subtracted)"
    )
    print(f"ingest/floor {floor / end_to_end:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
