"""Uploads for the web benchmarks: files sent as the upload page sends them, and many distinct 24 MP camera
files made from a few generated ones.

Generating 700 frames of 24 MP takes ~10 min of a loaded 2-core machine; instead each upload is one of
bench/scan.py's cached frames with its own tail after the JPEG end marker (decoders stop at the marker), so
every file has its own bytes and hash, and none is kept once as a duplicate of another.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from scan import cached_batch

from tests.support.loadgen import Tally, logged_in
from tests.support.webclient import WebClient

PARALLEL_FILES = 4
FRAMES = 85  # bench/scan.py's and bench/ingest.py's batch: generated once, reused by every bench

# (relative name, the file's bytes when it is sent)
Upload = tuple[str, Callable[[], bytes]]


def frame_variants(cache: Path, count: int) -> tuple[list[Upload], list[Path]]:
    """`count` distinct 24 MP camera files (and the frames they are made of), read into memory once."""
    paths, _ = cached_batch(cache, FRAMES, 24)
    frames = [path.read_bytes() for path in paths]

    def variant(index: int) -> Callable[[], bytes]:
        return lambda: frames[index % len(frames)] + b"intake-bench-variant-%d" % index

    return [(f"CARD/IMG_{index:04d}.JPG", variant(index)) for index in range(1, count + 1)], paths


def folder_uploads(paths: list[Path]) -> list[Upload]:
    return [(f"CARD/{path.name}", path.read_bytes) for path in paths]


def upload_clients(base: str, user: tuple[str, str], batch_id: int) -> list[tuple[WebClient, str]]:
    """PARALLEL_FILES logged-in clients with the upload page's token: logged in before anything is measured (a
    login's memory-hard password check takes ~32 MB of the worker for a moment)."""
    clients = [logged_in(base, user) for _ in range(PARALLEL_FILES)]
    return [(client, client.token(f"/batches/{batch_id}/upload")) for client in clients]


def send(
    client: WebClient, token: str, batch_id: int, uploads: list[Upload], tally: Tally, byte_seconds: float
) -> None:
    """One raw PUT per file, as the page sends them; a failed request is retried once. With `byte_seconds`,
    the next file waits until this client's bytes so far took that long each (a venue line's pace)."""
    started, sent = time.perf_counter(), 0
    for name, body in uploads:
        time.sleep(max(0.0, started + sent * byte_seconds - time.perf_counter()))
        data = body()
        sent += len(data)
        for _ in range(2):
            headers = {
                "X-File-Name": urllib.parse.quote(name),
                "X-CSRFToken": token,
                "Content-Type": "application/octet-stream",
            }
            reply = client.request("PUT", f"/api/batches/{batch_id}/files", data, headers)
            tally.record("upload", reply.status, reply.body)
            if reply.status in (200, 201):
                with tally.lock:
                    tally.uploaded[name] = str(len(data))
                break


def send_in_parallel(
    clients: list[tuple[WebClient, str]], batch_id: int, uploads: list[Upload], tally: Tally, mb_per_second: float = 0
) -> None:
    """One file in flight per client (the page's PARALLEL_FILES), at most `mb_per_second` in all (0: as fast
    as loopback goes); returns when the last one is answered."""
    shares = [uploads[i :: len(clients)] for i in range(len(clients))]
    byte_seconds = len(clients) / (mb_per_second * 1e6) if mb_per_second else 0.0
    senders = [
        threading.Thread(target=send, args=(client, token, batch_id, share, tally, byte_seconds))
        for (client, token), share in zip(clients, shares, strict=True)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
