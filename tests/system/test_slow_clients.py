"""Slow clients against real gunicorn: they cost a socket, not a server thread, and are dropped in time."""

import socket
import threading
import urllib.request

import pytest

from tests.support.liveserver import gunicorn
from tests.support.slowclients import Trickle, poll_latencies
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
READ_SECONDS = 3
FORM = "application/x-www-form-urlencoded"
RAW = "application/octet-stream"


@pytest.mark.parametrize(
    "path, length, content_type",
    [
        ("/register", 1_000, FORM),  # a form body, never finished
        ("/register", 100_000, FORM),  # over the form limit: refused from its Content-Length
        ("/api/batches/1/files", 10_000_000, FORM),  # form-typed to the upload route: the form limit too
        ("/api/batches/1/files", 10_000_000, RAW),  # an anonymous upload: refused, its body never read
    ],
)
def test_slow_clients_do_not_starve_other_visitors(database_url, data_dir, path, length, content_type):
    """200 connections trickling a body to one worker with 8 threads: after the burst of their headers,
    every poll gets its page at once, and every slow connection is closed (before: all threads held)."""
    with gunicorn(
        data_dir, database_url, workers=1, INTAKE_PROCESSOR="0", INTAKE_REQUEST_READ_SECONDS=str(READ_SECONDS)
    ) as server:
        slow = Trickle("127.0.0.1", server.port, 200, length, path, content_type)
        slow.open()
        trickling = threading.Thread(target=slow.trickle, args=(0.5,), daemon=True)
        trickling.start()
        try:
            # Requests that arrived whole are answered first, as any server would; slow ones wait for nobody.
            poll_latencies(f"{server.url}/api/health", 1, timeout=30)
            timings = poll_latencies(f"{server.url}/register", 20, timeout=READ_SECONDS)
            assert max(timings) < READ_SECONDS, timings
            wait_for(lambda: slow.open_count() == 0, READ_SECONDS + 10, "the server to close the slow connections")
            with urllib.request.urlopen(f"{server.url}/api/health", timeout=5) as response:
                assert response.status == 200
        finally:
            slow.close()
            trickling.join(5)


def test_a_client_that_waits_for_100_continue_is_invited_and_answered(database_url, data_dir):
    """curl-style clients send a form body only after "100 Continue": the worker says it once the head is in."""
    with gunicorn(data_dir, database_url, workers=1, INTAKE_PROCESSOR="0") as server:
        body = b"name=Ann&email=ann%40example.com&consent=yes"
        head = (
            f"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nConnection: close\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=READ_SECONDS) as sock:
            sock.sendall(head)
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        final = answer.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"")
        assert final.startswith(b"HTTP/1.1 400"), final[:100]  # no CSRF token: refused, but answered
