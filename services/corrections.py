"""Review: manual corrections on top of the automatic grouping, each audited and undoable."""

from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from data.extensions import db
from data.models import Person, PersonAlias, Photo, ReviewCorrection, photo_person, utcnow
from data.states import PhotoRole, ScanState
from engine import grouping
from engine.grouping import CorrectionKind
from services import regrouping
from services.audit import audit
from services.batches import queue_batch
from services.directory import person_for_code

# How the review page names each correction kind.
KIND_LABELS = {
    CorrectionKind.ASSIGN: "assign to person",
    CorrectionKind.CARD: "mark as card of code",
    CorrectionKind.NOT_CARD: "mark as not a card",
    CorrectionKind.EXCLUDE: "exclude from delivery",
}


class ReviewError(ValueError):
    pass


def photo_state(photo: Photo) -> dict:
    return {
        "role": str(photo.role) if photo.role else None,
        "people": [p.code for p in photo.people],
        "group": photo.group_key,
        "excluded": photo.excluded,
        "needs_review": photo.needs_review,
    }


def batch_photos(batch_id: int, photo_ids: list[int]) -> list[Photo]:
    photos = list(
        db.session.scalars(select(Photo).where(Photo.batch_id == batch_id, Photo.id.in_(photo_ids)).order_by(Photo.id))
    )
    if not photos or len(photos) != len(set(photo_ids)):
        raise ReviewError("Some of the selected photos are not in this batch.")
    return photos


def correct(batch_id: int, photo_ids: list[int], kind: str, code: str | None, user_id: int | None) -> int:
    """Apply one correction to the selected photos and regroup; return how many photos changed."""
    if kind not in KIND_LABELS:
        raise ReviewError(f"Unknown correction {kind!r}.")
    kind = CorrectionKind(kind)
    if kind == CorrectionKind.ASSIGN:
        person = person_for_code((code or "").strip())
        if person is None:
            raise ReviewError(f"No person with code {code!r}.")
        code = person.code
    elif kind == CorrectionKind.CARD:
        code = (code or "").strip()
        if not grouping.card_code(code, regrouping.card_pattern()) and person_for_code(code) is None:
            raise ReviewError(f"{code!r} is not a card code.")
    else:
        code = None
    photos = batch_photos(batch_id, photo_ids)
    before = {p.id: photo_state(p) for p in photos}
    for photo in photos:
        db.session.add(
            ReviewCorrection(batch_id=batch_id, photo_id=photo.id, kind=kind, code=code, created_by_id=user_id)
        )
    db.session.flush()
    regrouping.regroup_batch(batch_id)
    for photo in photos:
        audit(user_id, f"correct:{kind}", "photo", photo.id, before[photo.id], photo_state(photo))
    return sum(before[p.id] != photo_state(p) for p in photos)


def undo(batch_id: int, correction_id: int, user_id: int | None) -> None:
    correction = db.session.get(ReviewCorrection, correction_id)
    if correction is None or correction.batch_id != batch_id or correction.undone_at is not None:
        raise ReviewError("Nothing to undo.")
    photo = db.session.get(Photo, correction.photo_id)
    before = photo_state(photo)
    correction.undone_at = utcnow()
    db.session.flush()
    regrouping.regroup_batch(batch_id)
    audit(user_id, f"undo:{correction.kind}", "photo", photo.id, before, photo_state(photo))


def link_code(code: str, person_code: str, user_id: int | None) -> list[int]:
    """An unknown card code means this person from now on; regroup the batches that have it."""
    person = person_for_code(person_code.strip())
    if person is None:
        raise ReviewError(f"No person with code {person_code!r}.")
    code = code.strip()
    if person_for_code(code) is not None:
        raise ReviewError(f"{code} already belongs to someone.")
    db.session.add(PersonAlias(code=code, person_id=person.id))
    audit(user_id, "link", "person", person.id, None, {"alias": code})
    db.session.flush()
    batch_ids = regrouping.batches_waiting_for({code})
    for batch_id in batch_ids:
        regrouping.regroup_batch(batch_id)
    return batch_ids


@dataclass
class CameraView:
    camera: str
    groups: list[tuple[str, list[Photo]]]


def review_view(batch_id: int) -> tuple[list[Photo], list[CameraView], list[ReviewCorrection]]:
    """Problems first (rejected, unassigned, unknown codes), then each camera's runs in shooting order."""
    photos = list(
        db.session.scalars(select(Photo).where(Photo.batch_id == batch_id).options(selectinload(Photo.people)))
    )
    frames = [regrouping.frame_of(p) for p in photos]
    by_id = {p.id: p for p in photos}
    ordered = grouping.order_frames(frames)
    problems = [p for p in photos if p.needs_review or p.role in (PhotoRole.REJECTED, PhotoRole.DUPLICATE)]
    cameras = []
    for camera, sequence in ordered.items():
        runs = groupby((by_id[f.photo_id] for f in sequence), key=lambda p: p.group_key or "(before the first card)")
        cameras.append(CameraView(camera or "no camera / no time", [(key, list(run)) for key, run in runs]))
    corrections = list(
        db.session.scalars(
            select(ReviewCorrection).where(ReviewCorrection.batch_id == batch_id).order_by(ReviewCorrection.id.desc())
        )
    )
    return problems, cameras, corrections


def rescan_batch(batch_id: int) -> None:
    """Scan every stored photo again (after changing the card pattern, say), then regroup."""
    for photo in db.session.scalars(select(Photo).where(Photo.batch_id == batch_id, Photo.content_hash != "")):
        if photo.scan_state != ScanState.PENDING:
            photo.move_scan_to(ScanState.PENDING)
    queue_batch(batch_id)


def redeliver_batch(batch_id: int) -> None:
    """Export and sync everyone in the batch again; both are idempotent, so only differences move."""
    people = set(
        db.session.scalars(
            select(photo_person.c.person_id)
            .join(Photo, Photo.id == photo_person.c.photo_id)
            .where(Photo.batch_id == batch_id)
        )
    )
    regrouping.mark_for_delivery(people)


def person_photos(person: Person) -> list[Photo]:
    return list(
        db.session.scalars(
            select(Photo)
            .join(photo_person, photo_person.c.photo_id == Photo.id)
            .where(photo_person.c.person_id == person.id)
            .options(selectinload(Photo.batch))
            .order_by(Photo.captured_at, Photo.id)
        )
    )
