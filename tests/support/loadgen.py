"""A photo-day load against a live server: pollers, uploaders, registrations, while a batch processes.

Used by tests/test_load.py (small, in CI) and bench/load.py (longer, larger). Loopback only; every
loop is bounded by a deadline and stops by itself.
"""

import hashlib
import json
import statistics
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.webclient import WebClient


@dataclass
class Tally:
    """What the clients saw. Thread-safe."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    poll_seconds: list[float] = field(default_factory=list)
    lock_messages: int = 0
    uploaded: dict[str, str] = field(default_factory=dict)  # relative name -> sha256
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, status: int, body: bytes) -> None:
        with self.lock:
            self.statuses.setdefault(kind, []).append(status)
            if b"database is locked" in body:
                self.lock_messages += 1
            if status >= 500:
                self.errors.append(f"{kind}: {status} {body[:200]!r}")

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(1 for v in self.statuses.values() for s in v if s >= 500)

    def poll_percentiles(self) -> tuple[float, float]:
        return p50_p99(self.poll_seconds)


def p50_p99(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    if not ordered:
        return 0.0, 0.0
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def logged_in(base: str, user: tuple[str, str]) -> WebClient:
    client = WebClient(base)
    assert client.login(*user).status == 200, "login failed"  # the redirect to the dashboard was followed
    return client


def poller(base: str, user: tuple[str, str], tally: Tally, stop: threading.Event, interval: float) -> None:
    poll_dashboard(logged_in(base, user), tally, stop, interval)


def poll_dashboard(client: WebClient, tally: Tally, stop: threading.Event, interval: float) -> None:
    """The dashboard fragment every `interval` seconds, with the last ETag, as the page polls it."""
    etag = None
    while not stop.is_set():
        started = time.perf_counter()
        reply = client.request("GET", "/dashboard/live", headers={"If-None-Match": etag} if etag else {})
        tally.poll_seconds.append(time.perf_counter() - started)
        tally.record("poll", reply.status, reply.body)
        etag = reply.headers.get("ETag", etag)
        stop.wait(interval)


def registrar(base: str, prefix: str, count: int, tally: Tally, stop: threading.Event) -> None:
    for i in range(count):
        if stop.is_set():
            return
        reply = WebClient(base).register(f"{prefix}{i}@load.test", f"Load {prefix}{i}")
        tally.record("register", reply.status, reply.body)
        stop.wait(0.2)


def uploader(base: str, user: tuple[str, str], batch_id: int, files: list[tuple[str, Path]], tally: Tally) -> None:
    """Upload files one request each, as the browser does; a failed request is retried once."""
    client = logged_in(base, user)
    token = client.token(f"/batches/{batch_id}/upload")
    for name, path in files:
        data = path.read_bytes()
        for _ in range(2):
            reply = client.request(
                "PUT",
                f"/api/batches/{batch_id}/files",
                data,
                {
                    "X-File-Name": urllib.parse.quote(name),
                    "X-CSRFToken": token,
                    "Content-Type": "application/octet-stream",
                },
            )
            tally.record("upload", reply.status, reply.body)
            if reply.status in (200, 201):
                with tally.lock:
                    tally.uploaded[name] = hashlib.sha256(data).hexdigest()
                break


def create_batch(base: str, user: tuple[str, str], label: str) -> int:
    client = logged_in(base, user)
    assert client.post_form("/batches", {"label": label}, "/batches/new").status == 200
    batches = json.loads(client.request("GET", "/api/dashboard").body)["batches"]
    return max(b["id"] for b in batches if b["label"] == label)


def complete_batch(base: str, user: tuple[str, str], batch_id: int) -> int:
    client = logged_in(base, user)
    token = client.token(f"/batches/{batch_id}/upload")
    return client.request("POST", f"/api/batches/{batch_id}/complete", b"", {"X-CSRFToken": token}).status


@dataclass
class Load:
    pollers: int = 20
    poll_interval: float = 1.0
    uploaders: int = 3
    registrations: int = 20


def run_load(
    base: str, user: tuple[str, str], upload_files: list[tuple[str, Path]], load: Load, until, deadline_seconds: float
) -> tuple[Tally, int, float]:
    """Run the clients until `until()` is true and the uploads are done (or the deadline passes)."""
    tally = Tally()
    stop = threading.Event()
    batch_id = create_batch(base, user, "load-upload")
    shares = [upload_files[i :: load.uploaders] for i in range(load.uploaders)]
    threads = [
        threading.Thread(target=poller, args=(base, user, tally, stop, load.poll_interval)) for _ in range(load.pollers)
    ]
    threads += [
        threading.Thread(target=registrar, args=(base, f"r{i}x", load.registrations // 2, tally, stop))
        for i in range(2)
    ]
    uploads = [threading.Thread(target=uploader, args=(base, user, batch_id, share, tally)) for share in shares]
    started = time.perf_counter()
    for thread in threads + uploads:
        thread.start()
    deadline = started + deadline_seconds
    for thread in uploads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    while not until() and time.perf_counter() < deadline:
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(30)
    tally.record("complete", complete_batch(base, user, batch_id), b"")
    return tally, batch_id, elapsed
