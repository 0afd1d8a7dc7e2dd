"""Per-person export folders: `export/<code> <name>/` with the photos and a manifest.

Idempotent: the folder is made to match the database. Running it twice changes nothing; a photo
re-assigned in review moves; a folder exists only while its person has photos to deliver.
"""

import csv
import errno
import io
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from data import storage
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch, Person, Photo, photo_person
from data.states import BatchStatus, PhotoRole, ScanState
from services import outbox

MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"
MANIFEST_FIELDS = ["file", "sha256", "captured_at", "camera", "batch", "original_name"]
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
# Bidirectional overrides, embeddings, isolates and marks: they make "gpj.exe" read as "exe.jpg".
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What makes a spreadsheet read a cell as a formula, after folding full-width forms (＝ is =).
FORMULA_STARTERS = ("=", "+", "-", "@", "\t", "\r")


class ExportError(RuntimeError):
    pass


def folder_name(person: Person) -> str:
    name = _UNSAFE.sub(" ", _BIDI.sub("", person.name)).strip(" .") or "unnamed"
    return f"{person.code} {name}"[:120]


def deliverable(include_cards: bool | None = None) -> ColumnElement[bool]:
    """The one rule for what a person receives: scanned photos, not excluded, and their card where
    configured (include_cards overrides the setting)."""
    roles = [PhotoRole.PHOTO]
    if current_app.config["EXPORT_CARDS"] if include_cards is None else include_cards:
        roles.append(PhotoRole.SEPARATOR)
    return and_(Photo.role.in_(roles), Photo.excluded.is_(False), Photo.scan_state == ScanState.SCANNED)


def deliverable_query(person_id: int, include_cards: bool | None = None) -> Select:
    return (
        select(Photo)
        .join(photo_person, photo_person.c.photo_id == Photo.id)
        .where(photo_person.c.person_id == person_id, deliverable(include_cards))
    )


def deliverable_photos(person_id: int) -> list[Photo]:
    return list(db.session.scalars(deliverable_query(person_id).order_by(Photo.captured_at, Photo.id)))


def is_deliverable_to(photo_id: int, person_id: int) -> bool:
    return db.session.scalar(deliverable_query(person_id).where(Photo.id == photo_id).limit(1)) is not None


def export_names(photos: list[Photo]) -> dict[str, Photo]:
    """File name in the folder -> photo. The first photo (by id) with a base name keeps it plain;
    later ones get a short hash, so names stay stable as photos are added."""
    names: dict[str, Photo] = {}
    # Case-insensitive, as exports land on Windows too; the manifests' names are never a photo's.
    taken = {MANIFEST_CSV, MANIFEST_JSON}
    for photo in sorted(photos, key=lambda p: p.id):
        # No dot-names: they would hide the photo and could meet our own temp files.
        name = _BIDI.sub("", PurePosixPath(photo.original_name).name).lstrip(".") or "photo"
        if name.lower() in taken:
            stem, suffix = os.path.splitext(name)
            name = f"{stem}-{photo.content_hash[:8]}{suffix}"
        taken.add(name.lower())
        names[name] = photo
    return names


def manifest_rows(names: dict[str, Photo]) -> list[dict]:
    return [
        {
            "file": name,
            "sha256": p.content_hash,
            "captured_at": p.captured_at.isoformat() if p.captured_at else "",
            "camera": p.camera_key or "",
            "batch": p.batch_id,
            "original_name": p.original_name,
        }
        for name, p in sorted(
            names.items(), key=lambda item: (item[1].captured_at is None, item[1].captured_at, item[0])
        )
    ]


def spreadsheet_safe(value) -> str:
    """Defuse formula injection: a cell starting with = + - @ (or their full-width forms, which spreadsheets
    also read as formulas) is text, not a formula."""
    text = str(value)
    return "'" + text if unicodedata.normalize("NFKC", text[:1]) in FORMULA_STARTERS else text


def manifest_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
    return out.getvalue()


def write_atomically(path: Path, data: bytes) -> bool:
    """Write only if different; via a temp file so a crash or a full disk leaves the old file whole."""
    if path.exists() and path.read_bytes() == data:
        return False
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return True


def place_file(source: Path, target: Path) -> None:
    """Hard-link the original (no copy of the bytes), or copy where links can't cross devices."""
    temp = target.with_name(f".{target.name}.tmp")
    temp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temp)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copy2(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def find_folder(root: Path, person: Person) -> Path | None:
    """The person's existing folder, even if their name has changed since."""
    if not root.exists():
        return None
    return next((p for p in root.iterdir() if p.is_dir() and p.name.split(" ", 1)[0] == person.code), None)


def export_person(person: Person) -> int:
    """Make the person's folder match the database; return how many files changed."""
    root = storage.export_root()
    names = export_names(deliverable_photos(person.id))
    folder = find_folder(root, person)
    if not names:
        if folder is not None:
            shutil.rmtree(folder)
        return 0
    wanted = root / folder_name(person)
    if folder is None:
        wanted.mkdir(parents=True)
    elif folder != wanted:
        folder.rename(wanted)
    changes = 0
    try:
        for name, photo in names.items():
            target = wanted / name
            source = storage.original_path(photo.content_hash, photo.extension)
            if target.exists() and os.path.samefile(target, source):
                continue
            if target.exists() and target.stat().st_size == photo.size:
                continue  # a copy made across devices
            place_file(source, target)
            changes += 1
        keep = set(names) | {MANIFEST_CSV, MANIFEST_JSON}
        for stale in wanted.iterdir():
            if stale.name not in keep:
                stale.unlink()
                changes += 1
        rows = manifest_rows(names)
        changes += write_atomically(wanted / MANIFEST_CSV, manifest_csv(rows).encode())
        changes += write_atomically(wanted / MANIFEST_JSON, json.dumps(rows, indent=2).encode())
    except OSError as error:
        raise ExportError(f"export of {person.code} failed: {error.strerror or error}") from error
    return changes


def arriving() -> Select:
    """The ids of people with photos in a batch still uploading. It is grouped as its files arrive, and they are
    not delivered until it is complete: they get their photos whole, once."""
    return (
        select(photo_person.c.person_id)
        .join(Photo, Photo.id == photo_person.c.photo_id)
        .join(Batch, Batch.id == Photo.batch_id)
        .where(Batch.status == BatchStatus.UPLOADING)
    )


def people_behind(delivered: InstrumentedAttribute[int], *also: ColumnElement[bool]) -> list[tuple[int, int]]:
    """(person id, version to deliver) for everyone whose photos changed since `delivered`, one of the
    Person.*_version columns, was recorded, or who meets one of the `also` conditions; none of the arriving()."""
    behind = or_(Person.delivery_version != delivered, *also)
    return list(
        db.session.execute(
            select(Person.id, Person.delivery_version).where(behind, Person.id.not_in(arriving())).order_by(Person.id)
        ).tuples()
    )


def record_export(person_id: int, version: int) -> None:
    db.session.execute(update(Person).where(Person.id == person_id).values(exported_version=version))
    if db.session.scalar(deliverable_query(person_id).limit(1)) is not None:  # nothing to tell before a photo
        outbox.queue_photos_ready(person_id, version)


def export_pending(advance: Callable[[], None] = lambda: None) -> int:
    """Export everyone whose photos changed since their last export; return files changed. `advance` is
    called after each person (a progress bar's step)."""
    changed = 0
    for person_id, version in run_in_transaction(people_behind, Person.exported_version, read_only=True):
        changed += run_in_transaction(lambda pid=person_id: export_person(db.session.get(Person, pid)), read_only=True)
        db_commit_with_retry(record_export, person_id, version)
        advance()
    return changed
