"""End-to-end browser upload: N generated camera-sized JPEGs through the upload page into a real gunicorn.

    .venv/bin/python bench/upload.py [--count 100] [--size 6000x4000]

Headless Chromium picks the folder like a user, the page fingerprints and sends it (4 files in flight),
and the script times it and samples the gunicorn workers' memory. Photos are made once and cached in
bench/.cache/. Prints one JSON line: files, MB, seconds, MB/s, peak worker RSS; then checks the batch
holds every photo once.
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cache import CACHE  # noqa: E402

from tests.support.browser import add_folder, chromium, log_in_and_create_batch  # noqa: E402
from tests.support.factories import PASSWORD  # noqa: E402
from tests.support.liveserver import LiveServer  # noqa: E402
from tests.support.photogen import make_photo  # noqa: E402


def make_one(job: tuple[Path, tuple[int, int], int]) -> None:
    path, size, seed = job
    if not path.exists():
        make_photo(path.with_suffix(".tmp"), size=size, seed=seed).rename(path)


def photo_folder(count: int, size: tuple[int, int]) -> Path:
    folder = CACHE / f"upload-{count}-{size[0]}x{size[1]}" / "CARD"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"IMG_{i:04d}.JPG", size, i) for i in range(1, count + 1)]
    with Pool() as pool:
        pool.map(make_one, jobs)
    return folder


def rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS")), 0)


def sample_peak_rss(server: LiveServer, stop: threading.Event, peak: dict) -> None:
    while not stop.wait(0.25):
        for pid in server.worker_pids():
            peak[pid] = max(peak.get(pid, 0), rss_bytes(pid))


def run(count: int, size: tuple[int, int]) -> dict:
    folder = photo_folder(count, size)
    total_bytes = sum(p.stat().st_size for p in folder.iterdir())
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as root:
        server = LiveServer(Path(root), f"sqlite:///{Path(root) / 'intake.sqlite3'}", INTAKE_PROCESSOR="0")
        server.flask("db", "upgrade")
        server.flask("create-user", "staff", "--role", "staff", "--password-stdin", input_text=PASSWORD + "\n")
        server.start()
        try:
            with chromium() as browser:
                page = browser.new_page()
                batch_id = log_in_and_create_batch(page, server.url)
                idle_rss = {pid: rss_bytes(pid) for pid in server.worker_pids()}
                peak: dict[int, int] = {}
                stop = threading.Event()
                sampler = threading.Thread(target=sample_peak_rss, args=(server, stop, peak))
                sampler.start()
                started = time.monotonic()
                add_folder(page, folder)
                page.wait_for_function("document.getElementById('upload-summary').dataset.sent > 0", timeout=600_000)
                first_sent = time.monotonic() - started
                page.wait_for_function(
                    f"document.getElementById('upload-summary').dataset.done == {count}", timeout=3_600_000, polling=250
                )
                seconds = time.monotonic() - started
                stop.set()
                sampler.join()
            report = server.report(batch_id)
        finally:
            server.stop()
    assert len({entry["filename"] for entry in report["photos"]}) == count, "the batch misses photos"
    megabytes = total_bytes / 1e6
    return {
        "files": count,
        "megabytes": round(megabytes, 1),
        "seconds": round(seconds, 1),
        "first_file_after_s": round(first_sent, 1),
        "mb_per_s": round(megabytes / seconds, 1),
        "worker_rss_idle_mb": [round(v / 1e6) for v in idle_rss.values()],
        "worker_rss_peak_mb": [round(v / 1e6) for v in peak.values()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--size", default="6000x4000", help="frame size; 6000x4000 makes ~8.5 MB JPEGs")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(json.dumps(run(args.count, (width, height))))


if __name__ == "__main__":
    main()
