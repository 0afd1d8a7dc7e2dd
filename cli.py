"""Operator commands: `flask --app app COMMAND`."""

import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy import text

import health
from batches import ingest_path
from database import db_commit_with_retry, run_in_transaction
from extensions import db
from models import Batch
from photo_processor import Processor
from reports import batch_report
from roster import RosterError, import_roster_rows, parse_roster
from states import BatchStatus, InvalidTransition, UserRole
from storage import StorageFull
from users import create_user, has_admin


def register(app: Flask) -> None:
    for command in (
        backup,
        verify,
        stats,
        checkpoint,
        create_user_command,
        ensure_admin,
        import_roster,
        ingest,
        report,
    ):
        app.cli.add_command(command)


@click.command()
@click.argument("destination", required=False, type=click.Path(dir_okay=False, path_type=Path))
def backup(destination: Path | None) -> None:
    """Write a consistent copy of the database while the app keeps running."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    source = health.sqlite_path()
    if destination is None:
        suffix = ".sqlite3" if source else ".sql"
        destination = Path(current_app.config["DATA_DIR"]) / "backups" / f"intake-{stamp}{suffix}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        raise click.ClickException(f"{destination} exists; refusing to overwrite a backup")
    if source is None:
        backup_postgres(destination)
    else:
        backup_sqlite(source, destination)
    click.echo(f"backup written to {destination}")


def backup_sqlite(source: Path, destination: Path) -> None:
    # The online backup API copies a consistent snapshot page by page; a file copy of a live
    # WAL database can catch it mid-write.
    partial = destination.with_name(destination.name + ".partial")
    src = sqlite3.connect(source, timeout=current_app.config["DB_BUSY_TIMEOUT_MS"] / 1000)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst, pages=1024)
        ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if ok != "ok":
        partial.unlink()
        raise click.ClickException(f"backup failed its integrity check: {ok}")
    partial.rename(destination)


def backup_postgres(destination: Path) -> None:
    if shutil.which("pg_dump") is None:
        raise click.ClickException("pg_dump is not installed; install postgresql-client")
    url = db.engine.url.set(drivername="postgresql")
    with destination.open("wb") as out:
        result = subprocess.run(
            ["pg_dump", "--dbname", url.render_as_string(hide_password=False)],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    if result.returncode != 0:
        destination.unlink()
        raise click.ClickException(f"pg_dump failed: {result.stderr.decode(errors='replace')}")


@click.command()
def verify() -> None:
    """Check the database's integrity and foreign keys; exit non-zero on any problem."""
    problems: list[str] = []
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            integrity = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
            if integrity != ["ok"]:
                problems += [f"integrity: {line}" for line in integrity]
            for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check"):
                problems.append(f"foreign key: {table} row {rowid} points to a missing {parent}")
        else:
            conn.execute(text("SELECT 1"))
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo("ok: integrity and foreign keys")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(as_json: bool) -> None:
    """Row counts, database and WAL size, lock retries and waits."""
    report = {"tables": health.table_counts(), **health.data_layer_health()}
    db.session.rollback()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for name, count in report["tables"].items():
        click.echo(f"{name:20} {count}")
    click.echo(f"database: {report['backend']}, {report['db_bytes']} bytes, WAL {report['wal_bytes']} bytes")
    last = report["last_hour"]
    click.echo(
        f"last hour: {last['retries']} retries, {last['lock_waits']} lock waits, longest {last['max_wait_ms']} ms"
    )


@click.command()
def checkpoint() -> None:
    """Fold the WAL back into the database file and truncate it."""
    if health.sqlite_path() is None:
        raise click.ClickException("checkpoint applies to SQLite only")
    with db.engine.connect() as conn:
        busy, log_frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        raise click.ClickException(f"checkpoint blocked by a reader or writer ({done}/{log_frames} frames)")
    click.echo(f"checkpoint done: {done}/{log_frames} frames")


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in UserRole]), default=UserRole.STAFF.value)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(name: str, role: str, password_stdin: bool) -> None:
    """Create a staff or admin account (or reset its password and role)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        db_commit_with_retry(create_user, name, password, UserRole(role))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"user {name} ({role}) saved")


@click.command("ensure-admin")
def ensure_admin() -> None:
    """On first start, create user 'admin' with a random password and print it once."""
    if has_admin():
        return
    password = secrets.token_urlsafe(12)
    db_commit_with_retry(create_user, "admin", password, UserRole.ADMIN)
    click.echo(
        f"Created user 'admin' with password: {password}\n"
        "Change it with: .venv/bin/flask --app app create-user admin --role admin"
    )


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


def wait_for(batch_id: int) -> str:
    """Process the batch here, or wait for the processor that already holds it."""
    processor = Processor(current_app._get_current_object())
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
        processor.close()
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
    try:
        batch_id = ingest_path(path, label, batch_id)
    except StorageFull as error:
        click.echo(f"batch failed: {error.strerror}", err=True)
        raise click.exceptions.Exit(1) from None
    except (ValueError, OSError, InvalidTransition) as error:
        raise click.ClickException(str(error)) from None
    status = wait_for(batch_id) if wait_ else BatchStatus.QUEUED
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
