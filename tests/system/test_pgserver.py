"""Tests for the throwaway PostgreSQL server helper (they need PostgreSQL installed)."""

from pathlib import Path

import pytest
import sqlalchemy

from tests.support import pgserver


def _live_pids() -> dict[int, int]:
    """pid -> parent pid of every non-zombie process (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the parenthesised command name: state, ppid, ...
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue  # exited while we looked
        if state != "Z":
            parents[int(stat.parent.name)] = int(ppid)
    return parents


def test_databases_are_separate_and_hold_rows(pg_server):  # session fixture from conftest.py
    """Two created databases are independent and a written row reads back via SQLAlchemy."""
    first = sqlalchemy.create_engine(pg_server.create_database("pgserver_first"))
    second = sqlalchemy.create_engine(pg_server.create_database("pgserver_second"))
    try:
        with first.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE item (name text)"))
            conn.execute(sqlalchemy.text("INSERT INTO item VALUES ('widget')"))
        with first.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT name FROM item")).scalar_one() == "widget"
        with second.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT to_regclass('item')")).scalar_one() is None
    finally:
        first.dispose()
        second.dispose()


def test_stop_leaves_no_process_or_files(tmp_path):
    """stop() ends the postmaster and all its children, removes its files, and is idempotent."""
    server = pgserver.start_postgres(tmp_path)
    workdir, postmaster = server.workdir, server.process.pid
    children = [pid for pid, ppid in _live_pids().items() if ppid == postmaster]
    assert children, "a running postmaster has background workers"

    server.stop()
    server.stop()

    assert not {postmaster, *children} & _live_pids().keys()
    assert not workdir.exists()


def test_missing_postgres_fails_with_setup_hint(monkeypatch):
    """Without PostgreSQL binaries the error tells you to run the setup script."""
    monkeypatch.setattr(pgserver, "PG_CONFIG", "/nonexistent/pg_config")
    monkeypatch.setattr(pgserver, "BINDIR_GLOB", "/nonexistent/*/bin")
    with pytest.raises(pgserver.PostgresUnavailable, match="setup script"):
        pgserver.find_pg_bindir()
