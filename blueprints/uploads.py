"""Batch upload from the browser: one file per request as the raw body, resumable by content hash.

The page (static/upload.js) fingerprints each file with SHA-256, asks `present` which (name, hash) pairs the
batch already holds, and sends only the others, several at a time, retrying when the network drops.
"""

import functools
import zipfile
from pathlib import PurePosixPath
from urllib.parse import unquote

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError
from sqlalchemy import func, select

import batches
import storage
from database import db_commit_with_retry, db_retry, run_in_transaction
from extensions import db
from models import Batch, Photo
from states import BatchStatus, InvalidTransition, PhotoRole

bp = Blueprint("uploads", __name__)

NAME_HEADER = "X-File-Name"
# A whole card zipped: 700 photos of 12 MB is 8.4 GB. MAX_ZIP_UPLOAD_BYTES in the config overrides it.
DEFAULT_MAX_ZIP_BYTES = 16 * 1024**3
# One `present` request covers at most this many files; the page asks in slices.
MAX_PRESENT_ENTRIES = 5000
# A minute without one byte of the body: the client is gone. UPLOAD_IDLE_SECONDS in the config overrides it.
DEFAULT_UPLOAD_IDLE_SECONDS = 60


def json_error(status: int, error: str, message: str, **extra):
    return jsonify({"error": error, "message": message, **extra}), status


def give_up_on_silent_clients() -> None:
    """A client that stops sending mid-file (Wi-Fi gone without a goodbye) must not hold a server thread
    forever: gunicorn's threaded worker reads request bodies without a timeout."""
    client = request.environ.get("gunicorn.socket")
    if client is not None:
        client.settimeout(current_app.config.get("UPLOAD_IDLE_SECONDS", DEFAULT_UPLOAD_IDLE_SECONDS))


def discard_body() -> None:
    """Read and drop the body of a request we refuse, so that the browser sees the answer.

    Answering and closing while the client still sends makes it see a connection reset instead, which it
    retries (gunicorn reads at most 64 KB of an unread body, then closes). A body over the photo limit is
    not read: that one is answered at once.
    """
    length = request.content_length
    if length is not None and length <= current_app.config["MAX_UPLOAD_BYTES"]:
        give_up_on_silent_clients()
        while request.stream.read(storage.CHUNK):
            pass


def api_login_required(view):
    """Like login_required, but a script gets a 401 it can act on instead of a redirect to an HTML page."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            discard_body()
            return json_error(401, "login", "Your login has expired: log in again, then retry.")
        return view(*args, **kwargs)

    return wrapper


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    if request.path.startswith("/api/"):
        discard_body()
        return json_error(400, "csrf", f"{error.description} Reload the page; finished files are kept.")
    return render_template("error.html", title="Form expired", message=error.description), 400


@bp.errorhandler(storage.StorageFull)
def disk_full(error: storage.StorageFull):
    """Not the file's fault: the page keeps it and tries again later; the dashboard shows the batch's error."""
    batch_id = (request.view_args or {}).get("batch_id")
    if batch_id is not None:
        db_commit_with_retry(batches.note_batch_problem, batch_id, error.strerror)
    return json_error(507, "disk-full", error.strerror)


def max_zip_bytes() -> int:
    return current_app.config.get("MAX_ZIP_UPLOAD_BYTES", DEFAULT_MAX_ZIP_BYTES)


def megabytes(size: int) -> int:
    return size // (1024 * 1024)


def batch_counts(batch_id: int) -> dict:
    rows = db.session.execute(
        select(Photo.role, func.count()).where(Photo.batch_id == batch_id).group_by(Photo.role)
    ).all()
    by_role = {role: count for role, count in rows}
    rejected = by_role.get(PhotoRole.REJECTED, 0)
    return {"stored": sum(by_role.values()) - rejected, "rejected": rejected}


@bp.get("/batches/new")
@login_required
def new():
    return render_template("uploads/new.html")


@bp.post("/batches")
@login_required
@db_retry
def create():
    batch = batches.create_batch(request.form.get("label", "").strip() or "Web upload", "web", current_user.id)
    return redirect(url_for("uploads.upload", batch_id=batch.id), code=303)


@bp.get("/batches/<int:batch_id>/upload")
@login_required
@db_retry
def upload(batch_id: int):
    batch = db.get_or_404(Batch, batch_id)
    extensions = sorted(storage.ALLOWED_EXTENSIONS | {".zip"})
    return render_template(
        "uploads/upload.html",
        batch=batch,
        counts=batch_counts(batch_id),
        accepting=batch.status == BatchStatus.UPLOADING,
        extensions=extensions,
        max_bytes=current_app.config["MAX_UPLOAD_BYTES"],
        max_zip_bytes=max_zip_bytes(),
    )


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


def clean_or_none(name: str) -> str | None:
    try:
        return storage.clean_relative_name(name)
    except storage.UnsafeName:
        return None


@bp.post("/api/batches/<int:batch_id>/present")
@api_login_required
def present(batch_id: int):
    """Which of these files the batch already holds (same name, same bytes): the page skips them."""
    entries = request.get_json(silent=True)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return json_error(400, "bad-request", "Expected a JSON list of {name, sha256, size}.")
    if len(entries) > MAX_PRESENT_ENTRIES:
        return json_error(413, "too-many", f"Ask about at most {MAX_PRESENT_ENTRIES} files at a time.")
    # A POST only because the list is long; it reads, so it need not queue for the write lock.
    stored = run_in_transaction(stored_in_batch, batch_id, read_only=True)
    if stored is None:
        return json_error(404, "no-batch", f"There is no batch {batch_id}.")
    found = []
    for entry in entries:
        name, sha256 = str(entry.get("name", "")), str(entry.get("sha256", "")).lower()
        kept = stored.get(clean_or_none(name) or "")
        if sha256 and kept is not None and kept[0] == sha256:
            found.append({"name": name, "sha256": sha256, "photo_id": kept[1]})
    return jsonify({"present": found})


def open_batch_problem(batch_id: int):
    """An error response unless the batch exists and takes files."""
    status = run_in_transaction(
        lambda: db.session.scalar(select(Batch.status).where(Batch.id == batch_id)), read_only=True
    )
    if status is None:
        return json_error(404, "no-batch", f"There is no batch {batch_id}.")
    if status != BatchStatus.UPLOADING:
        return json_error(409, "batch-closed", f"Batch {batch_id} is {status}; reopen it to add files.")
    return None


@bp.route("/api/batches/<int:batch_id>/files", methods=["PUT", "POST"])
@api_login_required
def receive(batch_id: int):
    """One file as the raw request body, its relative path URL-encoded in X-File-Name; a .zip is expanded.

    Not one retried unit: the body can be read only once. receive_file streams it to disk, then commits
    through its own retried units.
    """
    give_up_on_silent_clients()
    name = unquote(request.headers.get(NAME_HEADER, "")).strip()
    if not name:
        discard_body()
        return json_error(400, "no-name", f"The {NAME_HEADER} header (the file's relative path) is missing.")
    if problem := open_batch_problem(batch_id):
        discard_body()
        return problem
    is_zip = name.lower().endswith(".zip")
    limit = max_zip_bytes() if is_zip else current_app.config["MAX_UPLOAD_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        # Refused from the header alone: the body is never read, so memory and disk stay flat.
        reason = f"file is larger than the limit of {megabytes(limit)} MB"
        db_commit_with_retry(batches.reject_file, batch_id, name, reason)
        return json_error(413, "too-large", reason, name=name)
    if is_zip:
        return receive_zip(batch_id, name, limit)
    kept_before = run_in_transaction(kept_photo, batch_id, name, read_only=True)
    photo = batches.receive_file(batch_id, name, request.stream)
    discard_body()  # what an unsafe name left unread
    return run_in_transaction(photo_response, photo, kept_before, read_only=True)


def kept_photo(batch_id: int, name: str) -> tuple[str, int] | None:
    """(content hash, id) of the file the batch keeps under this name, if any."""
    row = db.session.execute(
        select(Photo.content_hash, Photo.id).where(
            Photo.batch_id == batch_id, Photo.original_name == clean_or_none(name)
        )
    ).first()
    return tuple(row) if row else None


def photo_response(photo: Photo, kept_before: tuple[str, int] | None):
    if photo.role == PhotoRole.REJECTED:
        return json_error(422, "refused", photo.error_reason, name=photo.original_name)
    already_present = kept_before == (photo.content_hash, photo.id)
    body = {
        "photo_id": photo.id,
        "name": photo.original_name,
        "sha256": photo.content_hash,
        "already_present": already_present,
        "duplicate": photo.role == PhotoRole.DUPLICATE,
    }
    return jsonify(body), 200 if already_present else 201


def receive_zip(batch_id: int, name: str, limit: int):
    """Store the zip in the incoming folder, expand it through the same path as single files, delete it."""
    try:
        temp, _, _ = storage.receive_stream(request.stream, limit)
    except storage.TooLarge as error:
        db_commit_with_retry(batches.reject_file, batch_id, name, str(error))
        return json_error(422, "refused", str(error), name=name)
    try:
        batches.ingest_zip(batch_id, temp, prefix=PurePosixPath(name).stem)
    except zipfile.BadZipFile:
        db_commit_with_retry(batches.reject_file, batch_id, name, "not a readable zip file")
        return json_error(422, "refused", "not a readable zip file", name=name)
    finally:
        temp.unlink(missing_ok=True)
    counts = run_in_transaction(batch_counts, batch_id, read_only=True)
    return jsonify({"name": name, "zip": True, **counts}), 201


@bp.post("/api/batches/<int:batch_id>/complete")
@api_login_required
@db_retry
def complete(batch_id: int):
    """Hand the batch to the processor. Idempotent: a batch already queued or further along stays as it is."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        return json_error(404, "no-batch", f"There is no batch {batch_id}.")
    counts = batch_counts(batch_id)
    if batch.status == BatchStatus.UPLOADING:
        if counts["stored"] == 0:
            return json_error(409, "empty", "No photo has been uploaded to this batch yet.")
        batches.queue_batch(batch_id)
    return jsonify({"batch": batch_id, "status": str(batch.status), **counts})


@bp.post("/api/batches/<int:batch_id>/reopen")
@api_login_required
@db_retry
def reopen(batch_id: int):
    """Take more files into a batch (a resumed or extended upload); it is queued again on complete."""
    if db.session.get(Batch, batch_id) is None:
        return json_error(404, "no-batch", f"There is no batch {batch_id}.")
    try:
        batch = batches.reopen_batch(batch_id)
    except InvalidTransition:
        return json_error(409, "busy", "The batch is being processed; reopen it once it is done.")
    return jsonify({"batch": batch_id, "status": str(batch.status)})
