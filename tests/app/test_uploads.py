"""The upload blueprint through the Flask test client: pages, the resumable file API, refusals, CSRF."""

import errno
import hashlib
import io
import re
import socket
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from data import storage
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import AuditLog, Batch, Photo, ReviewCorrection
from data.states import BatchStatus, PhotoRole, UserRole
from services import corrections
from tests.support.apps import build_app
from tests.support.factories import PASSWORD, login, make_batch, make_user
from tests.support.photogen import SMALL_SIZE, make_photo


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    folder = tmp_path / "card"
    folder.mkdir()
    return [make_photo(folder / f"IMG_{i:04d}.JPG", size=SMALL_SIZE, seed=i) for i in range(1, 4)]


@pytest.fixture
def batch_id(app) -> int:
    return make_batch("card 1").id


def put_file(client, batch_id: int, name: str, body: bytes | None = None, headers: dict | None = None, **kwargs):
    headers = {"X-File-Name": quote(name), "Content-Type": "application/octet-stream", **(headers or {})}
    return client.put(f"/api/batches/{batch_id}/files", data=body, headers=headers, **kwargs)


def read(unit, *args):
    return run_in_transaction(unit, *args, read_only=True)


def photo_rows(batch_id: int) -> list[Photo]:
    return read(lambda: db.session.scalars(select(Photo).where(Photo.batch_id == batch_id).order_by(Photo.id)).all())


def batch_status(batch_id: int) -> BatchStatus:
    return read(lambda: db.session.get(Batch, batch_id).status)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if the server reads any of it."""

    def __init__(self):
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.reads += 1
        raise AssertionError("the server read the body of a request it should have refused")


def test_pages_redirect_to_login(client, batch_id):
    """Without a login, the upload pages and the batch form redirect to the login page."""
    for response in (
        client.get("/batches/new"),
        client.post("/batches", data={"label": "x"}),
        client.get(f"/batches/{batch_id}/upload"),
    ):
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_api_answers_401_without_login(client, batch_id, photos):
    """Without a login, every API route answers 401 JSON (a script cannot follow a redirect to a form)."""
    responses = [
        put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes()),
        client.post(f"/api/batches/{batch_id}/present", json=[]),
        client.post(f"/api/batches/{batch_id}/complete"),
        client.post(f"/api/batches/{batch_id}/reopen"),
    ]
    for response in responses:
        assert response.status_code == 401
        assert response.json["error"] == "login"
    assert photo_rows(batch_id) == []


def test_new_batch_form_creates_batch_and_opens_upload_page(client, staff):
    """The form creates a web batch owned by the user and redirects to its upload page."""
    assert 'name="label"' in client.get("/batches/new").text
    response = client.post("/batches", data={"label": "Camera 2, morning"})
    assert response.status_code == 303
    batch_id = int(re.search(r"/batches/(\d+)/upload$", response.headers["Location"]).group(1))
    batch = read(lambda: db.session.get(Batch, batch_id))
    assert (batch.label, batch.source, batch.status) == ("Camera 2, morning", "web", BatchStatus.UPLOADING)
    assert batch.created_by_id is not None
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Camera 2, morning" in page.text
    assert f'data-files-url="/api/batches/{batch_id}/files"' in page.text
    assert "vendor/uppy/uppy.min.js" in page.text


def test_upload_page_of_unknown_batch_is_404(client, staff):
    """A batch that does not exist has no upload page."""
    assert client.get("/batches/999/upload").status_code == 404


def test_upload_stores_files_by_hash_under_their_relative_names(app, client, staff, batch_id, photos):
    """Each raw body is stored once by content hash; the name (URL-encoded, with folders) is kept for reports."""
    names = ["DCIM/100CANON/IMG_0001.JPG", "DCIM/100CANON/Ünï cødé.JPG", "DCIM/101CANON/IMG_0003.HEIC"]
    for name, path in zip(names, photos, strict=True):
        response = put_file(client, batch_id, name, path.read_bytes())
        assert response.status_code == 201, response.json
        assert response.json["sha256"] == sha256(path)
        assert response.json["name"] == name
        assert (response.json["already_present"], response.json["duplicate"]) == (False, False)
    rows = photo_rows(batch_id)
    assert [row.original_name for row in rows] == names
    assert [row.extension for row in rows] == [".jpg", ".jpg", ".heic"]
    for row, path in zip(rows, photos, strict=True):
        assert storage.original_path(row.content_hash, row.extension).read_bytes() == path.read_bytes()
    assert list(storage.incoming_dir().iterdir()) == []


def test_same_file_again_is_reported_and_kept_once(client, staff, batch_id, photos):
    """The same name and bytes again changes nothing (200, already_present); the bytes under another name
    are said to be a copy, and kept as a file until grouping decides which of the two is the duplicate."""
    first = put_file(client, batch_id, "card/IMG_0001.JPG", photos[0].read_bytes())
    again = put_file(client, batch_id, "card/IMG_0001.JPG", photos[0].read_bytes())
    assert again.status_code == 200
    assert again.json["already_present"] is True
    assert again.json["photo_id"] == first.json["photo_id"]
    copy = put_file(client, batch_id, "card/copy of IMG_0001.JPG", photos[0].read_bytes())
    assert copy.status_code == 201
    assert (copy.json["already_present"], copy.json["duplicate"]) == (False, True)
    assert [row.role for row in photo_rows(batch_id)] == [None, None]


def test_present_lists_only_same_name_and_same_content(client, staff, batch_id, photos):
    """present answers the (name, sha256) pairs the batch holds; another name or other bytes are missing."""
    put_file(client, batch_id, "card/IMG_0001.JPG", photos[0].read_bytes())
    put_file(client, batch_id, "card/IMG_0002.JPG", photos[1].read_bytes())
    put_file(client, batch_id, "../evil.jpg", photos[2].read_bytes())
    asked = [
        {"name": "card/IMG_0001.JPG", "sha256": sha256(photos[0]), "size": photos[0].stat().st_size},
        {"name": "card/IMG_0002.JPG", "sha256": sha256(photos[2]), "size": photos[2].stat().st_size},
        {"name": "card/IMG_0003.JPG", "sha256": sha256(photos[2]), "size": photos[2].stat().st_size},
        {"name": "other/IMG_0001.JPG", "sha256": sha256(photos[0]), "size": photos[0].stat().st_size},
        {"name": "../evil.jpg", "sha256": "", "size": 1},
    ]
    response = client.post(f"/api/batches/{batch_id}/present", json=asked)
    assert response.status_code == 200
    stored_id = photo_rows(batch_id)[0].id
    assert response.json == {
        "present": [{"name": "card/IMG_0001.JPG", "sha256": sha256(photos[0]), "photo_id": stored_id}]
    }


def test_present_refuses_bad_input_and_unknown_batch(client, staff, batch_id):
    """present wants a JSON list of objects, not too long, for a batch that exists."""
    assert client.post(f"/api/batches/{batch_id}/present", json={"name": "x"}).status_code == 400
    assert client.post(f"/api/batches/{batch_id}/present", data="not json").status_code == 400
    too_many = [{"name": f"{i}.jpg", "sha256": "0", "size": 1} for i in range(5001)]
    assert client.post(f"/api/batches/{batch_id}/present", json=too_many).status_code == 413
    missing = client.post("/api/batches/999/present", json=[])
    assert (missing.status_code, missing.json["error"]) == (404, "no-batch")


def test_unsafe_name_is_refused_and_nothing_is_written_outside(app, client, staff, batch_id, photos, tmp_path):
    """../../x.jpg is refused with a message, recorded as rejected, and no file lands outside the data dir."""
    data_dir = Path(app.config["DATA_DIR"])
    outside_before = {p for p in tmp_path.parent.rglob("*") if data_dir not in p.parents}
    response = put_file(client, batch_id, "../../x.jpg", photos[0].read_bytes())
    assert response.status_code == 422
    assert response.json["error"] == "refused"
    assert "'..'" in response.json["message"]
    [row] = photo_rows(batch_id)
    assert (row.role, row.original_name) == (PhotoRole.REJECTED, "../../x.jpg")
    assert "'..'" in row.error_reason
    assert {p for p in tmp_path.parent.rglob("*") if data_dir not in p.parents} == outside_before
    assert not storage.original_path(sha256(photos[0]), ".jpg").exists()
    assert list(storage.incoming_dir().iterdir()) == []


def test_files_route_refusals(client, staff, batch_id, photos):
    """No name header is a 400; an unknown batch a 404; a batch that is not uploading a 409."""
    response = client.put(f"/api/batches/{batch_id}/files", data=b"abc")
    assert (response.status_code, response.json["error"]) == (400, "no-name")
    assert put_file(client, 999, "IMG_0001.JPG", b"abc").status_code == 404
    put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes())
    client.post(f"/api/batches/{batch_id}/complete")
    closed = put_file(client, batch_id, "IMG_0002.JPG", photos[1].read_bytes())
    assert (closed.status_code, closed.json["error"]) == (409, "batch-closed")
    assert len(photo_rows(batch_id)) == 1


def test_two_gigabyte_request_is_refused_from_its_header(client, staff, batch_id):
    """Content-Length over the limit: 413 with a message, recorded as rejected, and not one byte is read."""
    body = UnreadableBody()
    response = put_file(
        client, batch_id, "huge.jpg", environ_overrides={"CONTENT_LENGTH": "2147483648", "wsgi.input": body}
    )
    assert response.status_code == 413
    assert response.json["message"] == "file is larger than the limit of 200 MB"
    assert body.reads == 0
    [row] = photo_rows(batch_id)
    assert (row.original_name, row.role) == ("huge.jpg", PhotoRole.REJECTED)
    assert list(storage.incoming_dir().iterdir()) == []


def test_body_without_length_is_cut_at_the_limit(app, client, staff, batch_id):
    """A chunked body (no Content-Length) is refused once it passes the limit; the partial file is removed."""
    app.config["MAX_UPLOAD_BYTES"] = 64 * 1024
    response = put_file(
        client,
        batch_id,
        "big.jpg",
        environ_overrides={
            "CONTENT_LENGTH": "",
            "wsgi.input": io.BytesIO(b"x" * 200_000),
            "wsgi.input_terminated": True,
        },
    )
    assert response.status_code == 422
    assert "larger than the limit" in response.json["message"]
    assert list(storage.incoming_dir().iterdir()) == []


def test_complete_queues_once_and_reopen_takes_more_files(client, staff, batch_id, photos):
    """complete queues the batch (again is a no-op); reopen lets more files in; an empty batch is not queued."""
    empty = client.post(f"/api/batches/{batch_id}/complete")
    assert (empty.status_code, empty.json["error"]) == (409, "empty")
    put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes())
    for _ in range(2):
        response = client.post(f"/api/batches/{batch_id}/complete")
        assert response.status_code == 200
        assert response.json == {"batch": batch_id, "status": "queued", "stored": 1, "rejected": 0}
    assert batch_status(batch_id) == BatchStatus.QUEUED
    assert "Add more files" in client.get(f"/batches/{batch_id}/upload").text
    reopened = client.post(f"/api/batches/{batch_id}/reopen")
    assert reopened.json["status"] == "uploading"
    assert put_file(client, batch_id, "IMG_0002.JPG", photos[1].read_bytes()).status_code == 201
    assert client.post(f"/api/batches/{batch_id}/complete").json["stored"] == 2
    assert client.post("/api/batches/999/complete").status_code == 404


def test_reopen_refused_while_processing(client, staff, batch_id):
    """A batch the processor holds cannot take files until it is done."""

    def start_processing():
        batch = db.session.get(Batch, batch_id)
        batch.move_to(BatchStatus.QUEUED)
        batch.move_to(BatchStatus.PROCESSING)

    db_commit_with_retry(start_processing)
    response = client.post(f"/api/batches/{batch_id}/reopen")
    assert (response.status_code, response.json["error"]) == (409, "busy")
    assert client.post("/api/batches/999/reopen").status_code == 404


def test_zip_is_expanded_through_the_same_path(client, staff, batch_id, photos, tmp_path):
    """A .zip is stored, expanded under its own name (hidden files skipped), and removed; a broken zip is refused."""
    archive = tmp_path / "card.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(photos[0], "DCIM/IMG_0001.JPG")
        zf.write(photos[1], "DCIM/IMG_0002.JPG")
        zf.writestr("DCIM/.DS_Store", b"clutter")
    response = put_file(client, batch_id, "card.zip", archive.read_bytes())
    assert response.status_code == 201
    assert response.json == {"name": "card.zip", "zip": True, "stored": 2, "rejected": 0}
    assert [row.original_name for row in photo_rows(batch_id)] == ["card/DCIM/IMG_0001.JPG", "card/DCIM/IMG_0002.JPG"]
    broken = put_file(client, batch_id, "broken.zip", b"PK not really a zip")
    assert broken.status_code == 422
    assert broken.json["message"] == "not a readable zip file"
    assert list(storage.incoming_dir().iterdir()) == []


@pytest.fixture
def csrf_client(database_url, data_dir, monkeypatch):
    """A client of an app with CSRF protection on, as in production."""
    app = build_app(data_dir, database_url, monkeypatch, WTF_CSRF_TIME_LIMIT=None)
    with app.app_context():
        make_user()
        client = app.test_client()
        page = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", data={"username": "staff", "password": PASSWORD, "csrf_token": token})
        yield client
        db.session.remove()
        db.engine.dispose()


def test_writes_without_csrf_token_are_refused(csrf_client, photos):
    """A forged form post or API write without the token is refused with 400; the page's token works."""
    assert csrf_client.post("/batches", data={"label": "forged"}).status_code == 400
    page = csrf_client.get("/batches/new").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    created = csrf_client.post("/batches", data={"label": "real", "csrf_token": token})
    assert created.status_code == 303
    batch_id = int(created.headers["Location"].split("/")[-2])
    forged = put_file(csrf_client, batch_id, "IMG_0001.JPG", photos[0].read_bytes())
    assert (forged.status_code, forged.json["error"]) == (400, "csrf")
    assert csrf_client.post(f"/api/batches/{batch_id}/complete").status_code == 400
    upload_page = csrf_client.get(f"/batches/{batch_id}/upload").text
    api_token = re.search(r'data-csrf="([^"]+)"', upload_page).group(1)
    sent = put_file(csrf_client, batch_id, "IMG_0001.JPG", photos[0].read_bytes(), headers={"X-CSRFToken": api_token})
    assert sent.status_code == 201


def test_a_client_that_stops_sending_releases_the_server(app, client, staff, batch_id):
    """A body that stops arriving mid-file times out (gunicorn's socket gets a read timeout): no thread
    waits forever, and nothing is kept or recorded; the page sends the file again."""
    app.config["UPLOAD_IDLE_SECONDS"] = 0.5
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        server_side.settimeout(10)  # without the fix the test fails after 10 s instead of hanging
        client_side.sendall(b"x" * 1000)  # then silence, as when the venue Wi-Fi drops
        with server_side.makefile("rb") as body:
            started = time.monotonic()
            response = put_file(
                client,
                batch_id,
                "IMG_0001.JPG",
                environ_overrides={"CONTENT_LENGTH": "100000", "wsgi.input": body, "gunicorn.socket": server_side},
            )
    assert time.monotonic() - started < 5
    assert response.status_code == 400
    assert photo_rows(batch_id) == []
    assert list(storage.incoming_dir().iterdir()) == []


def test_full_disk_is_not_the_files_fault(client, staff, batch_id, photos, monkeypatch):
    """A full data disk answers 507 with the reason and records nothing: the page keeps the file for later."""

    def disk_full(*args):
        raise storage.StorageFull(errno.ENOSPC, "the data disk is full: free space, then resume")

    monkeypatch.setattr(storage, "keep_original", disk_full)
    response = put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes())
    assert response.status_code == 507
    assert response.json == {"error": "disk-full", "message": "the data disk is full: free space, then resume"}
    assert photo_rows(batch_id) == []


def test_the_new_batch_form_sent_twice_makes_one_batch(client, staff):
    """A double click on "Create and upload" sends the form's one-time token twice: one batch, one page."""
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/batches/new").text).group(1)
    first, second = (client.post("/batches", data={"label": "Camera 1", "form_token": token}) for _ in range(2))
    assert first.headers["Location"] == second.headers["Location"]
    assert read(lambda: db.session.scalar(select(func.count()).select_from(Batch))) == 1


def processed(batch_id: int, owner_id: int | None) -> None:
    """The batch as the processor leaves it: done, with its owner."""

    def finish():
        batch = db.session.get(Batch, batch_id)
        batch.created_by_id = owner_id
        batch.move_to(BatchStatus.QUEUED)
        batch.move_to(BatchStatus.PROCESSING)
        batch.move_to(BatchStatus.DONE)
        batch.started_at = batch.finished_at = batch.created_at

    db_commit_with_retry(finish)


def audit_actions() -> list[tuple[str, int | None]]:
    return read(
        lambda: [(row.action, row.user_id) for row in db.session.scalars(select(AuditLog).order_by(AuditLog.id))]
    )


def test_a_processed_batch_is_changed_only_by_its_owner_or_an_admin(app, client, batch_id, photos):
    """Another staff member cannot reopen, add to or complete a processed batch; the owner can, audited."""
    owner = make_user("owner")
    make_user("other")
    processed(batch_id, owner.id)
    login(client, "other")
    assert client.post(f"/api/batches/{batch_id}/reopen").status_code == 403
    assert client.post(f"/api/batches/{batch_id}/complete").status_code == 403
    login(client, "owner")
    assert client.post(f"/api/batches/{batch_id}/reopen").status_code == 200
    login(client, "other")
    refused = put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes())
    assert (refused.status_code, refused.json["error"]) == (403, "not-yours")
    login(client, "owner")
    assert put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes()).status_code == 201
    assert audit_actions() == [("batch.reopened", owner.id), ("photo.added", owner.id)]


def test_a_replaced_photo_keeps_its_corrections_and_its_old_bytes(app, client, staff, batch_id, photos):
    """Other bytes under a kept name: same photo row (corrections stay), old original kept, replacement audited."""
    first = put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes())
    old_hash = first.json["sha256"]
    db_commit_with_retry(corrections.correct, batch_id, [first.json["photo_id"]], "exclude", None, None)
    again = put_file(client, batch_id, "IMG_0001.JPG", photos[1].read_bytes())
    assert (again.status_code, again.json["photo_id"]) == (201, first.json["photo_id"])
    assert read(lambda: db.session.scalar(select(func.count()).select_from(ReviewCorrection))) == 1
    assert storage.original_path(old_hash, ".jpg").read_bytes() == photos[0].read_bytes()
    entry = read(lambda: db.session.scalar(select(AuditLog).where(AuditLog.action == "photo.replaced")))
    assert (entry.before["sha256"], entry.after["sha256"]) == (old_hash, sha256(photos[1]))


def test_admins_delete_empty_or_abandoned_batches_only(app, client, batch_id, photos):
    """An admin deletes an abandoned upload (audited); a finished batch stays; staff cannot delete at all."""
    make_user("admin", UserRole.ADMIN)
    make_user()
    login(client)
    assert client.post(f"/batches/{batch_id}/delete").status_code in (302, 403)
    login(client, "admin")
    assert put_file(client, batch_id, "IMG_0001.JPG", photos[0].read_bytes()).status_code == 201
    assert "Delete this batch" in client.get(f"/batches/{batch_id}/upload").text
    done = make_batch("finished").id
    put_file(client, done, "IMG_0001.JPG", photos[0].read_bytes())
    processed(done, None)
    assert client.post(f"/batches/{done}/delete").status_code == 409
    assert client.post(f"/batches/{batch_id}/delete").status_code == 303
    assert read(lambda: (db.session.get(Batch, batch_id), db.session.get(Batch, done) is not None)) == (None, True)
    assert photo_rows(batch_id) == []
    assert [action for action, _ in audit_actions()] == ["batch.deleted"]


def test_dashboard_shows_upload_progress_while_files_arrive(client, staff, batch_id, photos):
    """While a batch uploads, the dashboard data and page count the files in (and refused), not "0/0"."""
    for path in photos[:2]:
        put_file(client, batch_id, path.name, path.read_bytes())
    put_file(client, batch_id, "notes.jpg", b"%PDF-1.4")
    row = next(b for b in client.get("/api/dashboard").json["batches"] if b["id"] == batch_id)
    assert (row["status"], row["received"], row["errors"], row["scanned"]) == ("uploading", 2, 1, 0)
    assert row["last_file_at"]
    assert "2 files in, 0 scanned" in client.get("/").text
