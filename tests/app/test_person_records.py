"""Editing, merging and deleting people from the admin pages, each audited; likely duplicates flagged."""

import pytest
from sqlalchemy import select

from data.extensions import db
from data.models import AuditLog, Person, PersonAlias, Photo
from data.states import UserRole
from tests.support.factories import login, make_person, make_scanned_batch, make_user


@pytest.fixture
def admin(client):
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    return client


def people_of(photo_id: int) -> list[str]:
    db.session.rollback()  # the request committed in its own session
    return [p.code for p in db.session.get(Photo, photo_id).people]


def test_edit_changes_name_email_and_group(admin):
    """The edit form saves the new details; the code stays and the change is audited."""
    make_person("ANNA", "Anna", group="5A")
    response = admin.post("/people/ANNA/edit", data={"name": "Anna Berg", "email": "a@example.com", "group": "5B"})
    assert response.status_code == 303
    db.session.rollback()
    person = db.session.scalar(select(Person).where(Person.code == "ANNA"))
    assert (person.name, person.email, person.group_name) == ("Anna Berg", "a@example.com", "5B")
    assert db.session.scalar(select(AuditLog.action)) == "edit"


@pytest.mark.both_databases
def test_merge_moves_photos_aliases_and_card_codes(admin):
    """Merging a child registered twice: the merged record's photos, alias and card code lead to the kept one."""
    make_person("ANNA", "Anna", group="5A")
    make_person("ANNA2", "Anna", group="5A")
    batch_id, ids = make_scanned_batch([("card", "ANNA2"), ("photo",), ("card", "OLD"), ("photo",)])
    db.session.add(
        PersonAlias(code="OLD", person_id=db.session.scalar(select(Person.id).where(Person.code == "ANNA2")))
    )
    db.session.commit()
    assert admin.post("/people/ANNA2/merge", data={"into": "Anna (ANNA)"}).status_code == 303
    assert people_of(ids[1]) == ["ANNA"]
    assert db.session.scalar(select(Person).where(Person.code == "ANNA2")) is None
    aliases = set(db.session.scalars(select(PersonAlias.code).join(Person).where(Person.code == "ANNA")))
    assert aliases == {"ANNA2", "OLD"}
    assert db.session.scalar(select(AuditLog.action).where(AuditLog.action == "merge")) == "merge"


def test_merge_into_oneself_is_refused(admin):
    """Picking the same record to keep changes nothing and says why."""
    make_person("ANNA", "Anna")
    page = admin.post("/people/ANNA/merge", data={"into": "ANNA"}, follow_redirects=True)
    assert "cannot be merged into themselves" in page.get_data(as_text=True)


def test_delete_sends_their_photos_back_to_review(admin):
    """A deleted person's photos lose them and need attention again; the deletion is audited."""
    make_person("ANNA", "Anna")
    _, ids = make_scanned_batch([("card", "ANNA"), ("photo",)])
    assert admin.post("/people/ANNA/delete").status_code == 303
    assert people_of(ids[1]) == [] and db.session.get(Photo, ids[1]).needs_review
    assert db.session.scalar(select(AuditLog.action)) == "delete"


def test_likely_duplicates_are_flagged(admin):
    """Same name in one group, and same name under two e-mails, are flagged; namesakes in two groups are not."""
    make_person("A1", "Hana Bakker", group="5A")
    make_person("A2", "hana  bakker", group="5A")
    make_person("B1", "Ben Cho", email="one@example.com", group="5A")
    make_person("B2", "Ben Cho", email="two@example.com", group="6B")
    make_person("C1", "Carl Dahl", group="5A")
    make_person("C2", "Carl Dahl", group="6B")
    page = admin.get("/people/duplicates").get_data(as_text=True)
    assert "same name in group 5A" in page and "two e-mail addresses" in page and "C2" not in page
    assert "2 likely duplicates to check" in admin.get("/people").get_data(as_text=True)


def test_staff_cannot_change_people(client):
    """Edit, merge and delete need an admin."""
    make_user("staff")
    login(client)
    make_person("ANNA", "Anna")
    for action in ("edit", "merge", "delete"):
        assert client.post(f"/people/ANNA/{action}").status_code == 403
