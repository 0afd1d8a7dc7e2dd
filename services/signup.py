"""Public registration: a person signs up and gets a card code; what the form asks is an admin setting."""

import secrets

from sqlalchemy import func, select

from data.extensions import db
from data.models import Person
from data.states import PersonSource
from data.stored_settings import read_setting, write_setting

# Crockford's base32 without I, L, O, U: nothing to misread when a code is typed from a card.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8  # 32**8 ≈ 10**12: short enough to type, too many to guess.
REGISTRATION_OPEN = "registration_open"
REGISTRATION_FIELDS = "registration_fields"
MAX_EXTRA_FIELDS = 10
MAX_LABEL = 60


class RegistrationClosed(Exception):
    pass


def new_code() -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not db.session.scalar(select(Person.id).where(Person.code == code)):
            return code


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_by_email(email: str) -> Person | None:
    return db.session.scalar(select(Person).where(func.lower(Person.email) == normalize_email(email)))


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


def register_person(
    name: str, email: str, group: str | None, consent: bool, extra: dict | None = None
) -> tuple[Person, bool]:
    """Return (person, created). The same email registers once: the existing card is offered back."""
    if not registration_is_open():
        raise RegistrationClosed("Registration is closed.")
    existing = find_by_email(email)
    if existing is not None:
        return existing, False
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
    return person, True
