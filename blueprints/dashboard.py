"""The staff's live view of the photo day: a page, the fragment it polls, and every batch."""

from flask import Blueprint, abort, render_template, request

from blueprints.web import etagged, staff_required
from data.database import db_retry
from services import delivery_status, overview

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


@bp.get("/delivery")
@staff_required
@db_retry
def delivery():
    show = request.args.get("show", "all")
    if show not in delivery_status.FILTERS:
        abort(404)
    page = delivery_status.delivery_rows(show, request.args.get("page", 1, type=int))
    return render_template(
        "dashboard/delivery.html",
        page=page,
        show=show,
        filters=delivery_status.FILTERS,
        counts=delivery_status.counts(),
        drive_on=delivery_status.drive_on(),
    )
