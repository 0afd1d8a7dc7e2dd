"""How the app talks to its database without ever showing "database is locked".

Three rules, one place:
1. Every SQLite connection gets the same PRAGMAs (WAL, busy_timeout, foreign keys, ...).
2. A transaction that may write first takes its process's writer turn, then the database's one write
   lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so it queues under the busy or lock
   timeout instead of failing when a read tries to become a write. Read-only work never waits behind a
   writer (WAL readers don't block).
3. A unit of work that still meets a lock is rolled back and *re-run from the start* with capped,
   jittered exponential backoff. Never just commit again after a rollback: that commits nothing.
"""

import contextvars
import functools
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import current_app, request
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from data.extensions import db
from data.models import LockEvent
from data.states import LockEventKind

log = logging.getLogger("intake.db")

P = ParamSpec("P")
R = TypeVar("R")

SQLITE_BUSY, SQLITE_LOCKED = 5, 6
# PostgreSQL: serialization failure, deadlock, lock not available.
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# The advisory lock key that stands for PostgreSQL's one write lock (any constant; "INTAKE" in ASCII).
PG_WRITE_LOCK = 0x494E54414B45
# A write lock that took longer than this to get waited on another writer.
LOCK_WAIT_THRESHOLD = 0.05


def sqlite_pragmas(busy_timeout_ms: int) -> list[str]:
    return [
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        "PRAGMA cache_size=-20000",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA journal_size_limit=67108864",
    ]


class DatabaseBusy(Exception):
    """The database stayed locked through every retry; the caller answers 503."""


class WriterTurnTimeout(Exception):
    """Another writer of this process held the turn for the whole busy timeout: retried like a busy lock."""


# The threads of one process take turns to write before they ask the database. A thread blocked on this
# lock wakes the moment it is released; SQLite's busy handler instead polls with sleeps that grow to 100 ms,
# so in a burst (60 registrations at once) a writer that just arrived overtook one that had waited a
# second. Between processes the database's own lock still decides.
_writer_turn = threading.Lock()


# Outside a unit of work (e.g. Flask-Login loading the user) transactions are deferred reads.
_write_mode = contextvars.ContextVar("intake_write_mode", default=False)
_waits: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("intake_waits", default=None)
_in_unit = contextvars.ContextVar("intake_in_unit", default=False)


def configure_engine(engine: Engine, busy_timeout_ms: int) -> None:
    """Install the connection rules on an engine: on both backends a write unit first takes the database's
    one write lock, so writers queue (under the busy or lock timeout) instead of conflicting."""
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine, busy_timeout_ms)
    else:
        configure_postgresql(engine)


def configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    pragmas = sqlite_pragmas(busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Take transaction control away from pysqlite: we emit BEGIN ourselves (SQLAlchemy's recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        if _write_mode.get():
            take_write_lock(connection, "BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def configure_postgresql(engine: Engine) -> None:
    """Reads keep REPEATABLE READ's one snapshot. A write unit runs READ COMMITTED under an advisory lock,
    PostgreSQL's BEGIN IMMEDIATE: writers take turns, and each statement sees the turns before it, so a
    read-then-write on a hot row neither loses an update nor fails on a serialization conflict (at
    REPEATABLE READ, a busy counter row needed a dozen retries per unit on a loaded machine)."""

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        if _write_mode.get():
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            take_write_lock(connection, f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


def take_write_lock(connection, statement: str) -> None:
    """Run the statement that waits for the write lock; a long wait is recorded for the dashboard."""
    started = time.perf_counter()
    connection.exec_driver_sql(statement)
    waited = time.perf_counter() - started
    if waited >= LOCK_WAIT_THRESHOLD:
        waits = _waits.get()
        if waits is not None:
            waits.append(waited)


def take_writer_turn(timeout: float) -> None:
    """This process's turn to write; a long wait is recorded like a wait for the database's lock."""
    started = time.perf_counter()
    if not _writer_turn.acquire(timeout=timeout):
        raise WriterTurnTimeout
    waited = time.perf_counter() - started
    if waited >= LOCK_WAIT_THRESHOLD and (waits := _waits.get()) is not None:
        waits.append(waited)


def is_transient(exc: BaseException) -> bool:
    """A lock or serialization conflict that re-running the unit of work can cure."""
    if isinstance(exc, WriterTurnTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    if getattr(orig, "sqlstate", None) in TRANSIENT_SQLSTATES:
        return True
    # Older drivers without error codes: fall back to the message.
    return "database is locked" in str(orig) or "database table is locked" in str(orig)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full jitter: spreads the retriers out so they don't collide again in step."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def _pending_changes(session) -> bool:
    return bool(session.new or session.dirty or session.deleted)


def run_in_transaction(
    unit: Callable[P, R], *args: P.args, read_only: bool = False, label: str = "", **kwargs: P.kwargs
) -> R:
    """Run `unit` and commit; on a transient lock error roll back and run it again, whole.

    `unit` must be safe to repeat: it reads what it needs and writes through unique keys or
    upserts, so a second run after a rollback does the same thing once.
    """
    if _in_unit.get():
        # The inner unit would roll back or commit the outer one's work halfway through.
        raise RuntimeError(f"{getattr(unit, '__name__', 'unit')}: a unit of work cannot run inside another")
    session = db.session()  # the scoped proxy lacks some Session methods
    if _pending_changes(session):
        # Changes made outside the unit would be lost by our rollback, or committed by accident.
        raise RuntimeError("uncommitted changes exist outside the unit of work; do them inside it")
    if session.in_transaction():
        # End the read that happened before (a login check): the unit begins in its own mode.
        session.rollback()
    config = current_app.config
    attempts = max(1, config["DB_RETRY_ATTEMPTS"])
    label = label or getattr(unit, "__name__", "unit")
    retry_waits: list[float] = []
    lock_waits: list[float] = []
    waits_token = _waits.set(lock_waits)
    unit_token = _in_unit.set(True)
    try:
        for attempt in itertools.count(1):
            # A read-only unit that met a lock must have tried to write: retry it as a writer.
            writing = not read_only or attempt > 1
            mode_token = _write_mode.set(writing)
            has_turn = False
            try:
                if writing:
                    take_writer_turn(config["DB_BUSY_TIMEOUT_MS"] / 1000)
                    has_turn = True
                result = unit(*args, **kwargs)
                if _write_mode.get() and (retry_waits or lock_waits):
                    session.add_all(
                        [LockEvent(kind=LockEventKind.RETRY, wait_ms=int(w * 1000), label=label) for w in retry_waits]
                        + [LockEvent(kind=LockEventKind.WAIT, wait_ms=int(w * 1000), label=label) for w in lock_waits]
                    )
                session.commit()
                return result
            except (DBAPIError, WriterTurnTimeout) as exc:
                session.rollback()
                if not is_transient(exc):
                    raise
                if attempt >= attempts:
                    log.error("database busy in %s: giving up after %d attempts", label, attempts)
                    raise DatabaseBusy(
                        "The database is busy right now; nothing was changed. Please try again."
                    ) from exc
                delay = backoff_delay(attempt, config["DB_RETRY_BASE_DELAY"], config["DB_RETRY_MAX_DELAY"])
                retry_waits.append(delay)
                log.warning(
                    "database busy in %s (attempt %d/%d): retrying in %.0f ms", label, attempt, attempts, delay * 1000
                )
            except BaseException:
                session.rollback()
                raise
            finally:
                if has_turn:
                    _writer_turn.release()
                _write_mode.reset(mode_token)
            time.sleep(delay)  # only a retry gets here; the turn is free meanwhile
    finally:
        _in_unit.reset(unit_token)
        _waits.reset(waits_token)


def keyed_insert(model, key: dict, values: dict):
    """INSERT of one row whose conflict clause names its unique key (SQLite and PostgreSQL speak the same)."""
    insert = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}[db.engine.dialect.name]
    return insert(model).values(**key, **values)


def upsert(model, key: dict, values: dict) -> None:
    """Insert or update one row by its unique key in a single statement. Two units racing on the same
    new key then conflict on the row (and the loser is retried) instead of failing on a duplicate key,
    which a get-then-insert would do."""
    statement = keyed_insert(model, key, values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=list(key), set_={name: statement.excluded[name] for name in values}
        )
    )


def insert_once(model, key: dict, values: dict) -> None:
    """Insert one row unless a row with its unique key exists (then nothing changes, nothing fails)."""
    db.session.execute(keyed_insert(model, key, values).on_conflict_do_nothing(index_elements=list(key)))


def db_commit_with_retry(unit: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """The processor's commit: one step of work, retried whole. Takes the work, not the session."""
    return run_in_transaction(unit, *args, **kwargs)


def db_retry(view: Callable[P, R]) -> Callable[P, R]:
    """Route guard: the request is one unit of work; reads stay deferred, writes go IMMEDIATE."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_in_transaction(
            view, *args, read_only=request.method in SAFE_METHODS, label=request.endpoint or view.__name__, **kwargs
        )

    return wrapper
