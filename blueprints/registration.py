"""Public registration: a person signs up and gets their QR card."""

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup

from data.database import db_retry
from engine.cards import card_png, card_svg, card_svg_file
from services import directory, signup

bp = Blueprint("registration", __name__)

MAX_FIELD = 200


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
    if not form["consent"]:
        errors.append("Please confirm your consent to being photographed.")
    return form, errors


@bp.route("/register", methods=["GET", "POST"])
@db_retry
def register():
    if not signup.registration_is_open():
        return render_template("registration/closed.html"), 403
    fields = signup.registration_fields()
    if request.method == "GET":
        return render_template("registration/form.html", form={}, fields=fields, errors=[])
    form, errors = read_form(fields)
    if errors:
        return render_template("registration/form.html", form=form, fields=fields, errors=errors), 400
    person, created = signup.register_person(form["name"], form["email"], form["group"], form["consent"], form["extra"])
    if not created and not may_see(person.code):
        # Knowing someone's email must not be enough to get their card.
        return render_template("registration/already.html"), 409
    session["cards"] = [*session.get("cards", [])[-9:], person.code]
    return redirect(url_for("registration.card", code=person.code, existing=None if created else 1))


def may_see(code: str) -> bool:
    return current_user.is_authenticated or code in session.get("cards", [])


def visible_person(code: str):
    """A card is shown to staff and to the browser that registered it; to anyone else a code
    (roster codes can be guessable) reveals nothing, not even whether it exists."""
    if not may_see(code):
        abort(404)
    person = directory.person_for_code(code)
    if person is None:
        abort(404)
    return person


@bp.get("/card/<code>")
@db_retry
def card(code: str):
    person = visible_person(code)
    return render_template(
        "registration/card.html",
        person=person,
        svg=Markup(card_svg(person.code)),
        existing=bool(request.args.get("existing")),
    )


@bp.get("/card/<code>.png")
@db_retry
def card_image(code: str):
    person = visible_person(code)
    return Response(card_png(person.code, person.name), mimetype="image/png")


@bp.get("/card/<code>.svg")
@db_retry
def card_vector(code: str):
    person = visible_person(code)
    return Response(card_svg_file(person.code, person.name), mimetype="image/svg+xml")
