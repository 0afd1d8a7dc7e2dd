"""`flask yearbook OUT_DIR`: the yearbook package (INDEX.TXT + IMAGES) written to disk."""

from pathlib import Path

import click

from data.database import run_in_transaction
from engine.yearbook import DEFAULT_VOLUME
from services import yearbook


@click.command("yearbook")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--group", default=None, help='Only this group (class); --group "" for the people without one.')
@click.option("--volume", default=DEFAULT_VOLUME, show_default=True, help="The index's Volume Name (the school).")
def write_yearbook(out_dir: Path, group: str | None, volume: str) -> None:
    """Write INDEX.TXT and one portrait per person into OUT_DIR, a new or empty folder (never overwrites)."""
    if group is not None and not run_in_transaction(yearbook.people_in, group, read_only=True):
        raise click.ClickException(f"nobody is in group {group!r}")
    files = run_in_transaction(yearbook.yearbook_files, group, volume, read_only=True)
    try:
        yearbook.write_package(out_dir, files)
    except (yearbook.PackageError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{len(files) - 1} portraits and INDEX.TXT written to {out_dir}")


COMMANDS = (write_yearbook,)
