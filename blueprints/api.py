"""JSON endpoints for the dashboard's data (documented in the README)."""

from flask import Blueprint, jsonify
from flask_login import login_required

import dashboard
from blueprints.dashboard import etagged
from database import db_retry
from health import data_layer_health

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/health")
@db_retry
def health():
    """Liveness for load balancers: answers while the database answers."""
    return jsonify({"ok": True})


@bp.get("/dashboard")
@login_required
@db_retry
def summary():
    data = dashboard.summary()
    return etagged(data, lambda: jsonify(data))


@bp.get("/data-layer")
@login_required
@db_retry
def data_layer():
    return jsonify(data_layer_health())
