"""The data layer: PRAGMAs, BEGIN IMMEDIATE, retries that re-run the unit, locks across processes."""

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from data import database
from data.db_stats import lock_events_since
from data.extensions import db
from data.models import Person, ProcessingLog, Setting
from tests.support.apps import sqlite_file
from tests.support.factories import register

SPAWN = multiprocessing.get_context("spawn")


def test_pragmas_on_every_connection(app):
    """Each new SQLite connection has WAL, NORMAL sync, foreign keys, busy_timeout and the cache settings."""
    conns = [db.engine.connect() for _ in range(2)]
    try:
        for conn in conns:

            def value(name, conn=conn):
                return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert value("journal_mode") == "wal"
            assert value("synchronous") == 1  # NORMAL
            assert value("foreign_keys") == 1
            assert value("busy_timeout") == app.config["DB_BUSY_TIMEOUT_MS"]
            assert value("cache_size") == -20000
            assert value("temp_store") == 2  # MEMORY
            assert value("journal_size_limit") == 67108864
    finally:
        for conn in conns:
            conn.close()


def other_writer_blocked(app) -> bool:
    """Can a second connection take the write lock right now?"""
    other = sqlite3.connect(sqlite_file(app), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        other.close()


def test_write_unit_begins_immediate_and_read_unit_deferred(app):
    """A write unit holds the write lock from its first statement; a read-only unit never takes it."""
    seen = {}

    def probe(name):
        db.session.execute(select(func.count()).select_from(Setting)).scalar()
        seen[name] = other_writer_blocked(app)

    database.run_in_transaction(probe, "write")
    database.run_in_transaction(probe, "read", read_only=True)
    assert seen == {"write": True, "read": False}


def test_retry_reruns_the_whole_unit(app, monkeypatch):
    """A commit that meets a lock is retried by running the unit again: the row is there exactly once."""
    calls = []
    real_commit = type(db.session()).commit
    fail_once = iter([True])

    def flaky_commit(self):
        if next(fail_once, False):
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        return real_commit(self)

    monkeypatch.setattr(type(db.session()), "commit", flaky_commit)
    monkeypatch.setattr(database, "backoff_delay", lambda *a: 0.0)

    def unit():
        calls.append(1)
        db.session.add(Person(code=f"P{len(calls)}", name="Ada"))

    database.db_commit_with_retry(unit)
    monkeypatch.undo()
    assert len(calls) == 2
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1
    kinds = db.session.scalars(select(database.LockEvent.kind)).all()
    assert kinds == ["retry"]


def test_writers_of_one_process_take_turns_and_a_held_turn_is_busy_not_a_hang(app, monkeypatch):
    """While one thread's write unit runs, another thread's write unit does not start: past the busy timeout
    it is retried, then answered DatabaseBusy with nothing written; a read-only unit runs meanwhile. Once
    the turn is free the same write goes through."""
    app.config.update(DB_BUSY_TIMEOUT_MS=50, DB_RETRY_ATTEMPTS=2)
    monkeypatch.setattr(database, "backoff_delay", lambda *a: 0.0)
    holding, release = threading.Event(), threading.Event()

    def hold_the_turn():
        holding.set()
        release.wait(30)

    def in_thread(unit, *args, **kwargs):
        with app.app_context():
            database.run_in_transaction(unit, *args, **kwargs)

    holder = threading.Thread(target=in_thread, args=(hold_the_turn,))
    holder.start()
    try:
        assert holding.wait(30)
        started = []
        with pytest.raises(database.DatabaseBusy):
            database.run_in_transaction(lambda: started.append("write"))
        database.run_in_transaction(lambda: started.append("read"), read_only=True)
        assert started == ["read"]
    finally:
        release.set()
        holder.join(30)
    database.run_in_transaction(lambda: db.session.add(Person(code="LATE", name="Ada")))
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1


def test_rollback_then_commit_would_lose_the_change(app):
    """Why the helper re-runs the unit: after a rollback, committing again writes nothing."""
    db.session.add(Person(code="LOST", name="Lost"))
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0


def test_changes_outside_the_unit_are_refused(app):
    """Pending changes made before the unit would be lost or committed by accident: refused loudly."""
    db.session.add(Person(code="OUT", name="Outside"))
    with pytest.raises(RuntimeError, match="outside the unit of work"):
        database.db_commit_with_retry(lambda: None)
    db.session.rollback()


def test_non_transient_errors_are_not_retried(app):
    """A real error (a unique key clash) propagates at once and leaves nothing behind."""
    database.db_commit_with_retry(lambda: db.session.add(Person(code="DUP", name="One")))
    calls = []

    def unit():
        calls.append(1)
        db.session.add(Person(code="DUP", name="Two"))

    with pytest.raises(Exception, match="UNIQUE|unique"):
        database.db_commit_with_retry(unit)
    assert calls == [1]
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1


@pytest.mark.both_databases
def test_no_connection_leaks_after_a_burst(app, client):
    """200 mixed requests leave no connection checked out of the pool."""
    app.config["REGISTER_PER_ADDRESS_PER_MINUTE"] = 1000  # one test client is one address
    for i in range(100):
        assert client.get("/register").status_code == 200
        assert register(client, f"p{i}@example.com").status_code == 302
    db.session.remove()
    assert db.engine.pool.checkedout() == 0


def test_backup_refuses_to_overwrite(app, runner, tmp_path):
    """An existing backup file is never overwritten."""
    target = tmp_path / "b.sqlite3"
    target.write_text("keep me")
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code != 0
    assert target.read_text() == "keep me"


def test_verify_reports_a_broken_foreign_key(app, runner):
    """`flask verify` exits 0 on a sound database and non-zero on a dangling foreign key."""
    assert runner.invoke(args=["verify"]).exit_code == 0
    conn = sqlite3.connect(sqlite_file(app))
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("INSERT INTO person_alias (code, person_id, created_at) VALUES ('X', 999, '2026-01-01')")
    conn.commit()
    conn.close()
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "person_alias" in result.output


def test_stats_and_checkpoint(app, runner):
    """`flask stats` shows counts, sizes and retry counters; `flask checkpoint` empties the WAL."""
    database.db_commit_with_retry(lambda: db.session.add(ProcessingLog(message="x")))
    result = runner.invoke(args=["stats"])
    assert result.exit_code == 0
    assert "processing_log" in result.output and "retries" in result.output
    assert runner.invoke(args=["checkpoint"]).exit_code == 0
    assert Path(sqlite_file(app) + "-wal").stat().st_size == 0


def test_create_user_from_stdin(app, runner):
    """`create-user NAME --role admin --password-stdin` creates a login; a short password is refused."""
    result = runner.invoke(args=["create-user", "ann", "--role", "admin", "--password-stdin"], input="correct horse\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["create-user", "bob", "--password-stdin"], input="short\n")
    assert result.exit_code != 0 and "8 characters" in result.output


def test_health_counts_retries_in_the_last_hour(app):
    """Lock events recorded by retries show up in the last-hour health figures."""

    database.db_commit_with_retry(
        lambda: db.session.add_all(
            [database.LockEvent(kind="retry", wait_ms=40), database.LockEvent(kind="wait", wait_ms=900)]
        )
    )
    figures = lock_events_since(1.0)
    assert figures == {"retries": 1, "lock_waits": 1, "max_wait_ms": 900}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_backup_on_postgresql_uses_pg_dump(app, runner, tmp_path):
    """On PostgreSQL, `flask backup` writes a pg_dump of the database."""
    database.db_commit_with_retry(lambda: db.session.add(Person(code="BK1", name="Backed Up")))
    target = tmp_path / "dump.sql"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    dump = target.read_text()
    assert "CREATE TABLE public.person" in dump and "BK1" in dump


def test_a_unit_inside_a_unit_is_refused(app):
    """A nested unit would commit or roll back its caller's work halfway: it is refused, nothing is written."""

    def outer():
        db.session.add(Person(code="OUTER", name="Outer"))
        database.db_commit_with_retry(lambda: db.session.add(Person(code="INNER", name="Inner")))

    with pytest.raises(RuntimeError, match="cannot run inside another"):
        database.db_commit_with_retry(outer)
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0
