"""Upload pages: create a batch, then send a card's folder or a zip into it (the files go to /api)."""

import secrets

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from blueprints.web import admin_required, error_page, staff_required
from data import storage
from data.database import db_retry
from data.extensions import db
from data.models import Batch
from data.states import BatchSource, BatchStatus
from services import batches

bp = Blueprint("uploads", __name__)


@bp.get("/batches/new")
@staff_required
def new():
    # A one-time token in the form: sending it twice (a double click) gives the same batch.
    return render_template("uploads/new.html", form_token=secrets.token_urlsafe(24))


@bp.post("/batches")
@staff_required
@db_retry
def create():
    label = request.form.get("label", "").strip() or "Web upload"
    token = request.form.get("form_token", "").strip()[:64]
    if token:
        batch = batches.create_batch_once(token, label, current_user.id)
    else:
        batch = batches.create_batch(label, BatchSource.WEB, current_user.id)
    return redirect(url_for("uploads.upload", batch_id=batch.id), code=303)


@bp.post("/batches/<int:batch_id>/delete")
@admin_required
@db_retry
def delete(batch_id: int):
    """An admin removes an empty or abandoned batch (a double click's leftover, a card never finished)."""
    db.get_or_404(Batch, batch_id)
    if not batches.delete_batch(batch_id, current_user.id):
        return error_page(409, "Batch kept", "Only an empty or abandoned batch can be deleted.")
    return redirect(url_for("dashboard.index"), code=303)


@bp.get("/batches/<int:batch_id>/upload")
@staff_required
@db_retry
def upload(batch_id: int):
    batch = db.get_or_404(Batch, batch_id)
    return render_template(
        "uploads/upload.html",
        batch=batch,
        counts=batches.batch_counts(batch_id),
        accepting=batch.status == BatchStatus.UPLOADING,
        deletable=current_user.is_admin and batches.deletable(batch),
        extensions=sorted(storage.ALLOWED_EXTENSIONS | {".zip"}),
        max_bytes=current_app.config["MAX_UPLOAD_BYTES"],
        max_zip_bytes=current_app.config["MAX_ZIP_UPLOAD_BYTES"],
    )
