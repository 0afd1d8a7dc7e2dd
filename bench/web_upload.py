"""Web upload through real gunicorn with its processor: from the last byte of the last file to "done".

    .venv/bin/python bench/web_upload.py [--count 700] [--size reuse|WxH] [--workers 2]

With --size reuse (the default) the files are 24 MP camera frames, bench/variants.py's: bench/scan.py's 85
cached frames, each sent with its own tail, so every file is distinct; with WxH they are generated at that size
(bench/upload.py's cache). The client sends the files as the upload page does (one raw PUT per file, 4 in
flight), then completes the batch as the page does by itself, and polls the dashboard data until the batch
is done. The processor scans files as they are stored, so after the last byte only the last few scans,
grouping and export remain.
Baseline in the same run: the floor (read + SHA-256 + 1/8 decode on 2 processes as nice as the scan's,
bench/ingest.py) of the same files, i.e. what processing after the upload would at least cost if nothing
were overlapped. Also prints when, after the last byte, the last file was stored and scanned and the batch
queued, claimed and done (from the database), and the web workers' RSS, idle and peak over the upload.
"""

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cache import CACHE  # noqa: E402
from ingest import floor_seconds  # noqa: E402
from upload import photo_folder, rss_bytes, sample_peak_rss  # noqa: E402
from variants import Upload, folder_uploads, frame_variants, send_in_parallel, upload_clients  # noqa: E402

from tests.support.liveserver import LiveServer  # noqa: E402
from tests.support.loadgen import Tally, complete_batch, create_batch, logged_in  # noqa: E402

USER = ("benchstaff", "bench staff password")


def batch_row(client, batch_id: int) -> dict:
    return next(b for b in json.loads(client.request("GET", "/api/dashboard").body)["batches"] if b["id"] == batch_id)


def timeline(database: Path, batch_id: int, last_byte: float) -> dict:
    """Seconds after the last byte (wall clock) at which the server stored and scanned files and moved the
    batch on: where the time after the last byte went."""

    def after(stamp: str | None) -> float | None:
        moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp() if stamp else None
        return None if moment is None else round(moment - last_byte, 2)

    with sqlite3.connect(database) as connection:
        stored, scanned = connection.execute(
            "SELECT max(uploaded_at), max(scanned_at) FROM photo WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        scanned_after = connection.execute(
            "SELECT count(*) FROM photo WHERE batch_id = ? AND scanned_at > ?",
            (batch_id, datetime.fromtimestamp(last_byte, UTC).replace(tzinfo=None).isoformat(" ")),
        ).fetchone()[0]
        queued, started, finished = connection.execute(
            "SELECT queued_at, started_at, finished_at FROM batch WHERE id = ?", (batch_id,)
        ).fetchone()
    return {
        "last_stored": after(stored),
        "queued": after(queued),
        "claimed": after(started),
        "last_scanned": after(scanned),
        "scanned_after_last_byte": scanned_after,
        "done": after(finished),
    }


def run(uploads: list[Upload], floor_paths: list[Path], workers: int, mb_per_second: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="intake-bench-", dir=CACHE) as root:
        # tests/support's environment scans on one process; the day runs one per core.
        server = LiveServer(
            Path(root),
            f"sqlite:///{Path(root) / 'intake.sqlite3'}",
            workers=workers,
            INTAKE_PROCESSOR="1",
            INTAKE_SCAN_WORKERS=str(os.cpu_count()),
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
            tally, clients = Tally(), upload_clients(server.url, USER, batch_id)
            started = time.perf_counter()
            send_in_parallel(clients, batch_id, uploads, tally, mb_per_second)
            last_byte, last_byte_clock = time.perf_counter(), time.time()
            scanned_by_then = batch_row(watcher, batch_id)["scanned"]
            assert complete_batch(server.url, USER, batch_id) == 200
            while (row := batch_row(watcher, batch_id))["status"] not in ("done", "failed"):
                time.sleep(0.05)
            done = time.perf_counter()
            stop.set()
            sampler.join()
        finally:
            server.stop()
        after_last_byte = timeline(Path(root) / "intake.sqlite3", batch_id, last_byte_clock)
    assert row["status"] == "done" and len(tally.uploaded) == len(uploads), (row, len(tally.uploaded))
    # The floor of every upload: of the frames they are made of, as many times as they are sent.
    floor = floor_seconds(floor_paths, 2) * len(uploads) / len(floor_paths)
    return {
        "files": len(uploads),
        "megabytes": round(sum(int(size) for size in tally.uploaded.values()) / 1e6, 1),
        "upload_seconds": round(last_byte - started, 2),
        "scanned_at_last_byte": scanned_by_then,
        "last_byte_to_done_s": round(done - last_byte, 2),
        "floor_of_whole_batch_s": round(floor, 2),
        "last_byte_to_done_over_floor": round((done - last_byte) / floor, 3),
        "seconds_after_last_byte": after_last_byte,
        "worker_rss_idle_mb": sorted(round(v / 1e6) for v in idle.values()),
        "worker_rss_peak_mb": sorted(round(v / 1e6) for v in peak.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=700)
    parser.add_argument(
        "--size", default="reuse", help="'reuse' (24 MP camera files made from 85 generated frames) or WxH to generate"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--mb-per-second", type=float, default=0, help="pace the upload like a venue line (0: loopback's full speed)"
    )
    args = parser.parse_args()
    if args.size == "reuse":
        uploads, floor_paths = frame_variants(CACHE, args.count)
    else:
        width, height = (int(v) for v in args.size.split("x"))
        floor_paths = sorted(photo_folder(args.count, (width, height)).iterdir())
        uploads = folder_uploads(floor_paths)
    print(json.dumps(run(uploads, floor_paths, args.workers, args.mb_per_second)))


if __name__ == "__main__":
    main()
