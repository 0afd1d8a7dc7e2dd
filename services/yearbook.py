"""For the school: each person's yearbook portrait, a zip per group (class), and the yearbook package
(engine.yearbook's INDEX.TXT beside an IMAGES folder, one portrait per person).

A person's group (Person.group_name) is their class: the package's Home Room. The portrait is the photo an
admin picked in review while it is still deliverable to that person, else the first deliverable photo after
the card in shooting order.
"""

import logging
import re
import shutil
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, func, select

from data import storage
from data.extensions import db
from data.models import Person, Photo, photo_person
from engine import yearbook
from services.export import deliverable, deliverable_query, export_names, folder_name

log = logging.getLogger(__name__)

NO_GROUP = ""  # people without a group are listed, zipped and indexed together under this key
# Roster (or registration form) columns that fill the index's other columns, by lower-case header.
EXTRA_COLUMNS = {
    "grade": "grade",
    "period": "period",
    "teacher": "teacher",
    "teacher name": "teacher",
    "track": "track",
    "department": "department",
    "title": "title",
}

# (data, name in the package): data is a stored file's path or, for INDEX.TXT, the bytes themselves.
Entry = tuple[Path | bytes, str]


@dataclass(frozen=True)
class Portrait:
    person: Person
    photo: Photo | None  # None: the person has no photo that could be a portrait
    picked: bool  # the admin's pick, not the default


@dataclass(frozen=True)
class GroupSummary:
    name: str
    people: int
    photos: int
    missing: list[Person]  # no portrait: nobody to show in the yearbook


def group_of(person: Person) -> str:
    return (person.group_name or "").strip()


def people_in(group: str | None) -> list[Person]:
    """Everyone (group None) or one group's people, by group, then name."""
    people = db.session.scalars(select(Person).order_by(Person.group_name.asc().nulls_last(), Person.name, Person.code))
    return [p for p in people if group is None or group_of(p) == group]


def photos_by_person(people: list[Person], rule: ColumnElement[bool]) -> dict[int, list[Photo]]:
    """Each person's photos that meet `rule`, in shooting order; one query for them all."""
    found: dict[int, list[Photo]] = defaultdict(list)
    rows = db.session.execute(
        select(photo_person.c.person_id, Photo)
        .join(Photo, Photo.id == photo_person.c.photo_id)
        .where(rule, photo_person.c.person_id.in_([p.id for p in people]))
        .order_by(photo_person.c.person_id, Photo.captured_at, Photo.id)
    ).tuples()
    for person_id, photo in rows:
        found[person_id].append(photo)
    return found


def portrait_rule() -> ColumnElement[bool]:
    """What may be a portrait: a photo delivered to the person, never their card."""
    return deliverable(include_cards=False)


def choose(person: Person, candidates: list[Photo]) -> Portrait:
    picked = next((p for p in candidates if p.id == person.portrait_photo_id), None)
    return Portrait(person, picked or (candidates[0] if candidates else None), picked is not None)


def portraits(people: list[Person]) -> list[Portrait]:
    candidates = photos_by_person(people, portrait_rule())
    return [choose(person, candidates.get(person.id, [])) for person in people]


def portrait_options(person: Person) -> tuple[Portrait, set[int]]:
    """The person's portrait and the ids of every photo that could be it, for their review page."""
    candidates = photos_by_person([person], portrait_rule()).get(person.id, [])
    return choose(person, candidates), {photo.id for photo in candidates}


def is_portrait_candidate(photo_id: int, person_id: int) -> bool:
    query = deliverable_query(person_id, include_cards=False).where(Photo.id == photo_id).limit(1)
    return db.session.scalar(query) is not None


def group_summaries() -> list[GroupSummary]:
    """Each group with its people, their photos and who has no portrait; the no-group bucket last."""
    people = people_in(None)
    photos = dict(
        db.session.execute(
            select(photo_person.c.person_id, func.count())
            .join(Photo, Photo.id == photo_person.c.photo_id)
            .where(deliverable())
            .group_by(photo_person.c.person_id)
        ).all()
    )
    by_group: dict[str, list[Portrait]] = defaultdict(list)
    for portrait in portraits(people):
        by_group[group_of(portrait.person)].append(portrait)
    return [
        GroupSummary(
            name,
            len(members),
            sum(photos.get(p.person.id, 0) for p in members),
            [p.person for p in members if p.photo is None],
        )
        for name, members in sorted(by_group.items(), key=lambda item: (item[0] == NO_GROUP, item[0].casefold()))
    ]


def stored(photo: Photo) -> Path | None:
    """The photo's original on disk; None (and a warning) if it has gone, so one lost file cannot fail a
    whole download or leave the index naming an image the package lacks."""
    path = storage.original_path(photo.content_hash, photo.extension)
    if path.is_file():
        return path
    log.warning("original of photo %s (%s) is missing; left out", photo.id, photo.original_name)
    return None


def class_files(group: str) -> list[Entry]:
    """The group's photos as delivered, a folder per person named as in the export."""
    people = people_in(group)
    photos = photos_by_person(people, deliverable())
    return [
        (path, f"{folder_name(person)}/{name}")
        for person in people
        for name, photo in export_names(photos.get(person.id, [])).items()
        if (path := stored(photo)) is not None
    ]


def index_row(portrait: Portrait, image_file: str) -> yearbook.IndexRow:
    person = portrait.person
    extra = {str(k).strip().lower(): str(v) for k, v in (person.extra or {}).items()}
    first, last = yearbook.split_name(person.name)
    columns = {field: extra[key] for key, field in EXTRA_COLUMNS.items() if extra.get(key)}
    return yearbook.IndexRow(
        image_file=image_file,
        first_name=extra.get("first name") or first,
        last_name=extra.get("last name") or last,
        student_id=person.code,
        home_room=group_of(person),
        **columns,
    )


def yearbook_files(group: str | None = None, volume: str = yearbook.DEFAULT_VOLUME) -> list[Entry]:
    """INDEX.TXT and one portrait per person (everyone, or one group) in the IMAGES folder."""
    rows, images, taken = [], [], set()
    for portrait in portraits(people_in(group)):
        path = stored(portrait.photo) if portrait.photo is not None else None
        if path is None:
            continue
        name = yearbook.image_file_name(portrait.person.code, portrait.photo.extension)
        if name.lower() in taken:  # codes differing only in case or in unsafe characters; Windows folds case
            name = yearbook.image_file_name(f"{portrait.person.code}-{portrait.person.id}", portrait.photo.extension)
        taken.add(name.lower())
        rows.append(index_row(portrait, name))
        images.append((path, f"{yearbook.IMAGE_FOLDER}/{name}"))
    return [(yearbook.index_txt(rows, volume), yearbook.INDEX_NAME), *images]


def download_name(kind: str, group: str | None) -> str:
    """An ASCII file name for the browser: "class-5b.zip", "yearbook.zip", "yearbook-5b.zip"."""
    if group is None:
        return f"{kind}.zip"
    ascii_name = unicodedata.normalize("NFKD", group).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower() or "no-group"
    return f"{kind}-{slug}.zip"


class PackageError(RuntimeError):
    pass


def write_package(out_dir: Path, files: list[Entry]) -> int:
    """Write the package into a new or empty folder; return how many files were written.

    Never overwrites: a folder with anything in it is refused, and each file is created exclusively (a file
    or link planted meanwhile is refused, not followed). Every name must stay inside the folder."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PackageError(f"{out_dir} exists and is not an empty folder; name a new one")
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    for data, name in files:
        target = root / name
        if not target.resolve().is_relative_to(root) or target.resolve() == root:
            raise PackageError(f"refused {name!r}: it would land outside {out_dir}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "xb") as out:
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    with open(data, "rb") as source:
                        shutil.copyfileobj(source, out)
        except FileExistsError:
            raise PackageError(f"refused to overwrite {target}") from None
    return len(files)
