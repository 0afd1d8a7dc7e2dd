"""`flask deliver`: exports, the Drive sync and the e-mails from the command line, counted."""

import json

import pytest
from sqlalchemy import select

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Person
from tests.support.smtpserver import Mailbox, smtp_server, smtp_settings

ROSTER = "code,name,email,group\nANNA,Anna Berg,anna@example.com,\nBEN,Ben Cho,ben@example.com,\n"


@pytest.fixture
def mailbox(app):
    box = Mailbox()
    with smtp_server(box) as server:
        app.config.update(smtp_settings(server), MAIL_RETRY_BASE_SECONDS=0.0)
        yield box


@pytest.fixture
def day(ingest_day, mailbox):
    """Two people with photos, scanned, grouped and exported by `ingest --wait`."""
    ingest_day(ROSTER)


def deliver(runner, *options: str):
    return runner.invoke(args=["deliver", "--json", *options])


def test_deliver_uploads_to_drive_then_mails_the_folder_links_and_counts_it_all(runner, fake, day, mailbox):
    """deliver syncs Drive, then e-mails each person their folder link; the JSON counts it; a re-run does nothing."""
    result = deliver(runner, "--wait")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "people": 2,
        "exported": 0,
        "drive": {"uploaded": 3, "verified": 0, "folders": 2},
        "emails": {"sent": 2, "failed": 0},
    }
    by_person = {message["To"]: message.get_body(("plain",)).get_content() for message in mailbox.messages()}
    links = run_in_transaction(
        lambda: dict(db.session.execute(select(Person.email, Person.drive_folder_link)).tuples().all()), read_only=True
    )
    assert set(by_person) == {"anna@example.com", "ben@example.com"}
    assert all(links[to] and links[to] in text for to, text in by_person.items())
    again = deliver(runner)
    assert again.exit_code == 0 and json.loads(again.stdout) == {
        "people": 0,
        "exported": 0,
        "drive": {"uploaded": 0, "verified": 0, "folders": 0},
        "emails": {"sent": 0, "failed": 0},
    }
    assert len(mailbox.messages()) == 2


def test_deliver_exits_non_zero_when_an_email_fails(runner, day, mailbox):
    """A refused recipient is counted as failed and the command exits non-zero (without Drive)."""
    mailbox.refuse.add("ben@example.com")
    result = deliver(runner)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["emails"] == {"sent": 1, "failed": 1}


def test_deliver_exports_people_whose_photos_changed(app, runner, day, mailbox):
    """A person whose photos changed since the last export is exported and told again; nobody else is."""
    assert deliver(runner).exit_code == 0

    def changed():
        anna = db.session.scalar(select(Person).where(Person.code == "ANNA"))
        anna.delivery_version += 1

    db_commit_with_retry(changed)
    result = deliver(runner)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "people": 1,
        "exported": 1,
        "drive": {"uploaded": 0, "verified": 0, "folders": 0},
        "emails": {"sent": 1, "failed": 0},
    }
    assert [message["To"] for message in mailbox.messages()][-1] == "anna@example.com"
