"""Batches: receiving photos (from the browser or a folder/zip on disk) and queueing them for the processor."""

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from flask import current_app
from sqlalchemy import select

import storage
from database import db_commit_with_retry
from extensions import db
from models import Batch, Photo, utcnow
from states import BatchStatus, PhotoRole, ScanState

# A zip entry expanding this many times over its compressed size is a zip bomb, not photos
# (JPEGs barely compress).
MAX_ZIP_RATIO = 200
# What makes one file unusable; the batch goes on. A full disk is not among them: it stops the batch.
REFUSED = (storage.UnsafeName, storage.TooLarge, zipfile.BadZipFile)
# zipfile raises these for entries it cannot read (encrypted, Deflate64, a corrupt stream).
UNREADABLE_ENTRY = (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError)


def create_batch(label: str, source: str = "web", user_id: int | None = None, source_path: str | None = None) -> Batch:
    batch = Batch(label=label.strip()[:200], source=source, created_by_id=user_id, source_path=source_path)
    db.session.add(batch)
    db.session.flush()
    return batch


def add_photo(batch_id: int, original_name: str, content_hash: str, size: int) -> Photo:
    """Record a received file in the batch. Idempotent: the same name again is the same photo.

    The same bytes already kept under another name (in any batch) make this photo a duplicate.
    """
    existing = db.session.scalar(select(Photo).where(Photo.batch_id == batch_id, Photo.original_name == original_name))
    if existing is not None and existing.content_hash == content_hash:
        return existing
    if existing is not None:
        # Re-uploaded under the same name with other bytes: the newer file replaces the older.
        db.session.delete(existing)
        db.session.flush()
    first = db.session.scalar(
        select(Photo)
        .where(Photo.content_hash == content_hash, Photo.role.is_distinct_from(PhotoRole.DUPLICATE))
        .order_by(Photo.id)
        .limit(1)
    )
    photo = Photo(
        batch_id=batch_id,
        original_name=original_name,
        content_hash=content_hash,
        size=size,
        extension=storage.extension_of(original_name),
    )
    if first is not None:
        photo.role = PhotoRole.DUPLICATE
        photo.duplicate_of_id = first.id
    db.session.add(photo)
    db.session.flush()
    return photo


def reject_file(batch_id: int, original_name: str, reason: str) -> Photo:
    """Record a file we refused to keep, so the batch report says why."""
    name = storage.display_name(original_name)
    photo = db.session.scalar(select(Photo).where(Photo.batch_id == batch_id, Photo.original_name == name))
    if photo is None:
        photo = Photo(batch_id=batch_id, original_name=name, content_hash="", size=0, extension="")
        db.session.add(photo)
    photo.role, photo.scan_state, photo.error_reason = PhotoRole.REJECTED, ScanState.REJECTED, reason
    db.session.flush()
    return photo


def receive_file(batch_id: int, original_name: str, chunks) -> Photo:
    """Store one uploaded file by its hash, then record it; nothing half-written is left on error.

    A file we refuse (unsafe name, too large, unreadable) is recorded as rejected with the reason.
    """
    try:
        name = storage.clean_relative_name(original_name)
        temp, content_hash, size = storage.receive_stream(chunks, current_app.config["MAX_UPLOAD_BYTES"])
        storage.keep_original(temp, content_hash, storage.extension_of(name))
    except REFUSED as error:
        return db_commit_with_retry(reject_file, batch_id, original_name, str(error))
    except storage.StorageFull:
        raise
    except UNREADABLE_ENTRY + (OSError,) as error:
        return db_commit_with_retry(reject_file, batch_id, original_name, f"unreadable: {error}")
    return db_commit_with_retry(add_photo, batch_id, name, content_hash, size)


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


def is_hidden(parts: list[str] | tuple[str, ...]) -> bool:
    """Dot-files and macOS zip metadata are not photos; `..` is not hidden but unsafe (refused later)."""
    return any((part.startswith(".") and part not in (".", "..")) or part == "__MACOSX" for part in parts)


def files_in_folder(root: Path) -> Iterator[tuple[str, Path]]:
    """(name relative to root, path) for every file below root; hidden files are skipped."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not is_hidden(relative.parts):
            yield relative.as_posix(), path


def read_in_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(storage.CHUNK):
            yield chunk


def ingest_folder(batch_id: int, root: Path) -> None:
    for name, path in files_in_folder(root):
        receive_file(batch_id, name, read_in_chunks(path))


def ingest_zip(batch_id: int, archive: Path, prefix: str = "") -> None:
    """Every entry of the zip as a file of the batch, named `prefix/entry` when a prefix is given (two
    cards zipped separately often hold the same DCIM/... names)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or is_hidden(info.filename.replace("\\", "/").split("/")):
                continue
            name = f"{prefix}/{info.filename}" if prefix else info.filename
            if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
                db_commit_with_retry(reject_file, batch_id, name, "compression ratio too high: refused as a zip bomb")
                continue
            try:
                entry = zf.open(info)
            except UNREADABLE_ENTRY as error:
                db_commit_with_retry(reject_file, batch_id, name, f"unreadable zip entry: {error}")
                continue
            with entry:
                receive_file(batch_id, name, entry)


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


def ingest_path(path: Path, label: str | None = None, batch_id: int | None = None) -> int:
    """Create a batch from a folder (recursively) or a zip, exactly as a web upload would, and queue it.

    With batch_id, files go into that batch again (a resumed ingest): files already there are kept once.
    Without it, an unfinished ingest of the same path (stopped by a full disk, say) is resumed.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    is_zip = path.is_file() and zipfile.is_zipfile(path)
    if not path.is_dir() and not is_zip:
        raise ValueError(f"{path} is neither a folder nor a zip file")
    source_path = str(path.resolve())
    batch_id = batch_id or db_commit_with_retry(unfinished_ingest, source_path)
    if batch_id is None:
        batch_id = db_commit_with_retry(lambda: create_batch(label or path.name, "cli", source_path=source_path).id)
    else:
        db_commit_with_retry(reopen_batch, batch_id)
    try:
        (ingest_zip if is_zip else ingest_folder)(batch_id, path)
    except storage.StorageFull as error:
        reason = f"{error.strerror} (run the same ingest again to resume)"
        db_commit_with_retry(fail_batch_upload, batch_id, reason)
        raise
    db_commit_with_retry(queue_batch, batch_id)
    return batch_id
