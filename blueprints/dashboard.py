"""The admin's live view of the photo day."""
from flask import Blueprint, render_template
from flask_login import login_required

from database import db_retry
from health import data_layer_health

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@login_required
@db_retry
def index():
    return render_template("dashboard/index.html", health=data_layer_health())
