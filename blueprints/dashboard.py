"""The staff's live view of the photo day: a page, the fragment it polls, and every batch."""

from flask import Blueprint, render_template

from blueprints.web import etagged, staff_required
from data.database import db_retry
from services import overview

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@staff_required
@db_retry
def index():
    return render_template("dashboard/index.html", data=overview.summary())


@bp.get("/dashboard/live")
@staff_required
@db_retry
def live():
    data = overview.shared_summary()
    return etagged(data, lambda: render_template("dashboard/_live.html", data=data))


@bp.get("/batches")
@staff_required
@db_retry
def batches():
    return render_template("dashboard/batches.html", batches=overview.batch_rows(limit=None))
