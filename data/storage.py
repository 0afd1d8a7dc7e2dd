"""Where files live under the data directory. Originals are stored by content hash; no client
ever names a path on our disk."""

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from flask import current_app

CHUNK = 1024 * 1024
ALLOWED_EXTENSIONS = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".tif", ".tiff", ".webp"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_NAME = 1024


class UnsafeName(ValueError):
    pass


class TooLarge(ValueError):
    pass


class StorageFull(OSError):
    """The data disk is full: not the file's fault, so never recorded as a rejected photo."""


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


PRIVATE_UMASK = 0o077


def make_private(folder: Path) -> None:
    """The data directory holds password hashes, session records and minors' photos: only the app's own
    user may read it. Every file the process creates from now on (SQLite and its WAL, originals,
    thumbnails, exports, manifests) is 600 and every folder 700, and a data directory made by an older
    version is closed too."""
    os.umask(PRIVATE_UMASK)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)


def data_dir() -> Path:
    return Path(current_app.config["DATA_DIR"])


def incoming_dir() -> Path:
    path = data_dir() / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def original_path(content_hash: str, extension: str) -> Path:
    return data_dir() / "originals" / content_hash[:2] / f"{content_hash}{extension}"


def thumbnail_path(content_hash: str) -> Path:
    return data_dir() / "thumbs" / content_hash[:2] / f"{content_hash}.jpg"


def screen_copy_path(content_hash: str) -> Path:
    return data_dir() / "screen" / content_hash[:2] / f"{content_hash}.jpg"


def export_root() -> Path:
    return data_dir() / "export"


def clean_relative_name(name: str) -> str:
    """The name a file was uploaded under, as a safe relative path for reports and exports.

    Refuses what would climb out of a folder (`..`, absolute paths); drops control characters.
    """
    name = _CONTROL.sub("", name.replace("\\", "/")).strip()
    if not name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeName(f"unsafe file name {name!r}: absolute or empty")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeName(f"unsafe file name {name!r}: contains '..'")
    if not parts:
        raise UnsafeName(f"unsafe file name {name!r}")
    cleaned = "/".join(parts)
    if len(cleaned) > MAX_NAME:
        raise UnsafeName(f"file name longer than {MAX_NAME} characters")
    return cleaned


def display_name(name: str) -> str:
    """A refused name, shown as given but without control characters; never used as a path."""
    return _CONTROL.sub("", name)[:MAX_NAME] or "(no name)"


def extension_of(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if suffix in ALLOWED_EXTENSIONS else ".bin"


def receive_stream(chunks: Iterable[bytes] | BinaryIO, max_bytes: int) -> tuple[Path, str, int]:
    """Stream to a temporary file on the data disk, hashing as it goes; memory stays flat.

    Returns (temp path, sha256, size). Removes the partial file on any error (size limit, disk full).
    """
    if hasattr(chunks, "read"):
        stream = chunks
        chunks = iter(lambda: stream.read(CHUNK), b"")
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=incoming_dir(), suffix=".part")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"file is larger than the limit of {max_bytes // (1024 * 1024)} MB")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        temp.unlink(missing_ok=True)
        if error.errno in DISK_FULL:
            raise StorageFull(error.errno, "the data disk is full: free space, then resume") from error
        raise
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp, digest.hexdigest(), size


def keep_original(temp: Path, content_hash: str, extension: str) -> Path:
    """Move a received file into place by its hash; the same bytes are kept once."""
    final = original_path(content_hash, extension)
    if final.exists():
        temp.unlink(missing_ok=True)
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        temp.unlink(missing_ok=True)
        if error.errno in DISK_FULL:
            raise StorageFull(error.errno, "the data disk is full: free space, then resume") from error
        raise
    os.replace(temp, final)
    return final


def sweep_incoming(older_than_seconds: float = 3600) -> int:
    """Remove partial uploads a crash left behind; a live upload keeps touching its file."""
    cutoff = time.time() - older_than_seconds
    removed = 0
    for part in incoming_dir().glob("*.part"):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
    return removed
