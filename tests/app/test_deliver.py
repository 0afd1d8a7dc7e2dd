"""`flask deliver`: exports, the Drive sync and the e-mails from the command line, counted."""

import io
import json
import sys

import pytest
from sqlalchemy import select

from cli.delivery_commands import Progress
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Person

ROSTER = "code,name,email,group\nANNA,Anna Berg,anna@example.com,\nBEN,Ben Cho,ben@example.com,\n"


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


def test_json_output_is_exactly_the_contract_and_carries_no_progress(runner, fake, day):
    """--json prints one JSON line, byte for byte, and no progress anywhere (not even on stderr)."""
    result = deliver(runner)
    expected = {
        "people": 2,
        "exported": 0,
        "drive": {"uploaded": 3, "verified": 0, "folders": 2},
        "emails": {"sent": 2, "failed": 0},
    }
    assert result.stdout == json.dumps(expected) + "\n"
    assert result.stderr == ""


def test_without_a_terminal_each_phase_is_one_plain_line_on_stderr(runner, fake, day):
    """Off a terminal the progress is a plain line per phase with its size, on stderr; stdout is the summary."""
    result = runner.invoke(args=["deliver"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["Drive photos: 3", "Sending e-mails: 2"]
    assert result.stdout.splitlines() == [
        "2 people, 0 exported; Drive: 3 uploaded, 0 verified, 2 folders; e-mails: 2 sent, 0 failed"
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_phase_is_a_bar_that_reaches_its_total(monkeypatch):
    """With stdout and stderr on a terminal, a phase draws a bar on stderr that counts up to its total."""
    stderr = Terminal()
    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", stderr)
    progress = Progress(as_json=True)
    with progress.phase("Drive photos", 3) as advance:
        for _ in range(3):
            advance()
    with progress.phase("Sending e-mails", 0) as advance:
        advance()
    drawn = stderr.getvalue()
    assert "Drive photos" in drawn and "[####################################]  3/3" in drawn
    assert "Sending e-mails" not in drawn and sys.stdout.getvalue() == ""
