"""Web upload through real gunicorn with its processor: from the last byte of the last file to "done".

    .venv/bin/python bench/web_upload.py [--count 700] [--size 6000x4000] [--workers 2]

The client sends the files as the upload page does (one raw PUT per file, 4 in flight), then completes the
batch as the page does by itself, and polls the dashboard data until the batch is done. The processor scans
files as they are stored, so after the last byte only the last few scans, grouping and export remain.
Baseline in the same run: the floor (read + SHA-256 + 1/8 decode on 2 processes as nice as the scan's,
bench/ingest.py) of the same files, i.e. what processing after the upload would at least cost if nothing
were overlapped. Also prints the web workers' RSS, idle and peak over the upload. Photos are cached in
bench/.cache (bench/upload.py's).
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import floor_seconds  # noqa: E402
from upload import photo_folder, rss_bytes, sample_peak_rss  # noqa: E402

from tests.support.liveserver import LiveServer  # noqa: E402
from tests.support.loadgen import Tally, complete_batch, create_batch, logged_in, uploader  # noqa: E402

USER = ("benchstaff", "bench staff password")
PARALLEL_FILES = 4


def batch_row(client, batch_id: int) -> dict:
    return next(b for b in json.loads(client.request("GET", "/api/dashboard").body)["batches"] if b["id"] == batch_id)


def run(folder: Path, workers: int) -> dict:
    paths = sorted(folder.iterdir())
    files = [(f"CARD/{path.name}", path) for path in paths]
    with tempfile.TemporaryDirectory(prefix="intake-bench-", dir=ROOT / "bench" / ".cache") as root:
        server = LiveServer(
            Path(root), f"sqlite:///{Path(root) / 'intake.sqlite3'}", workers=workers, INTAKE_PROCESSOR="1"
        )
        server.flask("db", "upgrade")
        server.flask("create-user", USER[0], "--role", "staff", "--password-stdin", input_text=USER[1] + "\n")
        server.start()
        try:
            batch_id = create_batch(server.url, USER, "bench")
            watcher = logged_in(server.url, USER)
            idle = {pid: rss_bytes(pid) for pid in server.worker_pids()}
            peak: dict[int, int] = {}
            stop = threading.Event()
            sampler = threading.Thread(target=sample_peak_rss, args=(server, stop, peak))
            sampler.start()
            tally = Tally()
            shares = [files[i::PARALLEL_FILES] for i in range(PARALLEL_FILES)]
            senders = [threading.Thread(target=uploader, args=(server.url, USER, batch_id, s, tally)) for s in shares]
            started = time.perf_counter()
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            last_byte = time.perf_counter()
            scanned_by_then = batch_row(watcher, batch_id)["scanned"]
            assert complete_batch(server.url, USER, batch_id) == 200
            while (row := batch_row(watcher, batch_id))["status"] not in ("done", "failed"):
                time.sleep(0.05)
            done = time.perf_counter()
            stop.set()
            sampler.join()
        finally:
            server.stop()
    assert row["status"] == "done" and len(tally.uploaded) == len(files), (row, len(tally.uploaded))
    floor = floor_seconds(paths, 2)
    return {
        "files": len(files),
        "megabytes": round(sum(p.stat().st_size for p in paths) / 1e6, 1),
        "upload_seconds": round(last_byte - started, 2),
        "scanned_at_last_byte": scanned_by_then,
        "last_byte_to_done_s": round(done - last_byte, 2),
        "floor_of_whole_batch_s": round(floor, 2),
        "last_byte_to_done_over_floor": round((done - last_byte) / floor, 3),
        "worker_rss_idle_mb": sorted(round(v / 1e6) for v in idle.values()),
        "worker_rss_peak_mb": sorted(round(v / 1e6) for v in peak.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=700)
    parser.add_argument("--size", default="6000x4000", help="frame size; 1200x800 for a quick run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(json.dumps(run(photo_folder(args.count, (width, height)), args.workers)))


if __name__ == "__main__":
    main()
