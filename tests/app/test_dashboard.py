"""The live dashboard: figures, cheap unchanged polls, JSON API."""

import time

from data.database import db_commit_with_retry
from data.extensions import db
from data.models import Batch
from data.states import BatchStatus
from tests.support.factories import login, make_batch, make_person, make_user
from tests.support.waiting import wait_for


def finish(batch_id: int) -> None:
    """The processor's path for a batch: queued, processing, done."""
    batch = db.session.get(Batch, batch_id)
    for status in (BatchStatus.QUEUED, BatchStatus.PROCESSING, BatchStatus.DONE):
        batch.move_to(status)


def test_dashboard_requires_login(client):
    """Anonymous visitors are sent to the login page; the API answers 401."""
    assert client.get("/").status_code == 302
    assert client.get("/dashboard/live").status_code == 302
    assert client.get("/api/dashboard").status_code == 401


def test_unchanged_poll_is_a_304(client):
    """A poll with the last ETag gets 304 and no body until something changes."""
    make_user()
    login(client)
    first = client.get("/dashboard/live")
    assert first.status_code == 200 and first.headers["ETag"]
    again = client.get("/dashboard/live", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    make_person("NEW1", "New Person", group="5A")
    changed = client.get("/dashboard/live", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and b"New Person" in changed.data


def test_api_dashboard_shape(client):
    """/api/dashboard has registrations, batches, drive and data-layer figures."""
    make_user()
    login(client)
    make_person("A1", group="5A")
    make_person("B1", group="5A")
    batch = make_batch("morning")
    data = client.get("/api/dashboard").get_json()
    assert data["registrations"]["count"] == 2
    assert data["registrations"]["per_group"] == [{"group": "5A", "count": 2}]
    assert data["batches"][0]["id"] == batch.id and data["batches"][0]["status"] == "uploading"
    assert set(data["data_layer"]["last_hour"]) == {"retries", "lock_waits", "max_wait_ms"}
    assert "counts" in data["drive"]


def test_page_renders_with_batches(client):
    """The full page shows the batch table and polls the fragment."""
    make_user()
    login(client)
    make_batch("afternoon")
    page = client.get("/")
    assert page.status_code == 200 and b"afternoon" in page.data and b"data-poll" in page.data


def test_batches_page_links_each_batch_and_counts(client):
    """The batches page lists every batch with words for its counts and links to its review and upload pages."""
    from tests.support.factories import make_scanned_batch

    make_user()
    login(client)
    make_person("ANNA")
    batch_id, _ = make_scanned_batch([("photo",), ("card", "ANNA"), ("photo",), ("photo",)])
    db_commit_with_retry(finish, batch_id)
    page = client.get("/batches").get_data(as_text=True)
    assert f'href="/batches/{batch_id}/review"' in page and f'href="/batches/{batch_id}/upload"' in page
    assert "4 photos</a>" in page and "1 person</a>" in page and "1 to review" in page


def test_dashboard_leads_with_the_photo_day_not_the_database(client):
    """The dashboard shows registrations, batches, review and delivery; database figures live on System."""
    make_user()
    login(client)
    page = client.get("/").get_data(as_text=True)
    for heading in ("Registrations", "Batches", "To review", "Delivery", "Upload photos"):
        assert heading in page
    assert "WAL" not in page and "Lock waits" not in page


def test_polls_share_the_figures_for_a_moment(app, client):
    """Polls within DASHBOARD_SHARED_SECONDS get the figures the first computed; with 0 each poll computes."""
    make_user()
    login(client)
    app.config["DASHBOARD_SHARED_SECONDS"] = 3600
    first = client.get("/dashboard/live")
    make_person("NEW1", "New Person", group="5A")
    shared = client.get("/dashboard/live")
    assert shared.headers["ETag"] == first.headers["ETag"] and b"New Person" not in shared.data
    app.config["DASHBOARD_SHARED_SECONDS"] = 0
    assert b"New Person" in client.get("/dashboard/live").data


def test_expired_figures_are_answered_at_once_while_the_next_are_computed(app, client):
    """Just past DASHBOARD_SHARED_SECONDS a poll gets the last figures and one thread computes the next, which
    the following poll gets; figures older than twice that are computed before answering."""
    make_user()
    login(client)
    app.config["DASHBOARD_SHARED_SECONDS"] = 3600
    client.get("/dashboard/live")
    shared = app.extensions["intake.shared_summary"]
    make_person("NEW1", "New Person", group="5A")
    shared["until"] = time.monotonic() - 1
    assert b"New Person" not in client.get("/dashboard/live").data
    wait_for(lambda: not shared["refreshing"], 30, "the dashboard's next figures")
    assert b"New Person" in client.get("/dashboard/live").data
    make_person("NEW2", "Second Person", group="5A")
    shared["until"] = time.monotonic() - 3600 - 1
    assert b"Second Person" in client.get("/dashboard/live").data
