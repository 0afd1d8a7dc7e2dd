"""The JSON API, every /api route (documented in the README). Errors are {"error", "message"}.

Uploads: the page (static/upload.js) fingerprints each file with SHA-256, asks `present` which (name, hash)
pairs the batch already holds, and sends only the others, one file per request as the raw body, several at
a time, retrying when the network drops.
"""

from urllib.parse import unquote

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from blueprints.web import discard_body, etagged, json_error, staff_required
from data import storage
from data.database import db_commit_with_retry, db_retry, run_in_transaction
from data.db_stats import data_layer_health
from data.models import Photo
from data.states import BatchStatus, InvalidTransition, PhotoRole
from services import batches, directory, overview, receiving

bp = Blueprint("api", __name__, url_prefix="/api")

NAME_HEADER = "X-File-Name"
# One `present` request covers at most this many files; the page asks in slices.
MAX_PRESENT_ENTRIES = 5000


@bp.get("/health")
@db_retry
def health():
    """Liveness for load balancers: answers while the database answers."""
    return jsonify({"ok": True})


@bp.get("/dashboard")
@staff_required
@db_retry
def dashboard():
    data = overview.summary()
    return etagged(data, lambda: jsonify(data))


@bp.get("/data-layer")
@staff_required
@db_retry
def data_layer():
    return jsonify(data_layer_health())


@bp.get("/people")
@staff_required
@db_retry
def people():
    found = directory.suggestions(request.args.get("q", ""))
    return jsonify([{"code": p.code, "name": p.name, "group": p.group_name} for p in found])


@bp.errorhandler(storage.StorageFull)
def disk_full(error: storage.StorageFull):
    """Not the file's fault: the page keeps it and tries again later; the dashboard shows the batch's error."""
    batch_id = (request.view_args or {}).get("batch_id")
    if batch_id is not None:
        db_commit_with_retry(batches.note_batch_problem, batch_id, error.strerror)
    return json_error(507, "disk-full", error.strerror)


def no_batch(batch_id: int):
    return json_error(404, "no-batch", f"There is no batch {batch_id}.")


@bp.post("/batches/<int:batch_id>/present")
@staff_required
def present(batch_id: int):
    """Which of these files the batch already holds (same name, same bytes): the page skips them."""
    entries = request.get_json(silent=True)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return json_error(400, "bad-request", "Expected a JSON list of {name, sha256, size}.")
    if len(entries) > MAX_PRESENT_ENTRIES:
        return json_error(413, "too-many", f"Ask about at most {MAX_PRESENT_ENTRIES} files at a time.")
    # A POST only because the list is long; it reads, so it need not queue for the write lock.
    found = run_in_transaction(receiving.present_files, batch_id, entries, read_only=True)
    return no_batch(batch_id) if found is None else jsonify({"present": found})


def not_yours(batch_id: int):
    return json_error(
        403, "not-yours", f"Batch {batch_id} has been processed: only its owner or an admin may change it."
    )


def changeable(batch_id: int):
    """(the batch's status, None) when it exists and this user may change it, else (None, the refusal)."""
    access = batches.batch_access(batch_id, current_user)
    if access is None:
        return None, no_batch(batch_id)
    status, allowed = access
    return (status, None) if allowed else (None, not_yours(batch_id))


def closed_batch(batch_id: int):
    """An error response unless the batch exists, takes files and this user may change it."""
    status, refusal = run_in_transaction(changeable, batch_id, read_only=True)
    if refusal is None and status != BatchStatus.UPLOADING:
        return json_error(409, "batch-closed", f"Batch {batch_id} is {status}; reopen it to add files.")
    return refusal


@bp.route("/batches/<int:batch_id>/files", methods=["PUT", "POST"])
@staff_required
def receive(batch_id: int):
    """One file as the raw request body, its relative path URL-encoded in X-File-Name; a .zip is expanded.

    Not one retried unit: the body can be read only once. The file is streamed to disk, then recorded
    through its own retried units. (The idle timeout on the body is set for every request with a body, by
    blueprints.hardening, before this runs.)
    """
    name = unquote(request.headers.get(NAME_HEADER, "")).strip()
    if not name:
        discard_body()
        return json_error(400, "no-name", f"The {NAME_HEADER} header (the file's relative path) is missing.")
    if problem := closed_batch(batch_id):
        discard_body()
        return problem
    is_zip = name.lower().endswith(".zip")
    limit = current_app.config["MAX_ZIP_UPLOAD_BYTES" if is_zip else "MAX_UPLOAD_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        # Refused from the header alone: the body is never read, so memory and disk stay flat.
        reason = f"file is larger than the limit of {limit // 1024**2} MB"
        db_commit_with_retry(receiving.reject_file, batch_id, name, reason)
        return json_error(413, "too-large", reason, name=name)
    if is_zip:
        refusal = receiving.receive_zip(batch_id, name, request.stream, limit)
        if refusal:
            return json_error(422, "refused", refusal, name=name)
        counts = run_in_transaction(batches.batch_counts, batch_id, read_only=True)
        return jsonify({"name": name, "zip": True, **counts}), 201
    kept_before = run_in_transaction(receiving.kept_photo, batch_id, name, read_only=True)
    photo = receiving.receive_file(batch_id, name, request.stream, current_user.id)
    discard_body()  # what an unsafe name left unread
    return run_in_transaction(photo_response, photo, kept_before, read_only=True)


def photo_response(photo: Photo, kept_before: tuple[str, int] | None):
    """The file's fate, with the batch's counts after it, so every counter on the page stays right."""
    counts = batches.batch_counts(photo.batch_id)
    if photo.role == PhotoRole.REJECTED:
        return json_error(422, "refused", photo.error_reason, name=photo.original_name, **counts)
    already_present = kept_before == (photo.content_hash, photo.id)
    body = {
        "photo_id": photo.id,
        "name": photo.original_name,
        "sha256": photo.content_hash,
        "already_present": already_present,
        "duplicate": receiving.has_copy(photo),
        **counts,
    }
    return jsonify(body), 200 if already_present else 201


@bp.post("/batches/<int:batch_id>/complete")
@staff_required
@db_retry
def complete(batch_id: int):
    """Hand the batch to the processor. Idempotent: a batch already queued or further along stays as it is."""
    status, refusal = changeable(batch_id)
    if refusal:
        return refusal
    counts = batches.batch_counts(batch_id)
    if status == BatchStatus.UPLOADING:
        if counts["stored"] == 0:
            return json_error(409, "empty", "No photo has been uploaded to this batch yet.")
        status = batches.queue_batch(batch_id).status
    return jsonify({"batch": batch_id, "status": str(status), **counts})


@bp.post("/batches/<int:batch_id>/reopen")
@staff_required
@db_retry
def reopen(batch_id: int):
    """Take more files into a batch (a resumed or extended upload); it is queued again on complete."""
    if refusal := changeable(batch_id)[1]:
        return refusal
    try:
        batch = batches.reopen_batch(batch_id, current_user.id)
    except InvalidTransition:
        return json_error(409, "busy", "The batch is being processed; reopen it once it is done.")
    return jsonify({"batch": batch_id, "status": str(batch.status)})
