"""Applies the pure grouping to a batch's photos in the database: frames in, roles and people out."""

from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from data.extensions import db
from data.models import Batch, Person, PersonAlias, Photo, ReviewCorrection
from data.states import BatchStatus, PhotoRole, ScanState
from engine import grouping
from services.batches import queue_batch


def card_pattern() -> str:
    return current_app.config.get("CARD_PATTERN") or grouping.DEFAULT_CARD_PATTERN


def code_resolver() -> grouping.Resolve:
    """Card code -> registered person's code, through aliases too; read once per grouping."""
    codes = {code: code for code in db.session.scalars(select(Person.code))}
    for alias, person_code in db.session.execute(
        select(PersonAlias.code, Person.code).join(Person, PersonAlias.person_id == Person.id)
    ):
        codes[alias] = person_code
    return codes.get


def frame_of(photo: Photo) -> grouping.Frame:
    return grouping.Frame(
        photo_id=photo.id,
        filename=photo.original_name,
        camera=photo.camera_key,
        captured_at=photo.captured_at,
        qr_texts=tuple(photo.qr_texts or ()),
        unreadable_card=bool(photo.unreadable_card),
        usable=photo.scan_state == ScanState.SCANNED and photo.role != PhotoRole.DUPLICATE,
    )


def active_corrections(batch_id: int) -> list[grouping.Correction]:
    rows = db.session.scalars(
        select(ReviewCorrection)
        .where(ReviewCorrection.batch_id == batch_id, ReviewCorrection.undone_at.is_(None))
        .order_by(ReviewCorrection.id)
    )
    return [grouping.Correction(kind=row.kind, photo_id=row.photo_id, code=row.code) for row in rows]


def delivery_state(photo: Photo) -> tuple:
    """What export and Drive sync depend on: a change here means those people need re-delivery."""
    return frozenset(p.id for p in photo.people), photo.role, photo.excluded


def regroup_batch(batch_id: int) -> set[int]:
    """Group the batch's scanned photos again; return the ids of people whose delivery changed. A batch still
    uploading is grouped as far as its arrivals allow (grouping.settled); the rest waits as it was."""
    # Every write waits for the flush at the end: in a deferred transaction (the processor's) reading and grouping
    # then hold no write lock, and a registration does not wait behind them. People load with their photos.
    with db.session.no_autoflush:
        uploading = db.session.get(Batch, batch_id).status == BatchStatus.UPLOADING
        photos = {
            p.id: p
            for p in db.session.scalars(
                select(Photo).where(Photo.batch_id == batch_id).options(selectinload(Photo.people))
            )
        }
        before = {photo_id: delivery_state(photo) for photo_id, photo in photos.items()}
        mark_duplicates(batch_id, list(photos.values()))
        frames = [frame_of(p) for p in photos.values()]
        if uploading:
            frames = grouping.settled(
                frames, [p.original_name for p in photos.values() if p.scan_state == ScanState.PENDING]
            )
        assignments = {
            a.photo_id: a
            for a in grouping.group_batch(
                frames, resolve=code_resolver(), card_pattern=card_pattern(), corrections=active_corrections(batch_id)
            )
        }
        grouped = {frame.photo_id for frame in frames}
        people = {
            p.code: p
            for p in db.session.scalars(
                select(Person).where(Person.code.in_({c for a in assignments.values() for c in a.people}))
            )
        }
        for photo_id, photo in photos.items():
            if photo_id not in grouped:  # not settled: keeps what it had (nothing, unless the batch was reopened)
                continue
            a = assignments.get(photo_id)
            if a is None:  # rejected or duplicate: grouping passes over it
                photo.people = []
                photo.group_key, photo.needs_review, photo.review_reason, photo.excluded = None, False, None, False
                if photo.role != PhotoRole.DUPLICATE:
                    photo.role = PhotoRole.REJECTED
                continue
            photo.people = [people[code] for code in a.people]
            photo.role = PhotoRole(a.role)
            photo.group_key, photo.needs_review, photo.review_reason = a.group, a.needs_review, a.reason
            photo.excluded = a.excluded
    db.session.flush()
    touched: set[int] = set()
    for photo_id, photo in photos.items():
        after = delivery_state(photo)
        if after != before[photo_id]:
            touched |= before[photo_id][0] | after[0]
    mark_for_delivery(touched)
    return touched


def group_arrivals(batch_id: int) -> None:
    """Group a batch while it uploads, unless its upload has just ended: then the processor's run groups it.
    The batch row stays locked to the end (PostgreSQL), so this never lands after that run's grouping."""
    status = db.session.scalar(select(Batch.status).where(Batch.id == batch_id).with_for_update())
    if status == BatchStatus.UPLOADING:
        regroup_batch(batch_id)


def shooting_order(photo: Photo) -> tuple:
    return (photo.captured_at is None, photo.captured_at or datetime.min, photo.original_name, photo.id)


def mark_duplicates(batch_id: int, photos: list[Photo]) -> None:
    """Of identical files, one is kept and the others are its duplicates, whatever order they arrived in:
    the one kept by an earlier batch, else the first of this batch in shooting order, then by name."""
    scanned = sorted((p for p in photos if p.scan_state == ScanState.SCANNED), key=shooting_order)
    kept_earlier = dict(
        db.session.execute(
            select(Photo.content_hash, func.min(Photo.id))
            .where(
                Photo.content_hash.in_({p.content_hash for p in scanned}),
                Photo.batch_id < batch_id,
                Photo.scan_state == ScanState.SCANNED,
                Photo.role.not_in([PhotoRole.DUPLICATE, PhotoRole.REJECTED]),
            )
            .group_by(Photo.content_hash)
        ).all()
    )
    for photo in scanned:
        kept = kept_earlier.setdefault(photo.content_hash, photo.id)
        if kept == photo.id:
            photo.duplicate_of_id = None
            if photo.role == PhotoRole.DUPLICATE:
                photo.role = None  # grouping gives it its role
        else:
            photo.role, photo.duplicate_of_id = PhotoRole.DUPLICATE, kept


def mark_for_delivery(person_ids: set[int]) -> None:
    if person_ids:
        db.session.execute(
            update(Person).where(Person.id.in_(person_ids)).values(delivery_version=Person.delivery_version + 1)
        )


def batches_waiting_for(codes: set[str]) -> list[int]:
    """Batches holding a group for review whose key names one of these codes."""
    rows = db.session.execute(
        select(Photo.batch_id, Photo.group_key)
        .where(Photo.needs_review.is_(True), Photo.group_key.is_not(None))
        .distinct()
    ).all()
    return sorted({batch_id for batch_id, key in rows if codes & set(key.split("+"))})


def requeue_batches_for_codes(codes: set[str]) -> list[int]:
    """Newly registered codes: finished batches waiting for them are queued to be grouped again."""
    batch_ids = batches_waiting_for(codes)
    finished = db.session.scalars(
        select(Batch.id).where(Batch.id.in_(batch_ids), Batch.status.in_([BatchStatus.DONE, BatchStatus.FAILED]))
    )
    return [queue_batch(batch_id).id for batch_id in finished]
