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

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.factories import PASSWORD  # noqa: E402
from tests.photogen import make_photo  # noqa: E402
from tests.test_browser_upload import CHROMIUM, CHROMIUM_ARGS, Server, add_folder, log_in_and_create_batch  # noqa: E402


def make_one(job: tuple[Path, tuple[int, int], int]) -> None:
    path, size, seed = job
    if not path.exists():
        make_photo(path.with_suffix(".tmp"), size=size, seed=seed).rename(path)


def photo_folder(count: int, size: tuple[int, int]) -> Path:
    folder = REPO / "bench" / ".cache" / f"upload-{count}-{size[0]}x{size[1]}" / "CARD"
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


def workers_of(master: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def sample_peak_rss(master: int, stop: threading.Event, peak: dict) -> None:
    while not stop.wait(0.25):
        for pid in workers_of(master):
            peak[pid] = max(peak.get(pid, 0), rss_bytes(pid))


def run(count: int, size: tuple[int, int]) -> dict:
    folder = photo_folder(count, size)
    total_bytes = sum(p.stat().st_size for p in folder.iterdir())
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as root:
        server = Server(Path(root))
        server.flask("db", "upgrade")
        server.flask("create-user", "staff", "--role", "staff", "--password-stdin", stdin=PASSWORD + "\n")
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page()
                batch_id = log_in_and_create_batch(page, server)
                idle_rss = {pid: rss_bytes(pid) for pid in workers_of(server.process.pid)}
                peak: dict[int, int] = {}
                stop = threading.Event()
                sampler = threading.Thread(target=sample_peak_rss, args=(server.process.pid, stop, peak))
                sampler.start()
                started = time.monotonic()
                add_folder(page, folder)
                page.wait_for_function("document.getElementById('upload-summary').dataset.sent > 0",
                                       timeout=600_000)
                first_sent = time.monotonic() - started
                page.wait_for_function(f"document.getElementById('upload-summary').dataset.done == {count}",
                                       timeout=3_600_000, polling=250)
                seconds = time.monotonic() - started
                stop.set()
                sampler.join()
                browser.close()
            report = server.report(batch_id)
        finally:
            server.stop()
    assert len({entry["filename"] for entry in report["photos"]}) == count, "the batch misses photos"
    megabytes = total_bytes / 1e6
    return {"files": count, "megabytes": round(megabytes, 1), "seconds": round(seconds, 1),
            "first_file_after_s": round(first_sent, 1), "mb_per_s": round(megabytes / seconds, 1),
            "worker_rss_idle_mb": [round(v / 1e6) for v in idle_rss.values()],
            "worker_rss_peak_mb": [round(v / 1e6) for v in peak.values()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--size", default="6000x4000", help="frame size; 6000x4000 makes ~8.5 MB JPEGs")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(json.dumps(run(args.count, (width, height))))


if __name__ == "__main__":
    main()
