"""Review: manual corrections on top of the automatic grouping, each audited and undoable."""

import secrets
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from data.extensions import db
from data.models import Batch, Person, PersonAlias, Photo, ReviewCorrection, photo_person, utcnow
from data.states import BatchStatus, PhotoRole, ScanState
from engine import grouping
from engine.grouping import CorrectionKind
from services import regrouping, yearbook
from services.audit import audit
from services.batches import queue_batch
from services.directory import UnknownPerson, person_for_code, resolve_person

# How the review page names each correction kind.
KIND_LABELS = {
    CorrectionKind.ASSIGN: "assign to person",
    CorrectionKind.CARD: "mark as card of code",
    CorrectionKind.NOT_CARD: "mark as not a card",
    CorrectionKind.EXCLUDE: "exclude from delivery",
}


class ReviewError(ValueError):
    pass


def needs_attention():
    """The one definition of a photo that needs someone to look: grouping could not place it, and nobody
    has excluded it since. The dashboard, batch list, review page and API all count with this."""
    return Photo.needs_review.is_(True) & Photo.excluded.is_(False)


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


def card_code_for(text: str) -> str:
    """What "mark as card of" names: a person (by name or code) or a card code nobody has yet."""
    try:
        return resolve_person(text).code
    except UnknownPerson:
        code = text.strip()
        if code and grouping.card_code(code, regrouping.card_pattern()):
            return code
        raise ReviewError(f"{code!r} is neither a person nor a card code.") from None


def correction_code(kind: CorrectionKind, text: str | None) -> str | None:
    if kind == CorrectionKind.ASSIGN:
        try:
            return resolve_person(text or "").code
        except UnknownPerson as error:
            raise ReviewError(str(error)) from None
    if kind == CorrectionKind.CARD:
        return card_code_for(text or "")
    return None


def correct(batch_id: int, photo_ids: list[int], kind: str, code: str | None, user_id: int | None) -> int:
    """Apply one correction to the selected photos as one undoable action and regroup; return how many
    photos changed."""
    if not photo_ids:
        raise ReviewError("Select one or more photos first, then choose what to do with them.")
    if kind not in KIND_LABELS:
        raise ReviewError(f"Unknown correction {kind!r}.")
    kind = CorrectionKind(kind)
    code = correction_code(kind, code)
    photos = batch_photos(batch_id, photo_ids)
    before = {p.id: photo_state(p) for p in photos}
    action_id = secrets.token_hex(8)
    for photo in photos:
        db.session.add(
            ReviewCorrection(
                batch_id=batch_id, photo_id=photo.id, kind=kind, code=code, action_id=action_id, created_by_id=user_id
            )
        )
    db.session.flush()
    regrouping.regroup_batch(batch_id)
    for photo in photos:
        audit(user_id, f"correct:{kind}", "photo", photo.id, before[photo.id], photo_state(photo))
    return sum(before[p.id] != photo_state(p) for p in photos)


def undo(batch_id: int, action_id: str, user_id: int | None) -> int:
    """Undo every correction of one action; return how many photos it covered."""
    undone = list(
        db.session.scalars(
            select(ReviewCorrection).where(
                ReviewCorrection.batch_id == batch_id,
                ReviewCorrection.action_id == action_id,
                ReviewCorrection.undone_at.is_(None),
            )
        )
    )
    if not undone:
        raise ReviewError("Nothing to undo.")
    photos = {c.photo_id: db.session.get(Photo, c.photo_id) for c in undone}
    before = {photo_id: photo_state(photo) for photo_id, photo in photos.items()}
    now = utcnow()
    for correction in undone:
        correction.undone_at = now
    db.session.flush()
    regrouping.regroup_batch(batch_id)
    for photo_id, photo in photos.items():
        audit(user_id, f"undo:{undone[0].kind}", "photo", photo_id, before[photo_id], photo_state(photo))
    return len(undone)


def last_action(batch_id: int) -> str | None:
    return db.session.scalar(
        select(ReviewCorrection.action_id)
        .where(ReviewCorrection.batch_id == batch_id, ReviewCorrection.undone_at.is_(None))
        .order_by(ReviewCorrection.id.desc())
        .limit(1)
    )


def link_code(code: str, person_text: str, user_id: int | None) -> list[int]:
    """An unknown card code means this person (picked by name or code) from now on; regroup the batches
    that have it."""
    try:
        person = resolve_person(person_text)
    except UnknownPerson as error:
        raise ReviewError(str(error)) from None
    code = code.strip()
    if not code:
        raise ReviewError("Type the unknown code to link.")
    if person_for_code(code) is not None:
        raise ReviewError(f"{code} already belongs to someone.")
    db.session.add(PersonAlias(code=code, person_id=person.id))
    audit(user_id, "link", "person", person.id, None, {"alias": code})
    db.session.flush()
    batch_ids = regrouping.batches_waiting_for({code})
    for batch_id in batch_ids:
        regrouping.regroup_batch(batch_id)
    return batch_ids


def choose_portrait(person: Person, photo_id: int | None, user_id: int | None) -> None:
    """Pick the person's yearbook portrait (None: back to the default, the first photo after the card).
    Audited; undone by picking again."""
    if photo_id is not None and not yearbook.is_portrait_candidate(photo_id, person.id):
        raise ReviewError("Only a photo delivered to this person (not their card) can be their portrait.")
    before = {"portrait_photo_id": person.portrait_photo_id}
    person.portrait_photo_id = photo_id
    audit(user_id, "portrait", "person", person.id, before, {"portrait_photo_id": photo_id})
    db.session.flush()


def portrait_from_batch(batch_id: int, photo_id: int, user_id: int | None) -> Person:
    """The large view's "p": the photo becomes the portrait of the one person it is delivered to."""
    photo = batch_photos(batch_id, [photo_id])[0]
    people = [p for p in photo.people if yearbook.is_portrait_candidate(photo.id, p.id)]
    if len(people) != 1:
        raise ReviewError("A portrait is a photo of one person (not a card, not excluded); this one is not.")
    choose_portrait(people[0], photo.id, user_id)
    return people[0]


@dataclass
class CameraView:
    camera: str
    groups: list[tuple[str, list[Photo]]]


@dataclass
class Action:
    """One review action as the history lists it: what, on which files, for whom; undone or not."""

    action_id: str
    at: datetime
    label: str
    files: list[str]
    undone: bool


@dataclass
class ReviewView:
    attention: list[Photo]  # needs_attention(): the one number
    refused: list[Photo]  # rejected and duplicate files, with their reasons
    cameras: list[CameraView]
    history: list[Action]


def batch_history(batch_id: int) -> list[Action]:
    """The batch's corrections, one entry per action, newest first."""
    rows = db.session.execute(
        select(ReviewCorrection, Photo.original_name)
        .join(Photo, Photo.id == ReviewCorrection.photo_id)
        .where(ReviewCorrection.batch_id == batch_id)
        .order_by(ReviewCorrection.id.desc())
    ).all()
    people = {}
    actions: dict[str, Action] = {}
    for correction, name in rows:
        action = actions.get(correction.action_id)
        if action is None:
            if correction.code and correction.code not in people:
                person = person_for_code(correction.code)
                people[correction.code] = f"{person.name} ({person.code})" if person else correction.code
            label = KIND_LABELS[correction.kind] + (f" {people[correction.code]}" if correction.code else "")
            action = actions[correction.action_id] = Action(
                correction.action_id, correction.created_at, label, [], correction.undone_at is not None
            )
        action.files.append(name.rsplit("/", 1)[-1])
    for action in actions.values():
        action.files.sort(key=grouping.natural_key)
    return list(actions.values())


def review_view(batch_id: int) -> ReviewView:
    """Problems first (the needs-attention photos, then refused files), each camera's runs in shooting order."""
    photos = list(
        db.session.scalars(
            select(Photo).where(Photo.batch_id == batch_id).options(selectinload(Photo.people)).order_by(Photo.id)
        )
    )
    attention_ids = set(db.session.scalars(select(Photo.id).where(Photo.batch_id == batch_id, needs_attention())))
    refused = [p for p in photos if p.role in (PhotoRole.REJECTED, PhotoRole.DUPLICATE)]
    # Refused and duplicate files are listed once, apart: they belong to no run.
    frames = [regrouping.frame_of(p) for p in photos if p not in refused]
    by_id = {p.id: p for p in photos}
    ordered = grouping.order_frames(frames)
    cameras = []
    for camera, sequence in ordered.items():
        runs = groupby((by_id[f.photo_id] for f in sequence), key=lambda p: p.group_key or "(before the first card)")
        cameras.append(CameraView(camera or "no camera / no time", [(key, list(run)) for key, run in runs]))
    return ReviewView(
        attention=[p for p in photos if p.id in attention_ids],
        refused=refused,
        cameras=cameras,
        history=batch_history(batch_id),
    )


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


RERUNS = {"rescan": rescan_batch, "regroup": queue_batch, "redeliver": redeliver_batch}


def rerun(batch_id: int, action: str) -> None:
    """One of RERUNS; not while the batch uploads: it is grouped as its files come, and completing it is the
    upload's own step."""
    if db.session.get(Batch, batch_id).status == BatchStatus.UPLOADING:
        raise ReviewError("Files are still arriving in this batch; re-run it once its upload is complete.")
    RERUNS[action](batch_id)


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
