"""Where each person's photos have got to: exported, on Drive, e-mailed ("your photos are ready"), and
whether their gallery was opened. Only people with photos to deliver are listed."""

from dataclasses import dataclass
from datetime import datetime

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import ColumnElement, Select, and_, case, func, not_, or_, select, true

from data.extensions import db
from data.models import OutboxMessage, Person
from data.states import MailKind, MailState
from services import drive_sync, export, galleries, mail
from services.directory import MAX_PAGE, PER_PAGE, has_photos

# The filters the page offers, by the name in its address.
FILTERS = {
    "all": "Everyone with photos",
    "undelivered": "Not yet delivered",
    "not_exported": "Not exported",
    "not_on_drive": "Not on Drive",
    "not_emailed": "Not e-mailed",
}


@dataclass(frozen=True)
class DeliveryRow:
    """One person's delivery. `on_drive` is None while Drive is off; `email` is the latest "photos ready"
    message's state (None: none queued), `email_current` whether it was for the photos as they are now.
    `gallery_opened_at`: when their gallery (theirs or their family's) was first opened."""

    person_id: int
    code: str
    name: str
    group: str | None
    has_address: bool
    exported: bool
    on_drive: bool | None
    email: MailState | None
    email_current: bool
    gallery_opened_at: datetime | None
    arriving: bool  # more of their photos are still being uploaded: delivery waits for them


def latest_photos_ready():
    """Each person's newest "photos ready" version, as a subquery (person_id, version)."""
    return (
        select(OutboxMessage.person_id, func.max(OutboxMessage.version).label("version"))
        .where(OutboxMessage.kind == MailKind.PHOTOS_READY)
        .group_by(OutboxMessage.person_id)
        .subquery()
    )


@dataclass(frozen=True)
class Conditions:
    exported: ColumnElement[bool]
    on_drive: ColumnElement[bool]
    emailed: ColumnElement[bool]

    def delivered(self) -> ColumnElement[bool]:
        return and_(self.exported, self.on_drive, self.emailed)

    def by_filter(self, name: str) -> ColumnElement[bool]:
        return {
            "all": true(),
            "undelivered": not_(self.delivered()),
            "not_exported": not_(self.exported),
            "not_on_drive": not_(self.on_drive),
            "not_emailed": not_(self.emailed),
        }[name]


def drive_on() -> bool:
    return drive_sync.settings().is_configured()


def conditions() -> Conditions:
    """With Drive or e-mail off, that step counts as done: it is not what holds a delivery up."""
    current = Person.delivery_version
    mail_sent = and_(OutboxMessage.state == MailState.SENT, OutboxMessage.version == current)
    no_address = or_(Person.email.is_(None), Person.email == "")
    return Conditions(
        exported=Person.exported_version == current,
        on_drive=Person.synced_version == current if drive_on() else true(),
        emailed=or_(no_address, mail_sent) if mail.mail_enabled() else true(),
    )


def with_photos(query: Select) -> Select:
    """`query` over the people with photos, joined to their latest "photos ready" message."""
    latest = latest_photos_ready()
    return (
        query.select_from(Person)
        .outerjoin(latest, latest.c.person_id == Person.id)
        .outerjoin(
            OutboxMessage,
            and_(
                OutboxMessage.person_id == Person.id,
                OutboxMessage.kind == MailKind.PHOTOS_READY,
                OutboxMessage.version == latest.c.version,
            ),
        )
        .where(has_photos())
    )


def counts() -> dict[str, int]:
    """How many people with photos meet each filter."""
    met = conditions()
    sums = [func.coalesce(func.sum(case((met.by_filter(name), 1), else_=0)), 0) for name in FILTERS]
    return dict(zip(FILTERS, db.session.execute(with_photos(select(*sums))).one(), strict=True))


def delivery_rows(show: str, page: int) -> Pagination:
    """A page of the people matching the filter `show` (a FILTERS key), by group then name, as DeliveryRow
    items."""
    met = conditions()
    query = with_photos(select(Person)).where(met.by_filter(show))
    query = query.order_by(Person.group_name.asc().nulls_last(), Person.name, Person.code)
    result = db.paginate(query, page=min(max(page, 1), MAX_PAGE), per_page=PER_PAGE, error_out=False)
    email_current = OutboxMessage.version == Person.delivery_version
    states = with_photos(
        select(
            Person.id, met.exported, met.on_drive, OutboxMessage.state, email_current, Person.id.in_(export.arriving())
        )
    )
    found = {row[0]: row[1:] for row in db.session.execute(states.where(Person.id.in_([p.id for p in result.items])))}
    drive, opened = drive_on(), galleries.opened_at_by_person()
    result.items = [row(person, *found[person.id], drive, opened.get(person.id)) for person in result.items]
    return result


def row(
    person: Person, exported, on_drive, email, email_current, arriving, drive: bool, opened: datetime | None
) -> DeliveryRow:
    return DeliveryRow(
        person_id=person.id,
        code=person.code,
        name=person.name,
        group=person.group_name,
        has_address=bool(person.email),
        exported=bool(exported),
        on_drive=bool(on_drive) if drive else None,
        email=email,
        email_current=bool(email_current),
        gallery_opened_at=opened,
        arriving=bool(arriving),
    )
