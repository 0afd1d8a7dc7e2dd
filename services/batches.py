"""Batches: their life from upload to the processor's queue, and the counts people see of them."""

from sqlalchemy import func, select

from data.extensions import db
from data.models import Batch, Photo, utcnow
from data.states import BatchSource, BatchStatus, PhotoRole


def create_batch(
    label: str, source: BatchSource = BatchSource.WEB, user_id: int | None = None, source_path: str | None = None
) -> Batch:
    batch = Batch(label=label.strip()[:200], source=source, created_by_id=user_id, source_path=source_path)
    db.session.add(batch)
    db.session.flush()
    return batch


def queue_batch(batch_id: int) -> Batch:
    """Hand the batch to the processor (again, for a re-run: stored scans are reused)."""
    batch = db.session.get(Batch, batch_id)
    batch.move_to(BatchStatus.QUEUED)
    batch.queued_at = utcnow()
    batch.error = None
    return batch


def reopen_batch(batch_id: int) -> Batch:
    """More files are coming for this batch (a resumed upload)."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        raise ValueError(f"there is no batch {batch_id}")
    if batch.status != BatchStatus.UPLOADING:
        batch.move_to(BatchStatus.UPLOADING)
    return batch


def unfinished_ingest(source_path: str) -> int | None:
    """The batch an earlier ingest of this path left before it was ever processed."""
    return db.session.scalar(
        select(Batch.id)
        .where(
            Batch.source_path == source_path,
            Batch.started_at.is_(None),
            Batch.status.in_([BatchStatus.UPLOADING, BatchStatus.FAILED]),
        )
        .order_by(Batch.id.desc())
        .limit(1)
    )


def note_batch_problem(batch_id: int, problem: str) -> None:
    """Show a problem on the batch (and the dashboard) without changing its state."""
    db.session.get(Batch, batch_id).error = problem


def fail_batch_upload(batch_id: int, reason: str) -> None:
    db.session.get(Batch, batch_id).fail(reason)


def batch_counts(batch_id: int) -> dict:
    rows = db.session.execute(
        select(Photo.role, func.count()).where(Photo.batch_id == batch_id).group_by(Photo.role)
    ).all()
    by_role = {role: count for role, count in rows}
    rejected = by_role.get(PhotoRole.REJECTED, 0)
    return {"stored": sum(by_role.values()) - rejected, "rejected": rejected}


def batch_status(batch_id: int) -> BatchStatus | None:
    return db.session.scalar(select(Batch.status).where(Batch.id == batch_id))
