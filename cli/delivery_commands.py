"""`flask deliver`: exports, the Drive sync and the e-mails run to completion without the web server."""

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import click
from flask import current_app

from data.database import run_in_transaction
from data.models import Person
from services import drive_sync, export, outbox


@dataclass
class Delivered:
    people: set[int] = field(default_factory=set)
    exported: int = 0
    drive: drive_sync.SyncTally = field(default_factory=drive_sync.SyncTally)
    emails: dict = field(default_factory=lambda: {"sent": 0, "failed": 0})

    def as_json(self) -> dict:
        return {
            "people": len(self.people),
            "exported": self.exported,
            "drive": asdict(self.drive),
            "emails": self.emails,
        }


def drive_on() -> bool:
    return drive_sync.settings().is_configured()


def behind_on_drive() -> list[tuple[int, int]]:
    if not drive_on():
        return []
    return run_in_transaction(drive_sync.people_to_sync, current_app.config["DRIVE_SHARE"], read_only=True)


def behind_on_export() -> list[tuple[int, int]]:
    return run_in_transaction(export.people_behind, Person.exported_version, read_only=True)


class Progress:
    """Where `deliver` shows its work, on stderr: a bar per phase when a person watches (stdout and stderr
    are terminals), else one plain line per phase; under --json only the bar, never a line."""

    def __init__(self, as_json: bool):
        self.bar = sys.stdout.isatty() and sys.stderr.isatty()
        self.lines = not self.bar and not as_json

    @contextmanager
    def phase(self, label: str, total: int) -> Iterator[Callable[[], None]]:
        """A step function for `total` units of work (nothing is shown for none)."""
        if total and self.bar:
            with click.progressbar(length=total, label=label, show_pos=True, file=sys.stderr) as bar:
                yield lambda: bar.update(1)
            return
        if total and self.lines:
            click.echo(f"{label}: {total}", err=True)
        yield lambda: None


def drive_photos(people: list[tuple[int, int]]) -> int:
    """The photos a Drive round goes through for these people: each one is placed or found in place."""
    return run_in_transaction(
        lambda: sum(len(export.deliverable_photos(person_id)) for person_id, _ in people), read_only=True
    )


def delivery_round(done: Delivered, progress: Progress) -> None:
    """Export, then Drive (so the e-mail can carry the folder link), then the e-mails that are due."""
    exporting, syncing = behind_on_export(), behind_on_drive()
    done.people.update(person_id for person_id, _ in exporting + syncing)
    with progress.phase("Exporting people", len(exporting)) as advance:
        export.export_pending(advance)
    done.exported += len(exporting)
    if drive_on():
        # Exporting can put more people behind on Drive: count after it.
        syncing = behind_on_drive()
        with progress.phase("Drive photos", drive_photos(syncing)) as advance:
            drive_sync.sync_pending(done.drive, advance)
    with progress.phase("Sending e-mails", outbox.count_due()) as advance:
        for outcome, count in outbox.send_due(advance).items():
            done.emails[outcome] += count


def unfinished() -> bool:
    return bool(behind_on_export() or behind_on_drive()) or outbox.waiting()


def drive_state() -> str:
    return run_in_transaction(drive_sync.status, read_only=True)["state"] if drive_on() else "off"


def drive_stopped() -> bool:
    """Drive needs a person (credentials, sharing, quota): another round would not help."""
    return drive_state() == "error"


@click.command("deliver")
@click.option("--wait", is_flag=True, help="Keep going until nothing is left to deliver (retries wait their turn).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def deliver(wait: bool, as_json: bool) -> None:
    """Run pending exports, the Drive sync and the e-mails; exit non-zero if anything failed."""
    done, progress = Delivered(), Progress(as_json)
    delivery_round(done, progress)
    while wait and unfinished() and not drive_stopped():
        time.sleep(current_app.config["PROCESSOR_POLL_SECONDS"])
        delivery_round(done, progress)
    # "retrying": some photo did not go up this round.
    failed = done.emails["failed"] > 0 or drive_state() in {"error", "retrying"}
    summary = done.as_json()
    click.echo(json.dumps(summary) if as_json else human(summary))
    if failed:
        sys.exit(1)


def human(summary: dict) -> str:
    drive, emails = summary["drive"], summary["emails"]
    return (
        f"{summary['people']} people, {summary['exported']} exported; Drive: {drive['uploaded']} uploaded, "
        f"{drive['verified']} verified, {drive['folders']} folders; e-mails: {emails['sent']} sent, "
        f"{emails['failed']} failed"
    )


COMMANDS = (deliver,)
