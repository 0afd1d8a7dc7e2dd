"""What a gallery link shows: exactly the photos export delivers to its people, looked up on every request
(a photo moved in review leaves the gallery at once), behind a per-address limit; views and downloads
counted on the link."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path

from flask import current_app
from sqlalchemy import func, or_, select, update

from data import storage
from data.extensions import db
from data.models import GalleryLink, Person, Photo, utcnow
from engine import renditions, scanning
from services import export, gallery_links, rate_limits

RATE_WINDOW = timedelta(minutes=1)


class Use(Enum):
    """What a request does with a link: how it is counted (an unknown link is always counted as a use)."""

    VIEW = "view"  # a page: counted against the limit and as a view
    DOWNLOAD = "download"  # the zip or one original as a file: counted against the limit and as a download
    EMBED = "embed"  # a picture inside a page already counted: checked against the limit only


@dataclass(frozen=True)
class GalleryPhoto:
    id: int
    name: str  # its name in the export folder and the zip
    size: int
    original: Path


@dataclass(frozen=True)
class Section:
    """One person's photos."""

    name: str
    folder: str  # their folder in the zip, as in the export
    photos: list[GalleryPhoto]


@dataclass(frozen=True)
class Gallery:
    names: list[str]
    expires_at: datetime
    sections: list[Section]

    @property
    def count(self) -> int:
        return sum(len(section.photos) for section in self.sections)

    @property
    def size(self) -> int:
        return sum(photo.size for section in self.sections for photo in section.photos)

    def locate(self, photo_id: int) -> "Place | None":
        flat = [(section, index, photo) for section in self.sections for index, photo in enumerate(section.photos)]
        for at, (section, index, photo) in enumerate(flat):
            if photo.id == photo_id:
                before = flat[at - 1][2] if at > 0 else None
                after = flat[at + 1][2] if at + 1 < len(flat) else None
                return Place(section, index, photo, before, after)
        return None


@dataclass(frozen=True)
class Place:
    """Where one photo is in a gallery: its person's section, its index there, and its neighbours in the
    whole gallery (for previous and next)."""

    section: Section
    index: int
    photo: GalleryPhoto
    before: GalleryPhoto | None
    after: GalleryPhoto | None


def admit(token: str, ip: str, use: Use) -> GalleryLink | None:
    """The live link for this token, the request counted; None for any token that opens nothing. Over the
    limit, nothing is looked up (rate_limits.RateLimited). A picture inside a page is checked, not counted."""
    bucket = f"gallery:{ip[:45]}"
    rate_limits.check(
        {bucket: current_app.config["GALLERY_PER_ADDRESS_PER_MINUTE"]},
        RATE_WINDOW,
        "Too many requests from your address: please try again in a minute.",
    )
    link = gallery_links.find_live(token)
    if link is None or use is not Use.EMBED:
        rate_limits.record([bucket], RATE_WINDOW)
    if link is not None and use is not Use.EMBED:
        count(link.id, use)
    return link


def count(link_id: int, use: Use) -> None:
    """One statement per use, so that parallel requests each count (no read-then-write)."""
    now = utcnow()
    if use is Use.VIEW:
        values = {
            "views": GalleryLink.views + 1,
            "last_opened_at": now,
            "first_opened_at": func.coalesce(GalleryLink.first_opened_at, now),
        }
    else:
        values = {"downloads": GalleryLink.downloads + 1}
    db.session.execute(update(GalleryLink).where(GalleryLink.id == link_id).values(**values))


def people_of(link: GalleryLink) -> list[Person]:
    if link.person_id is not None:
        return [db.session.get(Person, link.person_id)]
    return list(db.session.scalars(select(Person).where(Person.email == link.family_email).order_by(Person.name)))


def section_of(person: Person) -> Section:
    photos = export.deliverable_photos(person.id)
    name_of = {photo.id: name for name, photo in export.export_names(photos).items()}
    return Section(
        person.name,
        export.folder_name(person),
        [GalleryPhoto(p.id, name_of[p.id], p.size, storage.original_path(p.content_hash, p.extension)) for p in photos],
    )


def gallery_of(link: GalleryLink) -> Gallery:
    people = people_of(link)
    return Gallery([person.name for person in people], link.expires_at, [section_of(person) for person in people])


def open_gallery(token: str, ip: str) -> Gallery | None:
    """A gallery page (the grid, or one photo large): counted as a view."""
    link = admit(token, ip, Use.VIEW)
    return gallery_of(link) if link is not None else None


def zip_entries(token: str, ip: str) -> list[tuple[Path, str]] | None:
    """Every photo of the gallery as (original, name in the zip): one folder per person, named as the
    export names it. Counted as a download."""
    link = admit(token, ip, Use.DOWNLOAD)
    if link is None:
        return None
    return [
        (photo.original, f"{section.folder}/{photo.name}")
        for section in gallery_of(link).sections
        for photo in section.photos
    ]


def download_original(token: str, ip: str, photo_id: int) -> GalleryPhoto | None:
    """One original as a file, under its gallery name. Counted as a download."""
    link = admit(token, ip, Use.DOWNLOAD)
    place = gallery_of(link).locate(photo_id) if link is not None else None
    return place.photo if place is not None else None


class Picture(Enum):
    THUMBNAIL = "thumbnail"
    SCREEN = "screen"  # the large view's copy, made on first request
    ORIGINAL = "original"


def picture(token: str, ip: str, photo_id: int, kind: Picture) -> Path | None:
    """A picture shown inside a gallery page; None unless the link is live and the photo is delivered to
    one of its people now (or its file is gone)."""
    link = admit(token, ip, Use.EMBED)
    if link is None or not any(export.is_deliverable_to(photo_id, person.id) for person in people_of(link)):
        return None
    photo = db.session.get(Photo, photo_id)
    original = storage.original_path(photo.content_hash, photo.extension)
    if kind is Picture.THUMBNAIL:
        path = storage.thumbnail_path(photo.content_hash)
    elif kind is Picture.SCREEN:
        path = storage.screen_copy_path(photo.content_hash)
        if not path.exists() and original.exists():
            try:
                renditions.screen_copy(scanning.open_image(original.read_bytes()), path)
            except (scanning.BadImage, OSError):  # OSError: what Pillow raises on a file it cannot read
                return None  # a file the scan already refused has no large view; its original stays downloadable
    else:
        path = original
    return path if path.exists() else None


def opened_at_by_person() -> dict[int, datetime]:
    """When each person's photos were first seen in a gallery (theirs, or their family's), for the dashboard."""
    covers = or_(GalleryLink.person_id == Person.id, GalleryLink.family_email == Person.email)
    rows = db.session.execute(
        select(Person.id, func.min(GalleryLink.first_opened_at))
        .join(GalleryLink, covers)
        .where(GalleryLink.first_opened_at.is_not(None))
        .group_by(Person.id)
    )
    return dict(rows.tuples().all())
