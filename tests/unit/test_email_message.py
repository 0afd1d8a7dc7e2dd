"""The e-mails as MIME messages: text and HTML parts, escaped names, no link that does not exist."""

from engine.email_message import Letter, card_message, family_link_message, photos_ready_message

LETTER = Letter(
    "Photo day <intake@school.example>", "ann@example.com", 'Ann "<script>" & Co', "intake-7", "school.example"
)


def test_photos_ready_without_a_drive_link_names_no_link():
    """Without a Drive folder the message says the photos are ready and links nowhere."""
    message = photos_ready_message(LETTER, None)
    text, html = message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()
    assert "ready" in text and "http" not in text and "href" not in html


def test_names_are_escaped_in_html_and_plain_in_text():
    """A name with markup is shown as text in the HTML part and unchanged in the plain part."""
    message = photos_ready_message(LETTER, "https://drive.example/f?a=1&b=2")
    html = message.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html and 'href="https://drive.example/f?a=1&amp;b=2"' in html
    assert "<script>" in message.get_body(("plain",)).get_content()


def test_the_message_id_is_the_same_on_every_attempt():
    """Built twice for one outbox row, the message keeps its Message-ID, so a receiver can spot a repeat."""
    first, again = card_message(LETTER, "ABC", None, 30, b"png"), card_message(LETTER, "ABC", None, 30, b"png")
    assert first["Message-ID"] == again["Message-ID"] and "intake-7" in first["Message-ID"]
    [card] = list(first.iter_attachments())
    assert card.get_filename() == "card-ABC.png" and card.get_content() == b"png"


def test_photos_ready_carries_the_gallery_link_first_then_drive_in_both_parts():
    """With a gallery and a Drive folder, both links are in the text and as links in the HTML, gallery first."""
    gallery, drive = "https://photos.school.example/gallery/T0k3n", "https://drive.example/folders/f1"
    message = photos_ready_message(LETTER, drive, gallery)
    text, html = message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()
    assert text.index(gallery) < text.index(drive)
    assert html.index(f'href="{gallery}"') < html.index(f'href="{drive}"')


def test_the_family_link_message_links_the_cards_and_says_how_long_without_a_name():
    """The "send me my cards again" message carries the family link and its lifetime in both parts (escaped in
    HTML), and greets nobody by name (the address may have registered several people)."""
    message = family_link_message(LETTER, "https://photos.example/family/a&b", 60)
    text, html = message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()
    assert "https://photos.example/family/a&b" in text and "60 days" in text
    assert 'href="https://photos.example/family/a&amp;b"' in html and "60 days" in html
    assert "Ann" not in text and message["Subject"] == "Your photo cards"


def test_the_card_message_carries_the_family_link_when_there_is_one():
    """The card e-mail links every card of the family, with the link's lifetime."""
    message = card_message(LETTER, "ABC", "https://photos.example/family/t0k", 30, b"png")
    assert "https://photos.example/family/t0k" in message.get_body(("plain",)).get_content()
    assert "30 days" in message.get_body(("html",)).get_content()
