"""Drive delivery wired to the database: the real client against the fake Drive server."""

import hashlib
import json

import pytest
from sqlalchemy import select

import drive_sync
from database import db_commit_with_retry
from extensions import db
from models import DriveItem, Photo
from review import correct
from tests.fakedrive import FakeDrive
from tests.photogen import SMALL_SIZE, make_batch

ROSTER = "code,name,email,group\nANNA,Anna Berg,,\nBEN,Ben Cho,,\n"


@pytest.fixture
def fake(app):
    with FakeDrive() as server:
        app.config.update(
            DRIVE_ROOT_FOLDER_ID=server.root_folder_id,
            DRIVE_CREDENTIALS_TYPE="anonymous",
            DRIVE_ROOT_URL=server.url,
            DRIVE_CHUNK_BYTES=256 * 1024,
            DRIVE_RETRY_BASE_SECONDS=0.01,
        )
        yield server


@pytest.fixture
def batch(runner, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER)
    assert runner.invoke(args=["import-roster", str(roster)]).exit_code == 0
    make_batch(
        tmp_path / "day", [("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",)], size=SMALL_SIZE
    )
    result = runner.invoke(args=["ingest", str(tmp_path / "day"), "--wait", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def folders(fake) -> dict[str, list[str]]:
    """Person folder name -> sorted file names in it."""
    return {f["name"]: sorted(c["name"] for c in fake.children(f["id"])) for f in fake.children(fake.root_folder_id)}


def test_first_sync_one_folder_per_person_with_matching_md5(fake, batch):
    """Each person's photos land in their own folder; Drive's md5 equals the local file's."""
    assert drive_sync.sync_pending() == 2
    assert folders(fake) == {"ANNA Anna Berg": ["IMG_0002.JPG", "IMG_0003.JPG"], "BEN Ben Cho": ["IMG_0005.JPG"]}
    for file_id, content in fake.contents.items():
        assert fake.files[file_id]["md5Checksum"] == hashlib.md5(content).hexdigest()
    assert drive_sync.status()["state"] == "ok"


def test_resync_changes_nothing(fake, batch):
    """A second round with nothing new makes no request at all."""
    drive_sync.sync_pending()
    before = len(fake.ops)
    assert drive_sync.sync_pending() == 0
    assert len(fake.ops) == before


def test_interrupted_upload_resumes(fake, batch):
    """A 503 on a chunk: the upload resumes and the file is there once, md5 intact."""
    fake.fail("chunk", 503)
    drive_sync.sync_pending()
    assert folders(fake)["ANNA Anna Berg"] == ["IMG_0002.JPG", "IMG_0003.JPG"]
    assert fake.count("status") >= 1


def test_rate_limits_are_ridden_out(fake, batch):
    """429 and 403 rate limits (ErrorInfo in details[] before errors[]) are retried; the round goes on."""
    fake.fail("any", 429, times=3)
    fake.fail("list", 403, "userRateLimitExceeded", times=2)
    assert drive_sync.sync_pending() == 2
    assert sum(len(files) for files in folders(fake).values()) == 3


@pytest.mark.timeout(8)  # the default request timeout alone is 30 s
def test_dead_line_mid_chunk_is_noticed_within_the_request_timeout(app, fake, batch):
    """Half a chunk then silence: DRIVE_TIMEOUT_SECONDS ends the wait and the upload resumes."""
    app.config["DRIVE_TIMEOUT_SECONDS"] = 1.0
    fake.stall("chunk")

    assert drive_sync.sync_pending() == 2

    assert fake.stalled.is_set()
    assert folders(fake) == {"ANNA Anna Berg": ["IMG_0002.JPG", "IMG_0003.JPG"], "BEN Ben Cho": ["IMG_0005.JPG"]}
    for file_id, content in fake.contents.items():
        assert fake.files[file_id]["md5Checksum"] == hashlib.md5(content).hexdigest()


def test_drive_down_for_longer_leaves_work_for_the_next_round(fake, batch):
    """Drive failing past the retries: nothing duplicated, the next round finishes the job."""
    fake.fail("initiate", 503, times=50)
    drive_sync.sync_pending()
    assert db.session.scalar(select(DriveItem.last_error).where(DriveItem.last_error.is_not(None)))
    fake.faults.clear()
    drive_sync.sync_pending()
    assert folders(fake) == {"ANNA Anna Berg": ["IMG_0002.JPG", "IMG_0003.JPG"], "BEN Ben Cho": ["IMG_0005.JPG"]}


def test_reassigned_photo_is_moved_not_copied(fake, batch):
    """A photo re-assigned in review moves to the new person's folder: same file, one copy."""
    drive_sync.sync_pending()
    photo_id = db.session.scalar(select(Photo.id).where(Photo.original_name == "IMG_0003.JPG"))
    file_id = db.session.scalar(select(DriveItem.file_id).where(DriveItem.photo_id == photo_id))
    db_commit_with_retry(correct, batch["batch"], [photo_id], "assign", "BEN", None)
    drive_sync.sync_pending()
    assert folders(fake) == {"ANNA Anna Berg": ["IMG_0002.JPG"], "BEN Ben Cho": ["IMG_0003.JPG", "IMG_0005.JPG"]}
    assert file_id in {c["id"] for f in fake.children(fake.root_folder_id) for c in fake.children(f["id"])}
    assert fake.count("initiate") == 3


def test_quota_error_is_a_clear_state_not_a_crash(fake, batch):
    """storageQuotaExceeded stops the round with an actionable message on the dashboard."""
    fake.fail("initiate", 403, "storageQuotaExceeded", times=10)
    drive_sync.sync_pending()
    status = drive_sync.status()
    assert status["state"] == "error" and "storage" in status["message"].lower()


def test_not_configured_means_off(app, batch):
    """Without a root folder, sync is off and says so; nothing is attempted."""
    assert drive_sync.sync_pending() == 0
    assert drive_sync.status()["state"] == "off"
