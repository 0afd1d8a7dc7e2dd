"""A family's "download all" through real gunicorn over loopback: throughput and the worker's memory.

    .venv/bin/python bench/gallery_zip.py [--photos 700] [--size 6000x4000] [--rounds 3]

A family of two with `--photos` camera-sized JPEGs between them (a few distinct 24 MP frames from
tests/support/photogen.py, generated once into bench/.cache/, each stored under its own hash with a unique
JPEG comment, so every photo is a different file of realistic size). The photos are put straight into the
data directory and the database as the processor leaves them (scanned, grouped, deliverable): this measures
the download, not the ingest. Then, in alternating rounds on the same files:

- **read** — read every original in 1 MiB chunks, as plainly as Python can (from the page cache, as the
  files were just written and the machine has the memory for them);
- **loopback copy** — the same files sent by a bare process over one loopback TCP connection in 1 MiB chunks
  and received as the download is: the floor of any download, with no HTTP, no zip and no app;
- **zip** — GET /gallery/<token>/photos.zip from the one gunicorn worker, read in 1 MiB chunks.

It prints bytes, MB/s of each (median of rounds) and the zip's ratios to both baselines, and the worker's
resident memory: before the first download (after a warm-up page), and its peak growth over each download
(VmRSS from /proc, sampled every 0.25 s). Flat memory: the growth stays a few MB whatever the family's size.
"""

import argparse
import hashlib
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cache import CACHE  # noqa: E402
from upload import rss_bytes, sample_peak_rss  # noqa: E402

from app import create_app  # noqa: E402
from data import storage  # noqa: E402
from data.database import db_commit_with_retry  # noqa: E402
from data.extensions import db  # noqa: E402
from data.models import Person, Photo  # noqa: E402
from data.states import PersonSource, PhotoRole, ScanState  # noqa: E402
from services import gallery_links  # noqa: E402
from services.batches import create_batch  # noqa: E402
from tests.support.apps import app_environment  # noqa: E402
from tests.support.liveserver import LiveServer  # noqa: E402
from tests.support.photogen import make_photo  # noqa: E402

CHUNK = 1024 * 1024
# Sensor noise sets a JPEG's size: from ~6 MB to ~12 MB at 24 MP.
NOISE_LEVELS = (5, 7, 9, 11, 13, 15)
FAMILY = "bench.family@example.com"


def base_frames(size: tuple[int, int]) -> list[bytes]:
    folder = CACHE / f"gallery-zip-{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index, noise in enumerate(NOISE_LEVELS):
        path = folder / f"base-{index}.jpg"
        if not path.exists():
            make_photo(path, size=size, noise=noise, seed=index)
        frames.append(path.read_bytes())
    return frames


def unique_copy(frame: bytes, number: int) -> bytes:
    """The frame with a JPEG comment (COM) right after its start marker: same picture, a file of its own."""
    comment = f"intake bench photo {number}".encode()
    return frame[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + frame[2:]


def populate(root: Path, frames: list[bytes], count: int) -> tuple[str, list[Path]]:
    """Two siblings sharing `count` photos, stored and recorded as delivered; returns the family's token and
    the originals."""
    os.environ.update(app_environment(root, f"sqlite:///{root / 'intake.sqlite3'}"))
    app = create_app()
    originals = []
    with app.app_context():

        def unit():
            people = [
                Person(code=code, name=name, email=FAMILY, source=PersonSource.ROSTER)
                for code, name in (("MIA", "Mia Lund"), ("NOAH", "Noah Lund"))
            ]
            db.session.add_all(people)
            batch = create_batch("bench")
            for number in range(count):
                data = unique_copy(frames[number % len(frames)], number)
                digest = hashlib.sha256(data).hexdigest()
                path = storage.original_path(digest, ".jpg")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                originals.append(path)
                photo = Photo(
                    batch_id=batch.id,
                    original_name=f"IMG_{number + 1:04d}.JPG",
                    content_hash=digest,
                    size=len(data),
                    extension=".jpg",
                    scan_state=ScanState.SCANNED,
                    role=PhotoRole.PHOTO,
                )
                photo.people = [people[number % 2]]
                db.session.add(photo)
            return gallery_links.token_for(gallery_links.new_link(email=FAMILY).seed)

        token = db_commit_with_retry(unit)
        db.engine.dispose()
    return token, originals


def read_plainly(paths: list[Path]) -> tuple[int, float]:
    started, total = time.perf_counter(), 0
    for path in paths:
        with path.open("rb") as source:
            while block := source.read(CHUNK):
                total += len(block)
    return total, time.perf_counter() - started


def send_files(paths: list[Path], ports) -> None:
    """A bare loopback sender in its own process: accept one connection, send the files, close."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ports.put(listener.getsockname()[1])
        connection, _ = listener.accept()
        with connection:
            for path in paths:
                with path.open("rb") as source:
                    while block := source.read(CHUNK):
                        connection.sendall(block)


def copy_over_loopback(paths: list[Path]) -> tuple[int, float]:
    """The same files through a plain TCP connection on loopback, no HTTP and no zip: the floor of a download."""
    ports = multiprocessing.Queue()
    sender = multiprocessing.Process(target=send_files, args=(paths, ports))
    sender.start()
    started, total = time.perf_counter(), 0
    with socket.create_connection(("127.0.0.1", ports.get(timeout=30))) as connection:
        while block := connection.recv(CHUNK):
            total += len(block)
    seconds = time.perf_counter() - started
    sender.join()
    return total, seconds


def download(server: LiveServer, path: str) -> tuple[int, int, float]:
    """(bytes received, Content-Length, seconds) of one GET, read and dropped in 1 MiB chunks."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200, response.status
    total = 0
    while block := response.read(CHUNK):
        total += len(block)
    seconds = time.perf_counter() - started
    connection.close()
    return total, int(response.headers["Content-Length"]), seconds


def zip_round(server: LiveServer, token: str, worker: int) -> dict:
    before = rss_bytes(worker)
    peak: dict[int, int] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_peak_rss, args=(server, stop, peak))
    sampler.start()
    received, length, seconds = download(server, f"/gallery/{token}/photos.zip")
    stop.set()
    sampler.join()
    assert received == length, (received, length)
    # A download shorter than one sampling interval has no sample of its own: its end is one.
    peak_rss = max(peak.get(worker, 0), rss_bytes(worker), before)
    return {"bytes": received, "seconds": seconds, "rss_before": before, "rss_peak": peak_rss}


def run(count: int, size: tuple[int, int], rounds: int) -> dict:
    frames = base_frames(size)
    with tempfile.TemporaryDirectory(prefix="intake-bench-gallery-", dir=CACHE) as folder:
        root = Path(folder)
        server = LiveServer(root, f"sqlite:///{root / 'intake.sqlite3'}", workers=1, INTAKE_PROCESSOR="0")
        assert server.flask("db", "upgrade").returncode == 0
        token, originals = populate(root, frames, count)
        server.start()
        try:
            [worker] = server.worker_pids()
            download(server, f"/gallery/{token}")  # the warm-up: the worker has loaded what a gallery needs
            idle = rss_bytes(worker)
            plain, loopback, zips = [], [], []
            for _ in range(rounds):
                plain.append(read_plainly(originals))
                loopback.append(copy_over_loopback(originals))
                zips.append(zip_round(server, token, worker))
        finally:
            server.stop()
    photo_bytes = plain[0][0]
    plain_rate = statistics.median(total / seconds for total, seconds in plain) / 1e6
    loopback_rate = statistics.median(total / seconds for total, seconds in loopback) / 1e6
    zip_rate = statistics.median(z["bytes"] / z["seconds"] for z in zips) / 1e6
    return {
        "photos": count,
        "photo_megabytes": round(photo_bytes / 1e6, 1),
        "photo_mb_min_max": [round(len(f) / 1e6, 1) for f in (min(frames, key=len), max(frames, key=len))],
        "zip_bytes": zips[0]["bytes"],
        "rounds": rounds,
        "baseline_read_mb_s": round(plain_rate),
        "baseline_loopback_copy_mb_s": round(loopback_rate),
        "zip_download_mb_s": round(zip_rate),
        "zip_over_read": round(zip_rate / plain_rate, 2),
        "zip_over_loopback_copy": round(zip_rate / loopback_rate, 2),
        "worker_rss_idle_mb": round(idle / 2**20, 1),
        "worker_rss_growth_mb_per_round": [round((z["rss_peak"] - z["rss_before"]) / 2**20, 1) for z in zips],
        "worker_rss_growth_over_idle_mb": round((max(z["rss_peak"] for z in zips) - idle) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=700)
    parser.add_argument("--size", default="6000x4000", help="frame size in pixels, WIDTHxHEIGHT")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    width, height = (int(n) for n in options.size.split("x"))
    print(json.dumps(run(options.photos, (width, height), options.rounds), indent=2))


if __name__ == "__main__":
    main()
