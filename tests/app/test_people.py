"""People pages: list, missing subjects, badge sheets, roster import from the browser, registration settings."""

import base64
import io
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from data.database import db_commit_with_retry
from data.extensions import db
from data.models import Batch, Person
from data.states import BatchStatus, UserRole
from services.directory import PER_PAGE, badge_sheets
from services.signup import parse_field_labels
from tests.support.factories import login, make_person, make_scanned_batch, make_user

ROSTER = "code,name,email,group,homeroom\nA1,Ann,ann@example.com,5A,R12\n,No code,,,\nB2,Bob,,5B,\nA1,Ann again,,,\n"
ADMIN_PAGES = [
    ("get", "/admin/settings"),
    ("get", "/people/import"),
    ("post", "/people/import"),
    ("post", "/people/import/confirm"),
    ("post", "/admin/settings/registration"),
    ("post", "/admin/settings/fields"),
]
STAFF_PAGES = ["/people", "/people/missing", "/people/badges"]
MB = 1024 * 1024


@pytest.fixture
def admin(client):
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")


def stored_codes() -> set[str]:
    return set(db.session.scalars(select(Person.code)))


def listed_codes(response) -> set[str]:
    return set(re.findall(r"<td><code>([^<]+)</code></td>", response.get_data(as_text=True)))


def upload(client, data: bytes, name: str = "roster.csv"):
    # Encoded here: for bodies over 500 kB the test client spools to a temporary file it never closes.
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), name)})
    return client.post("/people/import", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def payload_of(preview) -> str:
    return re.search(r'name="payload" value="([^"]*)"', preview.get_data(as_text=True)).group(1)


def confirm(client, csv: bytes):
    return client.post("/people/import/confirm", data={"payload": base64.urlsafe_b64encode(csv).decode()})


def test_badge_sheet_shows_one_group_with_a_qr_each(client, staff):
    """?group=5A prints a badge with an SVG QR, name and code for each of 5A and no one else."""
    make_person("A1", "Ann", "5A")
    make_person("B2", "Bob", "5A")
    make_person("C3", "Cleo", "5B")
    page = client.get("/people/badges?group=5A").get_data(as_text=True)
    assert page.count("<svg") == 2 and page.count('class="badge"') == 2
    assert page.count('viewBox="0 0 ') == 2, "the QR must scale to its printed size"
    for text in ("Ann", "A1", "Bob", "B2", "size: A4"):
        assert text in page
    assert "Cleo" not in page and "C3" not in page
    everyone = client.get("/people/badges?paper=letter").get_data(as_text=True)
    assert everyone.count("<svg") == 3 and "size: letter" in everyone
    assert everyone.count('class="sheet"') == 2, "each group starts its own sheet"


def test_badge_sheets_fill_twelve_and_break_at_each_group():
    """Thirteen people of one group and one of another make sheets of 12, 1 and 1."""
    people = [SimpleNamespace(group_name="5A")] * 13 + [SimpleNamespace(group_name="5B")]
    assert [len(sheet) for sheet in badge_sheets(people)] == [12, 1, 1]


def test_people_list_searches_and_filters_and_links(client, staff):
    """Search by name or code and filter by group; each row links to the person page and the card."""
    make_person("A1", "Ann Smith", "5A")
    make_person("B2", "Bob Jones", "5B")
    make_person("X_9", "Xena", "5B")
    assert listed_codes(client.get("/people")) == {"A1", "B2", "X_9"}
    assert listed_codes(client.get("/people?q=smith")) == {"A1"}
    assert listed_codes(client.get("/people?q=b2")) == {"B2"}
    assert listed_codes(client.get("/people?q=_")) == {"X_9"}, "LIKE wildcards are searched literally"
    page = client.get("/people?group=5B")
    assert listed_codes(page) == {"B2", "X_9"}
    assert b'href="/person/B2"' in page.data and b'href="/card/B2"' in page.data


def test_a_long_list_pages_and_keeps_its_filter(client, staff):
    """Past one page, the list says which page it is and its Next and Previous links keep the group filter."""

    def many():
        db.session.add_all(
            Person(code=f"P{i:03d}", name=f"Pupil {i:03d}", group_name="5A") for i in range(PER_PAGE + 1)
        )

    db_commit_with_retry(many)
    first = client.get("/people?group=5A").get_data(as_text=True)
    assert "Page 1 of 2" in first and 'href="/people?page=2&amp;group=5A"' in first
    second = client.get("/people?group=5A&page=2")
    assert listed_codes(second) == {f"P{PER_PAGE:03d}"}
    assert 'href="/people?page=1&amp;group=5A"' in second.get_data(as_text=True)


def test_roster_preview_reports_errors_by_line_and_saves_nothing(client, admin):
    """The preview lists good rows and each bad row's line and problem; nothing is stored yet."""
    preview = upload(client, ROSTER.encode())
    assert preview.status_code == 200
    page = preview.get_data(as_text=True)
    assert "<td>3</td><td>code is empty</td>" in page
    assert "<td>5</td><td>code A1 already used on line 2</td>" in page
    assert listed_codes(preview) == {"A1", "B2"} and "homeroom: R12" in page
    assert stored_codes() == set()


def test_confirm_saves_good_rows_only(client, admin):
    """Confirming the preview stores the good rows, extra columns included, and no bad one."""
    response = client.post("/people/import/confirm", data={"payload": payload_of(upload(client, ROSTER.encode()))})
    assert response.status_code == 303
    assert stored_codes() == {"A1", "B2"}
    ann = db.session.scalar(select(Person).where(Person.code == "A1"))
    assert (ann.name, ann.group_name, ann.extra, str(ann.source)) == ("Ann", "5A", {"homeroom": "R12"}, "roster")
    assert b"2 created, 0 updated, 2 rows with errors" in client.get("/people").data


def test_forged_confirm_is_validated_again(client, admin):
    """A confirm post carrying other rows than the preview showed is parsed again: bad rows never land."""
    response = confirm(client, b"code,name\nGOOD,Gina\nBAD CODE,Bert\n,Nobody\n")
    assert response.status_code == 303
    assert stored_codes() == {"GOOD"}
    assert confirm(client, b"name,email\nMallory,m@example.com\n").status_code == 400
    garbled = client.post("/people/import/confirm", data={"payload": "not base64!"})
    assert garbled.status_code == 400 and b"upload it again" in garbled.data
    assert stored_codes() == {"GOOD"}


def test_confirm_regroups_batches_waiting_for_imported_codes(client, admin):
    """As with the CLI, a finished batch holding an imported code for review is queued again."""
    batch_id, _ = make_scanned_batch([("card", "ZED-9"), ("photo",)])
    db_commit_with_retry(lambda: setattr(db.session.get(Batch, batch_id), "status", BatchStatus.DONE))
    confirm(client, b"code,name\nZED-9,Zed\n")
    db.session.expire_all()
    assert db.session.get(Batch, batch_id).status == BatchStatus.QUEUED


@pytest.mark.parametrize("size", [MB + 1, 3 * MB])
def test_oversized_roster_is_refused_with_a_message(app, client, admin, size):
    """A file over the limit gets 413 and a message, whether a little over or far over; nothing is stored."""
    app.config["ROSTER_MAX_BYTES"] = MB
    response = upload(client, b"code,name\n" + b"A" * size)
    assert response.status_code == 413 and b"larger than 1 MB" in response.data
    assert stored_codes() == set()


def test_far_oversized_roster_is_refused_before_the_csrf_check_reads_it(app, client, admin):
    """With CSRF on, a body far over the limit is refused with the message, not read in full for the token."""
    app.config.update(ROSTER_MAX_BYTES=MB, WTF_CSRF_ENABLED=True)
    response = upload(client, b"A" * 3 * MB)
    assert response.status_code == 413 and b"larger than 1 MB" in response.data


def test_large_roster_confirms_with_csrf_on(app, client, admin):
    """Confirming a roster bigger than Werkzeug's 500 kB form-field default works with CSRF checked."""
    app.config["WTF_CSRF_ENABLED"] = True
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/people/import").get_data(as_text=True))
    rows = "".join(f"P{i:05d},Person number {i:05d} with a longer name,,Group {i % 30}\n" for i in range(12_000))
    payload = base64.urlsafe_b64encode(f"code,name,email,group\n{rows}".encode()).decode()
    assert len(payload) > 500 * 1024
    response = client.post("/people/import/confirm", data={"payload": payload, "csrf_token": token.group(1)})
    assert response.status_code == 303
    assert len(stored_codes()) == 12_000


def test_missing_lists_exactly_people_without_photos(client, admin):
    """Only a photo counts: a card alone or an excluded photo leaves a person missing; the group filter works."""
    for code, group in (("ANNA", "5A"), ("BEN", "5A"), ("CARL", "5B"), ("DORA", "5A")):
        make_person(code, code.title(), group)
    batch_id, ids = make_scanned_batch([("card", "ANNA"), ("photo",), ("card", "BEN"), ("card", "DORA"), ("photo",)])
    excluded = client.post(f"/batches/{batch_id}/review/correct", data={"photo_id": [str(ids[4])], "kind": "exclude"})
    assert excluded.status_code == 303
    assert listed_codes(client.get("/people/missing")) == {"BEN", "CARL", "DORA"}
    in_5a = client.get("/people/missing?group=5A")
    assert listed_codes(in_5a) == {"BEN", "DORA"} and b"<strong>2</strong>" in in_5a.data


@pytest.mark.parametrize(("method", "url"), ADMIN_PAGES)
def test_staff_gets_403_on_admin_pages(client, staff, method, url):
    """Staff may look at people but not import, nor change settings."""
    assert getattr(client, method)(url).status_code == 403


@pytest.mark.parametrize("url", [url for _, url in ADMIN_PAGES if _ == "get"] + STAFF_PAGES)
def test_anonymous_is_sent_to_login(client, url):
    """Every people and admin page needs a login."""
    response = client.get(url)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_staff_can_see_people_pages(client, staff, url):
    """List, missing and badges are open to staff."""
    assert client.get(url).status_code == 200


def test_closing_registration_makes_register_answer_403(app, client, admin):
    """An admin closes registration: /register shows the closed page with 403; opening it again restores it."""
    public = app.test_client()
    assert client.post("/admin/settings/registration", data={"on": "0"}).status_code == 303
    closed = public.get("/register")
    assert closed.status_code == 403 and b"Registration is closed" in closed.data
    assert b"Open registration" in client.get("/admin/settings").data
    client.post("/admin/settings/registration", data={"on": "1"})
    assert public.get("/register").status_code == 200


def test_extra_fields_appear_on_the_form_and_are_stored(app, client, admin):
    """Configured extra fields are asked on the public form; the answers land in Person.extra."""
    client.post("/admin/settings/fields", data={"fields": "Shirt size, Teacher,, shirt size"})
    assert b'value="Shirt size, Teacher"' in client.get("/admin/settings").data
    public = app.test_client()
    form = public.get("/register").get_data(as_text=True)
    assert 'name="extra:Shirt size"' in form and 'name="extra:Teacher"' in form
    response = public.post(
        "/register",
        data={
            "name": "Ann",
            "email": "ann@example.com",
            "group": "5A",
            "consent": "yes",
            "extra:Shirt size": " M ",
            "extra:Teacher": "",
            "extra:Injected": "x",
        },
    )
    assert response.status_code == 302
    assert db.session.scalar(select(Person.extra)) == {"Shirt size": "M"}


def test_too_many_extra_fields_are_refused(client, admin):
    """More fields than allowed gives a message and keeps the old setting."""
    client.post("/admin/settings/fields", data={"fields": "Diet"})
    response = client.post(
        "/admin/settings/fields", data={"fields": ",".join(f"F{i}" for i in range(11))}, follow_redirects=True
    )
    assert b"At most 10 extra fields" in response.data and b'value="Diet"' in response.data


def test_field_labels_are_trimmed_and_deduplicated():
    """Labels are split on commas, whitespace tidied, blanks and case-insensitive repeats dropped."""
    assert parse_field_labels(" Shirt   size ,diet,,SHIRT SIZE, ") == ["Shirt size", "diet"]
    assert parse_field_labels("") == []
