"""Public registration: a person signs up and gets their QR card."""

import secrets

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup

from data.database import db_retry
from engine.cards import card_png, card_svg, card_svg_file
from services import directory, signup
from services.person_text import has_control_characters

bp = Blueprint("registration", __name__)

MAX_FIELD = 200
GRANTS_KEPT = 10  # cards this browser registered that it may show again


def read_form(fields: list[str]) -> tuple[dict, list[str]]:
    form = {key: request.form.get(key, "").strip() for key in ("name", "email", "group")}
    form["consent"] = request.form.get("consent") == "yes"
    # Answers are keyed by label, not position: fields changed by an admin between showing and
    # posting the form cannot file an answer under the wrong question.
    form["extra"] = {label: value for label in fields if (value := request.form.get(f"extra:{label}", "").strip())}
    errors = []
    if not form["name"]:
        errors.append("Please give your name.")
    if "@" not in form["email"] or len(form["email"]) > 320:
        errors.append("Please give a valid email address.")
    if any(len(value) > MAX_FIELD for value in (form["name"], form["group"], *form["extra"].values())):
        errors.append(f"Name, group and other answers may have at most {MAX_FIELD} characters.")
    if has_control_characters(form["name"], form["email"], form["group"], *form["extra"].values()):
        errors.append("Name, email, group and answers must be plain text on one line (no control characters).")
    if not form["consent"]:
        errors.append("Please confirm your consent to being photographed.")
    return form, errors


def form_page(form: dict, fields: list[str], errors: list[str], status: int = 200):
    """The form, with the key that makes posting it twice register once."""
    key = request.form.get("submission") or secrets.token_urlsafe(16)
    page = render_template("registration/form.html", form=form, fields=fields, errors=errors, submission=key)
    return private(Response(page, status))


@bp.route("/register", methods=["GET", "POST"])
@db_retry
def register():
    if not signup.registration_is_open():
        return render_template("registration/closed.html"), 403
    fields = signup.registration_fields()
    if request.method == "GET":
        return form_page({}, fields, [])
    form, errors = read_form(fields)
    if errors:
        return form_page(form, fields, errors, 400)
    config = current_app.config
    try:
        result = signup.submit_registration(
            form,
            request.form.get("submission", ""),
            request.remote_addr or "",
            config["REGISTER_PER_ADDRESS_PER_MINUTE"],
            config["REGISTER_PER_MINUTE"],
        )
    except signup.RegistrationLimited as error:
        return form_page(form, fields, [str(error)], 429)
    session["card_grants"] = [*session.get("card_grants", [])[-(GRANTS_KEPT - 1) :], result.grant]
    return redirect(url_for("registration.card", code=result.person.code))


def private(response: Response) -> Response:
    """Not kept by the browser either: on a shared device, Back must not bring a card or a form back."""
    response.headers["Cache-Control"] = "no-store"
    return response


def visible_card(code: str):
    """A card is shown to staff and to the browser holding a grant for it; to anyone else a code
    (roster codes can be guessable) reveals nothing, not even whether it exists. Returns the person and
    the browser's grant (None for staff)."""
    grant = None
    if not current_user.is_authenticated:
        grant = signup.granted_card(session.get("card_grants", []), code) or abort(404)
    person = directory.person_for_code(code) or abort(404)
    return person, grant


@bp.get("/card/<code>")
@db_retry
def card(code: str):
    person, grant = visible_card(code)
    if grant is not None:
        signup.card_shown(grant)
    page = render_template(
        "registration/card.html",
        person=person,
        svg=Markup(card_svg(person.code)),
        once=grant is not None and grant.once,
    )
    return private(Response(page))


@bp.get("/card/<code>.png")
@db_retry
def card_image(code: str):
    person, _ = visible_card(code)
    return private(Response(card_png(person.code, person.name), mimetype="image/png"))


@bp.get("/card/<code>.svg")
@db_retry
def card_vector(code: str):
    person, _ = visible_card(code)
    return private(Response(card_svg_file(person.code, person.name), mimetype="image/svg+xml"))
