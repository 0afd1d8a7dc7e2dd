"""Admin pages: the settings of the photo day, the sign-up poster, and the system's health."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from blueprints.web import admin_required
from data.database import db_retry
from data.db_stats import data_layer_health
from engine.cards import link_svg
from services import signup

bp = Blueprint("admin", __name__)


@bp.get("/admin/settings")
@admin_required
@db_retry
def settings():
    return render_template(
        "admin/settings.html",
        is_open=signup.registration_is_open(),
        fields=signup.registration_fields(),
        max_fields=signup.MAX_EXTRA_FIELDS,
        signup_url=signup_url(),
    )


def signup_url() -> str:
    """The registration form's address as people outside reach it: INTAKE_PUBLIC_URL when set."""
    public = current_app.config["PUBLIC_URL"]
    return f"{public}{url_for('registration.register')}" if public else url_for("registration.register", _external=True)


@bp.get("/admin/poster")
@admin_required
@db_retry
def poster():
    address = signup_url()
    return render_template(
        "admin/poster.html", address=address, qr=Markup(link_svg(address)), is_open=signup.registration_is_open()
    )


@bp.get("/admin/system")
@admin_required
@db_retry
def system():
    return render_template("admin/system.html", health=data_layer_health())


@bp.post("/admin/settings/registration")
@admin_required
@db_retry
def set_registration():
    # An explicit state, not a toggle: a double-submitted form leaves it as the admin chose.
    is_open = request.form.get("open") == "1"
    signup.set_registration_open(is_open)
    flash("Registration is open." if is_open else "Registration is closed.")
    return redirect(url_for("admin.settings")), 303


@bp.post("/admin/settings/fields")
@admin_required
@db_retry
def set_fields():
    try:
        labels = signup.parse_field_labels(request.form.get("fields", ""))
    except ValueError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.settings")), 303
    signup.set_registration_fields(labels)
    flash(
        f"The registration form asks for: {', '.join(labels)}."
        if labels
        else "The registration form asks for no extra fields."
    )
    return redirect(url_for("admin.settings")), 303
