"""Per-person delivery status: exported, on Drive, e-mailed, gallery opened; filterable by what is not yet
done, linked from the dashboard's delivery tile."""

from datetime import datetime

import pytest
from sqlalchemy import select, update

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch, OutboxMessage, Person
from data.states import MailState
from services import delivery_status, export, gallery_links
from services.batches import queue_batch, reopen_batch
from tests.conftest import BACKENDS
from tests.support.factories import make_person, make_scanned_batch


@pytest.fixture
def day(app):
    """Anna (with an address) and Ben (without) have photos; Carl has none."""
    ids = {code: make_person(code, name, email=email).id for code, name, email in PEOPLE}
    make_scanned_batch([("card", "ANNA"), ("photo",), ("card", "BEN"), ("photo",)])
    return ids


PEOPLE = [("ANNA", "Anna Berg", "anna@example.com"), ("BEN", "Ben Cho", None), ("CARL", "Carl Dahl", None)]


def names(show: str) -> list[str]:
    rows = run_in_transaction(delivery_status.delivery_rows, show, 1, read_only=True).items
    return [row.name for row in rows]


def counts() -> dict[str, int]:
    return run_in_transaction(delivery_status.counts, read_only=True)


def export_all() -> None:
    for person_id, version in run_in_transaction(export.people_behind, Person.exported_version, read_only=True):
        db_commit_with_retry(export.record_export, person_id, version)


@pytest.mark.both_databases
def test_only_people_with_photos_are_listed_and_exporting_delivers_them_with_drive_and_mail_off(day):
    """Before the export both people with photos are undelivered; after it, with Drive and e-mail off, nobody."""
    assert names("all") == ["Anna Berg", "Ben Cho"] and names("undelivered") == ["Anna Berg", "Ben Cho"]
    [anna, _] = run_in_transaction(delivery_status.delivery_rows, "all", 1, read_only=True).items
    assert (anna.exported, anna.on_drive, anna.email) == (False, None, None)
    export_all()
    assert names("undelivered") == [] and counts() == dict.fromkeys(delivery_status.FILTERS, 0) | {"all": 2}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_drive_and_mail_each_hold_a_delivery_until_done(app, day):
    """With Drive on, the exported are not delivered until synced; with e-mail on, Anna (who has an address)
    waits for her "photos ready" message to be sent for the current version, Ben (no address) does not."""
    app.config.update(DRIVE_ROOT_FOLDER_ID="root", SMTP_HOST="smtp.invalid")
    export_all()
    assert names("not_on_drive") == ["Anna Berg", "Ben Cho"] and names("not_exported") == []
    assert names("not_emailed") == ["Anna Berg"]

    def synced_and_sent():
        db.session.execute(update(Person).values(synced_version=Person.delivery_version))
        db.session.execute(update(OutboxMessage).values(state=MailState.SENT))

    db_commit_with_retry(synced_and_sent)
    assert names("undelivered") == []
    [anna, ben] = run_in_transaction(delivery_status.delivery_rows, "all", 1, read_only=True).items
    assert (anna.on_drive, anna.email, anna.email_current) == (True, MailState.SENT, True)
    assert (ben.has_address, ben.email) == (False, None)
    make_scanned_batch([("card", "ANNA"), ("photo",)], label="again")
    assert names("undelivered") == ["Anna Berg"] and names("not_exported") == ["Anna Berg"]


def test_gallery_openings_are_carried_per_person(day):
    """The first opening of a person's gallery shows on their row; nobody else's."""
    opened = datetime(2026, 12, 2, 9, 30)

    def ben_opens_his_gallery():
        gallery_links.new_link(person_id=day["BEN"]).first_opened_at = opened

    db_commit_with_retry(ben_opens_his_gallery)
    rows = run_in_transaction(delivery_status.delivery_rows, "all", 1, read_only=True).items
    assert [(row.name, row.gallery_opened_at) for row in rows] == [("Anna Berg", None), ("Ben Cho", opened)]


def test_the_page_lists_names_and_counts_link_to_their_filter(staff, day):
    """The dashboard's delivery tile links the undelivered; the page shows names, each filter with its count."""
    dashboard = staff.get("/").get_data(as_text=True)
    assert 'href="/delivery?show=undelivered">2 not yet delivered</a>' in dashboard
    page = staff.get("/delivery?show=undelivered").get_data(as_text=True)
    assert "Anna Berg" in page and "Ben Cho" in page and "Carl Dahl" not in page
    assert 'href="/delivery?show=not_exported">Not exported: 2</a>' in page and "Drive off" in page
    assert "not_on_drive" not in page  # Drive is off: no filter for it
    assert staff.get("/delivery?show=bogus").status_code == 404


def test_people_whose_photos_are_still_uploading_wait_for_the_upload_to_end(staff, day):
    """A processed batch reopened for more files: its people are not exported meanwhile, and the page says why;
    once the upload is complete they are."""
    batch_id = db.session.scalar(select(Batch.id))
    db_commit_with_retry(reopen_batch, batch_id)
    export_all()
    assert names("not_exported") == ["Anna Berg", "Ben Cho"]
    assert staff.get("/delivery").get_data(as_text=True).count("waiting for an upload to end") == 2
    db_commit_with_retry(queue_batch, batch_id)
    export_all()
    assert names("not_exported") == []


def test_delivery_needs_a_login(client):
    """Anonymous visitors are sent to log in."""
    assert client.get("/delivery").status_code == 302
