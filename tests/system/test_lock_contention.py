"""The data layer between processes: lock races, outside locks, writers killed mid-transaction."""

import multiprocessing
import os
import signal
import sqlite3
import time

import pytest
from sqlalchemy import func, select

from data import database
from data.db_stats import lock_events_since
from data.extensions import db
from data.models import Person, Setting
from tests.support import dbworkers
from tests.support.apps import sqlite_file
from tests.support.factories import register
from tests.support.waiting import wait_for

SPAWN = multiprocessing.get_context("spawn")


def run_increment_race(app, deferred: bool, writers: int = 4, count: int = 60, pollers: int = 2):
    database.db_commit_with_retry(lambda: db.session.add(Setting(key="counter", value=0)))
    results = SPAWN.Queue()
    args = (app.config["DATA_DIR"].as_posix(), app.config["SQLALCHEMY_DATABASE_URI"])
    procs = [
        SPAWN.Process(target=dbworkers.incrementer, args=(*args, "counter", count, deferred, results))
        for _ in range(writers)
    ]
    procs += [SPAWN.Process(target=dbworkers.poller, args=(*args, 4.0, results)) for _ in range(pollers)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    elapsed = time.perf_counter() - started
    db.session.rollback()
    setting = db.session.get(Setting, "counter")
    return reports, (setting.value if setting else 0), elapsed


@pytest.mark.slow
@pytest.mark.both_databases
def test_concurrent_read_then_write_increments_lose_nothing(app, capsys):
    """4 processes x 60 read-then-write increments plus 2 pollers: no lock error, exact count."""
    reports, final, elapsed = run_increment_race(app, deferred=False)
    polls = [r for r in reports if "polls" in r]
    assert sum(r["errors"] for r in reports) == 0
    assert final == 4 * 60
    assert all(p["polls"] > 0 for p in polls)
    locks = database.run_in_transaction(lock_events_since, read_only=True)
    with capsys.disabled():
        print(
            f"\n[lock race {db.engine.dialect.name}] {final} increments + {sum(p['polls'] for p in polls)} "
            f"polls in {elapsed:.1f}s; retries {locks['retries']}, lock waits {locks['lock_waits']}, "
            f"max wait {locks['max_wait_ms']} ms"
        )


@pytest.mark.slow
def test_deferred_transactions_fail_the_same_race(app):
    """The control group: plain deferred transactions without retries hit 'database is locked'."""
    reports, final, _ = run_increment_race(app, deferred=True, pollers=0)
    errors = sum(r["errors"] for r in reports)
    assert errors > 0
    assert final == 4 * 60 - errors


def hold_lock(app, seconds: float):
    ready = SPAWN.Event()
    if db.engine.dialect.name == "sqlite":
        target, args = dbworkers.hold_sqlite_lock, (sqlite_file(app), seconds, ready)
    else:
        target, args = dbworkers.hold_pg_lock, (app.config["SQLALCHEMY_DATABASE_URI"], seconds, ready)
    proc = SPAWN.Process(target=target, args=args)
    proc.start()
    assert ready.wait(30)
    return proc


@pytest.mark.slow
@pytest.mark.both_databases
def test_lock_shorter_than_the_timeout_waits_and_succeeds(app, client):
    """Another process holds the lock briefly: the request waits and succeeds."""
    holder = hold_lock(app, 0.5)
    response = register(client, "brief@example.com")
    holder.join(10)
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1


@pytest.mark.slow
@pytest.mark.both_databases
def test_lock_longer_than_the_timeout_gives_a_clean_503(app, client):
    """A lock held past every retry: 503 with a message and Retry-After, nothing written, then recovery."""
    app.config.update(DB_RETRY_ATTEMPTS=2, DB_RETRY_MAX_DELAY=0.1)
    holder = hold_lock(app, 2 * app.config["DB_BUSY_TIMEOUT_MS"] / 1000 + 3)
    response = register(client, "long@example.com")
    assert response.status_code == 503
    assert b"busy" in response.data
    assert response.headers["Retry-After"]
    holder.join(30)
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0
    assert register(client, "long@example.com").status_code == 302


@pytest.mark.slow
def test_kill_9_mid_transaction_leaves_no_partial_rows(app):
    """A writer killed with SIGKILL mid-transaction, five times: integrity ok, only whole units."""
    rows_per_unit = 25
    args = (app.config["DATA_DIR"].as_posix(), app.config["SQLALCHEMY_DATABASE_URI"], rows_per_unit)
    path = sqlite_file(app)
    for _ in range(5):
        proc = SPAWN.Process(target=dbworkers.slow_writer, args=args)
        proc.start()
        # Killed right after a unit commits: the writer is then inside its next unit.
        wait_for_more_rows(path, committed_rows(path))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    rows = committed_rows(path)
    assert rows >= 5 * rows_per_unit
    assert rows % rows_per_unit == 0


def committed_rows(path) -> int:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM processing_log").fetchone()[0]
    finally:
        conn.close()


def wait_for_more_rows(path, than: int) -> int:
    """Wait until a writer has committed past `than` rows (an observable event, whatever the machine's load)."""
    return wait_for(lambda: committed_rows(path) > than, 120, f"a unit committed past {than} rows", 0.005)


@pytest.mark.slow
def test_backup_under_write_load_passes_integrity_check(app, runner, tmp_path):
    """`flask backup` taken while a writer runs produces a database that passes integrity_check."""
    args = (app.config["DATA_DIR"].as_posix(), app.config["SQLALCHEMY_DATABASE_URI"], 10)
    writer = SPAWN.Process(target=dbworkers.slow_writer, args=args)
    writer.start()
    try:
        wait_for_more_rows(sqlite_file(app), 0)
        target = tmp_path / "backup.sqlite3"
        result = runner.invoke(args=["backup", str(target)])
        assert result.exit_code == 0, result.output
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM processing_log").fetchone()[0] % 10 == 0
    finally:
        conn.close()
