"""When the request-reading worker hands a request to a thread: only once it has all arrived, or announces
a body too large to wait for."""

import pytest

from request_buffering import HEADER_ROOM, request_arrived

HEAD = b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"


@pytest.mark.parametrize(
    "data, arrived",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),  # headers still coming
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),  # no body
        (HEAD + b"12345", False),  # half the body
        (HEAD + b"1234567890", True),
        (b"PUT /f HTTP/1.1\r\ncontent-length: 5000000\r\n\r\n", True),  # an upload: the thread reads it
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", False),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", True),
        (b"GET /" + b"a" * HEADER_ROOM, True),  # too long to be a request: gunicorn refuses it
    ],
)
def test_a_request_goes_to_a_thread_once_it_has_arrived(data, arrived):
    """Headers and a form-sized body are waited for; a larger announced body is not."""
    assert request_arrived(data, body_limit=1000) is arrived
