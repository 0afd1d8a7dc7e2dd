"""The web while the scan uses every core: dashboard polls and a burst of registrations, idle vs scanning.

    .venv/bin/python bench/responsiveness.py [--photos 120] [--size 2000x1333] [--pollers 30] [--registrations 60]

Real gunicorn (4 workers, the processor in one of them) on SQLite. Two phases in the same run, with the
same clients: first with the processor idle (the baseline), then while it scans a batch of --photos at
full speed: --pollers staff poll the dashboard fragment every second, and --registrations people register
at once (a burst, 10 at a time). Prints p50/p99 of polls and registrations in each phase and the ratios.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cache import CACHE  # noqa: E402

from tests.support.apps import migrate_to_head  # noqa: E402
from tests.support.liveserver import gunicorn  # noqa: E402
from tests.support.loadgen import Tally, logged_in, p50_p99, poll_dashboard  # noqa: E402
from tests.support.photogen import make_batch  # noqa: E402
from tests.support.webclient import WebClient  # noqa: E402

USER = ("benchadmin", "bench admin password")
BURST_THREADS = 10


def registration_burst(base: str, prefix: str, count: int) -> list[float]:
    def register(i: int) -> float:
        client = WebClient(base, follow_redirects=False)
        fields = {"name": f"Bench {prefix}{i}", "email": f"{prefix}{i}@bench.test", "group": "", "consent": "yes"}
        body = urllib.parse.urlencode({**fields, "csrf_token": client.token("/register")}).encode()
        started = time.perf_counter()  # the POST alone: the form's page was loaded before
        reply = client.request("POST", "/register", body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status in (200, 302, 303), reply.status
        return time.perf_counter() - started

    with ThreadPoolExecutor(BURST_THREADS) as pool:
        return list(pool.map(register, range(count)))


def phase(base: str, pollers: int, registrations: int, prefix: str, seconds: float) -> dict:
    """Pollers for `seconds` (at least), with the registration burst in the middle of it."""
    tally, stop = Tally(), threading.Event()
    # Logged in before the phase: 30 memory-hard password checks at once are not what a poll waits for.
    with ThreadPoolExecutor(BURST_THREADS) as pool:
        clients = list(pool.map(lambda _: logged_in(base, USER), range(pollers)))
    threads = [threading.Thread(target=poll_dashboard, args=(client, tally, stop, 1.0)) for client in clients]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    time.sleep(seconds / 3)
    register_seconds = registration_burst(base, prefix, registrations)
    time.sleep(max(0.0, seconds - (time.perf_counter() - started)))
    stop.set()
    for thread in threads:
        thread.join(30)
    poll, register = p50_p99(tally.poll_seconds), p50_p99(register_seconds)
    return {
        "poll_p50_ms": poll[0] * 1000,
        "poll_p99_ms": poll[1] * 1000,
        "polls": len(tally.poll_seconds),
        "register_p50_ms": register[0] * 1000,
        "register_p99_ms": register[1] * 1000,
        "server_errors": tally.server_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=120)
    parser.add_argument("--size", default="2000x1333")
    parser.add_argument("--pollers", type=int, default=30)
    parser.add_argument("--registrations", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase (at least)")
    parser.add_argument(
        "--shared-seconds", type=float, default=1.0, help="DASHBOARD_SHARED_SECONDS (1.0, the default; 0: off)"
    )
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="intake-bench-", dir=CACHE) as tmp:
        root = Path(tmp)
        make_batch(root / "day", [("photo",)] * args.photos, size=size, quality=85, workers=2)
        data_dir = root / "data"
        data_dir.mkdir()
        url = f"sqlite:///{data_dir / 'intake.sqlite3'}"
        migrate_to_head(data_dir, url)
        # Every registration comes from loopback: the per-address limit (60 a minute) would refuse the second burst.
        # tests/support's environment scans on one process and shares no dashboard figures; the bench runs as the
        # day does: one scan process per core (a full-speed scan), figures shared as configured.
        limits = {
            "INTAKE_REGISTER_PER_ADDRESS_PER_MINUTE": str(10 * args.registrations),
            "INTAKE_DASHBOARD_SHARED_SECONDS": str(args.shared_seconds),
            "INTAKE_SCAN_WORKERS": str(os.cpu_count()),
        }
        with gunicorn(data_dir, url, workers=4, INTAKE_THREADS="8", **limits) as server:
            server.flask("create-user", USER[0], "--role", "admin", "--password-stdin", input_text=USER[1] + "\n")
            idle = phase(server.url, args.pollers, args.registrations, "idle", args.seconds)
            batch_id = json.loads(server.flask("ingest", str(root / "day"), "--json").stdout)["batch"]
            scanning = phase(server.url, args.pollers, args.registrations, "scan", args.seconds)
            still_scanning = server.report(batch_id)["status"] != "done"
    print(f"{args.photos} photos at {size[0]}x{size[1]}; {args.pollers} pollers; burst of {args.registrations}")
    for name, figures in (("idle", idle), ("scanning", scanning)):
        print(f"{name:9s} " + "  ".join(f"{k} {v:.0f}" for k, v in figures.items()))
    print(
        f"scanning/idle: poll p99 x{scanning['poll_p99_ms'] / idle['poll_p99_ms']:.2f}, "
        f"registration p99 x{scanning['register_p99_ms'] / idle['register_p99_ms']:.2f}; "
        f"scan still running at the end of the phase: {still_scanning} (targets: poll p99 <= 100 ms, "
        "registration p99 <= 500 ms)"
    )


if __name__ == "__main__":
    main()
