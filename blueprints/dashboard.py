"""The admin's live view of the photo day: a page, and a fragment it polls."""

from collections.abc import Callable

from flask import Blueprint, make_response, render_template, request
from flask_login import login_required

import dashboard
from database import db_retry

bp = Blueprint("dashboard", __name__)


def etagged(data: dict, render: Callable[[], object]):
    """Answer an unchanged poll with 304 and no rendering; the figures themselves are the ETag."""
    etag = dashboard.fingerprint(data)
    response = make_response("", 304) if request.if_none_match.contains(etag) else make_response(render())
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
@login_required
@db_retry
def index():
    return render_template("dashboard/index.html", data=dashboard.summary())


@bp.get("/dashboard/live")
@login_required
@db_retry
def live():
    data = dashboard.summary()
    return etagged(data, lambda: render_template("dashboard/_live.html", data=data))
