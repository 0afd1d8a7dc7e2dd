"""Slow clients against a live server: many connections trickling a request, and a poller timing answers."""

import contextlib
import socket
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Trickle:
    """Connections that each send request headers at once, then a body of `length` one byte at a time."""

    host: str
    port: int
    connections: int
    length: int = 100_000
    path: str = "/register"
    content_type: str = "application/x-www-form-urlencoded"
    stop: threading.Event = field(default_factory=threading.Event)
    sockets: list[socket.socket] = field(default_factory=list)

    def open(self) -> None:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {self.length}\r\n\r\n"
        ).encode()
        for _ in range(self.connections):
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(head)
            self.sockets.append(sock)

    def open_count(self) -> int:
        """Connections the server has not closed yet (reading and dropping any answer it sent first)."""
        return sum(self.is_open(sock) for sock in self.sockets)

    @staticmethod
    def is_open(sock: socket.socket) -> bool:
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
            return False  # the end of the stream: closed
        except BlockingIOError:
            return True
        except OSError:
            return False

    def trickle(self, every: float) -> None:
        """One byte per connection every `every` seconds, until stopped."""
        while not self.stop.wait(every):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.setblocking(True)
                    sock.settimeout(0.05)
                    sock.send(b"a")

    def close(self) -> None:
        self.stop.set()
        for sock in self.sockets:
            sock.close()


def poll_latencies(url: str, count: int, timeout: float = 30) -> list[float]:
    """Seconds each of `count` sequential GETs took (a timed-out request counts as `timeout`)."""
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                response.read()
        except OSError:
            pass
        timings.append(time.perf_counter() - started)
    return timings


def p99(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=100)[98] if len(timings) > 1 else timings[0]
