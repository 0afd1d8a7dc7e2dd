"""The database from the command line: backup, verify, stats, checkpoint."""

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import text

from data import db_stats
from data.extensions import db


@click.command()
@click.argument("destination", required=False, type=click.Path(dir_okay=False, path_type=Path))
def backup(destination: Path | None) -> None:
    """Write a consistent copy of the database while the app keeps running."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    source = db_stats.sqlite_path()
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
    report = {"tables": db_stats.table_counts(), **db_stats.data_layer_health()}
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
    if db_stats.sqlite_path() is None:
        raise click.ClickException("checkpoint applies to SQLite only")
    with db.engine.connect() as conn:
        busy, log_frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        raise click.ClickException(f"checkpoint blocked by a reader or writer ({done}/{log_frames} frames)")
    click.echo(f"checkpoint done: {done}/{log_frames} frames")


COMMANDS = (backup, verify, stats, checkpoint)
