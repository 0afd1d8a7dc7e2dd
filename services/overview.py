"""The figures the live dashboard shows, as plain data (the page, its fragment and /api share them)."""

import logging
import threading
import time

from flask import Flask, current_app
from sqlalchemy import and_, case, func, select

from data.database import run_in_transaction
from data.db_stats import data_layer_health
from data.extensions import db
from data.models import Batch, DriveItem, Person, Photo, photo_person, utcnow
from data.states import BatchStatus, PhotoRole, ScanState
from services import delivery_status, drive_sync, outbox
from services.corrections import needs_attention

log = logging.getLogger("intake.overview")
RECENT_BATCHES = 20
_shared_lock = threading.Lock()


def registrations() -> dict:
    per_group = db.session.execute(
        select(func.coalesce(Person.group_name, ""), func.count())
        .group_by(Person.group_name)
        .order_by(Person.group_name)
    ).all()
    latest = db.session.execute(
        select(Person.code, Person.name, Person.created_at).order_by(Person.id.desc()).limit(5)
    ).all()
    return {
        "count": sum(count for _, count in per_group),
        "per_group": [{"group": group or None, "count": count} for group, count in per_group],
        "latest": [{"code": code, "name": name, "at": at.isoformat()} for code, name, at in latest],
    }


def batch_rows(limit: int | None = RECENT_BATCHES, batch_id: int | None = None) -> list[dict]:
    """The newest batches with their counts; `needs_review` is the one "needs attention" count."""
    photo_counts = (
        select(
            Photo.batch_id,
            func.count().label("files"),
            func.sum(case((Photo.role == PhotoRole.REJECTED, 1), else_=0)).label("errors"),
            func.sum(case((Photo.role == PhotoRole.DUPLICATE, 1), else_=0)).label("duplicates"),
            func.sum(case((needs_attention(), 1), else_=0)).label("review"),
            # files in whose scan is over (a file refused at upload has no bytes kept, so no scan)
            func.sum(case((and_(Photo.scan_state != ScanState.PENDING, Photo.content_hash != ""), 1), else_=0)).label(
                "scanned"
            ),
            func.max(Photo.uploaded_at).label("last_file_at"),
        )
        .group_by(Photo.batch_id)
        .subquery()
    )
    people_counts = (
        select(Photo.batch_id, func.count(photo_person.c.person_id.distinct()).label("people"))
        .join(photo_person, photo_person.c.photo_id == Photo.id)
        .group_by(Photo.batch_id)
        .subquery()
    )
    query = (
        select(
            Batch,
            photo_counts.c.files,
            photo_counts.c.errors,
            photo_counts.c.duplicates,
            photo_counts.c.review,
            people_counts.c.people,
            photo_counts.c.scanned,
            photo_counts.c.last_file_at,
        )
        .outerjoin(photo_counts, photo_counts.c.batch_id == Batch.id)
        .outerjoin(people_counts, people_counts.c.batch_id == Batch.id)
        .order_by(Batch.id.desc())
        .limit(limit)
    )
    rows = db.session.execute(query if batch_id is None else query.where(Batch.id == batch_id)).all()
    now = utcnow()
    result = []
    for batch, files, errors, duplicates, review, people, scanned, last_file_at in rows:
        rate = eta = None
        if batch.status == BatchStatus.PROCESSING and batch.started_at and batch.progress_done:
            elapsed = max((now - batch.started_at).total_seconds(), 1e-3)
            rate = batch.progress_done / elapsed
            eta = (batch.progress_total - batch.progress_done) / rate if rate else None
        result.append(
            {
                "id": batch.id,
                "label": batch.label,
                "status": str(batch.status),
                "phase": batch.phase,
                "files": files or 0,
                "done": batch.progress_done,
                "total": batch.progress_total,
                "rate": round(rate, 2) if rate else None,
                "eta_seconds": round(eta) if eta is not None else None,
                "errors": int(errors or 0),
                "duplicates": int(duplicates or 0),
                "photos": (files or 0) - int(errors or 0) - int(duplicates or 0),
                "people": people or 0,
                "needs_review": int(review or 0),
                "error": batch.error,
                # While files arrive (status "uploading"): how many are in, how many of those are scanned
                # already, and when the last one came (a stalled upload shows).
                "received": int(files or 0) - int(errors or 0),
                "scanned": int(scanned or 0),
                "last_file_at": last_file_at.isoformat() if last_file_at else None,
            }
        )
    return result


def drive_state() -> dict:
    counts = dict(db.session.execute(select(DriveItem.state, func.count()).group_by(DriveItem.state)).all())
    last_error = db.session.scalar(
        select(DriveItem.last_error)
        .where(DriveItem.last_error.is_not(None))
        .order_by(DriveItem.updated_at.desc())
        .limit(1)
    )
    return {
        "counts": {str(state): count for state, count in counts.items()},
        "last_error": last_error,
        "status": drive_sync.status(),
    }


def photo_day() -> dict:
    """The day at a glance: batches by status and photos waiting for review, over every batch."""
    by_status = dict(db.session.execute(select(Batch.status, func.count()).group_by(Batch.status)).all())
    return {
        "batches": {str(status): count for status, count in by_status.items()},
        "needs_review": db.session.scalar(select(func.count()).select_from(Photo).where(needs_attention())),
        "first_to_review": db.session.scalar(select(func.min(Photo.batch_id)).where(needs_attention())),
        "people_with_photos": db.session.scalar(select(func.count(photo_person.c.person_id.distinct()))),
    }


def summary() -> dict:
    return {
        "registrations": registrations(),
        "day": photo_day(),
        "batches": batch_rows(),
        "drive": drive_state(),
        "data_layer": data_layer_health(),
        "emails": outbox.counts(),
        "delivery": delivery_status.counts(),
    }


def shared_summary() -> dict:
    """summary(), shared by the polls of this process: 30 staff polling every second cost a worker one summary
    a second, not 30. Older than DASHBOARD_SHARED_SECONDS (but not twice that), the figures are still answered
    at once while one thread computes the next (~15 queries, which a registration burst can hold up for 100 ms):
    while staff poll, no poll waits for them. The figures are plain data, never changed by their readers."""
    seconds = current_app.config["DASHBOARD_SHARED_SECONDS"]
    if seconds <= 0:
        return summary()
    shared = current_app.extensions.setdefault(
        "intake.shared_summary", {"until": 0.0, "data": None, "refreshing": False}
    )
    with _shared_lock:
        now = time.monotonic()
        if shared["data"] is None or now >= shared["until"] + seconds:  # none yet, or too old to show
            shared["data"], shared["until"] = summary(), now + seconds
        elif now >= shared["until"] and not shared["refreshing"]:
            shared["refreshing"] = True
            app = current_app._get_current_object()
            threading.Thread(
                target=_refresh, args=(app, shared, seconds), name="dashboard-figures", daemon=True
            ).start()
        return shared["data"]


def _refresh(app: Flask, shared: dict, seconds: float) -> None:
    try:
        with app.app_context():
            shared["data"] = run_in_transaction(summary, read_only=True, label="dashboard figures")
    except Exception:
        log.exception("the dashboard's figures could not be computed; the last ones stay shown")
    finally:
        shared["until"], shared["refreshing"] = time.monotonic() + seconds, False
