"""Slow clients against real gunicorn: how many trickling connections are held, and a poller's p99 meanwhile.

    .venv/bin/python bench/slow_clients.py [--connections 200] [--polls 200] [--every 3] [--length 100000]

Loopback, SQLite, 1 worker with 8 threads (the scarce resource), processor off. Runs three times in one go:
the poller alone (baseline), the poller with N slow connections on this app's worker, and the same on stock
gthread (what the app had before). Each slow connection POSTs /register with Content-Length --length
(100000 is over the form limit: refused from the header; 1000 is a form body the worker holds, threadless,
until the read deadline) and then sends one byte every --every seconds. A poll that gets no answer within
--poll-timeout counts as that long.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.apps import migrate_to_head  # noqa: E402
from tests.support.liveserver import gunicorn  # noqa: E402
from tests.support.slowclients import Trickle, p99, poll_latencies  # noqa: E402


def measure(
    data_dir: Path, url: str, args, connections: int, worker: str | None, polls: int
) -> tuple[float, float, int]:
    """(poll p50, poll p99, slow connections still open when the polls ended)."""
    env = {"INTAKE_PROCESSOR": "0", "INTAKE_THREADS": "8"}
    if worker:
        env["GUNICORN_CMD_ARGS"] = f"--worker-class {worker}"
    with gunicorn(data_dir, url, workers=1, **env) as server:
        slow = Trickle("127.0.0.1", server.port, connections=connections, length=args.length)
        slow.open()
        trickling = threading.Thread(target=slow.trickle, args=(args.every,), daemon=True)
        trickling.start()
        try:
            timings = poll_latencies(f"{server.url}/register", polls, timeout=args.poll_timeout)
            held = slow.open_count()
        finally:
            slow.close()
            trickling.join(5)
    return statistics.median(timings), p99(timings), held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between a slow client's bytes")
    parser.add_argument("--poll-timeout", type=float, default=10.0)
    parser.add_argument("--length", type=int, default=100_000, help="the Content-Length slow clients announce")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        url = f"sqlite:///{data_dir / 'bench.sqlite3'}"
        os.environ.setdefault("SECRET_KEY", "bench")
        migrate_to_head(data_dir, url)
        # Stock gthread polls time out: a few of them make the point.
        runs = [
            ("baseline: no slow clients", 0, None, args.polls),
            (f"{args.connections} slow, this app", args.connections, None, args.polls),
            (f"{args.connections} slow, stock gthread", args.connections, "gthread", 5),
        ]
        print(f"{'run':34} {'p50 ms':>8} {'p99 ms':>8} {'slow conns open':>16}")
        baseline = None
        for label, connections, worker, polls in runs:
            started = time.perf_counter()
            p50, p99_, held = measure(data_dir, url, args, connections, worker, polls)
            baseline = baseline or p99_
            print(
                f"{label:34} {p50 * 1000:8.1f} {p99_ * 1000:8.1f} {held:16d}"
                f"   p99 {p99_ / baseline:.1f}x baseline, {time.perf_counter() - started:.0f}s"
            )


if __name__ == "__main__":
    main()
