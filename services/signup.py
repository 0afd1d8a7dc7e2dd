"""Public registration: a person signs up and gets a card code; what the form asks is an admin setting."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from data.database import upsert
from data.extensions import db
from data.models import Person, RegistrationSubmission, utcnow
from data.states import PersonSource
from data.stored_settings import read_setting, write_setting
from services import outbox
from services.families import family_of, grant_card, open_link
from services.rate_limits import spend
from services.tokens import token_digest

# Crockford's base32 without I, L, O, U: nothing to misread when a code is typed from a card.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8  # 32**8 ≈ 10**12: short enough to type, too many to guess.
REGISTRATION_OPEN = "registration_open"
REGISTRATION_FIELDS = "registration_fields"
SHARED_DEVICE = "registration_shared_device"
RATE_WINDOW = timedelta(minutes=1)
# "Send me my cards again": per address and overall per minute, and per e-mail address per hour (nobody's
# mailbox is flooded through the form).
CARDS_AGAIN_PER_ADDRESS = 5
CARDS_AGAIN_OVERALL = 60
CARDS_AGAIN_PER_EMAIL_PER_HOUR = 3
# Family links opened per address per minute: plenty for a family, and each opening writes its grants.
FAMILY_LINK_OPENS_PER_ADDRESS = 30
# A form posted again this soon (a double click, a retry after a dropped connection) is the same
# registration; later, a page kept open (Back on a kiosk) must not bring a card back.
REPLAY_WINDOW = timedelta(minutes=2)
MAX_KEY = 64
MAX_EXTRA_FIELDS = 10
MAX_LABEL = 60


class RegistrationClosed(Exception):
    pass


@dataclass(frozen=True)
class Registration:
    """What a posted form did: the person, and the grant that lets this browser see their card."""

    person: Person
    grant: str


def new_code() -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not db.session.scalar(select(Person.id).where(Person.code == code)):
            return code


def normalize_email(email: str) -> str:
    return email.strip().lower()


def registration_is_open() -> bool:
    return bool(read_setting(REGISTRATION_OPEN, True))


def set_registration_open(is_open: bool) -> None:
    write_setting(REGISTRATION_OPEN, is_open)


def registration_fields() -> list[str]:
    """The labels of the extra questions the public form asks, in order."""
    return list(read_setting(REGISTRATION_FIELDS, []))


def parse_field_labels(text: str) -> list[str]:
    """'Shirt size, diet,, Shirt  size' -> ['Shirt size', 'diet']: trimmed, blanks and repeats dropped."""
    labels: list[str] = []
    seen: set[str] = set()
    for raw in text.split(","):
        label = " ".join(raw.split())
        if label and label.casefold() not in seen:
            seen.add(label.casefold())
            labels.append(label)
    if len(labels) > MAX_EXTRA_FIELDS:
        raise ValueError(f"At most {MAX_EXTRA_FIELDS} extra fields.")
    if any(len(label) > MAX_LABEL for label in labels):
        raise ValueError(f"A field label may have at most {MAX_LABEL} characters.")
    return labels


def set_registration_fields(labels: list[str]) -> None:
    write_setting(REGISTRATION_FIELDS, labels)


def register_person(name: str, email: str, group: str | None, consent: bool, extra: dict | None = None) -> Person:
    """A new person with a new card. One e-mail may register several people (a parent, each child); the same
    child registered twice is flagged for an admin to merge (person_records.likely_duplicates). So a known
    e-mail gets the same answer as a new one, and knowing an address shows nobody's card."""
    if not registration_is_open():
        raise RegistrationClosed("Registration is closed.")
    person = Person(
        code=new_code(),
        name=name.strip(),
        email=normalize_email(email),
        group_name=(group or "").strip() or None,
        consent=consent,
        source=PersonSource.REGISTERED,
        extra=extra or {},
    )
    db.session.add(person)
    db.session.flush()
    return person


def shared_device_mode() -> bool:
    """A kiosk where one person registers after another: each card is shown once, then forgotten."""
    return bool(read_setting(SHARED_DEVICE, False))


def set_shared_device_mode(on: bool) -> None:
    write_setting(SHARED_DEVICE, on)


def count_registration(ip: str, per_address: int, overall: int) -> None:
    buckets = {f"register:{ip[:45]}": per_address, "register:*": overall}
    spend(buckets, RATE_WINDOW, "Many people are registering right now: please try again in a minute.")


def claim_submission(key: str) -> RegistrationSubmission | None:
    """The record of this form's idempotency key, claimed by this post (None without a usable key)."""
    if not key or len(key) > MAX_KEY:
        return None
    upsert(RegistrationSubmission, {"key_hash": token_digest(key)}, {"posted_at": utcnow()})
    return db.session.get(RegistrationSubmission, token_digest(key), populate_existing=True)


def submit_registration(form: dict, key: str, ip: str, per_address: int, overall: int) -> Registration:
    """One posted registration form: the same key posted again soon answers as the first post did (a double
    click, a retry after a dropped connection); any other post registers a person."""
    once = shared_device_mode()
    count_registration(ip, per_address, overall)  # replays count too: a refused post has written nothing
    submission = claim_submission(key)
    fresh = submission is not None and submission.created_at >= utcnow() - REPLAY_WINDOW
    if submission is not None and submission.person_id is not None and fresh:
        person = db.session.get(Person, submission.person_id)
        return Registration(person, grant_card(person, once))
    person = register_person(form["name"], form["email"], form["group"], form["consent"], form["extra"])
    outbox.queue_card(person)
    if submission is not None:
        submission.person_id = person.id
    return Registration(person, grant_card(person, once))


def send_cards_again(email: str, ip: str) -> None:
    """Send me my cards again: a link to the family's cards goes to a registered address. Whether the
    address is known changes nothing the asker sees: the limits are counted first, for any address, and
    the answer is the same."""
    email = normalize_email(email)
    refusal = "Many requests right now: please try again later."
    spend({f"again:{ip[:45]}": CARDS_AGAIN_PER_ADDRESS, "again:*": CARDS_AGAIN_OVERALL}, RATE_WINDOW, refusal)
    # Keyed by the address's hash: the table of counts holds no e-mail addresses.
    spend({f"again-to:{token_digest(email)[:40]}": CARDS_AGAIN_PER_EMAIL_PER_HOUR}, timedelta(hours=1), refusal)
    if family := family_of(email):
        outbox.queue_family_link(family[0])


def open_family_link(token: str, ip: str) -> list[tuple[Person, str]]:
    """families.open_link, counted per address before the token is looked up (the limit is the same for a
    good and a made-up token)."""
    refusal = "Too many links opened from here: please try again in a minute."
    spend({f"family:{ip[:45]}": FAMILY_LINK_OPENS_PER_ADDRESS}, RATE_WINDOW, refusal)
    return open_link(token)
