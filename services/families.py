"""Who may see which cards. A family is everyone registered under one e-mail address. A browser holds card
grants (opaque tokens in its session) for the cards it registered, or for a family whose e-mailed link it
opened; the link's token is kept only as a hash, ends after a set time and can be revoked."""

import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, or_, select, update

from data.extensions import db
from data.models import CardGrant, FamilyLink, Person, utcnow
from services.tokens import token_digest


def new_token() -> str:
    return secrets.token_urlsafe(24)


def grant_card(person: Person, once: bool, link: FamilyLink | None = None) -> str:
    """An opaque token for this browser's session: the right to see this person's card."""
    token = new_token()
    db.session.add(
        CardGrant(
            token_hash=token_digest(token), person_id=person.id, once=once, family_link_id=link.id if link else None
        )
    )
    return token


def live_link(now) -> ColumnElement[bool]:
    return and_(FamilyLink.revoked_at.is_(None), FamilyLink.expires_at > now)


def live_grants(tokens: list[str]):
    """The grants among `tokens` that still show their card, each with its person."""
    now = utcnow()
    linked = select(FamilyLink.id).where(FamilyLink.id == CardGrant.family_link_id, live_link(now))
    return (
        select(CardGrant, Person)
        .join(Person, Person.id == CardGrant.person_id)
        .where(
            CardGrant.token_hash.in_([token_digest(t) for t in tokens]),
            CardGrant.shown_at.is_(None) | CardGrant.once.is_(False),
            or_(CardGrant.family_link_id.is_(None), linked.exists()),
        )
    )


def granted_card(tokens: list[str], code: str) -> CardGrant | None:
    """The live grant among `tokens` for the person with this code, if any."""
    if not tokens:
        return None
    return db.session.scalar(live_grants(tokens).where(Person.code == code).limit(1))


def card_shown(grant: CardGrant) -> None:
    """A shared device shows each card once: the grant is spent by showing it."""
    if grant.once:
        grant.shown_at = utcnow()


def family_cards(tokens: list[str], person: Person) -> list[Person]:
    """The cards of `person`'s family that this browser holds lasting grants for, `person` first, then the
    others in the order they registered. A shared device's one-time grants show no family: the next family
    at the kiosk must not see this one's cards."""
    if not tokens or not person.email:
        return [person]
    held = live_grants(tokens).with_only_columns(CardGrant.person_id).where(CardGrant.once.is_(False))
    others = db.session.scalars(
        select(Person)
        .where(Person.id.in_(held), Person.email == person.email, Person.id != person.id)
        .order_by(Person.id)
    )
    return [person, *others]


def new_link(email: str) -> str:
    """A new link token to the family of `email`, valid for INTAKE_FAMILY_LINK_DAYS."""
    token = new_token()
    days = current_app.config["FAMILY_LINK_DAYS"]
    db.session.add(FamilyLink(token_hash=token_digest(token), email=email, expires_at=utcnow() + timedelta(days=days)))
    db.session.flush()
    return token


def family_of(email: str) -> list[Person]:
    return list(db.session.scalars(select(Person).where(Person.email == email).order_by(Person.id)))


def open_link(token: str) -> list[tuple[Person, str]]:
    """Each person of the link's family with a new grant bound to the link; empty when the token is unknown,
    expired or revoked (all alike to the visitor)."""
    link = db.session.scalar(
        select(FamilyLink).where(FamilyLink.token_hash == token_digest(token), live_link(utcnow()))
    )
    if link is None:
        return []
    return [(person, grant_card(person, once=False, link=link)) for person in family_of(link.email)]


def revoke_links(email: str) -> int:
    """End every live link to this family at once (and every card a link showed); returns how many."""
    now = utcnow()
    result = db.session.execute(
        update(FamilyLink).where(FamilyLink.email == email, live_link(now)).values(revoked_at=now)
    )
    return result.rowcount
