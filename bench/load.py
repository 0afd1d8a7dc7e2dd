"""A longer, larger photo day under load on real gunicorn; prints the figures.

    .venv/bin/python bench/load.py [--photos 700] [--uploads 200] [--pollers 50] [--postgres]

Loopback only, bounded by --deadline seconds. Uses the same clients as tests/test_load.py.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import pgserver  # noqa: E402
from tests.support.apps import app_environment  # noqa: E402
from tests.support.liveserver import VENV_BIN, gunicorn  # noqa: E402
from tests.support.loadgen import Load, run_load  # noqa: E402
from tests.support.photogen import make_batch  # noqa: E402

USER = ("benchadmin", "bench admin password")


def shoot(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    people = max(1, count // 10)
    plan = [("card", f"B{i // 10:04d}") if i % 10 == 0 else ("photo",) for i in range(count)]
    started = time.perf_counter()
    paths = make_batch(folder, plan, size=size, quality=85)
    print(f"generated {count} photos ({people} people) at {size[0]}x{size[1]} in {time.perf_counter() - started:.0f}s")
    return paths


def migrate(env: dict) -> None:
    subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=REPO, env=env, check=True, capture_output=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=700, help="photos in the batch being processed")
    parser.add_argument("--uploads", type=int, default=200, help="photos uploaded by 3 staff during the run")
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--size", default="2000x1333", help="photo size, WxH")
    parser.add_argument("--postgres", action="store_true", help="run on a throwaway PostgreSQL server")
    parser.add_argument("--deadline", type=float, default=900)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        shoot(tmp_path / "processed", args.photos, size)
        uploads = [(f"cam2/{p.name}", p) for p in shoot(tmp_path / "uploaded", args.uploads, size)]
        with pgserver.postgres_server() if args.postgres else contextlib.nullcontext() as server:
            url = server.create_database("intake_bench") if server else f"sqlite:///{data_dir / 'bench.sqlite3'}"
            migrate({**os.environ, **app_environment(data_dir, url)})
            run(data_dir, url, tmp_path, uploads, args)


def run(data_dir: Path, url: str, tmp_path: Path, uploads, args) -> None:
    with gunicorn(data_dir, url, workers=4, INTAKE_THREADS="8") as server:
        server.flask("create-user", USER[0], "--role", "admin", "--password-stdin", input_text=USER[1] + "\n")
        result = server.flask("ingest", str(tmp_path / "processed"), "--json")
        batch_id = json.loads(result.stdout)["batch"]
        started = time.perf_counter()
        finished = {}

        def done() -> bool:
            if server.report(batch_id)["status"] == "done" and "at" not in finished:
                finished["at"] = time.perf_counter() - started
            return "at" in finished

        tally, upload_batch, elapsed = run_load(
            server.url, USER, uploads, Load(pollers=args.pollers), done, args.deadline
        )
        stats = json.loads(server.flask("stats", "--json").stdout)
        uploaded = server.report(upload_batch)
        log = server.log.read_text()
    p50, p99 = tally.poll_percentiles()
    print(f"backend            {stats['backend']}")
    print(
        f"requests           {tally.requests} in {elapsed:.0f}s; 5xx {tally.server_errors}; "
        f"'database is locked' seen {tally.lock_messages + log.count('database is locked')}"
    )
    print(f"dashboard polls    {len(tally.poll_seconds)}; p50 {p50 * 1000:.0f} ms; p99 {p99 * 1000:.0f} ms")
    print(f"processing         {args.photos} photos in {finished.get('at', float('nan')):.0f}s")
    print(
        f"uploads            {len(tally.uploaded)}/{args.uploads} stored once each "
        f"({len(uploaded['photos'])} rows in the batch)"
    )
    print(f"registrations      {len(tally.statuses.get('register', []))}")
    print(
        f"lock retries/waits {stats['last_hour']['retries']}/{stats['last_hour']['lock_waits']} "
        f"(longest wait {stats['last_hour']['max_wait_ms']} ms)"
    )


if __name__ == "__main__":
    main()
