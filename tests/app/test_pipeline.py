"""The processor end to end on generated batches, through the operators' CLI contract."""

import json
import re
import shutil
import zipfile
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import pytest

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import Batch
from data.states import BatchStatus, PhotoRole, ScanState
from photo_processor import Processor
from services import export, regrouping
from services.batches import create_batch, queue_batch, reopen_batch
from services.receiving import files_in_folder, read_in_chunks, receive_file
from tests.support.corpus import QR_PHOTOS
from tests.support.photogen import SMALL_SIZE, make_batch, make_photo
from tests.support.waiting import wait_for

T0 = datetime(2026, 5, 17, 9, 0, 0)
ROSTER = "code,name,email,group\nANNA,Anna Berg,anna@example.com,5A\nBEN,Ben Cho,,5A\nCARL,Carl Dahl,,5B\n"


@pytest.fixture
def roster(runner, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER)
    result = runner.invoke(args=["import-roster", str(path)])
    assert result.exit_code == 0, result.output


def ingest(runner, path: Path) -> dict:
    result = runner.invoke(args=["ingest", str(path), "--wait", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {entry["filename"]: entry for entry in report["photos"]}


def shoot(folder: Path, plan: list[tuple], **options) -> Path:
    make_batch(folder, plan, size=SMALL_SIZE, **options)
    return folder


def people(report: dict) -> list:
    return [entry["person"] for entry in report["photos"]]


def test_cards_start_runs_and_export_folders(app, runner, roster, tmp_path):
    """card, photos, next card, photos: each photo under its person, folders with manifests, cards not exported."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",)])
    report = ingest(runner, folder)
    assert report["status"] == "done"
    assert [e["role"] for e in report["photos"]] == ["separator", "photo", "photo", "separator", "photo"]
    assert people(report) == ["ANNA", "ANNA", "ANNA", "BEN", "BEN"]
    export = Path(app.config["DATA_DIR"]) / "export"
    anna = export / "ANNA Anna Berg"
    assert sorted(p.name for p in anna.iterdir()) == ["IMG_0002.JPG", "IMG_0003.JPG", "manifest.csv", "manifest.json"]
    manifest = json.loads((anna / "manifest.json").read_text())
    assert [row["file"] for row in manifest] == ["IMG_0002.JPG", "IMG_0003.JPG"]
    assert all(len(row["sha256"]) == 64 and row["camera"] and row["captured_at"] for row in manifest)
    assert not (export / "CARL Carl Dahl").exists()


def test_order_is_capture_time_not_file_name(runner, roster, tmp_path):
    """Files named out of shooting order are sorted by capture time with sub-seconds."""
    folder = tmp_path / "day"
    folder.mkdir()
    make_photo(folder / "B.JPG", size=SMALL_SIZE, card_text="ANNA", captured_at=T0, subsec="10")
    make_photo(folder / "A.JPG", size=SMALL_SIZE, captured_at=T0, subsec="50")
    make_photo(folder / "C.JPG", size=SMALL_SIZE, card_text="BEN", captured_at=T0 + timedelta(seconds=1))
    entries = by_name(ingest(runner, folder))
    assert entries["A.JPG"]["person"] == "ANNA"
    assert entries["C.JPG"]["role"] == "separator"


def test_counter_wrap_keeps_order(runner, roster, tmp_path):
    """IMG_9999 then IMG_0001 (new folder): capture time keeps the run together."""
    folder = tmp_path / "day"
    (folder / "100CANON").mkdir(parents=True)
    (folder / "101CANON").mkdir()
    make_photo(folder / "100CANON/IMG_9998.JPG", size=SMALL_SIZE, card_text="ANNA", captured_at=T0)
    make_photo(folder / "100CANON/IMG_9999.JPG", size=SMALL_SIZE, captured_at=T0 + timedelta(seconds=2))
    make_photo(folder / "101CANON/IMG_0001.JPG", size=SMALL_SIZE, captured_at=T0 + timedelta(seconds=4))
    entries = by_name(ingest(runner, folder))
    assert entries["101CANON/IMG_0001.JPG"]["person"] == "ANNA"
    assert entries["100CANON/IMG_9999.JPG"]["person"] == "ANNA"


def test_two_cameras_are_two_sequences(runner, roster, tmp_path):
    """Two bodies shooting at once: each camera's photos follow that camera's card."""
    folder = tmp_path / "day"
    folder.mkdir()
    cam_a, cam_b = ("Canon", "EOS R6", "A1"), ("Nikon", "Z6", "B2")
    make_photo(folder / "a1.jpg", size=SMALL_SIZE, camera=cam_a, card_text="ANNA", captured_at=T0)
    make_photo(folder / "b1.jpg", size=SMALL_SIZE, camera=cam_b, card_text="BEN", captured_at=T0 + timedelta(seconds=1))
    make_photo(folder / "a2.jpg", size=SMALL_SIZE, camera=cam_a, captured_at=T0 + timedelta(seconds=2))
    make_photo(folder / "b2.jpg", size=SMALL_SIZE, camera=cam_b, captured_at=T0 + timedelta(seconds=3))
    entries = by_name(ingest(runner, folder))
    assert entries["a2.jpg"]["person"] == "ANNA"
    assert entries["b2.jpg"]["person"] == "BEN"


def test_other_qr_codes_never_start_a_person(runner, roster, tmp_path):
    """A poster URL in frame stays with the current person and starts nothing."""
    folder = tmp_path / "day"
    folder.mkdir()
    make_photo(folder / "1.jpg", size=SMALL_SIZE, card_text="ANNA", captured_at=T0)
    make_photo(
        folder / "2.jpg", size=SMALL_SIZE, other_qr="https://example.com/poster", captured_at=T0 + timedelta(seconds=1)
    )
    make_photo(folder / "3.jpg", size=SMALL_SIZE, captured_at=T0 + timedelta(seconds=2))
    report = ingest(runner, folder)
    assert [e["role"] for e in report["photos"]] == ["separator", "photo", "photo"]
    assert people(report) == ["ANNA", "ANNA", "ANNA"]


def test_card_twice_and_reshoot_resume_the_person(runner, roster, tmp_path):
    """The same card twice in a row is one run; the card again later resumes that person."""
    folder = shoot(
        tmp_path / "day",
        [("card", "ANNA"), ("card", "ANNA"), ("photo",), ("card", "BEN"), ("photo",), ("card", "ANNA"), ("photo",)],
    )
    report = ingest(runner, folder)
    assert people(report) == ["ANNA", "ANNA", "ANNA", "BEN", "BEN", "ANNA", "ANNA"]
    assert len({e["group"] for e in report["photos"] if e["person"] == "ANNA"}) == 1


def test_photos_before_the_first_card_go_to_review(runner, roster, tmp_path):
    """Lead-in photos are unassigned and flagged for review."""
    folder = shoot(tmp_path / "day", [("photo",), ("photo",), ("card", "ANNA"), ("photo",)])
    entries = ingest(runner, folder)["photos"]
    assert [e["role"] for e in entries[:2]] == ["unassigned", "unassigned"]
    assert all(e["needs_review"] and e["person"] is None for e in entries[:2])
    assert entries[3]["person"] == "ANNA" and not entries[3]["needs_review"]


def test_unknown_code_gets_its_own_group_until_registered(app, runner, roster, tmp_path):
    """An unregistered card never lands its photos on the previous person; registering it attaches them."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",), ("card", "ZED-9"), ("photo",)])
    report = ingest(runner, folder)
    unknown = report["photos"][3]
    assert unknown["person"] is None and unknown["group"] == "ZED-9" and unknown["needs_review"]
    more = tmp_path / "more.csv"
    more.write_text("code,name,email,group\nZED-9,Zed Young,,5C\n")
    assert runner.invoke(args=["import-roster", str(more)]).exit_code == 0
    # The roster import queued the batch again; processing it attaches the group.
    from photo_processor import Processor

    assert Processor(app).run_once() == report["batch"]
    again = json.loads(runner.invoke(args=["report", str(report["batch"]), "--json"]).stdout)
    assert again["photos"][3]["person"] == "ZED-9" and not again["photos"][3]["needs_review"]
    assert (Path(app.config["DATA_DIR"]) / "export" / "ZED-9 Zed Young" / "IMG_0004.JPG").exists()


def test_several_cards_in_one_frame_share_the_run(runner, roster, tmp_path):
    """A frame with two cards (a sibling photo): the run belongs to both people."""
    folder = tmp_path / "day"
    folder.mkdir()
    make_photo(folder / "1.jpg", size=SMALL_SIZE, card_text="ANNA", other_qr="BEN", captured_at=T0)
    make_photo(folder / "2.jpg", size=SMALL_SIZE, captured_at=T0 + timedelta(seconds=1))
    entries = ingest(runner, folder)["photos"]
    assert entries[1]["group"] == "ANNA+BEN"
    assert [entry["people"] for entry in entries] == [["ANNA", "BEN"], ["ANNA", "BEN"]]
    assert entries[1]["person"] == "ANNA"


def test_an_unreadable_card_flags_its_photos_instead_of_giving_them_away(runner, roster, tmp_path):
    """A frame with a QR no decoder reads, and the photos after it, go to review, not to the previous person."""
    shirt = QR_PHOTOS / "qrcode-4_05.png"
    assert shirt.exists(), f"corpus not found at {shirt.parent}"
    folder = tmp_path / "day"
    folder.mkdir()
    untimed = {"size": SMALL_SIZE, "camera": None, "captured_at": None}
    make_photo(folder / "1.jpg", card_text="ANNA", **untimed)
    shutil.copy(shirt, folder / "2.png")
    make_photo(folder / "3.jpg", seed=3, **untimed)
    make_photo(folder / "4.jpg", card_text="BEN", **untimed)
    make_photo(folder / "5.jpg", seed=5, **untimed)
    entries = by_name(ingest(runner, folder))
    assert (entries["2.png"]["role"], entries["2.png"]["reason"]) == ("unassigned", "unreadable card?")
    assert entries["3.jpg"]["people"] == [] and entries["3.jpg"]["needs_review"]
    assert entries["3.jpg"]["reason"] == "after an unreadable card? (2.png)"
    assert entries["5.jpg"]["people"] == ["BEN"] and not entries["5.jpg"]["needs_review"]


def test_bad_files_are_rejected_and_the_batch_goes_on(runner, roster, tmp_path):
    """Not an image and a truncated JPEG are rejected with reasons; the good photos are grouped."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",)])
    (folder / "notes.jpg").write_text("this is not a photo")
    good = (folder / "IMG_0002.JPG").read_bytes()
    (folder / "IMG_0003.JPG").write_bytes(good[: len(good) // 2])
    report = ingest(runner, folder)
    entries = by_name(report)
    assert report["status"] == "done"
    assert entries["notes.jpg"]["role"] == "rejected" and entries["notes.jpg"]["reason"]
    assert entries["IMG_0003.JPG"]["role"] == "rejected" and "truncated" in entries["IMG_0003.JPG"]["reason"]
    assert entries["IMG_0002.JPG"]["person"] == "ANNA"


def test_same_bytes_twice_are_kept_once(app, runner, roster, tmp_path):
    """A photo copied under another name is reported as a duplicate and exported once."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",)])
    shutil.copyfile(folder / "IMG_0002.JPG", folder / "copy_of_2.jpg")
    entries = by_name(ingest(runner, folder))
    assert entries["copy_of_2.jpg"]["role"] == "duplicate"
    assert "IMG_0002.JPG" in entries["copy_of_2.jpg"]["reason"]
    files = list((Path(app.config["DATA_DIR"]) / "export" / "ANNA Anna Berg").glob("*.JPG"))
    assert len(files) == 1


def test_zip_ingest_with_unsafe_paths(runner, roster, tmp_path):
    """A zip is ingested like a folder; an entry named ../../x is rejected, nothing written outside."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",)])
    archive = tmp_path / "day.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"cam/{path.name}")
        zf.writestr("../../evil.jpg", (folder / "IMG_0002.JPG").read_bytes())
    entries = by_name(ingest(runner, archive))
    assert entries["cam/IMG_0002.JPG"]["person"] == "ANNA"
    assert entries["../../evil.jpg"]["role"] == "rejected"
    assert not (tmp_path.parent / "evil.jpg").exists()


def test_rerun_is_idempotent(app, runner, roster, tmp_path):
    """Processing a batch again changes nothing: same report, same export files."""
    from data.database import db_commit_with_retry
    from photo_processor import Processor
    from services.batches import queue_batch

    report = ingest(runner, shoot(tmp_path / "day", [("card", "ANNA"), ("photo",), ("photo",)]))
    export = Path(app.config["DATA_DIR"]) / "export"
    before = {p: p.stat().st_mtime_ns for p in export.rglob("*")}
    db_commit_with_retry(queue_batch, report["batch"])
    assert Processor(app).run_once() == report["batch"]
    again = json.loads(runner.invoke(args=["report", str(report["batch"]), "--json"]).stdout)
    assert again == report
    assert {p: p.stat().st_mtime_ns for p in export.rglob("*")} == before


def test_report_of_unknown_batch_fails_cleanly(runner):
    """`report` of a batch that does not exist exits non-zero with a message."""
    result = runner.invoke(args=["report", "999"])
    assert result.exit_code != 0 and "no batch 999" in result.output


def test_report_lists_files_in_natural_order(runner, roster, tmp_path):
    """The report reads as a person would list the folder: IMG_2 before IMG_10."""
    folder = tmp_path / "day"
    folder.mkdir()
    for i, name in enumerate(["IMG_10.JPG", "IMG_2.JPG", "IMG_1.JPG"]):
        make_photo(folder / name, size=SMALL_SIZE, captured_at=T0 + timedelta(seconds=i))
    report = ingest(runner, folder)
    assert [e["filename"] for e in report["photos"]] == ["IMG_1.JPG", "IMG_2.JPG", "IMG_10.JPG"]


def test_photos_are_scanned_while_their_batch_is_still_uploading(app, tmp_path):
    """Stored files are scanned before the upload is complete; completing it only groups and exports."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",), ("photo",)])
    batch_id = db_commit_with_retry(lambda: create_batch("early").id)
    for name, path in files_in_folder(folder):
        receive_file(batch_id, name, read_in_chunks(path))
    processor = Processor(app)
    try:
        assert processor.scan_arrivals() is True
        states = run_in_transaction(
            lambda: (
                {p.scan_state for p in db.session.get(Batch, batch_id).photos}
                | {db.session.get(Batch, batch_id).status}
            ),
            read_only=True,
        )
        assert states == {ScanState.SCANNED, BatchStatus.UPLOADING}
        assert processor.scan_arrivals() is False
        db_commit_with_retry(queue_batch, batch_id)
        with patch("photo_processor.scan_file", side_effect=AssertionError("scanned twice")):
            assert processor.run_once() == batch_id
    finally:
        processor.close()
    assert run_in_transaction(lambda: db.session.get(Batch, batch_id).status, read_only=True) == BatchStatus.DONE


def groups_in(batch_id: int) -> dict[str, tuple]:
    return run_in_transaction(
        lambda: {p.original_name: (p.role, p.group_key) for p in db.session.get(Batch, batch_id).photos}, read_only=True
    )


@pytest.mark.both_databases
def test_an_uploading_batch_is_grouped_as_its_files_allow_and_delivered_once_complete(app, staff, roster, tmp_path):
    """While files arrive, scanned photos are grouped up to the first file still waiting for its scan; nobody
    is exported before the upload is complete, then everyone whole."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",), ("card", "BEN"), ("photo",), ("photo",)])
    files = list(files_in_folder(folder))
    names = [name for name, _ in files]
    batch_id = db_commit_with_retry(lambda: create_batch("live").id)
    app.config["GROUP_ARRIVALS_SECONDS"] = 0
    for name, path in files[:4]:
        receive_file(batch_id, name, read_in_chunks(path))
    processor = Processor(app)
    try:
        assert processor.scan_arrivals() is True
        card, photo = PhotoRole.SEPARATOR, PhotoRole.PHOTO
        anna, ben = [(card, "ANNA"), (photo, "ANNA")], [(card, "BEN"), (photo, "BEN")]
        assert groups_in(batch_id) == dict(zip(names, [*anna, *ben], strict=False))
        page_text = " ".join(re.sub(r"<[^>]+>", " ", staff.get("/batches").text).split())
        assert "upload open · 2 people so far" in page_text

        # BEN's card is stored again with other bytes (a plain photo): until it is scanned, the photo after it
        # stays as it was, not grouped as if the file were not there
        plain = make_photo(tmp_path / "plain.JPG", size=SMALL_SIZE, seed=99, captured_at=T0)
        receive_file(batch_id, names[2], read_in_chunks(plain))
        db_commit_with_retry(regrouping.group_arrivals, batch_id)
        assert groups_in(batch_id) == dict(zip(names, [*anna, (None, "BEN"), (photo, "BEN")], strict=False))
        assert export.export_pending() == 0

        receive_file(batch_id, names[4], read_in_chunks(files[4][1]))
        assert processor.scan_arrivals() is True
        regrouped = dict(zip(names, [*anna, *[(photo, "ANNA")] * 3], strict=True))
        # grouped again once the last grouping's share of the processor's time allows
        wait_for(lambda: processor.scan_arrivals() is False and groups_in(batch_id) == regrouped, 60, "a regrouping")
        assert export.export_pending() == 0
        assert not (Path(app.config["DATA_DIR"]) / "export").exists()

        db_commit_with_retry(queue_batch, batch_id)
        assert processor.run_once() == batch_id
    finally:
        processor.close()
    exported = Path(app.config["DATA_DIR"]) / "export"
    assert [p.name for p in exported.iterdir()] == ["ANNA Anna Berg"]
    assert sorted(p.name for p in (exported / "ANNA Anna Berg").glob("*.JPG")) == names[1:]


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
def test_of_two_identical_files_the_first_by_name_is_kept_whatever_arrived_first(app, roster, tmp_path, arrival):
    """Identical files (same shooting time): the first by name is kept, the other is its duplicate."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",)])
    shutil.copyfile(folder / "IMG_0002.JPG", folder / "IMG_0003.JPG")
    files = list(files_in_folder(folder))
    batch_id = db_commit_with_retry(lambda: create_batch("copies").id)
    for name, path in files if arrival == "in order" else reversed(files):
        receive_file(batch_id, name, read_in_chunks(path))
    db_commit_with_retry(queue_batch, batch_id)
    processor = Processor(app)
    try:
        assert processor.run_once() == batch_id
    finally:
        processor.close()
    roles = run_in_transaction(
        lambda: {p.original_name: (p.role, p.duplicate_of_id) for p in db.session.get(Batch, batch_id).photos},
        read_only=True,
    )
    kept_id = run_in_transaction(
        lambda: next(p.id for p in db.session.get(Batch, batch_id).photos if p.original_name == "IMG_0002.JPG"),
        read_only=True,
    )
    assert roles["IMG_0002.JPG"] == (PhotoRole.PHOTO, None)
    assert roles["IMG_0003.JPG"] == (PhotoRole.DUPLICATE, kept_id)


class CrashedPool:
    """A scan pool whose process died under a file."""

    def submit(self, *args) -> Future:
        future = Future()
        future.set_exception(BrokenProcessPool("a scan process died"))
        return future

    def shutdown(self, **kwargs) -> None:
        pass


def test_a_scan_crash_on_an_open_upload_pauses_early_scanning_instead_of_looping(app, tmp_path):
    """A file that kills a scan process while its batch uploads is left to the batch's run: no crash loop."""
    folder = shoot(tmp_path / "day", [("photo",)])
    batch_id = db_commit_with_retry(lambda: create_batch("crash").id)
    for name, path in files_in_folder(folder):
        receive_file(batch_id, name, read_in_chunks(path))
    processor = Processor(app)
    processor._pool = CrashedPool()
    assert processor.scan_arrivals() is False
    assert processor.scan_arrivals() is False  # paused: no new pool, no second crash
    assert processor._pool is None


def test_a_replaced_photo_is_delivered_with_its_new_bytes(app, runner, roster, tmp_path):
    """Other bytes under a delivered photo's name: after the batch runs again, the person's folder holds them."""
    folder = shoot(tmp_path / "day", [("card", "ANNA"), ("photo",)])
    batch_id = ingest(runner, folder)["batch"]
    newer = make_photo(tmp_path / "newer.JPG", size=SMALL_SIZE, seed=99, captured_at=T0)
    db_commit_with_retry(reopen_batch, batch_id)
    receive_file(batch_id, "IMG_0002.JPG", read_in_chunks(newer))
    db_commit_with_retry(queue_batch, batch_id)
    processor = Processor(app)
    try:
        assert processor.run_once() == batch_id
    finally:
        processor.close()
    delivered = Path(app.config["DATA_DIR"]) / "export" / "ANNA Anna Berg" / "IMG_0002.JPG"
    assert delivered.read_bytes() == newer.read_bytes()
