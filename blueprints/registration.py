"""Public registration: a person signs up and gets their QR card."""

import secrets

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup
from werkzeug.exceptions import NotFound

from data.database import db_retry
from engine.cards import card_png, card_svg, card_svg_file
from services import directory, families, rate_limits, signup
from services.person_text import has_control_characters

bp = Blueprint("registration", __name__)

MAX_FIELD = 200
GRANTS_KEPT = 20  # cards this browser registered (or a family link showed) that it may show again


def valid_email(email: str) -> bool:
    return "@" in email and len(email) <= 320


def read_form(fields: list[str]) -> tuple[dict, list[str]]:
    form = {key: request.form.get(key, "").strip() for key in ("name", "email", "group")}
    form["consent"] = request.form.get("consent") == "yes"
    # Answers are keyed by label, not position: fields changed by an admin between showing and
    # posting the form cannot file an answer under the wrong question.
    form["extra"] = {label: value for label in fields if (value := request.form.get(f"extra:{label}", "").strip())}
    errors = []
    if not form["name"]:
        errors.append("Please give your name.")
    if not valid_email(form["email"]):
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
    except rate_limits.RateLimited as error:
        return form_page(form, fields, [str(error)], 429)
    keep_grants([result.grant])
    return redirect(url_for("registration.card", code=result.person.code))


def keep_grants(tokens: list[str]) -> None:
    session["card_grants"] = [*session.get("card_grants", []), *tokens][-GRANTS_KEPT:]


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
        grant = families.granted_card(session.get("card_grants", []), code) or abort(404)
    person = directory.person_for_code(code) or abort(404)
    return person, grant


@bp.get("/card/<code>")
@db_retry
def card(code: str):
    person, grant = visible_card(code)
    if grant is not None:
        families.card_shown(grant)
    # Staff see the one card they asked for; a parent sees every card of the family this browser holds.
    people = [person] if grant is None else families.family_cards(session.get("card_grants", []), person)
    page = render_template(
        "registration/card.html",
        cards=[(someone, Markup(card_svg(someone.code))) for someone in people],
        once=grant is not None and grant.once,
    )
    return private(Response(page))


@bp.get("/family/<token>")
@db_retry
def family_link(token: str):
    """The e-mailed link: this browser may now see the family's cards. Unknown, expired and revoked links
    are one and the same 404."""
    try:
        opened = signup.open_family_link(token, request.remote_addr or "")
    except rate_limits.RateLimited:
        abort(429)
    if not opened:
        # Answered, not raised: the unit of work commits, so a wrong token counts against the limit too.
        return current_app.handle_http_exception(NotFound())
    keep_grants([grant for _, grant in opened])
    first, _ = opened[0]
    # Off to the cards' own address, so the token leaves the address bar (and the browser's history).
    return private(redirect(url_for("registration.card", code=first.code), 303))


def again_page(status: int = 200, email: str = "", sent: bool = False, error: str = ""):
    return private(Response(render_template("registration/again.html", email=email, sent=sent, error=error), status))


@bp.route("/cards/again", methods=["GET", "POST"])
@db_retry
def cards_again():
    """Send me my cards again: the same answer for any address, known or not."""
    if request.method == "GET":
        return again_page()
    email = request.form.get("email", "").strip()
    if not valid_email(email) or has_control_characters(email):
        return again_page(400, email, error="Please give a valid email address.")
    try:
        signup.send_cards_again(email, request.remote_addr or "")
    except rate_limits.RateLimited as error:
        return again_page(429, email, error=str(error))
    return again_page(200, email, sent=True)


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
