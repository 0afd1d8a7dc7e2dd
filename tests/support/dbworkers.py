"""Code that runs in child processes of the data-layer tests (spawned, so importable by name)."""

import os
import sqlite3
import time

from sqlalchemy.exc import OperationalError


def child_app(data_dir: str, database_url: str, **overrides):
    os.environ.update(
        {"INTAKE_DATA_DIR": data_dir, "DATABASE_URL": database_url, "SECRET_KEY": "test", "INTAKE_PROCESSOR": "0"}
    )
    from app import create_app

    return create_app(overrides)


def increment(key: str) -> None:
    """Read, then write: the pattern that fails at once under deferred transactions."""
    from data.extensions import db
    from data.models import Setting

    setting = db.session.get(Setting, key)
    time.sleep(0.002)  # hold the read a moment, so the processes' read-then-write windows surely overlap
    setting.value = setting.value + 1


def incrementer(data_dir: str, database_url: str, key: str, count: int, deferred: bool, results) -> None:
    """Increment `count` times through the retry helper; report lock errors and retries."""
    from data import database

    overrides = {"DB_RETRY_ATTEMPTS": 1} if deferred else {"DB_RETRY_ATTEMPTS": 12}
    app = child_app(data_dir, database_url, **overrides)
    errors = 0
    with app.app_context():
        for _ in range(count):
            try:
                # read_only=True with one attempt is a plain deferred transaction: the control group.
                database.run_in_transaction(increment, key, read_only=deferred)
            except (database.DatabaseBusy, OperationalError):
                errors += 1
    results.put({"errors": errors})


def poller(data_dir: str, database_url: str, seconds: float, results) -> None:
    """A dashboard-like reader polling in short deferred transactions."""
    from data import database
    from data.extensions import db
    from data.models import Setting

    app = child_app(data_dir, database_url)
    polls = errors = 0
    deadline = time.monotonic() + seconds
    with app.app_context():
        while time.monotonic() < deadline:
            try:
                database.run_in_transaction(lambda: db.session.query(Setting).count(), read_only=True)
                polls += 1
            except (database.DatabaseBusy, OperationalError):
                errors += 1
            time.sleep(0.01)
    results.put({"polls": polls, "errors": errors})


def hold_sqlite_lock(path: str, seconds: float, ready) -> None:
    """Another program holding the write lock (an admin's sqlite3 shell, a stuck job)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()


def hold_pg_lock(database_url: str, seconds: float, ready) -> None:
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE person IN ACCESS EXCLUSIVE MODE")
        ready.set()
        time.sleep(seconds)
        conn.rollback()


def slow_writer(data_dir: str, database_url: str, rows_per_unit: int) -> None:
    """Insert units of `rows_per_unit` rows forever, slowly, until killed."""
    from data import database
    from data.extensions import db
    from data.models import ProcessingLog

    def unit(n: int) -> None:
        for i in range(rows_per_unit):
            db.session.add(ProcessingLog(message=f"unit {n} row {i}"))
            db.session.flush()
            time.sleep(0.002)

    app = child_app(data_dir, database_url)
    with app.app_context():
        n = 0
        while True:
            database.db_commit_with_retry(unit, n)
            n += 1
