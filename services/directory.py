"""People as staff see them: search, who still has no photos, badges to print."""

import itertools
import re

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import ColumnElement, Select, exists, func, select

from data.extensions import db
from data.models import Person, PersonAlias, Photo, photo_person
from services.export import deliverable

PER_PAGE = 100
MAX_PAGE = 1_000_000  # a larger ?page= would overflow the database's OFFSET; past the end is empty anyway
BADGES_PER_SHEET = 12  # 3 x 4, on A4 and on Letter alike


def group_names() -> list[str]:
    return list(
        db.session.scalars(
            select(Person.group_name).where(Person.group_name.is_not(None)).distinct().order_by(Person.group_name)
        )
    )


def people_query(search: str = "", group: str = "") -> Select:
    """People whose name or code contains `search`, in `group` if given; by group, then name."""
    query = select(Person).order_by(Person.group_name.asc().nulls_last(), Person.name, Person.code)
    if search:
        query = query.where(
            Person.name.icontains(search, autoescape=True) | Person.code.icontains(search, autoescape=True)
        )
    if group:
        query = query.where(Person.group_name == group)
    return query


def search_people(search: str, group: str, page: int) -> Pagination:
    page = min(max(page, 1), MAX_PAGE)
    return db.paginate(people_query(search, group), page=page, per_page=PER_PAGE, error_out=False)


def suggestions(search: str, limit: int = 20) -> list[Person]:
    """People to offer while someone types a name or code."""
    return list(db.session.scalars(people_query(search).limit(limit)))


def people_in(group: str = "") -> list[Person]:
    return list(db.session.scalars(people_query(group=group)))


def has_photos() -> ColumnElement[bool]:
    """The person has a photo to deliver (a card, even where cards are exported, is not a portrait)."""
    return exists().where(
        photo_person.c.person_id == Person.id, photo_person.c.photo_id == Photo.id, deliverable(include_cards=False)
    )


def missing_people(group: str = "") -> list[Person]:
    """People without a photo to deliver. A card is never a portrait of its person, even where cards are
    exported, so a card shot alone still leaves them missing."""
    return list(db.session.scalars(people_query(group=group).where(~has_photos())))


def badge_sheets(people: list[Person], per_sheet: int = BADGES_PER_SHEET) -> list[list[Person]]:
    """Print sheets for people sorted by group; each group starts a new sheet, so a class's badges
    can be cut and handed out without sorting."""
    sheets = []
    for _, members in itertools.groupby(people, key=lambda person: person.group_name):
        members = list(members)
        sheets += [members[start : start + per_sheet] for start in range(0, len(members), per_sheet)]
    return sheets


def person_for_code(code: str) -> Person | None:
    """A card code resolves to its person, directly or through a linked alias."""
    person = db.session.scalar(select(Person).where(Person.code == code))
    if person is not None:
        return person
    alias = db.session.scalar(select(PersonAlias).where(PersonAlias.code == code))
    return alias.person if alias else None


class UnknownPerson(LookupError):
    """What someone typed names nobody, or several people: the message says which."""


# What the review pickers offer: "Hana Bakker (HB7K2)".
PICKED = re.compile(r"^(?P<name>.*)\((?P<code>[^()]+)\)\s*$")


def resolve_person(text: str) -> Person:
    """The person someone picked or typed: a code, a suggestion "Name (CODE)", or a name that only one
    person has."""
    text = text.strip()
    if not text:
        raise UnknownPerson("Type a person's name or code first.")
    if picked := PICKED.match(text):
        text = picked["code"].strip()
    if (person := person_for_code(text)) is not None:
        return person
    named = list(db.session.scalars(select(Person).where(func.lower(Person.name) == text.lower()).limit(2)))
    if len(named) > 1:
        raise UnknownPerson(f"Several people are called {text!r}: pick one from the suggestions or type a code.")
    if not named:
        raise UnknownPerson(f"Nobody is called or has the code {text!r}.")
    return named[0]
