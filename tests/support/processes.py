"""Which processes are alive, read from /proc: a server's workers, what a killed process left behind."""

from collections.abc import Iterator
from pathlib import Path


def process_table() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, session id) of every process, skipping those that end while being read."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(stat.parent.name), fields[0], int(fields[1]), int(fields[3])


def children_of(pid: int) -> list[int]:
    return [child for child, _, parent, _ in process_table() if parent == pid]


def session_members(leader: int) -> list[int]:
    """Live processes (zombies aside) in the session `leader` started: what it spawned, and their children."""
    return [pid for pid, state, _, session in process_table() if session == leader and state != "Z"]
