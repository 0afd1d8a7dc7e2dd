"""The photo day from the command line: a roster in, a folder of photos sorted, a batch's report out."""

import json
import sys
import threading
import time
from pathlib import Path

import click
from flask import current_app

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch
from data.states import BatchStatus, InvalidTransition
from data.storage import StorageFull
from photo_processor import ARRIVAL_POLL_SECONDS, Processor
from services.receiving import ingest_path
from services.reports import batch_report
from services.roster import RosterError, import_roster_rows, parse_roster


@click.command("import-roster")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_roster(file: Path) -> None:
    """Import people from a CSV with header code,name,email,group (extra columns kept)."""
    try:
        result = parse_roster(file.read_bytes())
    except RosterError as error:
        raise click.ClickException(f"{file}: {error}") from None
    for line, message in result.errors:
        click.echo(f"{file}:{line}: {message}", err=True)
    created, updated = db_commit_with_retry(import_roster_rows, result.rows)
    click.echo(f"{created} created, {updated} updated, {len(result.errors)} rows with errors")


def show_progress(batch_id: int) -> None:
    """One status line on a terminal; silent when stderr is not one."""
    if not sys.stderr.isatty():
        return
    batch = run_in_transaction(lambda: db.session.get(Batch, batch_id), read_only=True)
    total = max(batch.progress_total, 1)
    filled = int(30 * batch.progress_done / total)
    click.echo(
        f"\r{batch.phase or batch.status:8} [{'#' * filled}{'.' * (30 - filled)}] "
        f"{batch.progress_done}/{batch.progress_total}",
        err=True,
        nl=False,
    )


def ingest_while_scanning(processor: Processor, path: Path, label: str | None, batch_id: int | None) -> int:
    """ingest_path on a thread while this one scans each file as soon as it is stored (one pipeline)."""
    outcome: dict = {}

    def receive() -> None:
        with processor.app.app_context():
            try:
                outcome["batch"] = ingest_path(path, label, batch_id)
            except BaseException as error:  # re-raised below, on the command's thread
                outcome["error"] = error

    thread = threading.Thread(target=receive, name="intake-ingest")
    thread.start()
    while thread.is_alive():
        if not processor.scan_arrivals():
            thread.join(ARRIVAL_POLL_SECONDS)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["batch"]


def process_to_the_end(processor: Processor, batch_id: int) -> str:
    """Process the batch here, or wait for the processor that already holds it."""
    ticker = threading.Event()

    def tick():
        while not ticker.wait(0.5):
            with processor.app.app_context():
                show_progress(batch_id)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        while True:
            processor.run_once(only_batch=batch_id)
            status = run_in_transaction(lambda: db.session.get(Batch, batch_id).status, read_only=True)
            if status in (BatchStatus.DONE, BatchStatus.FAILED):
                return str(status)
            time.sleep(0.5)
    finally:
        ticker.set()
        thread.join()
        if sys.stderr.isatty():
            click.echo("", err=True)


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--wait", "wait_", is_flag=True, help="Process the batch to the end before returning.")
@click.option("--json", "as_json", is_flag=True, help="Print the batch report as JSON on stdout.")
@click.option("--label", default=None, help="Batch label (default: the folder or zip name).")
@click.option("--batch", "batch_id", type=int, default=None, help="Add to this batch (resume an ingest).")
def ingest(path: Path, wait_: bool, as_json: bool, label: str | None, batch_id: int | None) -> None:
    """Create a batch from a folder (recursively) or a zip of photos, as a web upload would."""
    # With --wait the scan pool starts first, here, and scans each file as soon as it is stored.
    processor = Processor(current_app._get_current_object()) if wait_ else None
    try:
        if processor:
            processor.pool()
            batch_id = ingest_while_scanning(processor, path, label, batch_id)
            status = process_to_the_end(processor, batch_id)
        else:
            batch_id, status = ingest_path(path, label, batch_id), BatchStatus.QUEUED
    except StorageFull as error:
        click.echo(f"batch failed: {error.strerror}", err=True)
        raise click.exceptions.Exit(1) from None
    except (ValueError, OSError, InvalidTransition) as error:
        raise click.ClickException(str(error)) from None
    finally:
        if processor:
            processor.close()
    print_report(batch_id, as_json)
    if status == BatchStatus.FAILED:
        sys.exit(1)


@click.command()
@click.argument("batch_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def report(batch_id: int, as_json: bool) -> None:
    """The report of an existing batch: every file, its role, person and group."""
    print_report(batch_id, as_json)


def print_report(batch_id: int, as_json: bool) -> None:
    data = run_in_transaction(batch_report, batch_id, read_only=True)
    if data is None:
        raise click.ClickException(f"no batch {batch_id}")
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"batch {data['batch']}: {data['status']}, {len(data['photos'])} files")
    for entry in data["photos"]:
        flag = " (review)" if entry["needs_review"] else ""
        who = entry["person"] or entry["group"] or "-"
        reason = f": {entry['reason']}" if entry["reason"] else ""
        click.echo(f"  {entry['filename']:40} {entry['role']:10} {who}{flag}{reason}")


COMMANDS = (import_roster, ingest, report)
