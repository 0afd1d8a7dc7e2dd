"""The data layer's health, for the dashboard, the API and `flask stats`."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from data.extensions import db
from data.models import LockEvent, utcnow
from data.states import LockEventKind


def sqlite_path() -> Path | None:
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def file_sizes() -> dict:
    path = sqlite_path()
    if path is None:
        return {"db_bytes": None, "wal_bytes": None}
    wal = path.with_name(path.name + "-wal")
    return {
        "db_bytes": path.stat().st_size if path.exists() else 0,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }


def lock_events_since(hours: float = 1.0) -> dict:
    since = utcnow() - timedelta(hours=hours)
    rows = db.session.execute(
        select(LockEvent.kind, func.count(), func.coalesce(func.max(LockEvent.wait_ms), 0))
        .where(LockEvent.at >= since)
        .group_by(LockEvent.kind)
    ).all()
    by_kind = {kind: (count, max_ms) for kind, count, max_ms in rows}
    return {
        "retries": by_kind.get(LockEventKind.RETRY, (0, 0))[0],
        "lock_waits": by_kind.get(LockEventKind.WAIT, (0, 0))[0],
        "max_wait_ms": max((m for _, m in by_kind.values()), default=0),
    }


def table_counts() -> dict[str, int]:
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table)) for table in db.metadata.sorted_tables
    }


def data_layer_health() -> dict:
    return {"backend": db.engine.dialect.name, **file_sizes(), "last_hour": lock_events_since(1.0)}
