"""Review corrections: each one, its undo, the audit trail, and re-runs that keep them."""

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from data.database import db_commit_with_retry
from data.extensions import db
from data.models import AuditLog, Batch, Photo, ReviewCorrection
from data.states import BatchStatus, UserRole
from photo_processor import Processor
from services.batches import create_batch
from services.export import export_pending
from services.regrouping import regroup_batch
from tests.support.factories import login, make_person, make_scanned_batch, make_user
from tests.support.photogen import SMALL_SIZE, make_batch


@pytest.fixture
def admin(client):
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    make_person("ANNA", "Anna")
    make_person("BEN", "Ben")


def state(photo_id: int) -> tuple:
    db.session.rollback()  # end our read: the request committed in its own session
    photo = db.session.get(Photo, photo_id)
    return str(photo.role), [p.code for p in photo.people], photo.needs_review, photo.excluded


def correct(client, batch_id, ids, kind, code=""):
    response = client.post(
        f"/batches/{batch_id}/review/correct", data={"photo_id": [str(i) for i in ids], "kind": kind, "code": code}
    )
    assert response.status_code == 303
    return response


def undo_last(client, batch_id):
    last = db.session.scalar(select(ReviewCorrection.action_id).order_by(ReviewCorrection.id.desc()).limit(1))
    assert client.post(f"/batches/{batch_id}/review/undo/{last}").status_code == 303


def test_assign_lead_in_photo_and_undo(client, admin):
    """A lead-in photo assigned to a person loses its review flag; undo puts it back, both audited."""
    batch_id, ids = make_scanned_batch([("photo",), ("card", "ANNA"), ("photo",)])
    assert state(ids[0]) == ("unassigned", [], True, False)
    correct(client, batch_id, [ids[0]], "assign", "BEN")
    assert state(ids[0]) == ("photo", ["BEN"], False, False)
    undo_last(client, batch_id)
    assert state(ids[0]) == ("unassigned", [], True, False)
    actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["correct:assign", "undo:assign"]
    entry = db.session.scalar(select(AuditLog).order_by(AuditLog.id).limit(1))
    assert entry.before["people"] == [] and entry.after["people"] == ["BEN"] and entry.user_id


def test_missed_card_marked_as_card_splits_the_run(client, admin):
    """A card the scanner missed, marked by hand, starts that person's run; undo merges it back."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("photo",), ("photo",)])
    correct(client, batch_id, [ids[2]], "card", "BEN")
    assert [state(i)[1] for i in ids] == [["ANNA"], ["ANNA"], ["BEN"], ["BEN"]]
    assert state(ids[2])[0] == "separator"
    undo_last(client, batch_id)
    assert [state(i)[1] for i in ids] == [["ANNA"]] * 4


def test_false_card_marked_not_a_card_merges(client, admin):
    """A frame wrongly read as a card, marked 'not a card', joins the previous run."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("card", "BEN"), ("photo",)])
    correct(client, batch_id, [ids[2]], "not_card")
    assert [state(i)[1] for i in ids] == [["ANNA"]] * 4
    assert state(ids[2])[0] == "photo"


def test_exclude_from_delivery(client, admin):
    """An excluded photo keeps its person but is marked excluded."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",)])
    correct(client, batch_id, [ids[1]], "exclude")
    assert state(ids[1]) == ("photo", ["ANNA"], False, True)


def test_link_unknown_code_attaches_its_group(client, admin):
    """An unknown card code linked to a person: its photos become theirs."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("card", "ZED"), ("photo",)])
    assert state(ids[2]) == ("photo", [], True, False)
    response = client.post(f"/batches/{batch_id}/review/link", data={"code": "ZED", "person_code": "BEN"})
    assert response.status_code == 303
    assert state(ids[2]) == ("photo", ["BEN"], False, False)


def test_regroup_keeps_corrections(client, admin):
    """Grouping again (a re-run) gives the same answer plus the corrections."""
    batch_id, ids = make_scanned_batch([("photo",), ("card", "ANNA"), ("photo",)])
    correct(client, batch_id, [ids[0]], "assign", "ANNA")
    before = [state(i) for i in ids]
    db_commit_with_retry(regroup_batch, batch_id)
    assert [state(i) for i in ids] == before


def test_bad_corrections_are_refused(client, admin):
    """Unknown person, unknown kind, photos of another batch: a message, nothing changes."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",)])
    other_id, other_ids = make_scanned_batch([("photo",)], label="other")
    for data in (
        {"kind": "assign", "code": "NOBODY", "photo_id": [str(ids[1])]},
        {"kind": "explode", "photo_id": [str(ids[1])]},
        {"kind": "exclude", "photo_id": [str(other_ids[0])]},
    ):
        client.post(f"/batches/{batch_id}/review/correct", data=data)
    assert db.session.scalar(select(ReviewCorrection.id)) is None


def test_staff_cannot_correct(client):
    """Corrections need an admin: a staff login gets 403."""
    make_user("staff", UserRole.STAFF)
    login(client, "staff")
    batch_id, ids = make_scanned_batch([("photo",)])
    response = client.post(f"/batches/{batch_id}/review/correct", data={"photo_id": [str(ids[0])], "kind": "exclude"})
    assert response.status_code == 403


def test_review_page_and_person_page(client, admin):
    """The review page shows problems and runs; a person's page lists their photos."""
    batch_id, _ = make_scanned_batch([("photo",), ("card", "ANNA"), ("photo",)])
    page = client.get(f"/batches/{batch_id}/review")
    assert page.status_code == 200 and b"Needs attention" in page.data and b"ANNA" in page.data
    person = client.get("/person/ANNA")
    assert person.status_code == 200 and b"IMG_0003.JPG" in person.data
    assert client.get("/api/people?q=ann").get_json()[0]["code"] == "ANNA"


def ingest_day(runner, tmp_path, plan):
    make_batch(tmp_path / "day", plan, size=SMALL_SIZE)
    result = runner.invoke(args=["ingest", str(tmp_path / "day"), "--wait", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["batch"]


def export_listing(app) -> dict[str, set[str]]:
    root = Path(app.config["DATA_DIR"]) / "export"
    return {folder.name: {f.name for f in folder.iterdir() if f.suffix.lower() == ".jpg"} for folder in root.iterdir()}


def test_export_after_correction_moves_exactly_the_changed_photos(app, client, admin, runner, tmp_path):
    """After a correction only the re-assigned photo moves between export folders; others stay untouched."""
    batch_id = ingest_day(runner, tmp_path, [("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",)])
    root = Path(app.config["DATA_DIR"]) / "export"
    untouched = {p: p.stat().st_mtime_ns for p in root.rglob("*.JPG") if p.name != "IMG_0003.JPG"}
    photo_id = db.session.scalar(select(Photo.id).where(Photo.original_name == "IMG_0003.JPG"))
    correct(client, batch_id, [photo_id], "assign", "BEN")
    export_pending()
    assert export_listing(app) == {"ANNA Anna": {"IMG_0002.JPG"}, "BEN Ben": {"IMG_0003.JPG", "IMG_0005.JPG"}}
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched


def test_rerun_actions_keep_corrections(app, client, admin, runner, tmp_path):
    """Re-scan, re-group and re-deliver after a correction: the correction stands, nothing is duplicated."""
    batch_id = ingest_day(runner, tmp_path, [("photo",), ("card", "ANNA"), ("photo",)])
    lead_in = db.session.scalar(select(Photo.id).where(Photo.original_name == "IMG_0001.JPG"))
    correct(client, batch_id, [lead_in], "assign", "BEN")
    for action in ("rescan", "regroup", "redeliver"):
        assert client.post(f"/batches/{batch_id}/rerun/{action}").status_code == 303
        Processor(app).run_once()
        Processor(app).deliver_changes()
        assert state(lead_in) == ("photo", ["BEN"], False, False)
        assert export_listing(app) == {"ANNA Anna": {"IMG_0003.JPG"}, "BEN Ben": {"IMG_0001.JPG"}}
    assert client.post(f"/batches/{batch_id}/rerun/explode").status_code == 404


def test_a_batch_still_uploading_is_not_re_run(client, admin):
    """A re-run would hand the processor half a batch: not offered while files arrive, and refused with the
    reason if posted anyway."""
    batch_id = db_commit_with_retry(lambda: create_batch("open").id)
    page = client.get(f"/batches/{batch_id}/review").text
    assert "Re-run:" not in page and "Re-runs are offered once its upload is complete" in page
    refused = client.post(f"/batches/{batch_id}/rerun/regroup", follow_redirects=True)
    assert "re-run it once its upload is complete" in refused.text
    assert db.session.get(Batch, batch_id).status == BatchStatus.UPLOADING


def attention_counts(client, batch_id) -> dict[str, int]:
    """The needs-attention number as each place shows it."""
    import re

    dashboard = client.get("/api/dashboard").get_json()
    review = client.get(f"/batches/{batch_id}/review").get_data(as_text=True)
    batches = client.get("/batches").get_data(as_text=True)
    return {
        "api batch": next(b["needs_review"] for b in dashboard["batches"] if b["id"] == batch_id),
        "api day": dashboard["day"]["needs_review"],
        "review page": int(re.search(r"Needs attention \((\d+)\)", review)[1]),
        "batches page": int(re.search(r"(\d+) to review", batches)[1]),
    }


@pytest.mark.both_databases
def test_needs_attention_is_one_number_everywhere(client, admin):
    """Dashboard API, batches page and review page agree, before and after a photo is excluded."""
    batch_id, ids = make_scanned_batch([("photo",), ("card", "ANNA"), ("photo",), ("card", "ZED"), ("photo",)])
    assert set(attention_counts(client, batch_id).values()) == {3}
    correct(client, batch_id, [ids[0]], "exclude")
    assert set(attention_counts(client, batch_id).values()) == {2}


def test_person_picked_by_suggestion_or_by_name(client, admin):
    """'Name (CODE)' from the suggestions and a plain name both resolve to the person."""
    batch_id, ids = make_scanned_batch([("photo",), ("photo",), ("card", "ANNA"), ("photo",)])
    correct(client, batch_id, [ids[0]], "assign", "Ben (BEN)")
    correct(client, batch_id, [ids[1]], "assign", "anna")
    assert state(ids[0])[1] == ["BEN"] and state(ids[1])[1] == ["ANNA"]


def test_unclear_requests_say_what_to_do(client, admin):
    """Nothing selected, no person, an ambiguous name: a clear message and no correction."""
    make_person("ANNA2", "Anna")
    batch_id, ids = make_scanned_batch([("photo",), ("card", "ANNA"), ("photo",)])
    for data, message in (
        ({"kind": "exclude"}, "Select one or more photos first"),
        ({"kind": "assign", "code": "", "photo_id": [str(ids[0])]}, "Type a person&#39;s name or code first"),
        ({"kind": "assign", "code": "Anna", "photo_id": [str(ids[0])]}, "Several people are called"),
    ):
        page = client.post(f"/batches/{batch_id}/review/correct", data=data, follow_redirects=True)
        assert message in page.get_data(as_text=True)
    assert db.session.scalar(select(ReviewCorrection.id)) is None


@pytest.mark.both_databases
def test_one_action_is_one_undo_entry(client, admin):
    """Excluding two photos is one history entry naming both files; 'Undo last' reverts both."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("photo",)])
    correct(client, batch_id, ids[1:], "exclude")
    page = client.get(f"/batches/{batch_id}/review").get_data(as_text=True)
    assert page.count("IMG_0002.JPG, IMG_0003.JPG") == 1 and "exclude from delivery" in page
    assert client.post(f"/batches/{batch_id}/review/undo-last").status_code == 303
    assert [state(i)[3] for i in ids] == [False, False, False]
    assert db.session.scalars(select(AuditLog.action)).all().count("undo:exclude") == 2
    undone = client.post(f"/batches/{batch_id}/review/undo-last", follow_redirects=True)
    assert "Nothing to undo." in undone.get_data(as_text=True)


def test_unknown_code_linked_to_a_person_picked_by_name(client, admin):
    """The link form takes the person's name: the unknown code's photos become theirs."""
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("card", "ZED"), ("photo",)])
    client.post(f"/batches/{batch_id}/review/link", data={"code": "ZED", "person_code": "Ben"})
    assert state(ids[2]) == ("photo", ["BEN"], False, False)
