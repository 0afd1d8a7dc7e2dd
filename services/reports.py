"""The batch report: the contract `flask ingest --json` and `flask report --json` print."""

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from data.extensions import db
from data.models import Batch, Photo
from data.states import PhotoRole
from engine.grouping import natural_key


def photo_entry(photo: Photo, names: dict[int, str]) -> dict:
    codes = [person.code for person in photo.people]
    role = photo.role or PhotoRole.UNASSIGNED
    reason = photo.error_reason or photo.review_reason
    if photo.role is None:
        reason = "not processed yet"
    elif photo.role == PhotoRole.DUPLICATE:
        reason = f"same bytes as {names.get(photo.duplicate_of_id, 'an earlier photo')}"
    return {
        "filename": photo.original_name,
        "role": str(role),
        "person": codes[0] if codes else None,  # kept for readers of the first contract; "people" has them all
        "people": codes,
        "group": photo.group_key,
        "needs_review": bool(photo.needs_review),
        "reason": reason,
    }


def batch_report(batch_id: int) -> dict | None:
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        return None
    photos = sorted(
        db.session.scalars(select(Photo).where(Photo.batch_id == batch_id).options(selectinload(Photo.people))),
        key=lambda p: (natural_key(p.original_name), p.id),
    )  # IMG_2 before IMG_10, as a person reads them
    originals = {p.duplicate_of_id for p in photos if p.duplicate_of_id}
    names = dict(db.session.execute(select(Photo.id, Photo.original_name).where(Photo.id.in_(originals))).all())
    return {"batch": batch.id, "status": str(batch.status), "photos": [photo_entry(p, names) for p in photos]}
