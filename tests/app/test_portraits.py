"""Yearbook portraits: the default (first photo after the card), an admin's pick in review, and its limits."""

import pytest
from sqlalchemy import select

from data.extensions import db
from data.models import AuditLog, Person
from data.states import UserRole
from services import yearbook
from tests.support.factories import login, make_person, make_scanned_batch, make_user


@pytest.fixture
def admin(client):
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    make_person("ANNA", "Anna Berg", group="5B")
    make_person("BEN", "Ben Cho", group="5B")


def portrait_of(code: str):
    db.session.rollback()  # the request committed in its own session
    person = db.session.scalar(select(Person).where(Person.code == code))
    portrait, _ = yearbook.portrait_options(person)
    return (portrait.photo.id if portrait.photo else None), portrait.picked


def pick(client, code: str, photo_id: int | str = ""):
    return client.post(f"/person/{code}/portrait", data={"photo_id": str(photo_id)})


def test_default_portrait_is_the_first_photo_after_the_card(client, admin):
    """With nothing picked, the portrait is the first delivered photo after the card, never the card."""
    _, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN")])
    assert portrait_of("ANNA") == (ids[1], False)
    assert portrait_of("BEN") == (None, False)
    page = client.get("/person/ANNA").get_data(as_text=True)
    assert "the first photo after the card" in page and "Use as portrait" in page


def test_admin_picks_a_portrait_and_can_go_back_to_the_default(client, admin):
    """A pick on the person's page is the portrait, audited; "back to the default" undoes it."""
    _, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("photo",)])
    assert pick(client, "ANNA", ids[2]).status_code == 303
    assert portrait_of("ANNA") == (ids[2], True)
    assert "picked by an admin" in client.get("/person/ANNA").get_data(as_text=True)
    assert pick(client, "ANNA").status_code == 303
    assert portrait_of("ANNA") == (ids[1], False)
    entries = db.session.scalars(select(AuditLog).where(AuditLog.action == "portrait").order_by(AuditLog.id)).all()
    assert [(e.before, e.after) for e in entries] == [
        ({"portrait_photo_id": None}, {"portrait_photo_id": ids[2]}),
        ({"portrait_photo_id": ids[2]}, {"portrait_photo_id": None}),
    ]


def test_a_card_or_someone_elses_photo_cannot_be_picked(client, admin):
    """Picking the card, or a photo of another person, is refused with a reason and changes nothing."""
    _, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("card", "BEN"), ("photo",)])
    response = pick(client, "ANNA", ids[0])
    assert response.status_code == 303 and response.location.endswith("/person/ANNA")
    assert pick(client, "ANNA", ids[3]).status_code == 303
    assert portrait_of("ANNA") == (ids[1], False)
    assert "Only a photo delivered to this person" in client.get("/person/ANNA").get_data(as_text=True)


def test_a_pick_that_stops_being_deliverable_is_ignored(client, admin):
    """Excluding the picked photo in review makes the default the portrait again, without touching the pick."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("photo",)])
    pick(client, "ANNA", ids[2])
    client.post(f"/batches/{batch_id}/review/correct", data={"photo_id": [str(ids[2])], "kind": "exclude"})
    assert portrait_of("ANNA") == (ids[1], False)
    assert db.session.scalar(select(Person.portrait_photo_id).where(Person.code == "ANNA")) == ids[2]


def test_p_in_the_large_view_picks_the_photo_for_its_person(client, admin):
    """The batch page's portrait action makes the photo its one person's portrait; a card is refused."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("photo",)])
    page = client.get(f"/batches/{batch_id}/review").get_data(as_text=True)
    assert 'id="portrait-form"' in page and "<kbd>p</kbd>" in page
    response = client.post(f"/batches/{batch_id}/review/portrait", data={"photo_id": str(ids[2])})
    assert response.status_code == 303 and response.location.endswith(f"/batches/{batch_id}/review")
    assert portrait_of("ANNA") == (ids[2], True)
    client.post(f"/batches/{batch_id}/review/portrait", data={"photo_id": str(ids[0])})
    assert portrait_of("ANNA") == (ids[2], True)
    assert "A portrait is a photo of one person" in client.get(f"/batches/{batch_id}/review").get_data(as_text=True)


def test_staff_cannot_pick_portraits(client, admin):
    """Picking is for admins: a staff account gets 403 and the page shows no pick buttons."""
    _, ids = make_scanned_batch([("card", "ANNA"), ("photo",)])
    make_user("helper")
    login(client, "helper")
    assert pick(client, "ANNA", ids[1]).status_code == 403
    assert "Use as portrait" not in client.get("/person/ANNA").get_data(as_text=True)
