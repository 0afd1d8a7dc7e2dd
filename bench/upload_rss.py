"""The web workers' memory over a long upload: each worker's RSS at the start, its peak and at the end.

    .venv/bin/python bench/upload_rss.py [--gigabytes 5] [--workers 2] [--processor 1]

Real gunicorn (with its processor unless --processor 0, as on the day); the client sends 24 MP camera files
made from bench/scan.py's 85 cached frames, each with its own bytes (bench/variants.py), 4 in flight, one raw
PUT each, until --gigabytes have gone. A sampler reads every worker's VmRSS from /proc every 0.25 s. The
start is taken after the clients logged in (each login's scrypt check takes ~32 MB for a moment) and a
warm-up of 8 files (imports, first connections, the threads), so what grows after it grows with the volume
uploaded. Prints start/peak/end per worker and the largest growth
(target: within 50 MB).
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cache import CACHE  # noqa: E402
from scan import cached_batch  # noqa: E402
from upload import rss_bytes  # noqa: E402
from variants import FRAMES, frame_variants, send_in_parallel, upload_clients  # noqa: E402

from tests.support.liveserver import LiveServer  # noqa: E402
from tests.support.loadgen import Tally, create_batch  # noqa: E402

USER = ("benchstaff", "bench staff password")
WARM_UP_FILES = 8
MB = 1e6


class RssSampler(threading.Thread):
    """Every worker's RSS (by pid) at the first sample, its peak and its last sample."""

    def __init__(self, server: LiveServer):
        super().__init__(daemon=True)
        self.server, self.stop = server, threading.Event()
        self.first: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.last: dict[int, int] = {}

    def run(self) -> None:
        while True:
            for pid in self.server.worker_pids():
                rss = rss_bytes(pid)
                self.first.setdefault(pid, rss)
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
                self.last[pid] = rss
            if self.stop.wait(0.25):
                return


def run(gigabytes: float, workers: int, processor: bool) -> dict:
    frames, _ = cached_batch(CACHE, FRAMES, 24)
    mean_size = sum(path.stat().st_size for path in frames) / len(frames)
    count = WARM_UP_FILES + round(gigabytes * 1e9 / mean_size)
    uploads, _ = frame_variants(CACHE, count)
    warm_up, measured = uploads[:WARM_UP_FILES], uploads[WARM_UP_FILES:]
    with tempfile.TemporaryDirectory(prefix="intake-bench-", dir=CACHE) as root:
        server = LiveServer(
            Path(root),
            f"sqlite:///{Path(root) / 'intake.sqlite3'}",
            workers=workers,
            INTAKE_PROCESSOR="1" if processor else "0",
            INTAKE_SCAN_WORKERS=str(os.cpu_count()),  # as on the day (tests/support's environment says 1)
            INTAKE_ACCESS_LOG="",
        )
        server.flask("db", "upgrade")
        server.flask("create-user", USER[0], "--role", "staff", "--password-stdin", input_text=USER[1] + "\n")
        server.start()
        try:
            batch_id = create_batch(server.url, USER, "rss")
            tally, clients = Tally(), upload_clients(server.url, USER, batch_id)
            send_in_parallel(clients, batch_id, warm_up, tally)
            processor_pid = server.processor_pid() if processor else None
            sampler = RssSampler(server)
            sampler.start()
            started = time.perf_counter()
            send_in_parallel(clients, batch_id, measured, tally)
            seconds = time.perf_counter() - started
            time.sleep(1.0)  # a last few samples after the last answer
            sampler.stop.set()
            sampler.join()
        finally:
            server.stop()
    assert len(tally.uploaded) == count and tally.server_errors == 0, (len(tally.uploaded), tally.errors[:3])
    sent = sum(int(tally.uploaded[name]) for name, _ in measured)
    per_worker = {
        pid: {
            "start_mb": round(sampler.first[pid] / MB),
            "peak_mb": round(sampler.peak[pid] / MB),
            "end_mb": round(sampler.last[pid] / MB),
            "runs_the_processor": pid == processor_pid,
        }
        for pid in sampler.first
    }
    return {
        "files": len(measured),
        "gigabytes": round(sent / 1e9, 2),
        "seconds": round(seconds, 1),
        "megabytes_per_second": round(sent / MB / seconds, 1),
        "processor": processor,
        "workers": per_worker,
        "max_growth_mb": max(w["peak_mb"] - w["start_mb"] for w in per_worker.values()),
        "max_growth_at_end_mb": max(w["end_mb"] - w["start_mb"] for w in per_worker.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gigabytes", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--processor", type=int, choices=(0, 1), default=1, help="run the processor (1, as on the day)")
    args = parser.parse_args()
    print(json.dumps(run(args.gigabytes, args.workers, bool(args.processor))))


if __name__ == "__main__":
    main()
