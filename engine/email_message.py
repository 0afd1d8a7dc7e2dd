"""The e-mails people get, built as MIME messages: plain text and HTML parts, nothing sent from here."""

from dataclasses import dataclass
from email.message import EmailMessage
from html import escape


@dataclass(frozen=True)
class Letter:
    """Who gets which message; `message_key` (unique per queued message) is the Message-ID on every attempt,
    so a receiver that does get a message twice (our connection lost after it stored it) can tell."""

    sender: str
    to: str
    name: str
    message_key: str
    sender_domain: str = "intake.invalid"


def envelope(letter: Letter, subject: str, text: str, html: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = letter.sender
    message["To"] = letter.to
    message["Subject"] = subject
    message["Message-ID"] = f"<{letter.message_key}@{letter.sender_domain}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def html_page(paragraphs: list[str]) -> str:
    """Paragraphs already escaped (or built from escaped parts) into one small HTML body."""
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return f'<!doctype html><html><body style="font-family: sans-serif">{body}</body></html>'


def html_link(url: str) -> str:
    return f'<a href="{escape(url)}">{escape(url)}</a>'


def cards_link_lines(link: str, days: int) -> tuple[str, str]:
    """The family link as a text and an HTML paragraph."""
    lead = "All the cards registered with this e-mail address, on any device"
    until = f"(this link works for {days} days; keep it to yourself)"
    return f"{lead}: {link} {until}", f"{lead}: {html_link(link)} {until}"


def card_message(letter: Letter, code: str, cards_link: str | None, link_days: int, png: bytes) -> EmailMessage:
    """The QR card at registration: show it to the photographer before the photos."""
    text = [
        f"Hello {letter.name},",
        "Thank you for registering. Your card is attached: show it to the photographer before your photos.",
        f"Your code: {code}",
    ]
    html = [
        f"Hello {escape(letter.name)},",
        "Thank you for registering. Your card is attached: show it to the photographer before your photos.",
        f"Your code: <strong>{escape(code)}</strong>",
    ]
    if cards_link:
        line, paragraph = cards_link_lines(cards_link, link_days)
        text.append(line)
        html.append(paragraph)
    message = envelope(letter, "Your photo card", "\n\n".join(text) + "\n", html_page(html))
    message.add_attachment(png, maintype="image", subtype="png", filename=f"card-{code}.png")
    return message


def family_link_message(letter: Letter, cards_link: str | None, link_days: int) -> EmailMessage:
    """Asked for on "send me my cards again": the link to every card of the family (no greeting by name:
    the address may have registered several people)."""
    text = ["Hello,", "You asked for your photo cards again."]
    html = list(text)
    if cards_link:
        line, paragraph = cards_link_lines(cards_link, link_days)
        text.append(line)
        html.append(paragraph)
    else:
        text.append("Ask the photo team for your cards: this server has no public address to link to.")
        html.append(text[-1])
    text.append("If you did not ask for this, you can ignore this e-mail.")
    html.append(text[-1])
    return envelope(letter, "Your photo cards", "\n\n".join(text) + "\n", html_page(html))


def photos_ready_message(letter: Letter, drive_link: str | None, gallery_link: str | None = None) -> EmailMessage:
    """Their photos were delivered (again, after a change): the family's private gallery, and Drive if on."""
    text = [f"Hello {letter.name},", "Your photos are ready."]
    html = [f"Hello {escape(letter.name)},", "Your photos are ready."]
    if gallery_link:
        text.append(f"Your family's private gallery, to see and download them: {gallery_link}")
        html.append(f"Your family's private gallery, to see and download them: {html_link(gallery_link)}")
    if drive_link:
        text.append(f"You can open them here: {drive_link}")
        html.append(f"You can open them here: {html_link(drive_link)}")
    return envelope(letter, "Your photos are ready", "\n\n".join(text) + "\n", html_page(html))
