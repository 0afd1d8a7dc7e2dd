"""People pages: the list, who has no photos yet, badge sheets, roster import; edit, merge, delete."""

import base64
import binascii

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints.web import admin_required, staff_required
from data.database import db_retry, run_in_transaction
from engine.cards import card_svg
from services import directory, person_records, roster

bp = Blueprint("people", __name__)

PREVIEW_ROWS = 500
PAPERS = ("a4", "letter")
IMPORT_POSTS = {"people.import_preview", "people.import_confirm"}


def roster_max_bytes() -> int:
    return current_app.config["ROSTER_MAX_BYTES"]


def roster_max_mb() -> str:
    return f"{roster_max_bytes() / 1024**2:g}"


@bp.url_value_preprocessor
def size_import_requests(endpoint: str | None, _values) -> None:
    """Body limits for the import posts. Set here because this runs before CSRFProtect's before_request
    reads the form: an oversized file is refused before it is spooled, and the confirm's one big field
    (the file, base64: 4/3 of its size) passes Werkzeug's 500 kB default for form fields."""
    if endpoint in IMPORT_POSTS:
        limit = roster_max_bytes() * 4 // 3 + 64 * 1024
        request.max_content_length = limit
        request.max_form_memory_size = limit


def import_error(message: str, status: int):
    return render_template("people/import.html", error=message, max_mb=roster_max_mb()), status


def too_large():
    return import_error(
        f"The file is larger than {roster_max_mb()} MB: split it into "
        "several files and import them one after the other.",
        413,
    )


@bp.errorhandler(RequestEntityTooLarge)
def request_too_large(_error):
    return too_large()


def selected_group() -> str:
    return request.args.get("group", "").strip()


@bp.get("/people")
@staff_required
@db_retry
def index():
    search = request.args.get("q", "").strip()
    page = directory.search_people(search, selected_group(), request.args.get("page", 1, type=int))
    twins = person_records.likely_duplicates()
    return render_template(
        "people/index.html",
        page=page,
        search=search,
        group=selected_group(),
        groups=directory.group_names(),
        duplicates={p.id for pair in twins for p in pair[:2]},
        pairs=len(twins),
    )


@bp.get("/people/missing")
@staff_required
@db_retry
def missing():
    return render_template(
        "people/missing.html",
        people=directory.missing_people(selected_group()),
        group=selected_group(),
        groups=directory.group_names(),
    )


def qr_markup(code: str) -> Markup:
    return Markup(card_svg(code))


@bp.get("/people/badges")
@staff_required
@db_retry
def badges():
    paper = request.args.get("paper", PAPERS[0])
    return render_template(
        "people/badges.html",
        sheets=directory.badge_sheets(directory.people_in(selected_group())),
        group=selected_group(),
        groups=directory.group_names(),
        paper=paper if paper in PAPERS else PAPERS[0],
        papers=PAPERS,
        qr=qr_markup,
    )


def checked_roster(data: bytes):
    """(rows, None) or (None, the refusal): the same checks for a preview and for its confirmation."""
    if len(data) > roster_max_bytes():
        return None, too_large()
    try:
        return roster.parse_roster(data), None
    except roster.RosterError as error:
        return None, import_error(f"This file cannot be imported: {error}.", 400)


@bp.get("/people/import")
@admin_required
def import_form():
    return render_template("people/import.html", error=None, max_mb=roster_max_mb())


@bp.post("/people/import")
@admin_required
def import_preview():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return import_error("Choose a CSV file to import.", 400)
    data = upload.stream.read(roster_max_bytes() + 1)
    result, refusal = checked_roster(data)
    if refusal:
        return refusal
    # Only reads: a deferred read, though the request is a POST (which @db_retry runs as a writer).
    known = run_in_transaction(roster.existing_codes, read_only=True)
    return render_template(
        "people/import_preview.html",
        filename=upload.filename,
        result=result,
        known=known,
        shown=PREVIEW_ROWS,
        payload=base64.urlsafe_b64encode(data).decode("ascii"),
    )


@bp.post("/people/import/confirm")
@admin_required
@db_retry
def import_confirm():
    # The posted file is as untrusted as a fresh upload: decoded, size-checked and parsed again.
    try:
        data = base64.urlsafe_b64decode(request.form.get("payload", ""))
    except (binascii.Error, ValueError):
        return import_error("The confirmation did not carry a readable file: upload it again.", 400)
    result, refusal = checked_roster(data)
    if refusal:
        return refusal
    created, updated = roster.import_roster_rows(result.rows)
    flash(f"Roster imported: {created} created, {updated} updated, {len(result.errors)} rows with errors left out.")
    return redirect(url_for("people.index")), 303


@bp.errorhandler(person_records.PersonError)
def refused(error: person_records.PersonError):
    """A change that cannot apply: nothing changed (the unit rolled back); say why, on the person's page."""
    flash(str(error), "error")
    return redirect(url_for("review.person", code=request.view_args["code"])), 303


def person_or_404(code: str):
    return directory.person_for_code(code) or abort(404)


@bp.get("/people/duplicates")
@staff_required
@db_retry
def duplicates():
    return render_template("people/duplicates.html", pairs=person_records.likely_duplicates())


@bp.get("/people/<code>/edit")
@admin_required
@db_retry
def edit_form(code: str):
    return render_template("people/edit.html", person=person_or_404(code))


@bp.post("/people/<code>/edit")
@admin_required
@db_retry
def edit(code: str):
    person = person_or_404(code)
    form = request.form
    person_records.edit_person(
        person, form.get("name", ""), form.get("email", ""), form.get("group", ""), current_user.id
    )
    flash(f"{person.name} saved.")
    return redirect(url_for("review.person", code=person.code)), 303


@bp.post("/people/<code>/merge")
@admin_required
@db_retry
def merge(code: str):
    merged = person_or_404(code)
    name = merged.name
    kept = person_records.merge_people(merged, request.form.get("into", ""), current_user.id)
    flash(f"{name} ({code}) is merged into {kept.name}: photos, codes and cards now lead to {kept.code}.")
    return redirect(url_for("review.person", code=kept.code)), 303


@bp.post("/people/<code>/delete")
@admin_required
@db_retry
def delete(code: str):
    person = person_or_404(code)
    name = person.name
    person_records.delete_person(person, current_user.id)
    flash(f"{name} ({code}) is deleted; photos with that code wait in review.")
    return redirect(url_for("people.index")), 303
