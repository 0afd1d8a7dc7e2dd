"""The yearbook page and its downloads: a zip per class, and the yearbook package (INDEX.TXT + IMAGES)."""

import io
import zipfile

import pytest
from sqlalchemy import select

from data.extensions import db
from data.models import Photo
from data.states import UserRole
from tests.support.factories import login, make_user

ROSTER = (
    "code,name,email,group,grade\n"
    "ANNA,Anna Berg,,5B,5\n"
    "BEN,Ben van der Cho,,5B,5\n"
    "CARL,Carl Dahl,,,\n"
    "DORA,Dora Eck,,5B,5\n"
)
# Dora has no photo: the page lists her as missing a portrait. Carl has no group.
PLAN = [("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",), ("card", "CARL"), ("photo",)]


@pytest.fixture
def day(client, ingest_day, tmp_path):
    ingest_day(ROSTER, PLAN)
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    return tmp_path / "day"


def download(client, path: str, **query) -> zipfile.ZipFile:
    response = client.get(path, query_string=query)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    return zipfile.ZipFile(io.BytesIO(response.get_data()))


def index_rows(archive: zipfile.ZipFile) -> list[dict]:
    text = archive.read("INDEX.TXT").decode()
    header, *lines = text.removesuffix("\r\n").split("\r\n")
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


@pytest.mark.both_databases
def test_page_lists_groups_with_counts_and_who_has_no_portrait(client, day):
    """Admins see each group with its people and photos, who lacks a portrait, and the download links."""
    page = client.get("/admin/yearbook").get_data(as_text=True)
    rows = [" ".join(row.split()) for row in page.split("<tr>")[2:]]
    assert rows[0].startswith('<th scope="row">5B</th> <td>3</td> <td>3</td> <td>1:')
    assert "Dora Eck" in rows[0] and "Anna Berg" not in rows[0]
    assert rows[1].startswith('<th scope="row">No group</th> <td>1</td> <td>1</td> <td>none</td>')
    assert "/admin/yearbook/class.zip?group=5B" in page and "/admin/yearbook/yearbook.zip?group=5B" in page
    assert 'href="/admin/yearbook"' in page  # in the menu


def test_staff_cannot_see_the_page_or_download(client, day):
    """The yearbook page and both downloads are for admins only."""
    make_user("helper")
    login(client, "helper")
    for path in ("/admin/yearbook", "/admin/yearbook/yearbook.zip", "/admin/yearbook/class.zip?group=5B"):
        assert client.get(path).status_code == 403


def test_class_zip_has_a_folder_per_person_with_their_photos(client, day):
    """A class's zip holds each of its people's delivered photos in their export folder, byte for byte."""
    response = client.get("/admin/yearbook/class.zip", query_string={"group": "5B"})
    assert 'filename="class-5b.zip"' in response.headers["Content-Disposition"]
    archive = download(client, "/admin/yearbook/class.zip", group="5B")
    assert sorted(archive.namelist()) == [
        "ANNA Anna Berg/IMG_0002.JPG",
        "ANNA Anna Berg/IMG_0003.JPG",
        "BEN Ben van der Cho/IMG_0005.JPG",
    ]
    assert archive.read("BEN Ben van der Cho/IMG_0005.JPG") == (day / "IMG_0005.JPG").read_bytes()
    assert download(client, "/admin/yearbook/class.zip", group="").namelist() == ["CARL Carl Dahl/IMG_0007.JPG"]


def test_unknown_group_is_not_found(client, day):
    """A group nobody is in, or no group at all for a class zip, is a 404."""
    assert client.get("/admin/yearbook/class.zip", query_string={"group": "9Z"}).status_code == 404
    assert client.get("/admin/yearbook/class.zip").status_code == 404
    assert client.get("/admin/yearbook/yearbook.zip", query_string={"group": "9Z"}).status_code == 404


@pytest.mark.both_databases
def test_yearbook_zip_rows_match_its_images(client, day):
    """INDEX.TXT has one row per person with a portrait, each naming an image in IMAGES, which is the default
    portrait (first photo after the card); the group is the Home Room; the roster's grade is the Grade."""
    archive = download(client, "/admin/yearbook/yearbook.zip")
    rows = index_rows(archive)
    assert sorted(archive.namelist()) == ["IMAGES/ANNA.jpg", "IMAGES/BEN.jpg", "IMAGES/CARL.jpg", "INDEX.TXT"]
    assert {f"{row['Image Folder']}/{row['Image File Name']}" for row in rows} == set(archive.namelist()) - {
        "INDEX.TXT"
    }
    by_id = {row["Student ID"]: row for row in rows}
    assert (by_id["BEN"]["First Name"], by_id["BEN"]["Last Name"]) == ("Ben", "van der Cho")
    assert (by_id["ANNA"]["Home Room"], by_id["ANNA"]["Grade"]) == ("5B", "5")
    assert (by_id["CARL"]["Home Room"], by_id["CARL"]["Grade"]) == ("", "")
    assert archive.read("IMAGES/ANNA.jpg") == (day / "IMG_0002.JPG").read_bytes()


def test_picked_portrait_goes_into_the_yearbook_for_one_group(client, day):
    """A group's package holds only that group; an admin's pick replaces the default image."""
    third = db.session.scalar(select(Photo.id).where(Photo.original_name.endswith("IMG_0003.JPG")))
    assert client.post("/person/ANNA/portrait", data={"photo_id": str(third)}).status_code == 303
    archive = download(client, "/admin/yearbook/yearbook.zip", group="5B")
    assert [row["Student ID"] for row in index_rows(archive)] == ["ANNA", "BEN"]
    assert archive.read("IMAGES/ANNA.jpg") == (day / "IMG_0003.JPG").read_bytes()


def test_cli_writes_the_same_package_to_a_new_folder(runner, day, tmp_path):
    """`flask yearbook OUT_DIR` writes INDEX.TXT and IMAGES/, every row naming a written image."""
    out = tmp_path / "out" / "yearbook"
    result = runner.invoke(args=["yearbook", str(out), "--volume", "Oak School"])
    assert result.exit_code == 0, result.output
    assert "3 portraits" in result.output
    lines = (out / "INDEX.TXT").read_bytes().decode().removesuffix("\r\n").split("\r\n")
    rows = [line.split("\t") for line in lines[1:]]
    assert sorted(p.name for p in (out / "IMAGES").iterdir()) == ["ANNA.jpg", "BEN.jpg", "CARL.jpg"]
    assert sorted(row[2] for row in rows) == ["ANNA.jpg", "BEN.jpg", "CARL.jpg"]
    assert {row[0] for row in rows} == {"Oak School"}
    assert (out / "IMAGES" / "BEN.jpg").read_bytes() == (day / "IMG_0005.JPG").read_bytes()
    group = runner.invoke(args=["yearbook", str(tmp_path / "carl"), "--group", ""])
    assert group.exit_code == 0 and sorted(p.name for p in (tmp_path / "carl" / "IMAGES").iterdir()) == ["CARL.jpg"]


def test_cli_refuses_to_overwrite_anything(runner, day, tmp_path):
    """A folder with something in it, or a file, is refused and left exactly as it was."""
    full = tmp_path / "full"
    full.mkdir()
    (full / "INDEX.TXT").write_text("theirs")
    result = runner.invoke(args=["yearbook", str(full)])
    assert result.exit_code != 0 and "not an empty folder" in result.output
    assert [p.name for p in full.iterdir()] == ["INDEX.TXT"] and (full / "INDEX.TXT").read_text() == "theirs"
    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    assert runner.invoke(args=["yearbook", str(a_file)]).exit_code != 0
    assert a_file.read_text() == "keep"
    unknown = runner.invoke(args=["yearbook", str(tmp_path / "new"), "--group", "9Z"])
    assert unknown.exit_code != 0 and not (tmp_path / "new").exists()


def test_package_names_cannot_leave_the_folder(app, tmp_path):
    """A name that climbs out of the folder (or is absolute) is refused before anything lands outside."""
    from services.yearbook import PackageError, write_package

    for name in ("../escaped.txt", "IMAGES/../../escaped.txt", str(tmp_path / "escaped.txt")):
        with pytest.raises(PackageError):
            write_package(tmp_path / f"out-{len(name)}", [(b"x", name)])
    assert not (tmp_path / "escaped.txt").exists()
