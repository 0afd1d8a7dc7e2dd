"""Drive delivery of each person's exported photos, driven by the database.

Network calls never run inside a database transaction: a plan is read, Drive is called, and
each result is committed on its own. DriveItem rows remember which file on Drive holds which
(photo, person), so a re-assigned photo is moved rather than uploaded twice.

DRIVE_SHARE decides who besides the shared drive's members may open a person's folder: nobody
("none"), the person's e-mail address ("reader"), or anyone with the link ("anyone"). The
person row remembers the folder's link and whom we shared it with, so a changed setting or
address takes back exactly our earlier grant.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import ColumnElement, func, literal, null, select

from data import storage
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import DriveItem, Person, Photo, utcnow
from data.states import SyncState
from data.stored_settings import read_setting, write_setting
from engine import drive_client
from services.export import deliverable_photos, export_names, folder_name, is_deliverable_to, people_behind

log = logging.getLogger("intake.drive")
STATUS_KEY = "drive_status"


def settings() -> drive_client.DriveSettings:
    config = current_app.config
    return drive_client.DriveSettings(
        root_folder_id=config["DRIVE_ROOT_FOLDER_ID"],
        credentials_file=config["DRIVE_CREDENTIALS_FILE"],
        credentials_type=config["DRIVE_CREDENTIALS_TYPE"],
        subject=config["DRIVE_SUBJECT"],
        root_url=config["DRIVE_ROOT_URL"],
        chunk_size=config["DRIVE_CHUNK_BYTES"],
        timeout_seconds=config["DRIVE_TIMEOUT_SECONDS"],
    )


def set_status(state: str, message: str = "") -> None:
    write_setting(STATUS_KEY, {"state": state, "message": message, "at": utcnow().isoformat()})


def status() -> dict:
    if not settings().is_configured():
        return {"state": "off", "message": "Drive sync is not configured; photos are exported locally only."}
    return read_setting(STATUS_KEY, {"state": "idle", "message": ""})


def people_to_sync(share: str) -> list[tuple[int, int]]:
    """People whose photos changed since their last sync, or whose folder's sharing is not what DRIVE_SHARE wants."""
    return people_behind(Person.synced_version, sharing_out_of_date(share))


def wanted_reader(share: str, email: str | None) -> str | None:
    """Who should be able to open the folder under this DRIVE_SHARE: an address, ANYONE, or nobody."""
    if share == "anyone":
        return drive_client.ANYONE
    address = (email or "").strip().lower()
    return address if share == "reader" and address else None


def sharing_out_of_date(share: str) -> ColumnElement[bool]:
    """wanted_reader in SQL: people with a folder whose link is unknown or whose reader is not the wanted one."""
    address = func.nullif(func.lower(func.trim(Person.email)), "")
    wanted = {"none": null(), "anyone": literal(drive_client.ANYONE), "reader": address}[share]
    return Person.drive_folder_id.is_not(None) & (
        Person.drive_folder_link.is_(None) | Person.drive_shared_with.is_distinct_from(wanted)
    )


@dataclass(frozen=True)
class Planned:
    photo_id: int
    path: str


@dataclass(frozen=True)
class Placed:
    item_id: int
    photo_id: int
    synced: bool
    file_id: str | None
    folder_id: str | None


@dataclass(frozen=True)
class SyncPlan:
    """Plain values, so no database session is open while Drive is called."""

    code: str
    folder_name: str
    folder_id: str | None
    email: str | None
    folder_link: str | None
    shared_with: str | None
    wanted: dict[str, Planned]
    placed: dict[int, Placed]
    movable: dict[int, Placed]
    handed_over: set[int]


@dataclass
class SyncTally:
    """What rounds did on Drive, for `flask deliver`: files uploaded (new to us), copies found intact
    where we had put them (verified), folders created."""

    uploaded: int = 0
    verified: int = 0
    folders: int = 0


def placed(item: DriveItem) -> Placed:
    return Placed(item.id, item.photo_id, item.state == SyncState.SYNCED, item.file_id, item.folder_id)


def sync_plan(person_id: int) -> SyncPlan:
    """What should be in the person's folder, what we put there before, and files of photos
    re-assigned to them from someone else (to move, not upload again)."""
    person = db.session.get(Person, person_id)
    wanted = {
        name: Planned(p.id, str(storage.original_path(p.content_hash, p.extension)))
        for name, p in export_names(deliverable_photos(person_id)).items()
    }
    items = {
        item.photo_id: placed(item)
        for item in db.session.scalars(select(DriveItem).where(DriveItem.person_id == person_id))
    }
    wanted_ids = {w.photo_id for w in wanted.values()}
    arriving = wanted_ids - set(items)
    movable = {
        item.photo_id: placed(item)
        for item in db.session.scalars(
            select(DriveItem).where(
                DriveItem.photo_id.in_(arriving), DriveItem.person_id != person_id, DriveItem.state == SyncState.SYNCED
            )
        )
        if not is_deliverable_to(item.photo_id, item.person_id)
    }
    leaving = set(items) - wanted_ids
    handed_over = {photo_id for photo_id in leaving if is_delivered_to_someone_else(photo_id, person_id)}
    return SyncPlan(
        person.code,
        folder_name(person),
        person.drive_folder_id,
        person.email,
        person.drive_folder_link,
        person.drive_shared_with,
        wanted,
        items,
        movable,
        handed_over,
    )


def is_delivered_to_someone_else(photo_id: int, person_id: int) -> bool:
    """A photo re-assigned to another person: their sync moves our file, so we leave it be."""
    photo = db.session.get(Photo, photo_id)
    return any(p.id != person_id and is_deliverable_to(photo_id, p.id) for p in photo.people)


def record_folder(person_id: int, folder_id: str) -> None:
    db.session.get(Person, person_id).drive_folder_id = folder_id


def record_sharing(person_id: int, link: str, reader: str | None) -> None:
    person = db.session.get(Person, person_id)
    person.drive_folder_link, person.drive_shared_with = link, reader


def record_item(
    photo_id: int,
    person_id: int,
    file_id: str | None,
    folder_id: str | None,
    md5: str | None,
    error: str | None = None,
    item_id: int | None = None,
) -> None:
    """Upsert the DriveItem for (photo, person); item_id re-points a moved file's row to its new owner."""
    item = (
        db.session.get(DriveItem, item_id)
        if item_id
        else db.session.scalar(
            select(DriveItem).where(DriveItem.photo_id == photo_id, DriveItem.person_id == person_id)
        )
    )
    if item is None:
        item = DriveItem(photo_id=photo_id, person_id=person_id, state=SyncState.PENDING, attempts=0)
        db.session.add(item)
    item.person_id = person_id
    if item.state != SyncState.PENDING:
        item.move_to(SyncState.PENDING)
    item.attempts += 1
    if error is None:
        item.move_to(SyncState.SYNCED)
        item.file_id, item.folder_id, item.md5, item.last_error = file_id, folder_id, md5, None
    else:
        item.move_to(SyncState.FAILED)
        item.last_error = error


def forget_item(item_id: int) -> None:
    item = db.session.get(DriveItem, item_id)
    if item is not None:
        db.session.delete(item)


def record_synced(person_id: int, version: int) -> None:
    db.session.get(Person, person_id).synced_version = version


def share_folder(client: drive_client.DriveClient, person_id: int, plan: SyncPlan, folder_id: str, share: str) -> bool:
    """Record the folder's link and leave it readable by exactly wanted_reader; False if Drive refused."""
    reader = wanted_reader(share, plan.email)
    try:
        link = plan.folder_link or client.link(folder_id)
        if plan.shared_with and plan.shared_with != reader:
            client.unshare(folder_id, plan.shared_with)
        if reader and reader != plan.shared_with:
            client.share(folder_id, reader)
    except (drive_client.DriveConfigError, drive_client.DriveQuotaError):
        raise
    except drive_client.DriveError as error:
        # E.g. an address without a Google account: Drive shares with it only along with its own
        # invitation mail. The photos still go up; the person is tried again next round.
        log.warning("Drive folder of %s not shared: %s", plan.code, error)
        return False
    if (link, reader) != (plan.folder_link, plan.shared_with):
        db_commit_with_retry(record_sharing, person_id, link, reader)
    return True


def sync_person(
    client: drive_client.DriveClient,
    root_id: str,
    person_id: int,
    version: int,
    share: str,
    tally: SyncTally,
    advance: Callable[[], None] = lambda: None,
) -> bool:
    """Make the person's Drive folder match their export and DRIVE_SHARE; True when everything went through.
    `advance` is called after each of their photos, placed or found in place."""
    plan = run_in_transaction(sync_plan, person_id, read_only=True)
    folder_id = plan.folder_id
    if plan.wanted and not folder_id:
        folder_id = client.ensure_folder(root_id, plan.folder_name, plan.code)
        db_commit_with_retry(record_folder, person_id, folder_id)
        tally.folders += 1
    complete = share_folder(client, person_id, plan, folder_id, share) if folder_id else True
    for name, photo in plan.wanted.items():
        item = plan.placed.get(photo.photo_id)
        if item is not None and item.synced and item.folder_id == folder_id:
            advance()
            continue
        # A photo re-assigned from someone else: their file is moved, and its row becomes ours.
        moved = plan.movable.get(photo.photo_id)
        try:
            sha256, md5 = drive_client.file_digests(photo.path)
            file_id = client.deliver(
                photo.path,
                name,
                folder_id,
                sha256,
                md5,
                {"intake_photo": str(photo.photo_id)},
                movable_id=moved.file_id if moved else None,
            )
            known = {item.file_id if item else None, moved.file_id if moved else None}
            tally.verified += file_id in known
            tally.uploaded += file_id not in known
            db_commit_with_retry(
                record_item,
                photo.photo_id,
                person_id,
                file_id,
                folder_id,
                md5,
                item_id=moved.item_id if moved else None,
            )
        except (drive_client.DriveConfigError, drive_client.DriveQuotaError):
            raise
        except drive_client.DriveError as error:
            complete = False
            db_commit_with_retry(record_item, photo.photo_id, person_id, None, None, None, error=str(error))
        advance()
    wanted_ids = {photo.photo_id for photo in plan.wanted.values()}
    for item in plan.placed.values():
        if item.photo_id not in wanted_ids | plan.handed_over and item.file_id:
            client.trash(item.file_id)
            db_commit_with_retry(forget_item, item.item_id)
    if complete:
        db_commit_with_retry(record_synced, person_id, version)
    return complete


def sync_pending(tally: SyncTally | None = None, advance: Callable[[], None] = lambda: None) -> int:
    """Sync everyone whose photos changed since their last sync; returns how many people were done,
    and adds what was done on Drive to `tally` if given; `advance` is called after each photo.

    Problems a person must fix (credentials, sharing, quota) stop the round and show on the
    dashboard; the next round tries again rather than crash-looping.
    """
    config = settings()
    if not config.is_configured():
        return 0
    share = current_app.config["DRIVE_SHARE"]
    pending = run_in_transaction(people_to_sync, share, read_only=True)
    if not pending:
        return 0
    done = 0
    tally = tally if tally is not None else SyncTally()
    try:
        backoff = drive_client.Backoff(base_seconds=current_app.config["DRIVE_RETRY_BASE_SECONDS"])
        with drive_client.drive_from_settings(config, backoff) as client:
            db_commit_with_retry(set_status, "syncing", f"{len(pending)} people to sync")
            for person_id, version in pending:
                done += sync_person(client, config.root_folder_id, person_id, version, share, tally, advance)
    except (drive_client.DriveConfigError, drive_client.DriveQuotaError) as error:
        log.error("Drive sync stopped: %s", error)
        db_commit_with_retry(set_status, "error", str(error))
        return done
    db_commit_with_retry(
        set_status, "ok" if done == len(pending) else "retrying", f"{done} of {len(pending)} people synced"
    )
    return done
