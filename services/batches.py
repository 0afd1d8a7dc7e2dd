"""Batches: their life from upload to the processor's queue, and the counts people see of them."""

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from data.extensions import db
from data.models import Batch, Photo, User, utcnow
from data.states import BatchSource, BatchStatus, PhotoRole
from services.audit import audit


def create_batch(
    label: str, source: BatchSource = BatchSource.WEB, user_id: int | None = None, source_path: str | None = None
) -> Batch:
    batch = Batch(label=label.strip()[:200], source=source, created_by_id=user_id, source_path=source_path)
    db.session.add(batch)
    db.session.flush()
    return batch


def create_batch_once(form_token: str, label: str, user_id: int) -> Batch:
    """The batch this form (by its one-time token) made, or a new one: a double submit makes one batch."""
    made = db.session.scalar(select(Batch).where(Batch.form_token == form_token))
    if made is not None:
        return made
    try:
        with db.session.begin_nested():
            batch = create_batch(label, BatchSource.WEB, user_id)
            batch.form_token = form_token
    except IntegrityError:  # the other submit won the race (PostgreSQL): take its batch
        return db.session.scalar(select(Batch).where(Batch.form_token == form_token))
    return batch


def may_change(batch: Batch, user: User) -> bool:
    """A batch that has been processed is changed (reopened, added to, completed) only by its owner or an admin."""
    return batch.started_at is None or user.is_admin or batch.created_by_id == user.id


def batch_access(batch_id: int, user: User) -> tuple[BatchStatus, bool] | None:
    """(status, whether this user may change it) of the batch; None if there is no such batch."""
    batch = db.session.get(Batch, batch_id)
    return None if batch is None else (batch.status, may_change(batch, user))


def deletable(batch: Batch) -> bool:
    """Empty, or abandoned (never finished uploading, or failed): nothing delivered depends on it."""
    if batch.status in (BatchStatus.QUEUED, BatchStatus.PROCESSING):
        return False
    empty = db.session.scalar(select(func.count()).where(Photo.batch_id == batch.id)) == 0
    return empty or (batch.status in (BatchStatus.UPLOADING, BatchStatus.FAILED) and batch.finished_at is None)


def delete_batch(batch_id: int, user_id: int) -> bool:
    """Delete an empty or abandoned batch and its photo records (originals stay: they are kept by hash)."""
    batch = db.session.get(Batch, batch_id)
    if batch is None or not deletable(batch):
        return False
    before = {"label": batch.label, "status": str(batch.status), **batch_counts(batch_id)}
    audit(user_id, "batch.deleted", "batch", batch_id, before, None)
    db.session.execute(delete(Batch).where(Batch.id == batch_id))
    return True


def queue_batch(batch_id: int) -> Batch:
    """Hand the batch to the processor (again, for a re-run: stored scans are reused)."""
    batch = db.session.get(Batch, batch_id)
    batch.move_to(BatchStatus.QUEUED)
    batch.queued_at = utcnow()
    batch.error = None
    return batch


def reopen_batch(batch_id: int, user_id: int | None = None) -> Batch:
    """More files are coming for this batch (a resumed upload); reopening a processed batch is audited."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        raise ValueError(f"there is no batch {batch_id}")
    if batch.status != BatchStatus.UPLOADING:
        audit(user_id, "batch.reopened", "batch", batch_id, {"status": str(batch.status)}, {"status": "uploading"})
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
