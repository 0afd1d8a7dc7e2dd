"""Drive delivery: the real Google drive_client against tests/fakedrive.py over loopback HTTP."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.drive_client import (
    ANYONE,
    SCOPES,
    Backoff,
    DriveClient,
    DriveConfigError,
    DriveError,
    DriveQuotaError,
    DriveSettings,
    drive_from_settings,
    file_digests,
)
from tests.support.fakedrive import ACCESS_TOKEN, FOLDER_MIME, FakeDrive

pytestmark = pytest.mark.timeout(20)

CHUNK_BYTES = 256 * 1024
PHOTO_BYTES = 600 * 1024  # three chunks: two full, one short
UPLOAD_OPS = {"create", "initiate", "chunk", "status", "update"}


@dataclass(frozen=True)
class Photo:
    path: str
    name: str
    sha256: str
    md5: str


@pytest.fixture
def fake() -> Iterator[FakeDrive]:
    with FakeDrive() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff delays the drive_client asked for (nothing really sleeps)."""
    return []


def settings_for(fake: FakeDrive, **overrides: str) -> DriveSettings:
    anonymous = DriveSettings(
        root_folder_id=fake.root_folder_id,
        credentials_type="anonymous",
        root_url=fake.url,
        chunk_size=CHUNK_BYTES,
        timeout_seconds=5.0,
    )
    return replace(anonymous, **overrides)


@pytest.fixture
def drive_client(fake: FakeDrive, sleeps: list[float]) -> Iterator[DriveClient]:
    with drive_from_settings(settings_for(fake), Backoff(sleep=sleeps.append)) as opened:
        yield opened


@pytest.fixture
def make_export(tmp_path: Path) -> Callable[..., Photo]:
    seeds = itertools.count()

    def make(name: str = "IMG_0001.jpg") -> Photo:
        seed = next(seeds)
        path = tmp_path / str(seed) / name  # names repeat across people; contents never do
        path.parent.mkdir()
        path.write_bytes(random.Random(seed).randbytes(PHOTO_BYTES))
        sha256, md5 = file_digests(str(path))
        return Photo(str(path), name, sha256, md5)

    return make


def deliver(drive_client: DriveClient, photo: Photo, folder_id: str, movable_id: str | None = None) -> str:
    return drive_client.deliver(
        photo.path, photo.name, folder_id, photo.sha256, photo.md5, {"intake_photo": photo.name}, movable_id
    )


def live_copies(fake: FakeDrive, photo: Photo) -> list[dict]:
    return [
        f for f in fake.files.values() if f["appProperties"].get("intake_sha256") == photo.sha256 and not f["trashed"]
    ]


def assert_stored_once(fake: FakeDrive, photo: Photo, folder_id: str) -> None:
    (stored,) = live_copies(fake, photo)
    assert stored["parents"] == [folder_id]
    assert stored["md5Checksum"] == photo.md5
    assert hashlib.md5(fake.contents[stored["id"]]).hexdigest() == photo.md5


def test_first_sync_puts_each_persons_photos_in_their_own_folder(fake, drive_client, make_export):
    """A first sync creates one folder per person and uploads each photo there in several chunks."""
    anna = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    ben = drive_client.ensure_folder(fake.root_folder_id, "Ben Cole", "person-2")
    plan = {anna: [make_export("IMG_0001.jpg"), make_export("IMG_0002.jpg")], ben: [make_export("IMG_0001.jpg")]}

    for folder_id, photos in plan.items():
        for photo in photos:
            deliver(drive_client, photo, folder_id)

    folders = {f["name"]: f for f in fake.children(fake.root_folder_id)}
    assert set(folders) == {"Anna Berg", "Ben Cole"}
    assert all(f["mimeType"] == FOLDER_MIME for f in folders.values())
    for folder_id, photos in plan.items():
        assert sorted(f["name"] for f in fake.children(folder_id)) == sorted(p.name for p in photos)
        for photo in photos:
            assert_stored_once(fake, photo, folder_id)
    assert fake.count("initiate") == 3
    assert fake.count("chunk") == 9


def test_resync_changes_nothing(fake, drive_client, make_export):
    """Running the same sync again creates, uploads and moves nothing."""
    photos = [make_export("IMG_0001.jpg"), make_export("IMG_0002.jpg")]

    def sync() -> list[str]:
        folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
        return [deliver(drive_client, photo, folder_id) for photo in photos]

    first_ids = sync()
    files_before = {file_id: dict(f) for file_id, f in fake.files.items()}
    ops_before = len(fake.ops)

    assert sync() == first_ids
    assert fake.files == files_before
    assert not UPLOAD_OPS & set(fake.ops[ops_before:])


def test_interrupted_chunk_upload_resumes_where_it_stopped(fake, drive_client, make_export, sleeps):
    """A 503 on the second chunk is followed by a status query and the upload resumes; md5 matches."""
    photo = make_export()
    fake.fail("chunk", 503, skip=1)

    deliver(drive_client, photo, fake.root_folder_id)

    assert_stored_once(fake, photo, fake.root_folder_id)
    assert fake.count("initiate") == 1
    assert [op for op in fake.ops if op in ("chunk", "status")] == ["chunk", "chunk", "status", "chunk", "chunk"]
    assert len(sleeps) == 1


def test_connection_dropped_before_a_chunk_answer_resends_the_whole_chunk(fake, drive_client, make_export, sleeps):
    """httplib2 re-sends the chunk by itself; it carries the whole body, so nothing waits for a timeout."""
    photo = make_export()
    fake.drop("chunk", after_store=True, skip=1)

    deliver(drive_client, photo, fake.root_folder_id)

    assert_stored_once(fake, photo, fake.root_folder_id)
    assert fake.short_bodies == 0
    assert fake.chunk_starts == [0, CHUNK_BYTES, CHUNK_BYTES, 2 * CHUNK_BYTES]
    assert sleeps == []


def test_line_dead_mid_chunk_is_noticed_and_the_upload_resumes_from_the_servers_count(fake, make_export, sleeps):
    """Half a chunk arrives, then silence: the request timeout ends the wait, the status query
    tells how many bytes Drive kept, and the upload goes on from exactly there."""
    photo = make_export()
    fake.stall("chunk", skip=1)
    settings = settings_for(fake, timeout_seconds=1.0)

    with drive_from_settings(settings, Backoff(sleep=sleeps.append)) as drive_client:
        deliver(drive_client, photo, fake.root_folder_id)

    assert fake.stalled.is_set()
    assert_stored_once(fake, photo, fake.root_folder_id)
    kept = CHUNK_BYTES + CHUNK_BYTES // 2
    assert fake.chunk_starts == [0, CHUNK_BYTES, kept]  # not the chunk boundary: Drive's own count
    assert fake.count("initiate") == 1
    assert len(sleeps) == 1


def test_expired_upload_session_restarts_cleanly(fake, drive_client, make_export):
    """A 404 on the upload session starts a fresh upload after looking the file up again."""
    photo = make_export()
    fake.fail("chunk", 404, skip=1)

    deliver(drive_client, photo, fake.root_folder_id)

    assert_stored_once(fake, photo, fake.root_folder_id)
    assert fake.count("initiate") == 2


@pytest.mark.parametrize(
    ("op", "status", "reason"),
    [
        ("list", 429, "rateLimitExceeded"),
        ("create", 403, "rateLimitExceeded"),
        ("initiate", 403, "userRateLimitExceeded"),
        ("chunk", 429, "rateLimitExceeded"),
        ("status", 503, "backendError"),
        ("any", 500, "backendError"),
    ],
)
def test_rate_limits_and_server_errors_are_ridden_out(fake, drive_client, make_export, sleeps, op, status, reason):
    """429, 5xx and 403 rate limits are retried with backoff until the sync completes."""
    photo = make_export()
    fake.fail("chunk", 503, skip=1)  # so a status query happens too
    fake.fail(op, status, reason, times=3)

    folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    deliver(drive_client, photo, folder_id)

    assert_stored_once(fake, photo, folder_id)
    assert len(fake.children(fake.root_folder_id)) == 1
    assert len(sleeps) == 4
    assert all(0 < delay <= 32 for delay in sleeps)


def test_persistent_failure_gives_up_with_capped_growing_backoff(fake, drive_client, sleeps):
    """When Drive keeps failing the drive_client stops after its budget with a retry-later DriveError."""
    fake.fail("any", 503, times=1000)

    with pytest.raises(DriveError, match="kept failing") as raised:
        drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert type(raised.value) is DriveError
    ceilings = [1, 2, 4, 8, 16, 32]
    assert len(sleeps) == len(ceilings)
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(sleeps, ceilings, strict=True))


def test_lost_create_answer_does_not_duplicate_the_folder(fake, drive_client):
    """A 500 after Drive stored a new folder: the retry reuses the reserved id, is refused, and reads it."""
    fake.fail("create", 500, after_store=True)

    folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert [f["id"] for f in fake.children(fake.root_folder_id)] == [folder_id]
    assert fake.count("create") == 2
    assert fake.count("generateIds") == 1


def test_connection_dropped_after_create_does_not_duplicate_the_folder(fake, drive_client):
    """httplib2 re-sends a POST whose connection dropped; the reserved id makes Drive refuse the repeat."""
    fake.drop("create", after_store=True)

    folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert [f["id"] for f in fake.children(fake.root_folder_id)] == [folder_id]
    assert fake.count("create") == 2  # the re-sent one was refused with 409


@pytest.mark.parametrize("op", ["generateIds", "list", "create", "initiate", "chunk", "status"])
def test_dropped_connections_are_ridden_out_without_copies(fake, drive_client, make_export, op):
    """Two connections dropped after Drive acted (httplib2 re-sends one, we retry the other): one copy."""
    photo = make_export()
    fake.fail("chunk", 503, skip=1)  # so a status query happens too
    fake.drop(op, after_store=True, times=2)

    folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    deliver(drive_client, photo, folder_id)

    assert_stored_once(fake, photo, folder_id)
    assert len(fake.children(fake.root_folder_id)) == 1
    assert not any(f.op == op for f in fake.faults)  # both drops happened


def test_lost_last_chunk_answer_does_not_duplicate_the_file(fake, drive_client, make_export):
    """A 500 after Drive stored the last chunk is settled by the status query, not a second upload."""
    photo = make_export()
    fake.fail("chunk", 500, after_store=True, skip=2)

    deliver(drive_client, photo, fake.root_folder_id)

    assert_stored_once(fake, photo, fake.root_folder_id)
    assert fake.count("initiate") == 1
    assert fake.ops[-1] == "status"


def test_reassigned_photo_moves_to_the_new_persons_folder(fake, drive_client, make_export):
    """Delivering a photo with the copy it was released from moves that copy instead of uploading."""
    photo = make_export()
    anna = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    ben = drive_client.ensure_folder(fake.root_folder_id, "Ben Cole", "person-2")
    file_id = deliver(drive_client, photo, anna)

    assert deliver(drive_client, photo, ben, movable_id=file_id) == file_id

    assert_stored_once(fake, photo, ben)
    assert fake.children(anna) == []
    assert fake.count("initiate") == 1


def test_group_photo_copy_in_another_folder_is_left_alone(fake, drive_client, make_export):
    """The same photo for a second person is uploaded again: the first person's copy stays theirs."""
    photo = make_export()
    anna = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    ben = drive_client.ensure_folder(fake.root_folder_id, "Ben Cole", "person-2")
    anna_copy = deliver(drive_client, photo, anna)

    assert deliver(drive_client, photo, ben) != anna_copy

    assert [f["id"] for f in fake.children(anna)] == [anna_copy]
    assert len(fake.children(ben)) == 1


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_copy_found_by_its_tag_is_checked_before_it_is_trusted(fake, drive_client, make_export, damage):
    """A tagged copy whose md5 or size differs from the local file is trashed and uploaded again."""
    photo = make_export()
    file_id = deliver(drive_client, photo, fake.root_folder_id)
    content = fake.contents[file_id]
    fake.replace_content(file_id, bytes([content[0] ^ 1]) + content[1:] if damage == "flipped byte" else content[:-1])

    assert deliver(drive_client, photo, fake.root_folder_id) != file_id

    assert fake.files[file_id]["trashed"]
    assert_stored_once(fake, photo, fake.root_folder_id)


def test_a_damaged_or_deleted_released_copy_is_not_moved(fake, drive_client, make_export):
    """The copy to move is checked like any other: damaged, it is trashed; gone, the photo is uploaded."""
    photo = make_export()
    anna = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    ben = drive_client.ensure_folder(fake.root_folder_id, "Ben Cole", "person-2")
    damaged = deliver(drive_client, photo, anna)
    fake.replace_content(damaged, b"not the photo")

    assert deliver(drive_client, photo, ben, movable_id=damaged) != damaged
    assert deliver(drive_client, photo, anna, movable_id="deleted-by-hand")

    assert fake.files[damaged]["trashed"]
    assert len(fake.children(ben)) == 1 and len(fake.children(anna)) == 1


def test_storage_quota_is_a_quota_error_without_retries(fake, drive_client, make_export, sleeps):
    """storageQuotaExceeded raises DriveQuotaError with an actionable message and is not retried."""
    fake.fail("initiate", 403, "storageQuotaExceeded")

    with pytest.raises(DriveQuotaError, match="shared drive"):
        deliver(drive_client, make_export(), fake.root_folder_id)

    assert fake.count("initiate") == 1
    assert sleeps == []
    assert fake.children(fake.root_folder_id) == []


def test_folders_are_found_by_key_not_by_name(fake, drive_client):
    """Two people with the same name get two folders; a renamed person keeps theirs."""
    first = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    second = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "o'brien\\2")  # quotes are escaped

    assert first != second
    assert drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "o'brien\\2") == second
    assert drive_client.ensure_folder(fake.root_folder_id, "Anna Lind", "person-1") == first
    assert fake.files[first]["name"] == "Anna Lind"
    assert len(fake.children(fake.root_folder_id)) == 2


def test_searches_stay_in_the_shared_drive_so_a_resync_finds_its_folder(fake, drive_client):
    """allDrives searches may come back incomplete; searching the root's shared drive finds the folder."""
    first = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1") == first
    assert len(fake.children(fake.root_folder_id)) == 1


def test_a_root_in_a_my_drive_is_searched_in_the_users_files(make_export, sleeps):
    """With the root in a user's My Drive (domain-wide delegation), re-runs find what is there."""
    with FakeDrive(shared_drive=False) as fake:
        with drive_from_settings(settings_for(fake), Backoff(sleep=sleeps.append)) as drive_client:
            photo = make_export()
            for _ in range(2):
                folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
                deliver(drive_client, photo, folder_id)

    assert len(fake.children(fake.root_folder_id)) == 1
    assert_stored_once(fake, photo, folder_id)


def test_an_incomplete_search_is_not_taken_for_nothing_found(fake, drive_client, sleeps):
    """If even the one-drive search says incompleteSearch, nothing is created on that answer."""
    fake.incomplete_corpora = {"drive", "allDrives"}

    with pytest.raises(DriveError, match="incomplete"):
        drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert fake.children(fake.root_folder_id) == []


def test_sharing_survives_a_dropped_answer_and_takes_back_only_its_own_grant(fake, drive_client):
    """A re-sent share makes no second permission and no Google mail; unshare leaves others' grants."""
    folder_id = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    fake.drop("share", after_store=True)

    drive_client.share(folder_id, "anna@example.org")
    drive_client.share(folder_id, ANYONE)
    by_hand = {"kind": "drive#permission", "id": "by-hand", "type": "user", "role": "writer"}
    fake.permissions[folder_id].append(by_hand | {"emailAddress": "anna@example.org"})
    assert len(fake.permissions[folder_id]) == 3

    drive_client.unshare(folder_id, "Anna@Example.org")
    drive_client.unshare(folder_id, ANYONE)

    assert [p["id"] for p in fake.permissions[folder_id]] == ["by-hand"]
    assert fake.notifications == []
    assert drive_client.link(folder_id) == f"https://drive.google.com/drive/folders/{folder_id}"


def test_missing_root_folder_is_a_config_error(fake, drive_client, sleeps):
    """A root folder id Drive does not know raises DriveConfigError naming the fix, without retries."""
    with pytest.raises(DriveConfigError, match="root folder id"):
        drive_client.ensure_folder("no-such-folder", "Anna Berg", "person-1")
    assert sleeps == []


def test_checksum_mismatch_trashes_the_copy_and_next_sync_repairs(fake, drive_client, make_export):
    """An upload whose Drive md5 differs is trashed and reported; the next delivery uploads it again."""
    photo = make_export()
    fake.corrupt_uploads = 1

    with pytest.raises(DriveError, match="checksum"):
        deliver(drive_client, photo, fake.root_folder_id)
    (bad,) = [f for f in fake.files.values() if f["trashed"]]
    assert bad["md5Checksum"] != photo.md5

    deliver(drive_client, photo, fake.root_folder_id)
    assert_stored_once(fake, photo, fake.root_folder_id)


def test_service_account_acts_as_subject_with_a_bearer_token(tmp_path):
    """A service-account key with a subject gets a token for that user and the API accepts it."""
    with FakeDrive(require_auth=True) as fake:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(service_account_info(fake)))
        settings = settings_for(
            fake, credentials_type="service_account", credentials_file=str(key_file), subject="photos@example.org"
        )
        with drive_from_settings(settings) as drive_client:
            drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    (grant,) = fake.token_requests
    assert grant["claims"]["sub"] == "photos@example.org"
    assert grant["claims"]["scope"] == " ".join(SCOPES)
    assert len(fake.children(fake.root_folder_id)) == 1


def test_service_account_key_the_server_does_not_know_is_refused(tmp_path, sleeps):
    """A grant signed with a key Google does not hold for the account is a config error, not a retry."""
    with FakeDrive(require_auth=True) as fake:
        service_account_info(fake)  # the account's real key
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(service_account_info(fake, trusted=False)))  # a stale or foreign key
        settings = settings_for(fake, credentials_type="service_account", credentials_file=str(key_file))
        with drive_from_settings(settings, Backoff(sleep=sleeps.append)) as drive_client:
            with pytest.raises(DriveConfigError, match="Invalid JWT Signature"):
                drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert fake.children(fake.root_folder_id) == []
    assert sleeps == []


def test_fake_drive_keeps_one_parent_per_item(fake, drive_client):
    """As in a shared drive, a second parent is refused: a move must add and remove in one update."""
    anna = drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")
    ben = drive_client.ensure_folder(fake.root_folder_id, "Ben Cole", "person-2")
    url = f"{fake.url}drive/v3/files/{anna}?addParents={ben}&supportsAllDrives=true"

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="PATCH"), timeout=5)

    assert refused.value.code == 403
    assert json.load(refused.value)["error"]["errors"][0]["reason"] == "teamDrivesParentLimit"


def test_authorized_user_token_file_is_used(tmp_path):
    """An authorized-user token file's access token is sent as the bearer token."""
    with FakeDrive(require_auth=True) as fake:
        token_file = tmp_path / "token.json"
        token_file.write_text(json.dumps(authorized_user_info(access_token=ACCESS_TOKEN)))
        settings = settings_for(fake, credentials_type="authorized_user", credentials_file=str(token_file))
        with drive_from_settings(settings) as drive_client:
            drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert len(fake.children(fake.root_folder_id)) == 1


def test_refused_credentials_are_a_config_error(tmp_path, sleeps):
    """A token grant the token endpoint refuses raises DriveConfigError, not a retry loop."""
    with FakeDrive(require_auth=True) as fake:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(service_account_info(fake)))
        fake.fail("token", 400, "invalid_grant")
        settings = settings_for(fake, credentials_type="service_account", credentials_file=str(key_file))
        with drive_from_settings(settings, Backoff(sleep=sleeps.append)) as drive_client:
            with pytest.raises(DriveConfigError, match="credentials"):
                drive_client.ensure_folder(fake.root_folder_id, "Anna Berg", "person-1")

    assert fake.count("token") == 1
    assert sleeps == []


def test_settings_say_when_sync_is_off_or_unusable(tmp_path):
    """No root folder means sync is off; unusable settings raise DriveConfigError with the reason."""
    assert not DriveSettings().is_configured()
    unusable = {
        "sync is off": DriveSettings(),
        "multiple of 262144": DriveSettings(root_folder_id="root", chunk_size=1000),
        "request timeout": DriveSettings(root_folder_id="root", timeout_seconds=0),
        "No Drive credentials file": DriveSettings(root_folder_id="root"),
        "Cannot read": DriveSettings(root_folder_id="root", credentials_file=str(tmp_path / "missing.json")),
        "test server": DriveSettings(root_folder_id="root", credentials_type="anonymous"),
    }
    for message, settings in unusable.items():
        with pytest.raises(DriveConfigError, match=message):
            drive_from_settings(settings)


def service_account_info(fake: FakeDrive, trusted: bool = True) -> dict[str, str]:
    """A new service-account key file's contents; trusted registers its public key with the fake."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    email = "intake@intake-test.iam.gserviceaccount.com"
    if trusted:
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fake.trust(email, public)
    return {
        "type": "service_account",
        "project_id": "intake-test",
        "private_key_id": "test-key",
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "1",
        "token_uri": f"{fake.url}token",
    }


def authorized_user_info(access_token: str) -> dict[str, str]:
    # google-auth always refreshes these against Google's own token endpoint (it ignores token_uri),
    # so the test gives a still-valid access token and no refresh happens.
    return {
        "type": "authorized_user",
        "client_id": "intake-drive_client",
        "client_secret": "secret",
        "refresh_token": "refresh",
        "token": access_token,
        "expiry": "2099-01-01T00:00:00Z",
    }
