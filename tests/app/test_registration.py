"""Public registration and the QR card."""

import base64
import io
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select, update

from data.database import db_commit_with_retry
from data.extensions import db
from data.models import Person, RegistrationSubmission
from services.person_records import likely_duplicates
from services.roster import parse_roster
from services.signup import CODE_ALPHABET, CODE_LENGTH, set_registration_open, set_shared_device_mode
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


def test_one_email_registers_each_child_with_their_own_card(client):
    """A parent registering a second child with the same e-mail gets a second person and card, not the first's."""
    first = register(client, name="Ann").headers["Location"]
    second = register(client, email="ANN@example.com ", name="Bob").headers["Location"]
    assert first != second and "/card/" in second
    people = db.session.scalars(select(Person).order_by(Person.id)).all()
    assert [(p.name, p.email) for p in people] == [("Ann", "ann@example.com"), ("Bob", "ann@example.com")]
    assert b"Bob" in client.get(second).data and b"Register another child" in client.get(second).data


def test_the_same_child_registered_twice_is_flagged_for_a_merge(client):
    """Two records of one name under one e-mail are listed as likely duplicates."""
    register(client, group="5A")
    register(client, group="5B")
    pairs = likely_duplicates()
    assert [(a.name, b.name, why) for a, b, why in pairs] == [("Ann", "Ann", "same name under one e-mail address")]


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


def card_location(response) -> str:
    assert response.status_code == 302, response.status_code
    return response.headers["Location"]


@pytest.mark.parametrize("bad", ["Ann\x1b[31m", "Ann\x00", "Ann\nBerg", "Ann\tBerg", "Ann\x9b"])
def test_names_and_answers_with_control_characters_are_refused(client, bad):
    """ESC, NUL, line breaks, tabs and C1 codes are refused in any field, by the rule roster import uses."""
    for field in ("name", "group"):
        data = {"name": "Ann", "email": "ann@example.com", "group": "5A", "consent": "yes", field: bad}
        response = client.post("/register", data=data)
        assert response.status_code == 400 and b"control characters" in response.data
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0
    assert parse_roster(f"code,name\nA1,{bad}\n".encode()).errors != []


def test_registrations_are_limited_per_address_and_overall(app, client):
    """Past the per-address limit one address gets 429 while another still registers; past the overall
    limit everyone waits."""
    app.config.update(REGISTER_PER_ADDRESS_PER_MINUTE=3, REGISTER_PER_MINUTE=5)
    for i in range(3):
        assert register(client, f"p{i}@example.com").status_code == 302
    assert register(client, "p3@example.com").status_code == 429
    other = app.test_client()
    post = {"environ_base": {"REMOTE_ADDR": "192.0.2.50"}}
    assert other.post("/register", data=form_data("q0@example.com"), **post).status_code == 302
    assert other.post("/register", data=form_data("q1@example.com"), **post).status_code == 302
    assert other.post("/register", data=form_data("q2@example.com"), **post).status_code == 429
    assert db.session.scalar(select(func.count()).select_from(Person)) == 5


def form_data(email: str, key: str = "") -> dict:
    return {"name": "Ann", "email": email, "group": "5A", "consent": "yes", "submission": key}


def test_a_known_email_gets_the_same_answer_as_a_new_one(app, client):
    """A stranger registering a known e-mail learns nothing: the same answer as a new one, and only the card
    of the person they just registered, never the earlier one's."""
    first = card_location(register(client, "known@example.com"))
    new, known = register(app.test_client(), "new@example.com"), register(app.test_client(), "known@example.com")
    assert new.status_code == known.status_code == 302
    assert "/card/" in new.headers["Location"] and "/card/" in known.headers["Location"]
    assert known.headers["Location"] != first


def test_the_session_cookie_holds_no_card_code(client):
    """The signed (readable) session cookie carries an opaque grant, never the person's code."""
    location = card_location(register(client))
    code = location.split("/card/")[1]
    cookie = client.get_cookie("session").value
    payload = cookie.split(".")[0] if not cookie.startswith(".") else cookie.split(".")[1]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    if cookie.startswith("."):
        decoded = zlib.decompress(decoded)
    assert code.encode() not in decoded and b"card_grants" in decoded


def test_a_shared_device_shows_each_card_once(client):
    """In shared-device mode the card page shows once; Back, a reload or the downloads then reveal nothing."""
    db_commit_with_retry(set_shared_device_mode, True)
    location = card_location(register(client))
    first = client.get(location)
    assert first.status_code == 200 and "no-store" in first.headers["Cache-Control"]
    code = location.split("/card/")[1]
    for url in (location, f"/card/{code}.png", f"/card/{code}.svg"):
        assert client.get(url).status_code == 404, url


def test_a_double_submitted_form_registers_once_and_shows_the_card(client):
    """The same form posted twice (double click, or a retry after a dropped connection) gives the same
    answer, the person's card, and one person."""
    first = card_location(client.post("/register", data=form_data("ann@example.com", "key-1")))
    fresh_browser = client.application.test_client()  # the first answer's cookie never arrived
    second = card_location(fresh_browser.post("/register", data=form_data("ann@example.com", "key-1")))
    assert first == second
    assert fresh_browser.get(second).status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1


@pytest.mark.both_databases
def test_parallel_double_clicks_register_once(app):
    """Two posts of one form at the same moment make one person and both answer with the card."""
    ready = threading.Barrier(2)

    def post(_):
        browser = app.test_client()
        ready.wait()
        return browser.post("/register", data=form_data("ann@example.com", "key-2")).headers.get("Location", "")

    with ThreadPoolExecutor(2) as pool:
        locations = list(pool.map(post, range(2)))
    assert locations[0] == locations[1] and "/card/" in locations[0]
    assert db.session.scalar(select(func.count()).select_from(Person)) == 1


def test_an_old_form_posted_again_does_not_bring_the_card_back(client):
    """A form kept open (Back on a kiosk, minutes later) is not a retry: the earlier card is not shown again."""
    first = card_location(client.post("/register", data=form_data("ann@example.com", "key-3")))
    db_commit_with_retry(
        lambda: db.session.execute(update(RegistrationSubmission).values(created_at=datetime(2020, 1, 1)))
    )
    later = client.application.test_client().post("/register", data=form_data("ann@example.com", "key-3"))
    assert later.headers["Location"] != first


def test_a_known_email_with_a_fresh_key_cannot_replay_into_a_card(app):
    """Posting a victim's email twice with one key is not a way to their card."""
    victim = card_location(register(app.test_client(), "victim@example.com"))
    attacker = app.test_client()
    for _ in range(2):
        response = attacker.post("/register", data=form_data("victim@example.com", "key-4"))
        assert response.headers["Location"] != victim
