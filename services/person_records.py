"""Changing people's records: edit, merge one child registered twice, delete; and spotting likely twins."""

import itertools
from collections import defaultdict

from sqlalchemy import select, update

from data.extensions import db
from data.models import Person, PersonAlias, Photo, ReviewCorrection, photo_person
from services import regrouping
from services.audit import audit
from services.directory import UnknownPerson, resolve_person

EDITABLE = ("name", "email", "group_name")


class PersonError(ValueError):
    pass


def record(person: Person) -> dict:
    return {"code": person.code, "name": person.name, "email": person.email, "group": person.group_name}


def audit_person(user_id: int | None, action: str, person_id: int, before, after) -> None:
    audit(user_id, action, "person", person_id, before, after)


def edit_person(person: Person, name: str, email: str, group: str, user_id: int | None) -> None:
    name = name.strip()
    if not name:
        raise PersonError("A person needs a name.")
    before = record(person)
    person.name, person.email, person.group_name = name[:200], email.strip()[:320] or None, group.strip()[:200] or None
    regrouping.mark_for_delivery({person.id})  # the export folder carries the name
    audit_person(user_id, "edit", person.id, before, record(person))


def batches_of(person: Person) -> set[int]:
    return set(
        db.session.scalars(
            select(Photo.batch_id)
            .join(photo_person, photo_person.c.photo_id == Photo.id)
            .where(photo_person.c.person_id == person.id)
        )
    )


def merge_people(merged: Person, kept_text: str, user_id: int | None) -> Person:
    """The same child registered twice: `merged`'s photos, card codes and aliases become the kept person's,
    and `merged` is deleted. Its code stays valid as an alias, so cards already printed still work."""
    try:
        kept = resolve_person(kept_text)
    except UnknownPerson as error:
        raise PersonError(str(error)) from None
    if kept.id == merged.id:
        raise PersonError("A person cannot be merged into themselves: pick the other record.")
    before = {"kept": record(kept), "merged": record(merged), "aliases": [a.code for a in merged.aliases]}
    batch_ids = batches_of(merged)
    for alias in list(merged.aliases):
        alias.person = kept
    db.session.execute(update(ReviewCorrection).where(ReviewCorrection.code == merged.code).values(code=kept.code))
    kept.email = kept.email or merged.email
    kept.group_name = kept.group_name or merged.group_name
    kept.extra = {**(merged.extra or {}), **(kept.extra or {})}
    code = merged.code
    remove(merged)
    db.session.add(PersonAlias(code=code, person_id=kept.id))
    db.session.flush()
    for batch_id in sorted(batch_ids | set(regrouping.batches_waiting_for({code}))):
        regrouping.regroup_batch(batch_id)
    regrouping.mark_for_delivery({kept.id})
    audit_person(user_id, "merge", kept.id, before, {"kept": record(kept), "aliases": [a.code for a in kept.aliases]})
    return kept


def remove(person: Person) -> None:
    """Delete the row; the database drops its photo links and Drive items (ON DELETE CASCADE), so loaded
    photos are expired rather than left holding the deleted person."""
    db.session.delete(person)
    db.session.flush()
    db.session.expire_all()


def delete_person(person: Person, user_id: int | None) -> None:
    """Remove a person; their photos go back to review (their card code is unknown from now on)."""
    batch_ids = batches_of(person)
    audit_person(user_id, "delete", person.id, record(person), None)
    for alias in list(person.aliases):
        db.session.delete(alias)
    remove(person)
    for batch_id in sorted(batch_ids):
        regrouping.regroup_batch(batch_id)


def same_child(a: Person, b: Person) -> str | None:
    """Why two records with the same name look like one child, or None."""
    if a.email and b.email and a.email.lower() == b.email.lower():
        return "same name under one e-mail address"
    if a.group_name and a.group_name == b.group_name:
        return f"same name in group {a.group_name}"
    if a.email and b.email and a.email.lower() != b.email.lower():
        return "same name under two e-mail addresses"
    if not a.group_name and not b.group_name:
        return "same name, no group"
    return None


def likely_duplicates() -> list[tuple[Person, Person, str]]:
    """Pairs of records that are probably one child registered twice, with the reason."""
    by_name = defaultdict(list)
    for person in db.session.scalars(select(Person).order_by(Person.id)):
        by_name[" ".join(person.name.lower().split())].append(person)
    return [
        (a, b, reason)
        for people in by_name.values()
        for a, b in itertools.combinations(people, 2)
        if (reason := same_child(a, b))
    ]
