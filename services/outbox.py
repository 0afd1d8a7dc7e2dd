"""The e-mail outbox: messages wait in the database, once per (person, kind, delivery version), so a re-run
queues nothing new. A sender claims one in a unit of work, sends it outside any transaction and records the
outcome in another unit: a slow SMTP server never holds the database's write lock."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, or_, select, true, update

from data.database import db_commit_with_retry, insert_once, run_in_transaction
from data.extensions import db
from data.models import OutboxMessage, Person, utcnow
from data.states import MailKind, MailState
from data.stored_settings import read_setting, write_setting
from engine.cards import card_png
from engine.email_message import Letter, card_message, family_link_message, photos_ready_message
from services import families, gallery_links, mail

log = logging.getLogger("intake.mail")
SENDING_ON = "email_sending_on"
# Kinds that carry a link to the family's cards (made when the message is sent: only its hash is kept).
FAMILY_LINK_KINDS = (MailKind.CARD, MailKind.FAMILY_LINK)


def sending_on() -> bool:
    """The admins' switch: while off, messages are queued and wait; nothing is sent."""
    return bool(read_setting(SENDING_ON, True))


def set_sending_on(on: bool) -> None:
    write_setting(SENDING_ON, on)


def queue(person: Person, kind: MailKind, version: int) -> None:
    """Queue the message unless e-mail is off, the person has no address, or it was queued already."""
    if not mail.mail_enabled() or not person.email:
        return
    now = utcnow()
    insert_once(
        OutboxMessage,
        {"person_id": person.id, "kind": kind, "version": version},
        {
            "to_address": person.email,
            "state": MailState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )


def queue_card(person: Person) -> None:
    db.session.flush()  # the new person's id
    queue(person, MailKind.CARD, 0)


def queue_photos_ready(person_id: int, version: int) -> None:
    queue(db.session.get(Person, person_id), MailKind.PHOTOS_READY, version)


def queue_family_link(person: Person) -> None:
    """A link to the family's cards, at most one waiting at a time: a request while one waits adds nothing."""
    done = db.session.scalar(
        select(func.count()).where(
            OutboxMessage.person_id == person.id,
            OutboxMessage.kind == MailKind.FAMILY_LINK,
            OutboxMessage.state.not_in([MailState.PENDING, MailState.SENDING]),
        )
    )
    queue(person, MailKind.FAMILY_LINK, done + 1)


@dataclass(frozen=True)
class Claimed:
    """What sending one message needs, read in the claiming unit so the send touches no database."""

    id: int
    key: str
    kind: MailKind
    to: str
    name: str
    code: str
    drive_link: str | None
    gallery_link: str | None = None
    cards_link: str | None = None


def due() -> ColumnElement[bool]:
    now = utcnow()
    waiting = and_(OutboxMessage.state == MailState.PENDING, OutboxMessage.next_attempt_at <= now)
    abandoned = and_(OutboxMessage.state == MailState.SENDING, OutboxMessage.claimed_until < now)
    return and_(or_(waiting, abandoned), deliverable_now())


def deliverable_now() -> ColumnElement[bool]:
    """With Drive on, "your photos are ready" waits until that version is on Drive, so it carries the link
    and the folder it points to is complete."""
    if not current_app.config["DRIVE_ROOT_FOLDER_ID"]:  # drive_sync.settings().is_configured(), without the cycle
        return true()
    on_drive = select(Person.id).where(
        Person.id == OutboxMessage.person_id, Person.synced_version >= OutboxMessage.version
    )
    return or_(OutboxMessage.kind != MailKind.PHOTOS_READY, on_drive.exists())


def claim_next() -> Claimed | None:
    """Take the oldest message that is due, or one whose sender died in the middle of sending it."""
    message = db.session.scalar(select(OutboxMessage).where(due()).order_by(OutboxMessage.id).limit(1))
    if message is None:
        return None
    # A claim outlives the longest send (connect, TLS, login, data, quit, each within the timeout).
    lease = timedelta(seconds=current_app.config["SMTP_TIMEOUT_SECONDS"] * 6)
    message.state, message.claimed_until = MailState.SENDING, utcnow() + lease
    message.attempts += 1
    person = db.session.get(Person, message.person_id)
    # The row's id and creation time: unique even across a database that was reset and counts from 1 again.
    key = f"intake-{message.id}-{message.created_at:%Y%m%d%H%M%S%f}"
    gallery = gallery_links.family_link_for_mail(person.id) if message.kind == MailKind.PHOTOS_READY else None
    return Claimed(
        message.id,
        key,
        message.kind,
        message.to_address,
        person.name,
        person.code,
        person.drive_folder_link,
        gallery_link=gallery,
        cards_link=cards_link(message),
    )


def cards_link(message: OutboxMessage) -> str | None:
    """A new link to the cards of the family the message goes to, on INTAKE_PUBLIC_URL (none without it).
    Each attempt makes its own: the token exists in clear only in the message."""
    public_url = current_app.config["PUBLIC_URL"]
    if message.kind not in FAMILY_LINK_KINDS or not public_url:
        return None
    return f"{public_url}/family/{families.new_link(message.to_address)}"


def letter_for(claimed: Claimed) -> Letter:
    config = current_app.config
    sender = config["MAIL_FROM"] or config["SMTP_USER"]
    domain = sender.rpartition("@")[2].strip("> ") or "intake.invalid"
    return Letter(sender, claimed.to, claimed.name, claimed.key, domain)


def build(claimed: Claimed):
    letter = letter_for(claimed)
    days = current_app.config["FAMILY_LINK_DAYS"]
    if claimed.kind == MailKind.CARD:
        return card_message(letter, claimed.code, claimed.cards_link, days, card_png(claimed.code, claimed.name))
    if claimed.kind == MailKind.FAMILY_LINK:
        return family_link_message(letter, claimed.cards_link, days)
    return photos_ready_message(letter, claimed.drive_link, claimed.gallery_link)


def record_sent(message_id: int) -> None:
    message = db.session.get(OutboxMessage, message_id)
    message.state, message.sent_at, message.claimed_until, message.last_error = MailState.SENT, utcnow(), None, None


def retry_delay(attempts: int) -> float:
    config = current_app.config
    return min(config["MAIL_RETRY_MAX_SECONDS"], config["MAIL_RETRY_BASE_SECONDS"] * 2 ** (attempts - 1))


def record_failure(message_id: int, error: str, permanent: bool) -> MailState:
    """A permanent failure, or the last allowed attempt, fails the message; any other is tried again later."""
    message = db.session.get(OutboxMessage, message_id)
    give_up = permanent or message.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]
    message.state = MailState.FAILED if give_up else MailState.PENDING
    message.next_attempt_at = utcnow() + timedelta(seconds=retry_delay(message.attempts))
    message.claimed_until, message.last_error = None, error[:2000]
    return message.state


def send_one(claimed: Claimed) -> MailState:
    try:
        mail.send(build(claimed))
    except (mail.TemporaryFailure, mail.PermanentFailure) as error:
        permanent = isinstance(error, mail.PermanentFailure)
        log.warning(
            "e-mail %s to %s failed (%s): %s", claimed.id, claimed.to, "permanent" if permanent else "temporary", error
        )
        return db_commit_with_retry(record_failure, claimed.id, str(error), permanent)
    db_commit_with_retry(record_sent, claimed.id)
    return MailState.SENT


def send_due(advance: Callable[[], None] = lambda: None) -> dict:
    """Send every message that is due now; returns {"sent": N, "failed": N} for this round (failed: given up).
    `advance` is called after each attempt (a progress bar's step)."""
    done = {"sent": 0, "failed": 0}
    if not mail.mail_enabled() or not run_in_transaction(sending_on, read_only=True):
        return done
    while (claimed := db_commit_with_retry(claim_next)) is not None:
        outcome = send_one(claimed)
        if outcome in (MailState.SENT, MailState.FAILED):
            done[outcome.value] += 1
        advance()
    return done


def count_due() -> int:
    """How many messages send_due would try now (0 while e-mail is off)."""
    if not mail.mail_enabled():
        return 0
    return run_in_transaction(lambda: db.session.scalar(select(func.count()).where(due())), read_only=True)


def waiting() -> bool:
    """Some message is still to be sent (now or after a backoff). While sending is switched off, nothing
    will be: `deliver --wait` does not wait for the admins."""
    return run_in_transaction(
        lambda: (
            sending_on()
            and db.session.scalar(
                select(func.count()).where(OutboxMessage.state.in_([MailState.PENDING, MailState.SENDING]))
            )
            > 0
        ),
        read_only=True,
    )


def counts(failures_shown: int = 5) -> dict:
    """Messages by state, and the latest permanent failures with the server's answer, for the dashboard."""
    rows = dict(db.session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())
    failures = db.session.execute(
        select(OutboxMessage.to_address, OutboxMessage.last_error)
        .where(OutboxMessage.state == MailState.FAILED)
        .order_by(OutboxMessage.id.desc())
        .limit(failures_shown)
    ).all()
    return {
        "enabled": mail.mail_enabled(),
        "switched_off": not sending_on(),
        **{state.value: rows.get(state, 0) for state in MailState},
        "failures": [{"to": to, "error": error} for to, error in failures],
    }


def resend_failed() -> int:
    """Queue every failed message again, from a fresh count of attempts; returns how many."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.state == MailState.FAILED)
        .values(state=MailState.PENDING, attempts=0, next_attempt_at=utcnow(), claimed_until=None)
    )
    return result.rowcount
