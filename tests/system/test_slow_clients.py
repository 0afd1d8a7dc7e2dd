"""Slow clients against real gunicorn: they cost a socket, not a server thread, and are dropped at the deadline."""

import threading
import urllib.request

import pytest

from tests.support.liveserver import gunicorn
from tests.support.slowclients import Trickle, poll_latencies
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
READ_SECONDS = 3


@pytest.mark.parametrize("length", [1_000, 100_000])
def test_slow_bodies_do_not_starve_other_visitors(database_url, data_dir, length):
    """200 connections trickling a /register body (under and over the form limit) to one worker with 8
    threads: every poll still gets its page, and each slow connection is closed at the read deadline."""
    with gunicorn(
        data_dir, database_url, workers=1, INTAKE_PROCESSOR="0", INTAKE_REQUEST_READ_SECONDS=str(READ_SECONDS)
    ) as server:
        slow = Trickle("127.0.0.1", server.port, connections=200, length=length)
        slow.open()
        trickling = threading.Thread(target=slow.trickle, args=(0.5,), daemon=True)
        trickling.start()
        try:
            assert slow.open_count() == 200
            # Before the fix, 8 such connections held every thread and these polls timed out.
            timings = poll_latencies(f"{server.url}/register", 20, timeout=READ_SECONDS)
            assert max(timings) < READ_SECONDS, timings
            wait_for(lambda: slow.open_count() == 0, READ_SECONDS + 10, "the server to drop the slow connections")
            with urllib.request.urlopen(f"{server.url}/api/health", timeout=5) as response:
                assert response.status == 200
        finally:
            slow.close()
            trickling.join(5)
