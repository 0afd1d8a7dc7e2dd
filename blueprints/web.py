"""What every blueprint shares: role guards, the one JSON error shape, ETag answers, request-body care."""

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from flask import Flask, Response, current_app, jsonify, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from zipstream import ZipStream

from data import storage
from data.database import DatabaseBusy
from data.extensions import login_manager


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def json_error(status: int, error: str, message: str, **extra):
    """The one error shape of the JSON API: a machine-readable `error` and a sentence for people."""
    return jsonify({"error": error, "message": message, **extra}), status


# What people read for the errors they meet most; others show werkzeug's name and description.
PAGE_ERRORS = {
    404: ("Page not found", "There is nothing at this address. The menu above leads everywhere."),
    500: ("Something went wrong", "The problem is logged. Try again; if it persists, tell an admin."),
}


def error_page(status: int, title: str, message: str):
    return render_template("error.html", status=status, title=title, message=message), status


def refuse(status: int, error: str, title: str, message: str):
    """An error answered as JSON to API clients and as a page to people."""
    if wants_json():
        discard_body()
        return json_error(status, error, message)
    return error_page(status, title, message)


@login_manager.unauthorized_handler
def unauthorized():
    """Pages send people to the login form; API clients get a 401 they can act on."""
    if wants_json():
        discard_body()
        return json_error(401, "login", "Your login has expired: log in again, then retry.")
    return redirect(url_for("auth.login_form", next=request.full_path.rstrip("?")))


def staff_required(view):
    """Any logged-in account; an anonymous page visit goes to the login form, an API call gets a 401."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return unauthorized()
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    @functools.wraps(view)
    @staff_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            return refuse(403, "forbidden", "Admins only", "This needs an admin account.")
        return view(*args, **kwargs)

    return wrapper


def fingerprint(data: dict) -> str:
    """An ETag for figures: the figures themselves, hashed."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def etagged(data: dict, render: Callable[[], object]):
    """Answer an unchanged poll with 304 and no rendering."""
    etag = fingerprint(data)
    response = make_response("", 304) if request.if_none_match.contains(etag) else make_response(render())
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


def zip_download(files: Iterable[tuple[Path | bytes, str]], filename: str) -> Response:
    """A zip of (path, name in the zip) streamed as it is sent: never built whole in memory or on disk.

    Stored, not deflated (JPEGs do not shrink), so its size is known up front and the browser shows real
    progress. A file is opened only when its turn comes. Small generated files (an index) may be given as
    bytes instead of a path."""
    archive = ZipStream(sized=True)
    for data, name in files:
        if isinstance(data, bytes):
            archive.add(data, name)
        else:
            archive.add_path(str(data), name)
    response = Response(archive, mimetype="application/zip")
    response.headers["Content-Length"] = str(len(archive))
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def give_up_on_silent_clients() -> None:
    """A client that stops sending mid-body (Wi-Fi gone without a goodbye) must not hold a server thread
    forever: gunicorn's threaded worker reads request bodies without a timeout."""
    client = request.environ.get("gunicorn.socket")
    if client is not None:
        client.settimeout(current_app.config["UPLOAD_IDLE_SECONDS"])


def discard_body() -> None:
    """Read and drop the body of a logged-in client's request we refuse, so that it sees the answer.

    Answering and closing while the client still sends makes it see a connection reset instead, which it
    retries (the server reads at most 64 KB of an unread body, then closes). A body over the photo limit is
    not read: that one is answered at once. Nor is an anonymous client's: reading a body for anyone who
    asks is what let slow clients hold every thread (an expired login mid-upload then sees the reset, and
    the page's next request gets the 401).
    """
    length = request.content_length
    if current_user.is_authenticated and length is not None and length <= current_app.config["MAX_UPLOAD_BYTES"]:
        give_up_on_silent_clients()
        while request.stream.read(storage.CHUNK):
            pass


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        """Every HTTP error, an unhandled exception's 500 included: the one JSON shape for API clients, the
        app's own page for people."""
        status = error.code or 500
        if wants_json():
            return json_error(status, (error.name or "error").lower().replace(" ", "-"), error.description or "")
        title, message = PAGE_ERRORS.get(status, (error.name, error.description))
        return error_page(status, title, message)

    @app.errorhandler(DatabaseBusy)
    def database_busy(error: DatabaseBusy):
        response = make_response(refuse(503, "busy", "Busy", str(error)))
        response.headers["Retry-After"] = "2"
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error):
        """Answered without reading the body: reading an oversized body is what the limit prevents."""
        limit = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
        message = f"The request is larger than this page takes ({limit // 1024} KB)."
        if wants_json():
            return json_error(413, "too-large", message)
        return error_page(413, "Too large", message)

    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):
        if wants_json():
            discard_body()
            return json_error(400, "csrf", f"{error.description} Reload the page; finished files are kept.")
        return error_page(400, "Form expired", error.description)
