"""Faults on a busy photo day: a full data disk, a database held locked by another program, the processor's
worker killed again and again. Each ends in a clear error or a takeover, never in a lost or doubled photo."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch
from photo_processor import Processor
from services import export
from services.batches import queue_batch
from tests.support.factories import PASSWORD, login, make_user
from tests.support.liveserver import gunicorn
from tests.support.photogen import SMALL_SIZE, make_photo
from tests.support.processes import session_members
from tests.support.waiting import wait_for
from tests.support.webclient import WebClient

T0 = datetime(2026, 5, 17, 9, 0, 0)
ROSTER = "code,name,email,group\nCARL,Carl Dahl,,5B\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- a data directory that runs out of space ---


class TmpfsDisk:
    """The data directory on its own small tmpfs: writes there really fail with ENOSPC."""

    def __init__(self, path: Path, size_mb: int):
        self.path, self.filler = path, path / ".filler"
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True)

    def fill(self, leave: int = 0) -> None:
        stats = os.statvfs(self.path)
        free = stats.f_bavail * stats.f_frsize
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, max(1, free - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if subprocess.run(["umount", str(self.path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], check=False)


class PatchedDisk:
    """Without the right to mount: the same ENOSPC, raised in-process where the app writes to the data dir
    (storage's streamed writes, export's links and manifest writes). Scanner processes are not covered."""

    def __init__(self, path: Path, monkeypatch):
        self.path, self.left = path, None
        real_fdopen, real_link, real_write_bytes = os.fdopen, os.link, Path.write_bytes
        disk = self

        class Limited:
            def __init__(self, fh):
                self._fh = fh

            def write(self, data):
                disk.spend(len(data))
                return self._fh.write(data)

            def __getattr__(self, name):
                return getattr(self._fh, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._fh.close()

        def fdopen(fd, *args, **kwargs):
            return Limited(real_fdopen(fd, *args, **kwargs))

        def link(src, dst, **kwargs):
            disk.spend(1)
            return real_link(src, dst, **kwargs)

        def write_bytes(target, data):
            if path in target.parents:
                real_write_bytes(target, b"")
                disk.spend(len(data))
            return real_write_bytes(target, data)

        for module, overrides in (("storage", {"fdopen": fdopen}), ("export", {"link": link})):
            proxy = types.ModuleType("os")
            proxy.__dict__.update(os.__dict__, **overrides)
            monkeypatch.setattr(sys.modules[module], "os", proxy)
        monkeypatch.setattr(Path, "write_bytes", write_bytes)

    def spend(self, size: int) -> None:
        if self.left is None:
            return
        if size > self.left:  # the app removes the partial file, which gives its space back
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.left -= size

    def fill(self, leave: int = 0) -> None:
        self.left = leave

    def free(self) -> None:
        self.left = None

    def close(self) -> None:
        self.left = None


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None and not os.environ.get("INTAKE_TEST_NO_MOUNT")


@pytest.fixture
def small_disk(data_dir, monkeypatch):
    """Request it before `app`: the data directory must be mounted before the app uses it."""
    disk = TmpfsDisk(data_dir, 64) if can_mount() else PatchedDisk(data_dir, monkeypatch)
    yield disk
    disk.free()
    disk.close()


def leftovers(data_dir: Path) -> list[Path]:
    """Half-written files: uploads in progress, export and thumbnail temp files."""
    return [p for p in data_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]


def damaged_originals(data_dir: Path) -> list[Path]:
    """Originals are named by their hash: any whose bytes disagree was cut short."""
    originals = data_dir / "originals"
    return (
        [p for p in originals.rglob("*") if p.is_file() and sha256(p.read_bytes()) != p.stem]
        if originals.exists()
        else []
    )


def carl_run(folder: Path, count: int, tag: str) -> dict[str, bytes]:
    """A card and count-1 photos of CARL (~0.5 MB each); returns name -> bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(count):
        path = make_photo(
            folder / f"IMG_{i + 1:04d}.JPG",
            size=SMALL_SIZE,
            card_text="CARL" if i == 0 else None,
            captured_at=T0 + timedelta(seconds=i),
            seed=i,
        )
        path.write_bytes(path.read_bytes() + tag.encode())
        files[path.name] = path.read_bytes()
    return files


def import_roster(runner, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER)
    assert runner.invoke(args=["import-roster", str(path)]).exit_code == 0


def batch_row(batch_id: int) -> Batch:
    return run_in_transaction(lambda: db.session.get(Batch, batch_id), read_only=True)


def assert_delivered_once(data_dir: Path, files: dict[str, bytes]) -> None:
    """CARL's export folder holds every photo (not the card) exactly once, whole, listed once in the manifest."""
    folder = data_dir / "export" / "CARL Carl Dahl"
    photos = {name: data for name, data in files.items() if name != "IMG_0001.JPG"}
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted([*photos, "manifest.csv", "manifest.json"])
    assert {name: sha256((folder / name).read_bytes()) for name in photos} == {
        name: sha256(data) for name, data in photos.items()
    }
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(row["file"] for row in manifest) == sorted(photos)


def test_disk_full_during_ingest_fails_the_batch_with_the_reason(small_disk, app, runner, tmp_path):
    """The disk fills after two of six files: the batch fails with a disk-full reason, no partial file is left."""
    data_dir = Path(app.config["DATA_DIR"])
    import_roster(runner, tmp_path)
    files = carl_run(tmp_path / "day", 6, "ingest")
    small_disk.fill(leave=2 * max(len(data) for data in files.values()) + 400 * 1024)
    result = runner.invoke(args=["ingest", str(tmp_path / "day"), "--wait", "--json"])
    assert leftovers(data_dir) == [] and damaged_originals(data_dir) == []
    assert result.exit_code != 0, f"a disk-full ingest reported success:\n{result.output}"
    [batch] = run_in_transaction(lambda: db.session.scalars(sa.select(Batch)).all(), read_only=True)
    assert batch.status == "failed"
    assert "No space left on device" in (batch.error or "") or "disk" in (batch.error or "").lower()


def test_ingest_again_after_a_disk_full_failure_delivers_every_photo_once(small_disk, app, runner, tmp_path):
    """After a disk-full ingest, freeing space and ingesting again delivers every photo exactly once."""
    data_dir = Path(app.config["DATA_DIR"])
    import_roster(runner, tmp_path)
    files = carl_run(tmp_path / "day", 6, "ingest")
    small_disk.fill(leave=2 * max(len(data) for data in files.values()) + 64 * 1024)
    runner.invoke(args=["ingest", str(tmp_path / "day"), "--wait", "--json"])
    assert leftovers(data_dir) == [] and damaged_originals(data_dir) == []
    small_disk.free()
    again = runner.invoke(args=["ingest", str(tmp_path / "day"), "--wait", "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert [(e["filename"], e["role"], e["person"]) for e in report["photos"]] == [
        (name, "separator" if name == "IMG_0001.JPG" else "photo", "CARL") for name in sorted(files)
    ]
    assert_delivered_once(data_dir, files)
    assert leftovers(data_dir) == []


def put_file(client, batch_id: int, name: str, body: bytes):
    return client.put(
        f"/api/batches/{batch_id}/files",
        data=body,
        headers={"X-File-Name": quote(name), "Content-Type": "application/octet-stream"},
    )


def test_disk_full_during_upload_is_a_retryable_error_and_the_upload_resumes(small_disk, app, client, tmp_path):
    """A full disk gives the browser a retryable 507 and shows on the batch; once freed, the upload resumes whole."""
    data_dir = Path(app.config["DATA_DIR"])
    import_roster(app.test_cli_runner(), tmp_path)
    make_user()
    assert login(client).status_code == 302
    files = carl_run(tmp_path / "day", 3, "upload")
    batch_id = int(client.post("/batches", data={"label": "cam"}).headers["Location"].split("/")[-2])
    assert put_file(client, batch_id, "IMG_0001.JPG", files["IMG_0001.JPG"]).status_code == 201
    small_disk.fill(leave=0)
    response = put_file(client, batch_id, "IMG_0002.JPG", files["IMG_0002.JPG"])
    assert response.status_code in (503, 507), f"{response.status_code}: {response.get_data(as_text=True)}"
    assert "space" in response.json["message"].lower() or "disk" in response.json["message"].lower()
    assert leftovers(data_dir) == [] and damaged_originals(data_dir) == []
    batch = batch_row(batch_id)
    assert batch.status == "uploading" and "full" in batch.error
    small_disk.free()
    for name, data in files.items():
        assert put_file(client, batch_id, name, data).status_code in (200, 201)
    assert client.post(f"/api/batches/{batch_id}/complete").json["status"] == "queued"
    processor = Processor(app)
    try:
        processor.run_once(only_batch=batch_id)
    finally:
        processor.close()
    report = json.loads(app.test_cli_runner().invoke(args=["report", str(batch_id), "--json"]).stdout)
    assert report["status"] == "done"
    assert [(e["filename"], e["role"], e["person"]) for e in report["photos"]] == [
        (name, "separator" if name == "IMG_0001.JPG" else "photo", "CARL") for name in files
    ]
    assert_delivered_once(data_dir, files)


def test_disk_full_during_export_fails_the_batch_and_a_rerun_delivers_everything(
    small_disk, app, runner, tmp_path, monkeypatch
):
    """A full disk at export fails the batch with the reason, leaves no .tmp; a re-run exports every photo once."""
    data_dir = Path(app.config["DATA_DIR"])
    import_roster(runner, tmp_path)
    files = carl_run(tmp_path / "day", 4, "export")
    result = runner.invoke(args=["ingest", str(tmp_path / "day"), "--json"])
    assert result.exit_code == 0, result.output
    batch_id = json.loads(result.stdout)["batch"]
    real_export = export.export_pending

    def export_on_a_full_disk():
        small_disk.fill(leave=0)
        return real_export()

    monkeypatch.setattr(export, "export_pending", export_on_a_full_disk)
    processor = Processor(app)
    try:
        assert processor.run_once(only_batch=batch_id) == batch_id
        batch = batch_row(batch_id)
        assert batch.status == "failed", batch.status
        assert "No space left on device" in batch.error, batch.error
        assert leftovers(data_dir) == []
        for manifest in (data_dir / "export").rglob("manifest.json"):
            json.loads(manifest.read_text())  # absent or whole, never cut short
        monkeypatch.setattr(export, "export_pending", real_export)
        small_disk.free()
        db_commit_with_retry(queue_batch, batch_id)
        assert processor.run_once(only_batch=batch_id) == batch_id
    finally:
        processor.close()
    assert batch_row(batch_id).status == "done"
    assert_delivered_once(data_dir, files)
    assert leftovers(data_dir) == []


# --- a real server, a real lock, real kills ---

LOCK_HOLDER = """
import signal, sys
signal.alarm(60)  # never outlive a broken test
url = sys.argv[1]
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
else:
    import psycopg
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    conn.execute("LOCK TABLE person, batch IN ACCESS EXCLUSIVE MODE")
print("locked", flush=True)
sys.stdin.read()
conn.rollback()
conn.close()
"""


class LockHolder:
    """Another program holding the database's write lock (an admin's sqlite3 shell, a stuck job) until released."""

    def __init__(self, database_url: str):
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, database_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.mark.slow
@pytest.mark.both_databases
def test_lock_held_past_every_retry_gives_a_clean_503_then_recovers(database_url, data_dir):
    """gunicorn under an outside lock past every retry: a quick 503 with message, nothing written, then recovery."""
    env = {"DB_BUSY_TIMEOUT_MS": "400", "DB_RETRY_ATTEMPTS": "2", "DB_RETRY_MAX_DELAY": "0.1"}
    with gunicorn(data_dir, database_url, **env) as server:
        assert server.flask("create-user", "staff", "--password-stdin", input_text=PASSWORD + "\n").returncode == 0
        staff = WebClient(server.url, follow_redirects=False)
        assert staff.login("staff", PASSWORD).status == 302
        created = staff.post_form("/batches", {"label": "cam"}, "/batches/new")
        batch_path = urllib.parse.urlsplit(created.headers["Location"]).path
        api_token = staff.token(batch_path)
        complete = f"/api/batches/{batch_path.split('/')[2]}/complete"
        visitor = WebClient(server.url, follow_redirects=False)
        holder = LockHolder(database_url)
        try:
            started = time.monotonic()
            page = visitor.register("during@example.com")
            page_seconds = time.monotonic() - started
            api = staff.request("POST", complete, headers={"X-CSRFToken": api_token})
            health = staff.request("GET", "/api/health").status
        finally:
            holder.release()
        assert page.status == 503 and page.headers.get("Retry-After") and "busy" in page.text.lower(), page.text[:300]
        assert "nothing was changed" in page.text
        assert page_seconds < 5, f"the refusal took {page_seconds:.1f}s"
        assert api.status == 503 and api.headers.get("Retry-After"), (api.status, api.text)
        assert json.loads(api.body)["error"] == "busy" and json.loads(api.body)["message"]
        assert health == 200
        assert visitor.register("after@example.com").status == 302
        assert staff.request("POST", complete, headers={"X-CSRFToken": api_token}).status == 409  # empty: a real answer
        counts = json.loads(server.flask("stats", "--json").stdout)["tables"]
        assert counts["person"] == 1, "the refused registration must not have been written"
        assert server.flask("verify").returncode == 0


def shoot_big_day(folder: Path, people: int, per_person: int) -> dict[str, bytes]:
    """people x per_person frames of 6 MP (a card, then photos); copies of a few made frames with distinct
    bytes, all at one capture time, so file-name order is shooting order."""
    base = folder.parent / "base"
    base.mkdir(parents=True)
    made = {
        key: make_photo(
            base / f"{key}.jpg", size=(3000, 2000), card_text=None if key == "photo" else key, captured_at=T0, seed=i
        ).read_bytes()
        for i, key in enumerate(["photo", *(f"P{n}" for n in range(people))])
    }
    folder.mkdir()
    files = {}
    for n in range(people * per_person):
        person, index = divmod(n, per_person)
        data = made["photo" if index else f"P{person}"] + f"frame {n}".encode()
        (folder / f"IMG_{n + 1:04d}.JPG").write_bytes(data)
        files[f"IMG_{n + 1:04d}.JPG"] = data
    return files


def owner_pid(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None


def kill_the_processor(server, batch_state, batch_id: int, times: int, timeout: float) -> list[float]:
    """Each round: wait for scan progress, SIGKILL the worker holding the batch, wait for another to claim it.
    Returns the seconds from each kill to the takeover; checks no claim came before the lease ran out."""
    takeovers, progress = [], 0
    for _ in range(times):
        state = wait_for(
            lambda before=progress: (
                (s := batch_state(batch_id)).status == "processing" and s.progress_done > before and s
            ),
            60,
            "the processor to make progress",
        )
        victim = owner_pid(state.lease_owner)
        assert victim == server.processor_pid() and victim in server.worker_pids()
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        expired_at = batch_state(batch_id).lease_expires_at  # final: its holder is dead
        state = wait_for(
            lambda old=state.lease_owner: (s := batch_state(batch_id)).lease_owner not in (None, old) and s,
            timeout,
            "another worker to take the batch over",
        )
        takeovers.append(time.monotonic() - killed_at)
        assert state.status == "processing", "the batch finished before it could be killed often enough"
        assert expired_at < state.started_at, "the batch was claimed before its lease ran out"
        progress = state.progress_done
    return takeovers


def assert_every_photo_once(
    report: dict, hashes: dict[str, str], files: dict[str, bytes], data_dir: Path, per_person: int
) -> None:
    assert [e["filename"] for e in report["photos"]] == sorted(files)
    assert [(e["role"], e["person"]) for e in report["photos"]] == [
        ("photo" if n % per_person else "separator", f"P{n // per_person}") for n in range(len(files))
    ]
    assert hashes == {name: sha256(data) for name, data in files.items()}
    for n in range(len(files) // per_person):
        folder = data_dir / "export" / f"P{n} Person {n}"
        delivered = sorted(p.name for p in folder.iterdir() if not p.name.startswith("manifest."))
        assert delivered == sorted(f"IMG_{n * per_person + i + 1:04d}.JPG" for i in range(1, per_person))
        assert all(sha256((folder / name).read_bytes()) == sha256(files[name]) for name in delivered)
        assert len(json.loads((folder / "manifest.json").read_text())) == per_person - 1


@pytest.mark.slow
def test_processor_worker_killed_three_times_mid_batch(database_url, data_dir, tmp_path, capsys):
    """Processor worker kill -9'd 3 times: prompt takeovers, every photo once with its hash, no orphaned scanner."""
    lease, poll, margin, people, per_person = 3, 0.3, 2.0, 6, 10
    files = shoot_big_day(tmp_path / "day", people, per_person)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    batch_table = sa.table(
        "batch",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("lease_owner", sa.String),
        sa.column("lease_expires_at", sa.DateTime),
        sa.column("started_at", sa.DateTime),
        sa.column("progress_done", sa.Integer),
        sa.column("attempts", sa.Integer),
    )

    def batch_state(batch_id: int):
        with engine.connect() as conn:
            return conn.execute(sa.select(batch_table).where(batch_table.c.id == batch_id)).one()

    env = {"INTAKE_LEASE_SECONDS": str(lease), "INTAKE_PROCESSOR_POLL": str(poll), "INTAKE_SCAN_WORKERS": "1"}
    leader = None
    try:
        with gunicorn(data_dir, database_url, workers=2, **env) as server:
            leader = server.process.pid
            roster = tmp_path / "roster.csv"
            roster.write_text("code,name,email,group\n" + "".join(f"P{n},Person {n},,\n" for n in range(people)))
            assert server.flask("import-roster", str(roster)).returncode == 0
            result = server.flask("ingest", str(tmp_path / "day"), "--json")
            assert result.returncode == 0, result.stderr
            batch_id = json.loads(result.stdout)["batch"]
            takeovers = kill_the_processor(server, batch_state, batch_id, 3, lease + poll + margin + 10)
            wait_for(lambda: batch_state(batch_id).status in ("done", "failed"), 120, "the batch to finish", 0.5)
            final, report, verify = batch_state(batch_id), server.report(batch_id), server.flask("verify")
    finally:
        orphans = session_members(leader) if leader else []
        for pid in orphans:  # started by this test's server: never leave them running
            os.kill(pid, signal.SIGKILL)
    with capsys.disabled():
        print(
            f"\n[kill -9 x3] takeovers after {', '.join(f'{t:.2f}s' for t in takeovers)} (lease {lease}s, poll {poll}s)"
        )
    assert final.status == "done" and final.attempts == 4, final
    assert all(t < lease + poll + margin for t in takeovers), f"takeovers took {takeovers}, lease {lease}s"
    assert verify.returncode == 0, verify.stderr
    with engine.connect() as conn:
        hashes = dict(
            conn.execute(
                sa.text("SELECT original_name, content_hash FROM photo WHERE batch_id = :b"), {"b": batch_id}
            ).all()
        )
    engine.dispose()
    assert_every_photo_once(report, hashes, files, data_dir, per_person)
    assert orphans == [], f"{len(orphans)} scanner processes of the killed workers outlived them: {orphans}"
