"""A family's cards: every card one browser registered under one e-mail on one page, the e-mailed link that
shows them anywhere (expiring, revocable, only its hash kept), and "send me my cards again"."""

import re
from datetime import datetime

import pytest
from sqlalchemy import select, update

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import FamilyLink, OutboxMessage, Person
from data.states import MailKind, UserRole
from services import families, tokens
from services.signup import (
    CARDS_AGAIN_PER_ADDRESS,
    CARDS_AGAIN_PER_EMAIL_PER_HOUR,
    FAMILY_LINK_OPENS_PER_ADDRESS,
    set_shared_device_mode,
)
from tests.app.test_outbox import mail_on, send_until_delivered  # noqa: F401 (a fixture)
from tests.support.factories import login, make_person, make_user, register

LINK = re.compile(r"https://photos\.school\.example(/family/[A-Za-z0-9_-]+)")


def card_of(response) -> str:
    assert response.status_code == 302, response.status_code
    return response.headers["Location"]


def names_on(page) -> list[str]:
    return re.findall(r'<p class="card-name">([^<]*)</p>', page.get_data(as_text=True))


def family_link_in(message) -> str:
    return LINK.search(message.get_body(("plain",)).get_content())[1]


@pytest.mark.both_databases
def test_the_card_page_shows_every_card_of_the_family_this_browser_registered(app, client):
    """After registering two siblings, the page shows both cards (newest first); another family registered
    on the same browser, and a sibling registered elsewhere, are not on it."""
    card_of(register(client, "parent@example.com", "Ann"))
    card_of(register(client, "other@example.com", "Olga"))
    card_of(register(app.test_client(), "parent@example.com", "Eve"))  # another device: not this browser's
    bob = card_of(register(client, "PARENT@example.com", "Bob"))
    page = client.get(bob)
    assert names_on(page) == ["Bob", "Ann"] and "no-store" in page.headers["Cache-Control"]
    body = page.get_data(as_text=True)
    assert "Register another child" in body and body.count(".png") == 2


def test_a_shared_device_shows_only_the_new_card_once(client):
    """In shared-device mode the page shows the card just registered, never the family's earlier ones."""
    db_commit_with_retry(set_shared_device_mode, True)
    card_of(register(client, "parent@example.com", "Ann"))
    bob = card_of(register(client, "parent@example.com", "Bob"))
    assert names_on(client.get(bob)) == ["Bob"]
    assert client.get(bob).status_code == 404


def test_staff_see_the_one_card_they_open(app, staff):
    """Staff opening a card from the People list see that card only."""
    make_person("ANNA", "Anna", email="fam@example.com")
    make_person("BEN", "Ben", email="fam@example.com")
    assert names_on(staff.get("/card/ANNA")) == ["Anna"]


def test_the_emailed_link_shows_the_family_anywhere_and_only_its_hash_is_kept(app, client, mail_on):  # noqa: F811
    """The card e-mail's link opens every card of that e-mail address in another browser (the token leaves
    the address bar); the database keeps only the token's hash."""
    register(client, "parent@example.com", "Ann")
    register(client, "parent@example.com", "Bob")
    make_person("OTHER", "Olga", email="other@example.com")
    link = family_link_in(send_until_delivered(mail_on, 2)[0])
    phone = app.test_client()
    opened = phone.get(link)
    assert opened.status_code == 303 and "/card/" in opened.headers["Location"]
    assert "no-store" in opened.headers["Cache-Control"]
    assert sorted(names_on(phone.get(opened.headers["Location"]))) == ["Ann", "Bob"]
    bob = run_in_transaction(lambda: db.session.scalar(select(Person.code).where(Person.name == "Bob")))
    assert phone.get(f"/card/{bob}.png").status_code == 200 and phone.get("/card/OTHER").status_code == 404
    token = link.rsplit("/", 1)[1]
    hashes = run_in_transaction(lambda: list(db.session.scalars(select(FamilyLink.token_hash))))
    assert tokens.token_digest(token) in hashes and token not in hashes


@pytest.mark.both_databases
def test_a_wrong_expired_or_revoked_link_is_the_same_404(app, client):
    """A made-up, an expired and a revoked link answer alike; expiry and revocation also end what the link
    showed at once."""
    make_person("ANNA", "Anna", email="fam@example.com")
    token = db_commit_with_retry(families.new_link, "fam@example.com")
    phone = app.test_client()
    assert phone.get(f"/family/{token}").status_code == 303 and phone.get("/card/ANNA").status_code == 200
    missing = phone.get("/family/not-a-token-at-all")
    assert missing.status_code == 404

    def expire():
        db.session.execute(update(FamilyLink).values(expires_at=datetime(2020, 1, 1)))

    db_commit_with_retry(expire)
    expired = phone.get(f"/family/{token}")
    assert (expired.status_code, expired.data) == (missing.status_code, missing.data)
    assert phone.get("/card/ANNA").status_code == 404
    fresh = db_commit_with_retry(families.new_link, "fam@example.com")
    assert phone.get(f"/family/{fresh}").status_code == 303 and phone.get("/card/ANNA").status_code == 200
    assert db_commit_with_retry(families.revoke_links, "fam@example.com") == 1
    revoked = phone.get(f"/family/{fresh}")
    assert (revoked.status_code, revoked.data) == (missing.status_code, missing.data)
    assert phone.get("/card/ANNA").status_code == 404


def test_opening_links_is_rate_limited_per_address_wrong_tokens_included(app):
    """Made-up tokens count: past the limit even a good link answers 429 from that address, not elsewhere."""
    make_person("ANNA", "Anna", email="fam@example.com")
    token = db_commit_with_retry(families.new_link, "fam@example.com")
    guesser = app.test_client()
    guesses = [guesser.get(f"/family/guess-{i}").status_code for i in range(FAMILY_LINK_OPENS_PER_ADDRESS)]
    assert guesses == [404] * FAMILY_LINK_OPENS_PER_ADDRESS
    assert guesser.get(f"/family/{token}").status_code == 429
    elsewhere = {"environ_base": {"REMOTE_ADDR": "192.0.2.9"}}
    assert app.test_client().get(f"/family/{token}", **elsewhere).status_code == 303


def family_link_messages() -> list[OutboxMessage]:
    return run_in_transaction(
        lambda: list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == MailKind.FAMILY_LINK)))
    )


def ask_again(browser, email: str, **options):
    return browser.post("/cards/again", data={"email": email}, **options)


def test_cards_again_answers_alike_for_known_and_unknown_addresses(app, mail_on):  # noqa: F811
    """A known and an unknown address get the same answer; only the known one gets an e-mail, whose link
    shows its family's cards."""
    make_person("ANNA", "Anna", email="fam@example.com")
    known, unknown = ask_again(app.test_client(), "FAM@example.com"), ask_again(app.test_client(), "no@example.com")
    assert known.status_code == unknown.status_code == 200
    assert ask_again(app.test_client(), "not-an-address").status_code == 400
    assert known.get_data(as_text=True).replace("FAM@example.com", "X") == unknown.get_data(as_text=True).replace(
        "no@example.com", "X"
    )
    [message] = send_until_delivered(mail_on)
    assert message["To"] == "fam@example.com" and message["Subject"] == "Your photo cards"
    phone = app.test_client()
    assert phone.get(family_link_in(message)).status_code == 303 and phone.get("/card/ANNA").status_code == 200
    assert [m.to_address for m in family_link_messages()] == ["fam@example.com"]


def test_cards_again_waits_for_one_message_at_a_time(app, mail_on):  # noqa: F811
    """Asking twice before the first e-mail left queues one message; asking after it left queues another."""
    make_person("ANNA", "Anna", email="fam@example.com")
    ask_again(app.test_client(), "fam@example.com")
    ask_again(app.test_client(), "fam@example.com")
    assert len(family_link_messages()) == 1
    send_until_delivered(mail_on)
    ask_again(app.test_client(), "fam@example.com")
    assert len(family_link_messages()) == 2


@pytest.mark.parametrize("email", ["fam@example.com", "nobody@example.com"])
def test_cards_again_is_rate_limited_alike_for_any_address(app, mail_on, email):  # noqa: F811
    """Past the per-address limit, and past the per-e-mail limit from fresh addresses, the answer is 429,
    whether the address is known or not."""
    make_person("ANNA", "Anna", email="fam@example.com")
    browser = app.test_client()
    others = [f"x{i}@example.com" for i in range(CARDS_AGAIN_PER_ADDRESS - 1)]
    assert [ask_again(browser, e).status_code for e in [email, *others]] == [200] * CARDS_AGAIN_PER_ADDRESS
    assert ask_again(browser, email).status_code == 429
    statuses = [
        ask_again(app.test_client(), email, environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code
        for i in range(CARDS_AGAIN_PER_EMAIL_PER_HOUR)
    ]
    assert statuses == [200] * (CARDS_AGAIN_PER_EMAIL_PER_HOUR - 1) + [429]


def test_an_admin_revokes_a_familys_links_from_settings(app, client):
    """Revoking on Settings ends the family's links and what they showed; staff may not."""
    make_person("ANNA", "Anna", email="fam@example.com")
    token = db_commit_with_retry(families.new_link, "fam@example.com")
    phone = app.test_client()
    assert phone.get(f"/family/{token}").status_code == 303
    make_user()
    login(client)
    assert client.post("/admin/settings/family-links/revoke", data={"email": "fam@example.com"}).status_code == 403
    assert phone.get("/card/ANNA").status_code == 200
    make_user("boss", UserRole.ADMIN)
    login(client, "boss")
    answer = client.post("/admin/settings/family-links/revoke", data={"email": " FAM@example.com"})
    assert answer.status_code == 303 and phone.get("/card/ANNA").status_code == 404
    assert phone.get(f"/family/{token}").status_code == 404
