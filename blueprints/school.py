"""For the school: the admins' yearbook page, each class's photos and the yearbook package as zips."""

from flask import Blueprint, abort, render_template, request

from blueprints.web import admin_required, zip_download
from data.database import db_retry
from services import yearbook

bp = Blueprint("school", __name__)


@bp.get("/admin/yearbook")
@admin_required
@db_retry
def index():
    return render_template("school/index.html", groups=yearbook.group_summaries(), no_group=yearbook.NO_GROUP)


def requested_group() -> str:
    """The ?group= of a class download ("" is the people without a group); an unknown group is a 404."""
    group = request.args.get("group")
    if group is None or not yearbook.people_in(group):
        abort(404)
    return group


@bp.get("/admin/yearbook/class.zip")
@admin_required
@db_retry
def class_zip():
    """One class: a folder per person with the photos delivered to them."""
    group = requested_group()
    return zip_download(yearbook.class_files(group), yearbook.download_name("class", group))


@bp.get("/admin/yearbook/yearbook.zip")
@admin_required
@db_retry
def yearbook_zip():
    """INDEX.TXT and one portrait per person: the whole school, or one class with ?group=."""
    group = requested_group() if "group" in request.args else None
    return zip_download(yearbook.yearbook_files(group), yearbook.download_name("yearbook", group))
