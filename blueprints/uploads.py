"""Upload pages: create a batch, then send a card's folder or a zip into it (the files go to /api)."""

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from blueprints.web import staff_required
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
    return render_template("uploads/new.html")


@bp.post("/batches")
@staff_required
@db_retry
def create():
    label = request.form.get("label", "").strip() or "Web upload"
    batch = batches.create_batch(label, BatchSource.WEB, current_user.id)
    return redirect(url_for("uploads.upload", batch_id=batch.id), code=303)


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
        extensions=sorted(storage.ALLOWED_EXTENSIONS | {".zip"}),
        max_bytes=current_app.config["MAX_UPLOAD_BYTES"],
        max_zip_bytes=current_app.config["MAX_ZIP_UPLOAD_BYTES"],
    )
