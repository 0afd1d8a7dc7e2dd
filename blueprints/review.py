"""Review and rework: look at a batch, correct it, undo, re-run; a person's photos."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from blueprints.web import admin_required, staff_required
from data import storage
from data.database import db_retry
from data.extensions import db
from data.models import Batch, Photo
from services import corrections, overview, yearbook
from services.directory import person_for_code

bp = Blueprint("review", __name__)


def back_to_review(batch_id: int):
    return redirect(url_for("review.batch", batch_id=batch_id))


def back_to_person(code: str):
    return redirect(url_for("review.person", code=code))


@bp.errorhandler(corrections.ReviewError)
def refused(error: corrections.ReviewError):
    """A correction that cannot apply: nothing was changed (the unit rolled back); say why."""
    flash(str(error), "error")
    if "code" in request.view_args:
        return back_to_person(request.view_args["code"]), 303
    return back_to_review(request.view_args["batch_id"]), 303


@bp.get("/batches/<int:batch_id>/review")
@staff_required
@db_retry
def batch(batch_id: int):
    found = db.get_or_404(Batch, batch_id)
    return render_template(
        "review/batch.html",
        batch=found,
        view=corrections.review_view(batch_id),
        summary=overview.batch_rows(batch_id=batch_id)[0],
        kind_labels=corrections.KIND_LABELS,
        confirm_over=current_app.config["REVIEW_CONFIRM_OVER"],
    )


@bp.post("/batches/<int:batch_id>/review/correct")
@admin_required
@db_retry
def correct(batch_id: int):
    photo_ids = [int(v) for v in request.form.getlist("photo_id") if v.isdigit()]
    changed = corrections.correct(
        batch_id, photo_ids, request.form.get("kind", ""), request.form.get("code"), current_user.id
    )
    flash(f"{changed} photo(s) changed.")
    return back_to_review(batch_id), 303


@bp.post("/batches/<int:batch_id>/review/undo/<action_id>")
@admin_required
@db_retry
def undo(batch_id: int, action_id: str):
    return undone(batch_id, action_id)


def undone(batch_id: int, action_id: str | None):
    if action_id is None:
        raise corrections.ReviewError("Nothing to undo.")
    count = corrections.undo(batch_id, action_id, current_user.id)
    flash(f"Undone: the correction of {count} photo(s).")
    return back_to_review(batch_id), 303


@bp.post("/batches/<int:batch_id>/review/undo-last")
@admin_required
@db_retry
def undo_last(batch_id: int):
    return undone(batch_id, corrections.last_action(batch_id))


@bp.post("/batches/<int:batch_id>/review/link")
@admin_required
@db_retry
def link(batch_id: int):
    code = request.form.get("code", "").strip()
    corrections.link_code(code, request.form.get("person_code", ""), current_user.id)
    flash(f"Code {code} now means this person; its photos are grouped again.")
    return back_to_review(batch_id), 303


@bp.post("/batches/<int:batch_id>/rerun/<action>")
@admin_required
@db_retry
def rerun(batch_id: int, action: str):
    if action not in corrections.RERUNS:
        abort(404)
    db.get_or_404(Batch, batch_id)
    corrections.rerun(batch_id, action)
    flash(f"Batch {batch_id}: {action} started.")
    return back_to_review(batch_id), 303


@bp.post("/batches/<int:batch_id>/review/portrait")
@admin_required
@db_retry
def portrait_in_batch(batch_id: int):
    """The large view's "p": the photo shown becomes its person's yearbook portrait."""
    photo_id = request.form.get("photo_id", "")
    if not photo_id.isdigit():
        raise corrections.ReviewError("Open a photo, then press p to make it the portrait.")
    chosen = corrections.portrait_from_batch(batch_id, int(photo_id), current_user.id)
    flash(f"Yearbook portrait of {chosen.name} picked; pick another, or go back to the default, on their page.")
    return back_to_review(batch_id), 303


@bp.get("/person/<code>")
@staff_required
@db_retry
def person(code: str):
    found = person_for_code(code) or abort(404)
    portrait, candidates = yearbook.portrait_options(found)
    return render_template(
        "review/person.html",
        person=found,
        photos=corrections.person_photos(found),
        portrait=portrait,
        candidates=candidates,
    )


@bp.post("/person/<code>/portrait")
@admin_required
@db_retry
def portrait(code: str):
    """Pick the person's yearbook portrait; no photo id goes back to the default (the first after the card)."""
    found = person_for_code(code) or abort(404)
    photo_id = request.form.get("photo_id", "")
    corrections.choose_portrait(found, int(photo_id) if photo_id.isdigit() else None, current_user.id)
    flash("Yearbook portrait picked." if photo_id else "Yearbook portrait: back to the first photo after the card.")
    return back_to_person(found.code), 303


@bp.get("/photos/<int:photo_id>/thumb")
@staff_required
@db_retry
def thumb(photo_id: int):
    photo = db.get_or_404(Photo, photo_id)
    path = storage.thumbnail_path(photo.content_hash) if photo.content_hash else None
    if path is None or not path.exists():
        abort(404)
    return send_file(path, mimetype="image/jpeg", max_age=86400)


@bp.get("/photos/<int:photo_id>/full")
@staff_required
@db_retry
def photo(photo_id: int):
    """The stored photo itself, for the review page's large view."""
    found = db.get_or_404(Photo, photo_id)
    path = storage.original_path(found.content_hash, found.extension) if found.content_hash else None
    if path is None or not path.exists():
        abort(404)
    return send_file(path, max_age=86400)
