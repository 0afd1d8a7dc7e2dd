"""Public registration and the QR card."""

import io

import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from data.database import db_commit_with_retry
from data.extensions import db
from data.models import Person
from services.signup import CODE_ALPHABET, CODE_LENGTH, set_registration_open
from tests.support.factories import register


def test_registration_creates_a_person_and_shows_the_card(client):
    """A valid form creates a person with a short unguessable code and redirects to their card."""
    response = register(client)
    assert response.status_code == 302
    person = db.session.scalar(select(Person))
    assert len(person.code) == CODE_LENGTH and set(person.code) <= set(CODE_ALPHABET)
    card = client.get(response.headers["Location"])
    assert card.status_code == 200
    assert b"<svg" in card.data and b"Ann" in card.data and person.code.encode() in card.data
    png = client.get(f"/card/{person.code}.png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_email_is_offered_back_not_duplicated(client):
    """Registering twice with one email shows the existing card."""
    first = register(client).headers["Location"]
    second = register(client, email="ANN@example.com ").headers["Location"]
    assert second.split("?")[0] == first.split("?")[0]
    assert "existing=1" in second
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1


def test_invalid_form_is_refused_with_messages(client):
    """Missing name, bad email and no consent each get a message; nothing is stored."""
    response = client.post("/register", data={"name": "", "email": "nope", "group": ""})
    assert response.status_code == 400
    for text in (b"your name", b"valid email", b"consent"):
        assert text in response.data
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0


def test_closed_registration(client):
    """When an admin closes registration, the page says so and nothing is created."""
    db_commit_with_retry(set_registration_open, False)
    assert client.get("/register").status_code == 403
    assert register(client).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0


def test_unknown_card_code_is_404(client):
    """Guessing a code that does not exist gives 404, never someone else's card."""
    assert client.get("/card/ZZZZZZZZ").status_code == 404
    assert client.get("/card/ZZZZZZZZ.png").status_code == 404


def test_cards_are_private_to_their_browser(app, client):
    """Another browser cannot view a card by guessing or knowing its code."""
    location = register(client).headers["Location"]
    stranger = app.test_client()
    assert stranger.get(location).status_code == 404
    assert client.get(location).status_code == 200


def test_card_files_carry_the_name_under_a_readable_qr(client):
    """The PNG and SVG downloads print the name under the code; the PNG's QR decodes to the card text."""
    location = register(client, name="Zoë Ångström").headers["Location"]
    code = location.split("/card/")[1].split("?")[0]
    png = client.get(f"/card/{code}.png")
    image = Image.open(io.BytesIO(png.data))
    assert image.height > image.width  # room for the name under the square code
    assert [b.text for b in zxingcpp.read_barcodes(image)] == [f"INTAKE:{code}"]
    svg = client.get(f"/card/{code}.svg")
    assert svg.mimetype == "image/svg+xml" and "Zoë Ångström" in svg.get_data(as_text=True)
