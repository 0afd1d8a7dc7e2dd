"""Receiving files into a batch, from the browser (one file per request, or a zip) or from a folder or zip on
disk: each file is streamed to disk once, hashed as it arrives, kept by its hash and recorded."""

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select

from data import storage
from data.database import db_commit_with_retry
from data.extensions import db
from data.models import Batch, Photo
from data.states import BatchSource, PhotoRole, ScanState
from engine.filetypes import HEAD_BYTES, refusal
from services.audit import audit
from services.batches import create_batch, fail_batch_upload, queue_batch, reopen_batch, unfinished_ingest

# A zip entry expanding this many times over its compressed size is a zip bomb, not photos
# (JPEGs barely compress).
MAX_ZIP_RATIO = 200


class TooManyEntries(zipfile.BadZipFile, ValueError):
    """A zip of more entries than any card holds: refused whole, before any entry is read."""


def bounded_entries(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    entries, limit = zf.infolist(), current_app.config["MAX_ZIP_ENTRIES"]
    if len(entries) > limit:
        raise TooManyEntries(f"the zip holds {len(entries)} entries; the limit is {limit}: zip each card alone")
    return entries


# What makes one file unusable; the batch goes on. A full disk is not among them: it stops the batch.
REFUSED = (storage.UnsafeName, storage.TooLarge, zipfile.BadZipFile)


# zipfile raises these for entries it cannot read (encrypted, Deflate64, a corrupt stream).
UNREADABLE_ENTRY = (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError)


def add_photo(batch_id: int, original_name: str, content_hash: str, size: int, user_id: int | None = None) -> Photo:
    """Record a received file in the batch. Idempotent: the same name again is the same photo.

    Other bytes under a name the batch holds replace the photo's content in place: its corrections stay, the
    older original stays on disk (kept by its hash), and the audit log says who replaced what. Which of two
    identical files is the duplicate is decided when the batch is grouped, by shooting order, not here.
    """
    existing = db.session.scalar(select(Photo).where(Photo.batch_id == batch_id, Photo.original_name == original_name))
    if existing is not None and existing.content_hash == content_hash:
        return existing
    if existing is not None:
        replace_content(existing, content_hash, size, user_id)
        return existing
    batch = db.session.get(Batch, batch_id)
    photo = Photo(
        batch_id=batch_id,
        original_name=original_name,
        content_hash=content_hash,
        size=size,
        extension=storage.extension_of(original_name),
    )
    db.session.add(photo)
    db.session.flush()
    if batch.started_at is not None:  # a file added to a batch that was processed (and maybe delivered)
        audit(user_id, "photo.added", "photo", photo.id, None, {"name": original_name, "sha256": content_hash})
    return photo


def replace_content(photo: Photo, content_hash: str, size: int, user_id: int | None) -> None:
    """New bytes for a photo, to be scanned and grouped again; the old ones are kept and named in the audit log."""
    before = {"sha256": photo.content_hash, "size": photo.size, "scan": str(photo.scan_state), "role": photo.role}
    audit(user_id, "photo.replaced", "photo", photo.id, before, {"sha256": content_hash, "size": size})
    photo.content_hash, photo.size = content_hash, size
    # No role until grouped again: the change of role is what re-delivers the new bytes to its people.
    photo.scan_state, photo.scanned_at, photo.error_reason, photo.role = ScanState.PENDING, None, None, None
    db.session.flush()


def reject_file(batch_id: int, original_name: str, reason: str) -> Photo:
    """Record a file we refused to keep, so the batch report says why. A photo the batch already keeps under
    that name stays as it is: the refusal is only answered (a transient row, never stored)."""
    name = storage.display_name(original_name)
    photo = db.session.scalar(select(Photo).where(Photo.batch_id == batch_id, Photo.original_name == name))
    if photo is not None and photo.role != PhotoRole.REJECTED:
        return Photo(batch_id=batch_id, original_name=name, role=PhotoRole.REJECTED, error_reason=reason)
    if photo is None:
        photo = Photo(batch_id=batch_id, original_name=name, content_hash="", size=0, extension="")
        db.session.add(photo)
    photo.role, photo.scan_state, photo.error_reason = PhotoRole.REJECTED, ScanState.REJECTED, reason
    db.session.flush()
    return photo


def has_copy(photo: Photo) -> bool:
    """Whether other kept files hold the same bytes (one of them will be grouped as the duplicate)."""
    return (
        db.session.scalar(
            select(Photo.id)
            .where(
                Photo.content_hash == photo.content_hash,
                Photo.id != photo.id,
                Photo.role.is_distinct_from(PhotoRole.REJECTED),
            )
            .limit(1)
        )
        is not None
    )


def receive_file(batch_id: int, original_name: str, chunks, user_id: int | None = None) -> Photo:
    """Store one uploaded file by its hash, then record it; nothing half-written is left on error.

    A file we refuse (unsafe name, too large, unreadable, not an image by its first bytes) is recorded as
    rejected with the reason, and not kept.
    """
    try:
        name = storage.clean_relative_name(original_name)
        temp, content_hash, size = storage.receive_stream(chunks, current_app.config["MAX_UPLOAD_BYTES"])
        if not_an_image := refusal(first_bytes(temp)):
            temp.unlink(missing_ok=True)
            return db_commit_with_retry(reject_file, batch_id, original_name, not_an_image)
        storage.keep_original(temp, content_hash, storage.extension_of(name))
    except REFUSED as error:
        return db_commit_with_retry(reject_file, batch_id, original_name, str(error))
    except storage.StorageFull:
        raise
    except UNREADABLE_ENTRY + (OSError,) as error:
        return db_commit_with_retry(reject_file, batch_id, original_name, f"unreadable: {error}")
    return db_commit_with_retry(add_photo, batch_id, name, content_hash, size, user_id)


def first_bytes(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD_BYTES)


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
        for info in bounded_entries(zf):
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
    if is_zip:
        with zipfile.ZipFile(path) as zf:
            bounded_entries(zf)  # refused before any batch is made
    source_path = str(path.resolve())
    batch_id = batch_id or db_commit_with_retry(unfinished_ingest, source_path)
    if batch_id is None:
        batch_id = db_commit_with_retry(
            lambda: create_batch(label or path.name, BatchSource.CLI, source_path=source_path).id
        )
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


def clean_or_none(name: str) -> str | None:
    try:
        return storage.clean_relative_name(name)
    except storage.UnsafeName:
        return None


def kept_photo(batch_id: int, name: str) -> tuple[str, int] | None:
    """(content hash, id) of the file the batch keeps under this name, if any."""
    row = db.session.execute(
        select(Photo.content_hash, Photo.id).where(
            Photo.batch_id == batch_id, Photo.original_name == clean_or_none(name)
        )
    ).first()
    return tuple(row) if row else None


def receive_zip(batch_id: int, name: str, stream: BinaryIO, limit: int) -> str | None:
    """Store an uploaded zip in the incoming folder, expand it through the same path as single files,
    delete it. Returns why it was refused, or None."""
    try:
        temp, _, _ = storage.receive_stream(stream, limit)
    except storage.TooLarge as error:
        db_commit_with_retry(reject_file, batch_id, name, str(error))
        return str(error)
    try:
        ingest_zip(batch_id, temp, prefix=PurePosixPath(name).stem)
    except TooManyEntries as error:
        db_commit_with_retry(reject_file, batch_id, name, str(error))
        return str(error)
    except zipfile.BadZipFile:
        db_commit_with_retry(reject_file, batch_id, name, "not a readable zip file")
        return "not a readable zip file"
    finally:
        temp.unlink(missing_ok=True)
    return None


def present_files(batch_id: int, entries: list[dict]) -> list[dict] | None:
    """Which of these {name, sha256} entries the batch already holds, same name and same bytes;
    None if there is no such batch."""
    stored = stored_in_batch(batch_id)
    if stored is None:
        return None
    found = []
    for entry in entries:
        name, sha256 = str(entry.get("name", "")), str(entry.get("sha256", "")).lower()
        kept = stored.get(clean_or_none(name) or "")
        if sha256 and kept is not None and kept[0] == sha256:
            found.append({"name": name, "sha256": sha256, "photo_id": kept[1]})
    return found


def stored_in_batch(batch_id: int) -> dict[str, tuple[str, int]] | None:
    """name -> (content hash, photo id) for every kept file of the batch; None if there is no such batch."""
    if db.session.get(Batch, batch_id) is None:
        return None
    rows = db.session.execute(
        select(Photo.original_name, Photo.content_hash, Photo.id).where(
            Photo.batch_id == batch_id, Photo.role.is_distinct_from(PhotoRole.REJECTED)
        )
    )
    return {name: (content_hash, photo_id) for name, content_hash, photo_id in rows}
