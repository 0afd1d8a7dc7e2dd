"""gunicorn's threaded worker, but a request is read by the event loop before a thread is given to it.

gthread hands a connection to a thread as soon as its first byte arrives, and the thread then blocks on the
rest of the headers and body: 40 clients sending a byte every 3 s held every thread of the app. Here the
worker's event loop (one thread, non-blocking sockets) gathers the headers and a form-sized body first, and
gives up on a request that has not arrived within REQUEST_READ_SECONDS. A slow client costs a socket, not a
thread. A request announcing a body larger than FORM_MAX_BYTES goes to a thread with its headers: the app
refuses it by Content-Length unless the route takes uploads (which read with an idle timeout), and a refused
body is not drained by a thread: the event loop lingers on the closing connection instead.

It overrides gthread's internals (enqueue_req, handle, finish_request, _keepalive_after, murder_pending) as
they are in the pinned gunicorn version; tests/system/test_slow_clients.py holds the behaviour in place.
"""

import re
import socket
import time
from functools import partial
from selectors import EVENT_READ

from gunicorn.workers.gthread import ThreadWorker

HEADER_ROOM = 64 * 1024  # gunicorn's own limits refuse longer request lines and headers
RECV_SIZE = 64 * 1024
# How long a thread waits for the unread rest of a body before closing instead of keeping the connection.
DRAIN_SECONDS = 0.2
# How long the event loop reads and drops what a client still sends after its answer, before the close:
# closing on unread data would send a reset, and the client would see that instead of the answer.
LINGER_SECONDS = 2.0
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
_EXPECTS_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue", re.IGNORECASE)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def request_arrived(data: bytes | bytearray, body_limit: int) -> bool:
    """Whether `data` holds a whole request head and its body, or a head announcing a body over `body_limit`."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return len(data) > HEADER_ROOM
    head, body_size = bytes(data[:head_end]), len(data) - head_end - 4
    if _CHUNKED.search(head):
        return data.endswith(b"0\r\n\r\n") or body_size >= body_limit
    length = _CONTENT_LENGTH.search(head)
    announced = int(length.group(1)) if length else 0
    return announced > body_limit or body_size >= announced


class BufferingThreadWorker(ThreadWorker):
    """Every request, new or on a kept-alive connection, arrives in the event loop before it gets a thread."""

    def load_wsgi(self):
        super().load_wsgi()
        config = self.wsgi.config  # the Flask app: one config object for the app and its server
        self.read_seconds = config["REQUEST_READ_SECONDS"]
        self.body_limit = config["FORM_MAX_BYTES"]
        self.arriving = {}  # connection -> its deadline (requests arriving, and connections lingering)

    def enqueue_req(self, conn):
        # TLS is gunicorn's to read; bytes read ahead by a previous request are already here.
        if self.cfg.is_ssl or self.holds_read_ahead(conn):
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.incoming, conn.invited = bytearray(), False
        self.arriving[conn] = time.monotonic() + self.read_seconds
        self.poller.register(conn.sock, EVENT_READ, partial(self.on_request_bytes, conn))

    @staticmethod
    def holds_read_ahead(conn) -> bool:
        return conn.parser is not None and bool(conn.parser.unreader.buf.getvalue())

    def on_request_bytes(self, conn, sock):
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        conn.incoming += data
        self.invite_body(conn, sock)
        if request_arrived(conn.incoming, self.body_limit):
            self.poller.unregister(sock)
            del self.arriving[conn]
            conn.data_ready = True
            super().enqueue_req(conn)

    @staticmethod
    def invite_body(conn, sock) -> None:
        """A client that asks before sending its body (curl does) is told to go on once its head is in
        (gunicorn may say it again later: a client takes any number of 100 answers)."""
        head_end = conn.incoming.find(b"\r\n\r\n")
        if head_end >= 0 and not conn.invited and _EXPECTS_CONTINUE.search(conn.incoming[:head_end]):
            conn.invited = True
            try:
                sock.send(CONTINUE)
            except OSError:
                pass  # the client is gone: the next read says so

    def handle(self, conn):
        incoming, conn.incoming = getattr(conn, "incoming", None), None
        if incoming:
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(incoming))
        keep = super().handle(conn)
        if keep is False:
            try:
                conn.sock.shutdown(socket.SHUT_WR)  # the answer is complete: the client sees the end of it
            except OSError:
                return False
            conn.lingering = True
        return keep

    def finish_request(self, conn, fs):
        """gunicorn lingers on a closing connection with blocking reads in this loop, where a slow client
        would stall every other; here the lingering is one more non-blocking socket in the loop."""
        if not getattr(conn, "lingering", False) or fs.cancelled() or fs.exception() is not None:
            super().finish_request(conn, fs)
            return
        conn.sock.setblocking(False)
        self.arriving[conn] = time.monotonic() + LINGER_SECONDS
        self.poller.register(conn.sock, EVENT_READ, partial(self.on_lingering_bytes, conn))

    def on_lingering_bytes(self, conn, sock):
        try:
            if sock.recv(RECV_SIZE):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.drop(conn)

    def _keepalive_after(self, conn, keepalive):
        """Keep the connection only if the rest of an unread body is already here: gunicorn would wait 5 s
        for a slow client's, in this thread."""
        return keepalive and bool(conn.parser.finish_body(deadline=time.monotonic() + DRAIN_SECONDS))

    def drop(self, conn):
        self.arriving.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass  # already gone
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also close requests that did not arrive in time (the loop runs this at least once a second)."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [conn for conn, deadline in self.arriving.items() if deadline <= now]:
            self.drop(conn)
