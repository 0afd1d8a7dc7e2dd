"""Admin pages: the settings of the photo day, the sign-up poster, the staff accounts, gallery links, the system's
health."""

import functools

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from blueprints.web import admin_required
from data.database import db_retry
from data.db_stats import data_layer_health
from data.states import UserRole
from engine.cards import link_svg
from services import accounts, families, gallery_links, outbox, signup

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
        shared_device=signup.shared_device_mode(),
        email_sending=outbox.sending_on(),
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


# Each on/off setting: what turns it on or off, and what the admin is told after.
SWITCHES = {
    "registration": (signup.set_registration_open, "Registration is open.", "Registration is closed."),
    "shared-device": (
        signup.set_shared_device_mode,
        "Shared-device mode: each card is shown once.",
        "Cards stay visible to the browser that registered.",
    ),
    "email": (
        outbox.set_sending_on,
        "E-mail is on: waiting messages go out.",
        "E-mail is off: messages wait until it is on again.",
    ),
}


@bp.post('/admin/settings/<any(registration, "shared-device", email):switch>')
@admin_required
@db_retry
def set_switch(switch: str):
    # An explicit state, not a toggle: a double-submitted form leaves it as the admin chose.
    on = request.form.get("on") == "1"
    turn, said_on, said_off = SWITCHES[switch]
    turn(on)
    flash(said_on if on else said_off)
    return redirect(url_for("admin.settings")), 303


@bp.post("/admin/settings/family-links/revoke")
@admin_required
@db_retry
def revoke_family_links():
    email = signup.normalize_email(request.form.get("email", ""))
    count = families.revoke_links(email)
    flash(f"{count} link(s) to the cards of {email} revoked; devices that opened them no longer show the cards.")
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


@bp.get("/admin/accounts")
@admin_required
@db_retry
def accounts_page():
    return render_template(
        "admin/accounts.html",
        users=accounts.accounts(),
        locked=accounts.locked_usernames(),
        roles=[role.value for role in UserRole],
        min_password=accounts.MIN_PASSWORD,
    )


def admin_change(change, *args, done: str, back: str):
    """Run one change as the acting admin (who is audited); the service's refusal (a ValueError) is shown to
    the admin, nothing changed. `done` may name what changed as {result}. Then back to the page `back`."""
    try:
        result = change(*args, current_user.id)
    except ValueError as error:
        flash(str(error), "error")
    else:
        flash(done.format(result=result))
    return redirect(url_for(back)), 303


account_change = functools.partial(admin_change, back="admin.accounts_page")


@bp.post("/admin/accounts")
@admin_required
@db_retry
def create_account():
    role = request.form.get("role", UserRole.STAFF.value)
    if role not in {r.value for r in UserRole}:
        return redirect(url_for("admin.accounts_page")), 303
    return account_change(
        accounts.add_account,
        request.form.get("username", ""),
        request.form.get("password", ""),
        UserRole(role),
        done="Account {result.username} created.",
    )


@bp.post("/admin/accounts/<int:user_id>/active")
@admin_required
@db_retry
def set_account_active(user_id: int):
    # An explicit state, not a toggle: a double-submitted form leaves it as the admin chose.
    active = request.form.get("active") == "1"
    return account_change(
        accounts.set_active,
        user_id,
        active,
        done="Account {result.username} " + ("enabled." if active else "disabled and logged out everywhere."),
    )


@bp.post("/admin/accounts/<int:user_id>/password")
@admin_required
@db_retry
def reset_account_password(user_id: int):
    return account_change(
        accounts.reset_password,
        user_id,
        request.form.get("password", ""),
        done="New password set for {result.username}; their sessions are logged out.",
    )


@bp.post("/admin/accounts/<int:user_id>/unlock")
@admin_required
@db_retry
def unlock_account(user_id: int):
    return account_change(accounts.unlock, user_id, done="{result.username} may log in again from every address.")


@bp.post("/admin/emails/resend")
@admin_required
@db_retry
def resend_failed_emails():
    count = outbox.resend_failed()
    flash(f"{count} e-mail(s) will be sent again.")
    return redirect(url_for("dashboard.index")), 303


@bp.get("/admin/galleries")
@admin_required
@db_retry
def galleries():
    base = current_app.config["PUBLIC_URL"] or request.url_root.rstrip("/")
    return render_template("admin/galleries.html", links=gallery_links.admin_rows(), base=base)


gallery_change = functools.partial(admin_change, back="admin.galleries")


@bp.post("/admin/galleries")
@admin_required
@db_retry
def new_gallery_link():
    return gallery_change(gallery_links.new_link_for, request.form.get("owner", ""), done="New gallery link made.")


@bp.post("/admin/galleries/<int:link_id>/revoke")
@admin_required
@db_retry
def revoke_gallery_link(link_id: int):
    return gallery_change(gallery_links.revoke, link_id, done="The link is revoked: it opens nothing from now on.")


@bp.post("/admin/galleries/<int:link_id>/renew")
@admin_required
@db_retry
def renew_gallery_link(link_id: int):
    return gallery_change(gallery_links.renew, link_id, done="New gallery link made; the old one opens nothing.")
