"""Drive delivery wired to the database: the real client against the fake Drive server."""

import hashlib

import pytest
from sqlalchemy import select

from data.config import Config
from data.database import db_commit_with_retry
from data.extensions import db
from data.models import DriveItem, Person, Photo
from services import drive_sync
from services.corrections import correct

ROSTER = "code,name,email,group\nANNA,Anna Berg,,\nBEN,Ben Cho,,\n"


@pytest.fixture
def batch(ingest_day):
    return ingest_day(ROSTER)


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


def person(code: str) -> Person:
    return db.session.scalar(select(Person).where(Person.code == code))


def set_email(code: str, email: str | None) -> None:
    person(code).email = email
    db.session.commit()


def readers(fake, code: str) -> list[tuple[str, str]]:
    """(type, e-mail or "") of every permission on the person's folder."""
    grants = fake.permissions.get(person(code).drive_folder_id, [])
    return sorted((p["type"], p.get("emailAddress", "")) for p in grants)


def test_folder_link_is_kept_and_nothing_shared_by_default(fake, batch):
    """DRIVE_SHARE=none: each person has their folder's link, and the folder is shared with nobody."""
    drive_sync.sync_pending()
    anna = person("ANNA")
    assert anna.drive_folder_link == fake.files[anna.drive_folder_id]["webViewLink"]
    assert anna.drive_shared_with is None
    assert fake.permissions == {} and fake.notifications == []


def test_reader_sharing_gives_the_persons_address_read_access_without_google_mail(app, fake, batch):
    """DRIVE_SHARE=reader: the folder is shared with the person's e-mail as reader; Google sends nothing."""
    app.config["DRIVE_SHARE"] = "reader"
    set_email("ANNA", " Anna@Example.org ")

    assert drive_sync.sync_pending() == 2

    assert readers(fake, "ANNA") == [("user", "anna@example.org")]
    assert person("ANNA").drive_shared_with == "anna@example.org"
    assert readers(fake, "BEN") == [] and person("BEN").drive_shared_with is None  # no address, no share
    assert fake.notifications == []
    assert fake.permissions[person("ANNA").drive_folder_id][0]["role"] == "reader"


def test_anyone_with_the_link_sharing(app, fake, batch):
    """DRIVE_SHARE=anyone: every folder opens for anyone with its link, and the link is kept."""
    app.config["DRIVE_SHARE"] = "anyone"
    drive_sync.sync_pending()
    for code in ("ANNA", "BEN"):
        assert readers(fake, code) == [("anyone", "")]
        assert person(code).drive_shared_with == "anyone"
        assert person(code).drive_folder_link.startswith("https://drive.google.com/drive/folders/")


def test_a_changed_address_or_setting_moves_the_grant_without_new_photos(app, fake, batch):
    """A corrected address gets access and the old one loses it; DRIVE_SHARE=none takes ours back."""
    app.config["DRIVE_SHARE"] = "reader"
    set_email("ANNA", "anna@typo.example")
    drive_sync.sync_pending()
    ops_before = len(fake.ops)

    set_email("ANNA", "anna@example.org")
    assert drive_sync.sync_pending() == 1
    assert readers(fake, "ANNA") == [("user", "anna@example.org")]
    assert not {"initiate", "create"} & set(fake.ops[ops_before:])

    app.config["DRIVE_SHARE"] = "none"
    assert drive_sync.sync_pending() == 1
    assert readers(fake, "ANNA") == [] and person("ANNA").drive_shared_with is None
    assert drive_sync.sync_pending() == 0


def test_an_address_drive_will_not_share_with_silently_does_not_stop_the_photos(app, fake, batch):
    """No Google account behind the address: photos still go up, the share is retried next round."""
    app.config["DRIVE_SHARE"] = "reader"
    set_email("ANNA", "anna@no-google.example")
    fake.no_google_account.add("anna@no-google.example")

    assert drive_sync.sync_pending() == 1  # Ben only
    assert folders(fake)["ANNA Anna Berg"] == ["IMG_0002.JPG", "IMG_0003.JPG"]
    assert readers(fake, "ANNA") == [] and drive_sync.status()["state"] == "retrying"

    fake.no_google_account.clear()  # say the person made a Google account with that address
    assert drive_sync.sync_pending() == 1
    assert readers(fake, "ANNA") == [("user", "anna@no-google.example")]
    assert fake.notifications == []


def test_a_shared_drive_that_forbids_sharing_stops_the_round_saying_so(app, fake, batch):
    """A 403 on sharing is the shared drive's policy: the dashboard names the setting to change."""
    app.config["DRIVE_SHARE"] = "anyone"
    fake.fail("share", 403, "publishOutNotPermitted", times=10)
    drive_sync.sync_pending()
    status = drive_sync.status()
    assert status["state"] == "error" and "DRIVE_SHARE=none" in status["message"]


def test_not_configured_means_off(app, batch):
    """Without a root folder, sync is off and says so; nothing is attempted."""
    assert drive_sync.sync_pending() == 0
    assert drive_sync.status()["state"] == "off"


def test_drive_share_setting_is_parsed_strictly(monkeypatch, tmp_path):
    """DRIVE_SHARE takes none, reader or anyone (any case); anything else refuses to start."""
    monkeypatch.setenv("INTAKE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "test")
    monkeypatch.setenv("DRIVE_SHARE", " Reader ")
    assert Config().DRIVE_SHARE == "reader"
    monkeypatch.setenv("DRIVE_SHARE", "everyone")
    with pytest.raises(ValueError, match="DRIVE_SHARE must be one of anyone, none, reader"):
        Config()
