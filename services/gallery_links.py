"""Private gallery links: made, found, revoked, and the one a family's "photos ready" e-mail carries.

A link's token is an HMAC of a random seed under the app's secret key. The database keeps the seed and the
token's hash, never the token: the hash finds the link, and only the running app (which holds the key) can
put the same link into the next e-mail or show it to an admin. A copy of the database opens no gallery.
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, select, update

from data.extensions import db
from data.models import GalleryLink, Person, utcnow
from services.audit import audit
from services.tokens import token_digest

URL_PREFIX = "/gallery"
# What token_for makes: 32 bytes of HMAC-SHA256, base64url without padding.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


class GalleryLinkError(ValueError):
    """An admin's request that cannot be done (no such family or person); nothing changed."""


def token_for(seed: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    mac = hmac.new(key, f"gallery-link:{seed}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def link_path(link: GalleryLink) -> str | None:
    """The link's address on this site; None for a link made under another secret key (it still opens,
    but this app can no longer write it out)."""
    token = token_for(link.seed)
    return f"{URL_PREFIX}/{token}" if token_digest(token) == link.token_hash else None


def gallery_url(link: GalleryLink) -> str | None:
    """The link as people outside reach it; None while INTAKE_PUBLIC_URL is unset (no address to give)."""
    public, path = current_app.config["PUBLIC_URL"], link_path(link)
    return f"{public}{path}" if public and path else None


def is_live(now: datetime | None = None) -> ColumnElement[bool]:
    now = now or utcnow()
    return and_(GalleryLink.revoked_at.is_(None), GalleryLink.expires_at > now)


def find_live(token: str) -> GalleryLink | None:
    """The live link this token opens; None for anything else (unknown, revoked, expired, malformed)."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    return db.session.scalar(select(GalleryLink).where(GalleryLink.token_hash == token_digest(token), is_live()))


def owned_by(email: str | None, person_id: int | None) -> ColumnElement[bool]:
    if email is not None:
        return GalleryLink.family_email == email
    return GalleryLink.person_id == person_id


def new_link(email: str | None = None, person_id: int | None = None, user_id: int | None = None) -> GalleryLink:
    """A new link for a family (by e-mail) or one person; the owner's live links end with it, so each owner
    has one live link at a time."""
    now = utcnow()
    db.session.execute(update(GalleryLink).where(owned_by(email, person_id), is_live(now)).values(revoked_at=now))
    seed = secrets.token_urlsafe(32)
    link = GalleryLink(
        token_hash=token_digest(token_for(seed)),
        seed=seed,
        family_email=email,
        person_id=person_id,
        created_by_id=user_id,
        created_at=now,
        expires_at=now + timedelta(days=current_app.config["GALLERY_DAYS"]),
    )
    db.session.add(link)
    db.session.flush()
    if user_id is not None:
        audit(user_id, "create", "gallery_link", link.id, None, {"family": email, "person_id": person_id})
    return link


def latest_link(email: str | None, person_id: int | None = None) -> GalleryLink | None:
    return db.session.scalar(
        select(GalleryLink).where(owned_by(email, person_id)).order_by(GalleryLink.id.desc()).limit(1)
    )


def family_link_for_mail(person_id: int) -> str | None:
    """The family's gallery address for a "photos ready" e-mail: the live link again (its time restarts,
    since the e-mail promises it), or a new one when there is none or it expired. A link an admin revoked
    is not replaced here: that family gets a link again only when an admin makes a new one."""
    person = db.session.get(Person, person_id)
    if person is None or not person.email or not current_app.config["PUBLIC_URL"]:
        return None
    link = latest_link(person.email)
    if link is not None and link.revoked_at is not None:
        return None
    # A link made under another secret key can no longer be written out: the e-mail gets a new one.
    if link is None or link.expires_at <= utcnow() or link_path(link) is None:
        link = new_link(email=person.email)
    link.expires_at = max(link.expires_at, utcnow() + timedelta(days=current_app.config["GALLERY_DAYS"]))
    return gallery_url(link)


def revoke(link_id: int, user_id: int) -> GalleryLink:
    """End a link now; the next request with it gets the same 404 as any unknown link."""
    link = db.session.get(GalleryLink, link_id)
    if link is None:
        raise GalleryLinkError("There is no such gallery link.")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        audit(user_id, "revoke", "gallery_link", link.id, None, {"revoked_at": link.revoked_at.isoformat()})
    return link


def renew(link_id: int, user_id: int) -> GalleryLink:
    """A new link for the owner of this one (which ends, if it was still live)."""
    link = db.session.get(GalleryLink, link_id)
    if link is None:
        raise GalleryLinkError("There is no such gallery link.")
    return new_link(link.family_email, link.person_id, user_id)


def new_link_for(owner: str, user_id: int) -> GalleryLink:
    """An admin's "new link": a family by e-mail address, or one person by card code."""
    owner = owner.strip()
    if "@" in owner:
        email = owner.lower()
        if db.session.scalar(select(Person.id).where(Person.email == email).limit(1)) is None:
            raise GalleryLinkError(f"Nobody is registered with {email}.")
        return new_link(email=email, user_id=user_id)
    person_id = db.session.scalar(select(Person.id).where(Person.code == owner))
    if person_id is None:
        raise GalleryLinkError(f"There is no person with the code {owner!r}.")
    return new_link(person_id=person_id, user_id=user_id)


@dataclass(frozen=True)
class LinkRow:
    """One link as the admin page lists it."""

    id: int
    family_email: str | None
    names: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    views: int
    downloads: int
    first_opened_at: datetime | None
    last_opened_at: datetime | None
    live: bool
    path: str | None  # a live link's address, to show (None: made under another secret key)

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "live" if self.live else "expired"


def family_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for email, name in db.session.execute(
        select(Person.email, Person.name).where(Person.email.is_not(None)).order_by(Person.name, Person.id)
    ):
        names.setdefault(email, []).append(name)
    return names


def admin_rows() -> list[LinkRow]:
    """Every link, newest first, with whom it shows and what it was used for."""
    families = family_names()
    people = dict(db.session.execute(select(Person.id, Person.name)).tuples().all())
    now = utcnow()
    rows = []
    for link in db.session.scalars(select(GalleryLink).order_by(GalleryLink.id.desc())):
        live = link.revoked_at is None and link.expires_at > now
        rows.append(
            LinkRow(
                link.id,
                link.family_email,
                families.get(link.family_email, []) if link.family_email else [people.get(link.person_id, "?")],
                link.created_at,
                link.expires_at,
                link.revoked_at,
                link.views,
                link.downloads,
                link.first_opened_at,
                link.last_opened_at,
                live,
                link_path(link) if live else None,
            )
        )
    return rows
