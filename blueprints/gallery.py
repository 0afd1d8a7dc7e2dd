"""A family's (or one person's) private gallery, opened by the link in their e-mail: no login, no codes in
the address. Any token that opens nothing (unknown, revoked, expired) gets the app's one 404 page."""

from flask import Blueprint, Response, current_app, render_template, request, send_file
from werkzeug.exceptions import NotFound

from blueprints.web import error_page, zip_download
from data.database import db_retry
from services import galleries, rate_limits
from services.gallery_links import URL_PREFIX

bp = Blueprint("gallery", __name__, url_prefix=URL_PREFIX)

# Thumbnails and originals stay in this browser's cache for a short while only: a link can be revoked.
PICTURE_MAX_AGE = 3600


@bp.errorhandler(rate_limits.RateLimited)
def limited(error: rate_limits.RateLimited):
    response = Response(*error_page(429, "Too many requests", str(error)))
    response.headers["Retry-After"] = str(int(galleries.RATE_WINDOW.total_seconds()))
    return response


@bp.after_request
def not_for_search_engines(response: Response) -> Response:
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def client() -> str:
    return request.remote_addr or ""


def not_found():
    """The app's one 404 answer, returned rather than raised: the unit of work then commits the miss's
    count towards the address's limit (a raised error rolls it back)."""
    return current_app.handle_http_exception(NotFound())


@bp.get("/<token>")
@db_retry
def index(token: str):
    found = galleries.open_gallery(token, client())
    if found is None:
        return not_found()
    return render_template("gallery/index.html", gallery=found, token=token)


@bp.get("/<token>/<int:photo_id>")
@db_retry
def photo_page(token: str, photo_id: int):
    found = galleries.open_gallery(token, client())
    place = found.locate(photo_id) if found is not None else None
    if place is None:
        return not_found()
    return render_template("gallery/photo.html", gallery=found, token=token, place=place)


def jpeg_picture(token: str, photo_id: int, kind: galleries.Picture):
    path = galleries.picture(token, client(), photo_id, kind)
    if path is None:
        return not_found()
    return send_file(path, mimetype="image/jpeg", max_age=PICTURE_MAX_AGE)


@bp.get("/<token>/<int:photo_id>/thumb")
@db_retry
def thumb(token: str, photo_id: int):
    return jpeg_picture(token, photo_id, galleries.Picture.THUMBNAIL)


@bp.get("/<token>/<int:photo_id>/large")
@db_retry
def large(token: str, photo_id: int):
    """The large view's screen-size copy: an original can be 12 MB, or HEIC that a browser cannot show."""
    return jpeg_picture(token, photo_id, galleries.Picture.SCREEN)


@bp.get("/<token>/<int:photo_id>/full")
@db_retry
def full(token: str, photo_id: int):
    """The original at full resolution, streamed from disk: opened from the large view, or (?download=1)
    saved under its name and counted as a download."""
    if request.args.get("download") == "1":
        found = galleries.download_original(token, client(), photo_id)
        if found is None:
            return not_found()
        return send_file(found.original, as_attachment=True, download_name=found.name, max_age=PICTURE_MAX_AGE)
    path = galleries.picture(token, client(), photo_id, galleries.Picture.ORIGINAL)
    if path is None:
        return not_found()
    return send_file(path, max_age=PICTURE_MAX_AGE)


@bp.get("/<token>/photos.zip")
@db_retry
def download_all(token: str):
    entries = galleries.zip_entries(token, client())
    if entries is None:
        return not_found()
    return zip_download(entries, "photos.zip")
