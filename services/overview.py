"""The figures the live dashboard shows, as plain data (the page, its fragment and /api share them)."""

from sqlalchemy import and_, case, func, select

from data.db_stats import data_layer_health
from data.extensions import db
from data.models import Batch, DriveItem, Person, Photo, utcnow
from data.states import BatchStatus, PhotoRole, ScanState
from services import drive_sync

RECENT_BATCHES = 20


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


def batch_rows() -> list[dict]:
    photo_counts = (
        select(
            Photo.batch_id,
            func.count().label("files"),
            func.sum(case((Photo.role == PhotoRole.REJECTED, 1), else_=0)).label("errors"),
            func.sum(case((Photo.needs_review.is_(True), 1), else_=0)).label("review"),
            # files in whose scan is over (a file refused at upload has no bytes kept, so no scan)
            func.sum(case((and_(Photo.scan_state != ScanState.PENDING, Photo.content_hash != ""), 1), else_=0)).label(
                "scanned"
            ),
            func.max(Photo.uploaded_at).label("last_file_at"),
        )
        .group_by(Photo.batch_id)
        .subquery()
    )
    rows = db.session.execute(
        select(
            Batch,
            photo_counts.c.files,
            photo_counts.c.errors,
            photo_counts.c.review,
            photo_counts.c.scanned,
            photo_counts.c.last_file_at,
        )
        .outerjoin(photo_counts, photo_counts.c.batch_id == Batch.id)
        .order_by(Batch.id.desc())
        .limit(RECENT_BATCHES)
    ).all()
    now = utcnow()
    result = []
    for batch, files, errors, review, scanned, last_file_at in rows:
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


def summary() -> dict:
    return {
        "registrations": registrations(),
        "batches": batch_rows(),
        "drive": drive_state(),
        "data_layer": data_layer_health(),
    }
