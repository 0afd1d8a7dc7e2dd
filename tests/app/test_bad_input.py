"""Hostile and broken input: each is refused with a clear 4xx or reported as rejected, never a crash,
and nothing already stored (people, photos, batches, originals, exports) changes."""

import csv
import hashlib
import io
import json
import os
import random
import shutil
import struct
import traceback
import unicodedata
import uuid
import zipfile
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image
from sqlalchemy import select

from data import storage
from data.database import run_in_transaction
from data.extensions import db
from data.models import Batch, Person, Photo
from photo_processor import Processor
from services import roster
from services.export import spreadsheet_safe
from tests.support.apps import build_app
from tests.support.photogen import DEFAULT_CAMERA, SMALL_SIZE, make_photo, render_qr

T0 = datetime(2026, 5, 17, 9, 0, 0)
ROSTER = (
    "code,name,email,group\nANNA,Anna Berg,anna@example.com,5A\nBEN,Ben Cho,ben@example.com,5A\nCARL,Carl Dahl,,5B\n"
)
BASELINE = [
    ("IMG_0001.JPG", "card-ANNA"),
    ("IMG_0002.JPG", "photo-A"),
    ("IMG_0003.JPG", "card-BEN"),
    ("IMG_0004.JPG", "photo-B"),
]
CARL_RUN = [("C_0001.JPG", "card-CARL"), ("C_0002.JPG", "photo-C1"), ("C_0003.JPG", "photo-C2")]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- camera frames, made once per session; each use gets distinct bytes (a tag after the JPEG's end) ---


@pytest.fixture(scope="session")
def frames(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("frames")
    plan = {
        "card-ANNA": ("ANNA", 0),
        "photo-A": (None, 1),
        "card-BEN": ("BEN", 2),
        "photo-B": (None, 3),
        "card-CARL": ("CARL", 60),
        "photo-C1": (None, 61),
        "photo-C2": (None, 62),
    }
    made = {}
    for i, (key, (card, seconds)) in enumerate(plan.items()):
        path = make_photo(
            folder / f"{key}.jpg", size=SMALL_SIZE, card_text=card, seed=i, captured_at=T0 + timedelta(seconds=seconds)
        )
        made[key] = path.read_bytes()
    return made


def tagged(data: bytes, tag: str) -> bytes:
    """The same picture with other bytes: decoders stop at the JPEG's end marker."""
    return data + b"\0" + tag.encode()


def write_frames(folder: Path, frames: dict[str, bytes], layout: list[tuple[str, str]], tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in layout:
        (folder / name).write_bytes(tagged(frames[key], tag))
    return folder


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def no_crash(result) -> None:
    """The command ended by itself (exit code or ClickException), not by an unhandled exception."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        detail = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"command crashed with {type(result.exception).__name__}:\n{detail}")


def ingest(runner, path: Path) -> dict:
    result = runner.invoke(args=["ingest", str(path), "--wait", "--json"])
    no_crash(result)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {entry["filename"]: entry for entry in report["photos"]}


def read(unit, *args):
    return run_in_transaction(unit, *args, read_only=True)


# --- what is already stored, and the check that an attack left it alone ---


def database_state() -> tuple[dict, dict, dict]:
    db.session.expire_all()
    people = {
        p.code: (p.name, p.email, p.group_name, p.extra, str(p.source), p.consent)
        for p in db.session.scalars(select(Person))
    }
    photos = {
        p.id: (
            p.batch_id,
            p.original_name,
            p.content_hash,
            str(p.role),
            p.needs_review,
            p.group_key,
            p.excluded,
            p.scan_state,
            tuple(x.code for x in p.people),
        )
        for p in db.session.scalars(select(Photo))
    }
    batches = {b.id: str(b.status) for b in db.session.scalars(select(Batch))}
    return people, photos, batches


def files_under(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(skip)
    }


class Baseline:
    """A roster and one processed batch with exports: the things no attack may change."""

    def __init__(self, app, tmp_path: Path):
        self.data_dir = Path(app.config["DATA_DIR"])
        self.tmp_path = tmp_path
        self.people, self.photos, self.batches = read(database_state)
        self.files = files_under(self.data_dir, skip=("incoming/", "processor.lock"))
        self.outside = self.outside_files()

    def outside_files(self) -> set[str]:
        """Files anywhere in the test's temp folder except the data dir, the database and attack inputs."""
        return {
            p.relative_to(self.tmp_path).as_posix()
            for p in self.tmp_path.rglob("*")
            if p.is_file()
            and self.data_dir not in p.parents
            and ".sqlite3" not in p.name
            and not p.relative_to(self.tmp_path).as_posix().startswith("attack")
        }

    def assert_intact(self) -> None:
        people, photos, batches = read(database_state)
        assert {code: people.get(code) for code in self.people} == self.people
        assert {pid: photos.get(pid) for pid in self.photos} == self.photos
        assert {bid: batches.get(bid) for bid in self.batches} == self.batches
        now = files_under(self.data_dir, skip=("incoming/", "processor.lock"))
        assert {name: now.get(name) for name in self.files} == self.files
        assert self.outside_files() == self.outside, "a file was written outside the data directory"
        incoming = self.data_dir / "incoming"
        assert not incoming.exists() or list(incoming.iterdir()) == [], "a partial upload was left behind"
        stray = [p for p in self.data_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]
        assert stray == [], f"half-written files left: {stray}"


def seed(app, tmp_path: Path, frames: dict[str, bytes]) -> None:
    """The roster and the baseline batch, processed and exported."""
    runner = app.test_cli_runner()
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER)
    assert runner.invoke(args=["import-roster", str(roster)]).exit_code == 0
    report = ingest(runner, write_frames(tmp_path / "baseline", frames, BASELINE, "baseline"))
    assert [e["person"] for e in report["photos"]] == ["ANNA", "ANNA", "BEN", "BEN"]
    assert (Path(app.config["DATA_DIR"]) / "export" / "ANNA Anna Berg" / "IMG_0002.JPG").exists()


@pytest.fixture(scope="session")
def seeded_sqlite(sqlite_template, frames, tmp_path_factory) -> tuple[Path, Path]:
    """The baseline made once on SQLite (a database file and a data directory), copied into each test."""
    folder = tmp_path_factory.mktemp("seeded")
    database, data = folder / "intake.sqlite3", folder / "data"
    shutil.copyfile(sqlite_template, database)
    saved = dict(os.environ)
    try:
        app = build_app(data, f"sqlite:///{database}", WTF_CSRF_ENABLED=False)
        with app.app_context():
            seed(app, folder, frames)
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.session.remove()
            db.engine.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return database, data


@pytest.fixture
def seeded(request, database_url, data_dir) -> bool:
    """On SQLite, put the baseline in place before the app opens the database."""
    if not database_url.startswith("sqlite"):
        return False
    database, data = request.getfixturevalue("seeded_sqlite")
    shutil.copyfile(database, database_url.removeprefix("sqlite:///"))
    shutil.copytree(data, data_dir, dirs_exist_ok=True)
    return True


@pytest.fixture
def stored(seeded, app, frames, tmp_path) -> Baseline:
    """Request it first: the baseline must be on disk before anything opens the database."""
    if not seeded:
        seed(app, tmp_path, frames)
    return Baseline(app, tmp_path)


def put_file(client, batch_id: int, name: str, body: bytes, **kwargs):
    headers = {"X-File-Name": quote(name, safe=""), "Content-Type": "application/octet-stream"}
    return client.put(f"/api/batches/{batch_id}/files", data=body, headers=headers, **kwargs)


def new_web_batch(client) -> int:
    response = client.post("/batches", data={"label": "attack"})
    assert response.status_code == 303
    return int(response.headers["Location"].split("/")[-2])


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


# --- files that are not what their name says ---


def test_non_images_with_image_extensions_are_rejected(stored, runner, frames, tmp_path):
    """Text, HTML, PDF, ELF, random and empty files named .jpg/.png/.heic are rejected with a reason."""
    folder = write_frames(tmp_path / "attack", frames, CARL_RUN, "non-images")
    impostors = {
        "notes.jpg": b"this is not a photo\n",
        "page.jpeg": b"<html><script>alert(1)</script></html>",
        "doc.tif": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "prog.heic": b"\x7fELF\x02\x01\x01" + bytes(200),
        "noise.png": random.Random(7).randbytes(5000),
        "empty.jpg": b"",
        "fake.png": b"\x89PNG\r\n\x1a\n" + random.Random(8).randbytes(300),
    }
    for name, data in impostors.items():
        (folder / name).write_bytes(data)
    entries = by_name(ingest(runner, folder))
    for name in impostors:
        assert entries[name]["role"] == "rejected", entries[name]
        assert entries[name]["reason"], f"{name} rejected without a reason"
    assert [entries[n]["person"] for n, _ in CARL_RUN] == ["CARL"] * 3
    stored.assert_intact()


def test_truncated_jpegs_are_rejected(stored, runner, frames, tmp_path):
    """JPEGs cut short anywhere (after the SOI, in the headers, mid-scan) are rejected; the good ones go on."""
    folder = write_frames(tmp_path / "attack", frames, CARL_RUN, "truncated")
    whole = tagged(frames["photo-C1"], "truncated-source")
    cuts = {"soi_only.jpg": 2, "headers.jpg": 300, "half.jpg": len(whole) // 2, "most.jpg": len(whole) * 9 // 10}
    for name, length in cuts.items():
        (folder / name).write_bytes(whole[:length])
    entries = by_name(ingest(runner, folder))
    for name in cuts:
        assert entries[name]["role"] == "rejected" and entries[name]["reason"], entries[name]
    assert "truncated" in entries["half.jpg"]["reason"]
    assert [entries[n]["person"] for n, _ in CARL_RUN] == ["CARL"] * 3
    stored.assert_intact()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid PNG: every row decompresses to zeros (312 MB of pixels from ~300 KB)."""
    row, packer = bytes(1 + (width + 7) // 8), zlib.compressobj(9)
    return png(width, height, b"".join(packer.compress(row) for _ in range(height)) + packer.flush())


def jpeg_claiming(data: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim another size."""
    sof = data.index(b"\xff\xc0")
    patched = bytearray(data)
    struct.pack_into(">HH", patched, sof + 5, height, width)
    return bytes(patched)


def test_decompression_bombs_are_rejected_without_decoding(stored, runner, frames, tmp_path):
    """A 50000x50000 PNG bomb, a JPEG header claiming 50000x50000 and a 168 MP header are refused as bombs."""
    folder = write_frames(tmp_path / "attack", frames, CARL_RUN, "bombs")
    bombs = {
        "bomb.png": png_bomb(50_000, 50_000),
        "claims.jpg": jpeg_claiming(tagged(frames["photo-C1"], "claims"), 50_000, 50_000),
        "just_over_our_limit.png": png(12_000, 14_000, zlib.compress(bytes(1501) * 4)),
    }
    for name, data in bombs.items():
        (folder / name).write_bytes(data)
    entries = by_name(ingest(runner, folder))
    for name in bombs:
        assert entries[name]["role"] == "rejected", entries[name]
        assert "decompression bomb" in entries[name]["reason"], entries[name]
    assert [entries[n]["person"] for n, _ in CARL_RUN] == ["CARL"] * 3
    stored.assert_intact()


# --- zips ---


def test_zip_bomb_and_escaping_paths_are_rejected(stored, runner, frames, tmp_path):
    """A 64 MB-of-zeros entry, ../, absolute, drive and backslash paths and a nested zip are each reported rejected."""
    escape_target = Path("/tmp") / f"intake-escape-{uuid.uuid4().hex}.jpg"
    hostile = [
        "../../evil.jpg",
        "cam/../../../up.jpg",
        str(escape_target),
        "..\\..\\win.jpg",
        "C:\\Windows\\drive.jpg",
        "C:/Windows/drive2.jpg",
    ]
    archive = tmp_path / "attack" / "card.zip"
    archive.parent.mkdir()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("inner.jpg", tagged(frames["photo-C1"], "nested"))
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, key in CARL_RUN:
            zf.writestr(f"cam/{name}", tagged(frames[key], "zip"))
        with zf.open("cam/bomb.jpg", "w", force_zip64=True) as entry:
            for _ in range(64):
                entry.write(bytes(1024 * 1024))
        for i, name in enumerate(hostile):
            zf.writestr(name, tagged(frames["photo-C2"], f"hostile-{i}"))
        zf.writestr("cam/nested.zip", inner.getvalue())
    entries = by_name(ingest(runner, archive))
    assert entries["cam/bomb.jpg"]["role"] == "rejected"
    assert "zip bomb" in entries["cam/bomb.jpg"]["reason"]
    missing = {"role": "missing from the report", "reason": ""}
    wrong = [(name, entries.get(name, missing)) for name in hostile]
    assert [(name, e) for name, e in wrong if e["role"] != "rejected" or "unsafe file name" not in e["reason"]] == []
    assert entries["cam/nested.zip"]["role"] == "rejected"
    assert [entries[f"cam/{n}"]["person"] for n, _ in CARL_RUN] == ["CARL"] * 3
    assert not escape_target.exists()
    assert not list(tmp_path.parent.glob("**/evil.jpg")) and not list(tmp_path.parent.glob("**/up.jpg"))
    stored.assert_intact()


def patch_zip_header(raw: bytearray, local_offset: int, central_offset: int, fmt: str, value: int, name: bytes) -> None:
    """Rewrite one field of one entry in both its local header and its central directory record."""
    local = raw.index(b"PK\x03\x04")
    while raw[local + 30 : local + 30 + len(name)] != name:
        local = raw.index(b"PK\x03\x04", local + 4)
    central = raw.index(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(name)] != name:
        central = raw.index(b"PK\x01\x02", central + 4)
    struct.pack_into(fmt, raw, local + local_offset, value)
    struct.pack_into(fmt, raw, central + central_offset, value)


def broken_entry_zip(frames: dict[str, bytes], kind: str) -> bytes:
    """A good card run with one unreadable entry in the middle of it."""
    out = io.BytesIO()
    payload = tagged(frames["photo-C2"], f"broken-{kind}") + bytes(20_000)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"cam/{CARL_RUN[0][0]}", tagged(frames[CARL_RUN[0][1]], kind))
        zf.writestr("cam/broken.jpg", payload)
        for name, key in CARL_RUN[1:]:
            zf.writestr(f"cam/{name}", tagged(frames[key], kind))
    raw = bytearray(out.getvalue())
    name = b"cam/broken.jpg"
    if kind == "encrypted":  # general purpose flag bit 0: the reader asks for a password
        patch_zip_header(raw, 6, 8, "<H", 1, name)
    elif kind == "unsupported-method":  # Deflate64, which Python's zipfile cannot read
        patch_zip_header(raw, 8, 10, "<H", 9, name)
    elif kind == "understated-size":  # the header says 100 bytes; the data holds far more
        patch_zip_header(raw, 22, 24, "<I", 100, name)
    elif kind == "corrupt-stream":
        local = raw.index(name) + len(name)
        for i in range(local + 200, local + 400):
            raw[i] ^= 0x5A
    return bytes(raw)


ZIP_BREAKAGE = ["encrypted", "unsupported-method", "understated-size", "corrupt-stream"]


@pytest.mark.parametrize("kind", ZIP_BREAKAGE)
def test_unreadable_zip_entry_is_rejected_by_ingest(stored, runner, frames, tmp_path, kind):
    """An encrypted, Deflate64, size-lying or corrupt zip entry is rejected; the other entries are kept."""
    archive = tmp_path / "attack" / f"{kind}.zip"
    archive.parent.mkdir()
    archive.write_bytes(broken_entry_zip(frames, kind))
    entries = by_name(ingest(runner, archive))
    assert entries["cam/broken.jpg"]["role"] == "rejected" and entries["cam/broken.jpg"]["reason"]
    assert [entries[f"cam/{n}"]["person"] for n, _ in CARL_RUN] == ["CARL"] * 3
    stored.assert_intact()


@pytest.mark.parametrize("kind", ZIP_BREAKAGE)
def test_unreadable_zip_entry_is_rejected_by_upload(stored, client, staff, frames, kind):
    """The same zips uploaded from the browser: a 201 with the entry counted as rejected, or a 422; never 500."""
    batch_id = new_web_batch(client)
    response = put_file(client, batch_id, f"{kind}.zip", broken_entry_zip(frames, kind))
    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        assert response.json["message"]
    else:
        assert (response.json["stored"], response.json["rejected"]) == (3, 1)
    stored.assert_intact()


# --- names ---

ESCAPING_NAMES = ["dir\\..\\x.jpg", "../../etc/passwd.jpg", "/abs.jpg", "C:\\Windows\\x.jpg", "\x00"]
ODD_NAMES = [
    "a\x00b.jpg",
    "\x1b[31mred.jpg",
    "\u009b31mc1.jpg",
    "tab\there.jpg",
    "new\nline.jpg",
    "del\x7f.jpg",
    "<img src=x onerror=alert(1)>.jpg",
    "./././dots.jpg",
    "...jpg",
]


def test_hostile_file_names_are_cleaned_or_refused(stored, app, client, staff, frames):
    """Escaping names get a 422; control characters (C0 and C1) never reach a stored name; markup is escaped."""
    batch_id = new_web_batch(client)
    problems = []
    for i, name in enumerate(ESCAPING_NAMES + ODD_NAMES):
        response = put_file(client, batch_id, name, tagged(frames["photo-C1"], f"name-{i}"))
        if name in ESCAPING_NAMES:
            if response.status_code != 422 or not response.json["message"]:
                problems.append(f"{name!r}: {response.status_code}, expected a 422 with a message")
        elif response.status_code != 201:
            problems.append(f"{name!r}: {response.status_code}, expected 201 under a cleaned name")
        elif (
            has_control(response.json["name"])
            or storage.clean_relative_name(response.json["name"]) != response.json["name"]
        ):
            problems.append(f"{name!r} kept as {response.json['name']!r}")
    names = read(lambda: db.session.scalars(select(Photo.original_name).where(Photo.batch_id == batch_id)).all())
    problems += [f"stored name {n!r} has control characters" for n in names if has_control(n)]
    report = app.test_cli_runner().invoke(args=["report", str(batch_id)])
    if has_control(report.output.replace("\n", "")):
        problems.append("`flask report` writes control characters to the terminal")
    page = client.get(f"/batches/{batch_id}/review")
    assert page.status_code == 200
    assert "<img src=x onerror" not in page.text and "&lt;img src=x onerror=alert(1)&gt;.jpg" in page.text
    assert problems == [], "\n".join(problems)
    stored.assert_intact()


@pytest.mark.both_databases
def test_overlong_file_names_are_refused_or_shortened(stored, runner, client, staff, frames, tmp_path):
    """A 2000-character name (upload header or zip entry) gets a 4xx or a shortened name, never a 500 or a crash."""
    long_name = "cam/" + "x" * 2000 + ".jpg"
    batch_id = new_web_batch(client)
    response = put_file(client, batch_id, long_name, tagged(frames["photo-C1"], "long-upload"))
    assert response.status_code in (201, 413, 422), response.status_code
    if response.status_code == 201:
        assert len(response.json["name"]) <= 1024
    archive = tmp_path / "attack" / "long.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, key in CARL_RUN:
            zf.writestr(f"cam/{name}", tagged(frames[key], "long-zip"))
        zf.writestr(long_name, tagged(frames["photo-C2"], "long-entry"))
    entries = ingest(runner, archive)["photos"]
    assert len(entries) == 4 and all(len(e["filename"]) <= 1024 for e in entries)
    stored.assert_intact()


def test_files_over_the_size_limit_are_refused_everywhere(stored, app, runner, client, staff, frames, tmp_path):
    """Over MAX_UPLOAD_BYTES: a 413 from the header, else a reported refusal (chunked body, folder, zip entry)."""
    app.config["MAX_UPLOAD_BYTES"] = 64 * 1024
    big = tagged(frames["photo-C1"], "big")
    batch_id = new_web_batch(client)
    assert put_file(client, batch_id, "big.jpg", big).status_code == 413
    chunked = put_file(
        client,
        batch_id,
        "chunked.jpg",
        b"",
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input": io.BytesIO(big), "wsgi.input_terminated": True},
    )
    assert chunked.status_code == 422 and "larger than the limit" in chunked.json["message"]
    folder = tmp_path / "attack" / "folder"
    folder.mkdir(parents=True)
    (folder / "big.jpg").write_bytes(big)
    (folder / "small.jpg").write_bytes(b"tiny but not an image")
    archive = tmp_path / "attack" / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("big.jpg", big)
    for source in (folder, archive):
        entry = by_name(ingest(runner, source))["big.jpg"]
        assert entry["role"] == "rejected" and "larger than the limit" in entry["reason"]
    stored.assert_intact()


# --- rosters ---


def rows(count: int) -> bytes:
    return b"code,name,email,group\n" + b"".join(b"R%d,Person %d,,\n" % (i, i) for i in range(count))


HOSTILE_ROSTERS = {
    "binary-garbage": random.Random(1).randbytes(4096),
    "header-then-garbage": b"code,name,email,group\nG1,Good,,\n" + random.Random(2).randbytes(4096),
    "ragged-rows": b'code,name,email,group\nR1,Ok,,\nR2\nR3,Too,many,fields,here,and,more\n"R4,unterminated\n',
    "formula-injection": (
        b'code,name,email,group\nF1,"=HYPERLINK(""http://evil.example"",""x"")",f@example.com,+1\n'
        b"F2,@SUM(1+1),,-2\nF3,=cmd|' /C calc'!A0,,\n"
    ),
    "huge-field": b"code,name,email,group\nH1," + b"x" * 200_000 + b",,\nH2,Fine,,\n",
    "utf16": "code,name,email,group\nU1,Ünï,,\n".encode("utf-16"),
    "too-many-rows": rows(51),
    "existing-code-bad-row": b"code,name,email,group\nANNA,,,\nBEN,Ben,not-an-email,\n",
}


@pytest.mark.parametrize("kind", HOSTILE_ROSTERS)
def test_hostile_roster_is_reported_and_changes_nothing_stored(stored, runner, tmp_path, monkeypatch, kind):
    """Garbage, ragged rows, formulas, a 200 KB field, UTF-16, too many rows: a clear error, never a traceback."""
    if kind == "too-many-rows":
        monkeypatch.setattr(roster, "MAX_ROWS", 50)  # the limit is 100 000; the rule is the same
    path = tmp_path / "attack" / f"{kind}.csv"
    path.parent.mkdir()
    path.write_bytes(HOSTILE_ROSTERS[kind])
    result = runner.invoke(args=["import-roster", str(path)])
    no_crash(result)
    assert result.output.strip(), "no message at all"
    if result.exit_code != 0:
        assert "Error:" in result.output
    if kind == "formula-injection":
        names = read(lambda: dict(db.session.execute(select(Person.code, Person.name)).all()))
        assert names["F1"].startswith("=HYPERLINK") and names["F2"] == "@SUM(1+1)"  # kept as text
    if kind == "too-many-rows":
        assert result.exit_code != 0 and "split the file" in result.output
        assert read(lambda: db.session.scalar(select(Person.id).where(Person.code == "R1"))) is None
    stored.assert_intact()


@pytest.mark.both_databases
def test_roster_with_nul_and_control_characters_never_crashes(stored, runner, tmp_path):
    """NUL bytes inside a field are reported or removed: no traceback, on SQLite and PostgreSQL."""
    path = tmp_path / "attack" / "nul.csv"
    path.parent.mkdir()
    path.write_bytes(b"code,name,email,group\nN1,Ann\x00ie,,\nN2,Fine,,gr\x00up\nN3,Ok,,\n")
    result = runner.invoke(args=["import-roster", str(path)])
    no_crash(result)
    names = read(lambda: db.session.scalars(select(Person.name)).all())
    assert not [n for n in names if "\x00" in n]
    stored.assert_intact()


# --- exports and QR payloads ---


def test_export_manifest_defuses_formulas(stored, app, runner, tmp_path):
    """File names and camera EXIF starting with = + - @ are written to manifest.csv quoted with a leading '."""
    camera = ("=cmd|' /C calc'!A0", "@Model", "-1")
    folder = tmp_path / "attack" / "day"
    folder.mkdir(parents=True)
    names = ['=HYPERLINK("http:evil.example","x").jpg', "+1.jpg", "-2.jpg", "@SUM(A1).jpg"]
    make_photo(folder / "0card.jpg", size=SMALL_SIZE, card_text="CARL", camera=camera, captured_at=T0)
    for i, name in enumerate(names, start=1):
        make_photo(folder / name, size=SMALL_SIZE, camera=camera, captured_at=T0 + timedelta(seconds=i), seed=i)
    entries = by_name(ingest(runner, folder))
    assert all(entries[name]["person"] == "CARL" for name in names), entries
    manifest = Path(app.config["DATA_DIR"]) / "export" / "CARL Carl Dahl" / "manifest.csv"
    table = list(csv.DictReader(io.StringIO(manifest.read_text())))
    assert len(table) == len(names)
    for row in table:
        for value in row.values():
            assert not value.startswith(FORMULA_START), f"live formula in manifest.csv: {value!r}"
    assert {row["file"] for row in table} == {"'" + name for name in names}
    assert all(row["camera"].startswith("'=cmd") for row in table)
    assert [spreadsheet_safe(v) for v in ("=1", "+1", "-1", "@1", "\t=1", "\r=1", "ok")] == [
        "'=1",
        "'+1",
        "'-1",
        "'@1",
        "'\t=1",
        "'\r=1",
        "ok",
    ]
    stored.assert_intact()


def test_photo_named_like_the_manifest_is_still_delivered(stored, app, runner, frames, tmp_path):
    """A photo uploaded as manifest.csv / MANIFEST.JSON keeps its bytes in the export; the manifests stay whole."""
    folder = write_frames(
        tmp_path / "attack",
        frames,
        [("C_0001.JPG", "card-CARL"), ("manifest.csv", "photo-C1"), ("MANIFEST.JSON", "photo-C2")],
        "manifest-names",
    )
    ingest(runner, folder)
    carl = Path(app.config["DATA_DIR"]) / "export" / "CARL Carl Dahl"
    listed = json.loads((carl / "manifest.json").read_text())
    assert len(listed) == 2
    delivered = {sha256((carl / row["file"]).read_bytes()) for row in listed}
    assert delivered == {sha256((folder / name).read_bytes()) for name in ("manifest.csv", "MANIFEST.JSON")}
    assert next(csv.reader(io.StringIO((carl / "manifest.csv").read_text())))[0] == "file"
    stored.assert_intact()


HOSTILE_PAYLOADS = [
    "INTAKE:",
    "INTAKE:../../etc/passwd",
    "INTAKE:<script>alert(1)</script>",
    "INTAKE:" + "B" * 65,
    "WIFI:S:venue;T:WPA;P:secret;;",
    "'; DROP TABLE person; --",
    "\x1b[2J\x1b[31mred",
    "https://evil.example/?q=<b>x</b>",
]


def test_hostile_qr_payloads_are_recorded_but_never_cards(stored, app, runner, client, staff, frames, tmp_path):
    """A 3 KB QR and odd-looking texts are recorded on their photo, start no run, and the batch finishes."""
    folder = write_frames(tmp_path / "attack", frames, [("IMG_0001.JPG", "card-CARL")], "qr")
    big = "A" * 3000
    make_photo(
        folder / "IMG_0002.JPG",
        size=(3000, 2000),
        card_text=big,
        card_fraction=0.5,
        captured_at=T0 + timedelta(seconds=61),
    )
    for i, payload in enumerate(HOSTILE_PAYLOADS, start=3):
        make_photo(
            folder / f"IMG_{i:04d}.JPG",
            size=SMALL_SIZE,
            card_text=payload,
            card_fraction=0.35,
            seed=i,
            captured_at=T0 + timedelta(seconds=60 + i),
        )
    last = len(HOSTILE_PAYLOADS) + 3
    (folder / f"IMG_{last:04d}.JPG").write_bytes(tagged(frames["photo-C2"], "qr-last"))
    report = ingest(runner, folder)
    assert report["status"] == "done"
    entries = report["photos"]
    assert entries[0]["role"] == "separator"
    for entry in entries[1:]:
        assert (entry["role"], entry["person"], entry["group"], entry["needs_review"]) == (
            "photo",
            "CARL",
            "CARL",
            False,
        ), entry
    recorded = read(
        lambda: [
            t
            for texts in db.session.scalars(select(Photo.qr_texts).where(Photo.batch_id == report["batch"]))
            for t in texts
        ]
    )
    for payload in [big, *HOSTILE_PAYLOADS]:
        assert payload in recorded, f"QR text {payload[:40]!r} was not recorded"
    page = client.get(f"/batches/{report['batch']}/review")
    assert page.status_code == 200 and "<script>alert(1)" not in page.text
    stored.assert_intact()


def frame_with_codes(path: Path, codes: list[str], captured_at: datetime) -> None:
    """A frame holding several cards at once (someone holds up a sheet of QR codes)."""
    frame = Image.new("RGB", (2400, 1600), (240, 240, 240))
    for i, code in enumerate(codes):
        symbol = render_qr(code, module_px=9).convert("RGB")
        frame.paste(symbol, (60 + (i % 2) * 1200, 60 + (i // 2) * 800))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = DEFAULT_CAMERA[0], DEFAULT_CAMERA[1]
    sub = exif.get_ifd(0x8769)
    sub[0xA431] = DEFAULT_CAMERA[2]
    sub[0x9003] = captured_at.strftime("%Y:%m:%d %H:%M:%S")
    frame.save(path, "JPEG", quality=92, exif=exif)


@pytest.mark.both_databases
def test_frame_with_four_long_unknown_codes_does_not_fail_the_batch(stored, runner, frames, tmp_path):
    """Four 64-character unknown card codes in one frame start a review group; the batch still finishes."""
    folder = write_frames(tmp_path / "attack", frames, CARL_RUN, "four-codes")
    codes = [str(i) * 64 for i in range(1, 5)]
    frame_with_codes(folder / "C_0004.JPG", codes, T0 + timedelta(seconds=70))
    (folder / "C_0005.JPG").write_bytes(jpeg_with_time(frames["photo-C1"], T0 + timedelta(seconds=71)))
    report = ingest(runner, folder)
    assert report["status"] == "done"
    entries = by_name(report)
    assert [entries[n]["person"] for n, _ in CARL_RUN] == ["CARL"] * 3
    assert entries["C_0004.JPG"]["role"] == "separator" and entries["C_0004.JPG"]["needs_review"]
    assert entries["C_0005.JPG"]["needs_review"] and entries["C_0005.JPG"]["person"] is None
    stored.assert_intact()


def jpeg_with_time(data: bytes, captured_at: datetime) -> bytes:
    """The same picture re-saved with another capture time (and so other bytes)."""
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        exif.get_ifd(0x8769)[0x9003] = captured_at.strftime("%Y:%m:%d %H:%M:%S")
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85, exif=exif)
    return out.getvalue()


@pytest.mark.both_databases
def test_overlong_and_nul_exif_strings_do_not_fail_the_batch(stored, runner, tmp_path):
    """Camera make/model/serial of 300 characters or with a NUL inside: stored shortened, the batch finishes."""
    camera = ("M" * 300, "Mod\x00el", "S" * 150)
    folder = tmp_path / "attack" / "exif"
    folder.mkdir(parents=True)
    make_photo(folder / "1.jpg", size=SMALL_SIZE, card_text="CARL", camera=camera, captured_at=T0)
    make_photo(folder / "2.jpg", size=SMALL_SIZE, camera=camera, captured_at=T0 + timedelta(seconds=1), seed=2)
    report = ingest(runner, folder)
    assert report["status"] == "done"
    assert [e["person"] for e in report["photos"]] == ["CARL", "CARL"]
    stored.assert_intact()


def test_web_upload_of_bad_images_is_reported_after_processing(stored, app, client, staff, frames):
    """Through the browser path: a GIF named .jpg is refused at upload by its bytes, with the reason; a truncated
    JPEG is accepted as a file, then reported rejected by the scan."""
    batch_id = new_web_batch(client)
    uploads = {
        "cam/C_0001.JPG": tagged(frames["card-CARL"], "web"),
        "cam/C_0002.JPG": tagged(frames["photo-C1"], "web"),
        "cam/fake.jpg": b"GIF89a not really",
        "cam/cut.jpg": tagged(frames["photo-C2"], "web")[:5000],
    }
    answers = {name: put_file(client, batch_id, name, body) for name, body in uploads.items()}
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "cam/C_0001.JPG": 201,
        "cam/C_0002.JPG": 201,
        "cam/fake.jpg": 422,
        "cam/cut.jpg": 201,
    }
    assert answers["cam/fake.jpg"].json["message"] == "not an image: a GIF image"
    assert (answers["cam/fake.jpg"].json["stored"], answers["cam/fake.jpg"].json["rejected"]) == (2, 1)
    assert client.post(f"/api/batches/{batch_id}/complete").status_code == 200
    processor = Processor(app)
    try:
        assert processor.run_once(only_batch=batch_id) == batch_id
    finally:
        processor.close()
    report = by_name(json.loads(app.test_cli_runner().invoke(args=["report", str(batch_id), "--json"]).stdout))
    assert report["cam/fake.jpg"]["role"] == report["cam/cut.jpg"]["role"] == "rejected"
    assert report["cam/C_0002.JPG"]["person"] == "CARL"
    stored.assert_intact()


def test_zip_with_more_entries_than_the_limit_is_refused_clearly(stored, app, runner, client, staff, tmp_path):
    """A zip of more entries than INTAKE_MAX_ZIP_ENTRIES is refused whole, by upload and by ingest."""
    app.config["MAX_ZIP_ENTRIES"] = 20
    archive = tmp_path / "attack" / "many.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(21):
            zf.writestr(f"IMG_{n:04d}.JPG", b"\xff\xd8\xff tiny")
    batch_id = new_web_batch(client)
    answer = put_file(client, batch_id, "many.zip", archive.read_bytes())
    assert answer.status_code == 422
    assert answer.json["message"] == "the zip holds 21 entries; the limit is 20: zip each card alone"
    result = runner.invoke(args=["ingest", str(archive)])
    assert result.exit_code == 1 and "the zip holds 21 entries; the limit is 20" in result.output
    stored.assert_intact()


def test_raw_upload_with_a_form_content_type_is_refused(stored, client, staff, frames):
    """A file PUT as multipart or urlencoded is refused with 415, never stored as a 0-byte photo."""
    batch_id = new_web_batch(client)
    for content_type in ("multipart/form-data; boundary=x", "application/x-www-form-urlencoded"):
        answer = client.put(
            f"/api/batches/{batch_id}/files",
            data=frames["photo-C1"],
            headers={"X-File-Name": "IMG_0001.JPG", "Content-Type": content_type},
        )
        assert (answer.status_code, answer.json["error"]) == (415, "form-body")
    assert run_in_transaction(lambda: db.session.get(Batch, batch_id).photos, read_only=True) == []
    stored.assert_intact()
