"""Private galleries: a family's link shows exactly what export delivers to its people, streams a zip of it,
is counted, limited per address, revoked at once, expires, and answers every dead token with the one 404."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import select, update

from data import storage
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import GalleryLink, Person, Photo, utcnow
from data.states import UserRole
from services import export, galleries, gallery_links, outbox
from services.directory import person_for_code
from tests.support.factories import login, make_person, make_scanned_batch, make_user
from tests.support.smtpserver import Mailbox
from tests.support.waiting import wait_for

PUBLIC = "https://photos.school.example"
# Two siblings with one e-mail, and someone else; cards are not delivered (EXPORT_CARDS is off).
PLAN = [("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",), ("card", "CARL"), ("photo",)]


@pytest.fixture
def day(app):
    """The three people and their photos, with files on disk; returns photo ids by plan position."""
    app.config["PUBLIC_URL"] = PUBLIC
    make_person("ANNA", "Anna Berg", email="berg@example.com")
    make_person("BEN", "Ben Berg", email="berg@example.com")
    make_person("CARL", "Carl Dahl", email="dahl@example.com")
    _, ids = make_scanned_batch(PLAN)

    def store_files():
        for photo in db.session.scalars(select(Photo)):
            for path, kind in (
                (storage.original_path(photo.content_hash, ".jpg"), "original"),
                (storage.thumbnail_path(photo.content_hash), "thumbnail"),
            ):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"{kind} of photo {photo.id}".encode())

    run_in_transaction(store_files, read_only=True)
    return ids


def get(client, path: str, **options):
    """A GET read whole and closed: a streamed file's handle is not left for the garbage collector."""
    response = client.get(path, **options)
    response.get_data()
    response.close()
    return response


def family_link(email: str = "berg@example.com") -> str:
    """A new family link's token."""
    return db_commit_with_retry(lambda: gallery_links.token_for(gallery_links.new_link(email=email).seed))


def link_row() -> GalleryLink:
    return run_in_transaction(lambda: db.session.scalars(select(GalleryLink)).one(), read_only=True)


def shown_photo_ids(page: str) -> set[int]:
    return {int(i) for i in re.findall(r"/gallery/[\w-]+/(\d+)/thumb", page)}


def delivered(*codes: str) -> set[int]:
    def ids():
        return {p.id for code in codes for p in export.deliverable_photos(person_for_code(code).id)}

    return run_in_transaction(ids, read_only=True)


def test_family_gallery_shows_exactly_what_export_delivers_to_each_sibling(client, day):
    """The family page shows both siblings' delivered photos (no cards, nobody else's), and the zip link."""
    token = family_link()
    response = get(client, f"/gallery/{token}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Anna Berg" in page and "Ben Berg" in page and "Carl" not in page
    assert shown_photo_ids(page) == delivered("ANNA", "BEN") and len(shown_photo_ids(page)) == 3
    assert f"/gallery/{token}/photos.zip" in page and "ANNA" not in page
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"


@pytest.mark.both_databases
def test_zip_holds_exactly_the_delivered_photos_and_a_moved_photo_leaves_at_once(client, day):
    """The zip has one folder per sibling with exactly their photos' bytes; an excluded photo is gone from
    the page, its thumbnail, its original and the zip on the next request."""
    token = family_link()
    response = get(client, f"/gallery/{token}/photos.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert int(response.headers["Content-Length"]) == len(response.data)
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    expected = {}
    for code in ("ANNA", "BEN"):
        for photo_id in delivered(code):
            folder = "ANNA Anna Berg" if code == "ANNA" else "BEN Ben Berg"
            expected[f"{folder}/IMG_{day.index(photo_id) + 1:04d}.JPG"] = photo_id
    assert set(archive.namelist()) == set(expected)
    for name, photo_id in expected.items():
        assert archive.read(name) == f"original of photo {photo_id}".encode()
    moved = day[1]
    db_commit_with_retry(lambda: db.session.execute(update(Photo).where(Photo.id == moved).values(excluded=True)))
    assert moved not in shown_photo_ids(get(client, f"/gallery/{token}").get_data(as_text=True))
    assert get(client, f"/gallery/{token}/{moved}/thumb").status_code == 404
    assert get(client, f"/gallery/{token}/{moved}/full").status_code == 404
    assert get(client, f"/gallery/{token}/{moved}").status_code == 404
    after = zipfile.ZipFile(io.BytesIO(get(client, f"/gallery/{token}/photos.zip").data))
    assert len(after.namelist()) == 2 and moved not in [expected[name] for name in after.namelist()]


def test_thumbnails_originals_and_large_view_stream_only_the_links_photos(client, day):
    """A photo of the family streams (thumbnail, original, a download under its name); another family's
    photo through this link is a 404."""
    token = family_link()
    anna_photo, carl_photo = day[1], day[6]
    thumb = get(client, f"/gallery/{token}/{anna_photo}/thumb")
    assert thumb.mimetype == "image/jpeg" and thumb.data == f"thumbnail of photo {anna_photo}".encode()
    full = get(client, f"/gallery/{token}/{anna_photo}/full")
    assert full.status_code == 200 and full.data == f"original of photo {anna_photo}".encode()
    download = get(client, f"/gallery/{token}/{anna_photo}/full?download=1")
    assert download.headers["Content-Disposition"] == "attachment; filename=IMG_0002.JPG"
    page = get(client, f"/gallery/{token}/{anna_photo}").get_data(as_text=True)
    assert "photo 1 of 2" in page and f"/gallery/{token}/{day[2]}" in page
    for path in ("thumb", "large", "full", "full?download=1", ""):
        assert get(client, f"/gallery/{token}/{carl_photo}/{path}".rstrip("/")).status_code == 404


def test_the_large_view_shows_a_screen_size_copy_made_once(client, day):
    """The large view's picture is a JPEG at most 2048 pixels wide, made from the original on first request
    and served again from disk; the page links the original. A photo whose original is not an image has no
    large view (404), and its original still downloads."""
    token = family_link()
    photo_id = day[1]
    original = run_in_transaction(
        lambda: storage.original_path(db.session.get(Photo, photo_id).content_hash, ".jpg"), read_only=True
    )
    buffer = io.BytesIO()
    Image.new("RGB", (4800, 3200), "navy").save(buffer, "JPEG")
    original.write_bytes(buffer.getvalue())
    first = get(client, f"/gallery/{token}/{photo_id}/large")
    with Image.open(io.BytesIO(first.data)) as copy:
        assert first.mimetype == "image/jpeg" and copy.size == (2048, 1365)
    original.write_bytes(b"changed after the copy was made")
    assert get(client, f"/gallery/{token}/{photo_id}/large").data == first.data
    page = get(client, f"/gallery/{token}/{photo_id}").get_data(as_text=True)
    assert f"/gallery/{token}/{photo_id}/large" in page and f"/gallery/{token}/{photo_id}/full" in page
    assert get(client, f"/gallery/{token}/{day[2]}/large").status_code == 404  # "original of photo N"
    assert get(client, f"/gallery/{token}/{day[2]}/full?download=1").status_code == 200


def test_unknown_revoked_and_expired_links_get_the_same_404_as_any_missing_page(client, day):
    """A made-up, malformed, revoked or expired token (page, picture or zip) answers exactly as a page
    that does not exist: nothing tells a live link from a dead one."""
    revoked, expired = family_link(), family_link("dahl@example.com")
    link_ids = run_in_transaction(
        lambda: {link.family_email: link.id for link in db.session.scalars(select(GalleryLink))}, read_only=True
    )
    db_commit_with_retry(gallery_links.revoke, link_ids["berg@example.com"], None)

    def expire():
        link = db.session.get(GalleryLink, link_ids["dahl@example.com"])
        link.expires_at = utcnow() - timedelta(seconds=1)

    db_commit_with_retry(expire)
    missing = get(client, "/no-such-page")
    made_up = gallery_links.token_for("never made")
    for token in (revoked, expired, made_up, "x", "A" * 500):
        for suffix in ("", "/photos.zip", f"/{day[1]}", f"/{day[1]}/thumb", f"/{day[1]}/full"):
            response = get(client, f"/gallery/{token}{suffix}")
            assert (response.status_code, response.data) == (404, missing.data), (token, suffix)


@pytest.mark.both_databases
def test_admin_revokes_a_link_with_effect_at_once_and_the_page_lists_counts(client, day):
    """Views and downloads are counted per link and listed for admins; a revoke ends the link at once."""
    token = family_link()
    get(client, f"/gallery/{token}")
    get(client, f"/gallery/{token}/{day[1]}")
    get(client, f"/gallery/{token}/{day[1]}/thumb")  # a picture in a page is not another view
    get(client, f"/gallery/{token}/photos.zip")
    get(client, f"/gallery/{token}/{day[1]}/full?download=1")
    row = link_row()
    assert (row.views, row.downloads) == (2, 2) and row.first_opened_at <= row.last_opened_at
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    page = get(client, "/admin/galleries").get_data(as_text=True)
    assert "berg@example.com" in page and "Anna Berg, Ben Berg" in page and f"{PUBLIC}/gallery/{token}" in page
    assert client.post(f"/admin/galleries/{row.id}/revoke").status_code == 303
    assert get(client, f"/gallery/{token}").status_code == 404
    assert link_row().revoked_at is not None


def test_gallery_admin_actions_are_for_admins_and_need_the_csrf_token(app, client, day):
    """Staff cannot see or change gallery links; an admin's post without the CSRF token changes nothing."""
    token = family_link()
    make_user()
    login(client)
    assert get(client, "/admin/galleries").status_code == 403
    assert client.post(f"/admin/galleries/{link_row().id}/revoke").status_code == 403
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    app.config["WTF_CSRF_ENABLED"] = True
    for path in (f"/admin/galleries/{link_row().id}/revoke", f"/admin/galleries/{link_row().id}/renew"):
        assert client.post(path).status_code == 400
    assert client.post("/admin/galleries", data={"owner": "berg@example.com"}).status_code == 400
    assert get(client, f"/gallery/{token}").status_code == 200
    assert run_in_transaction(lambda: db.session.query(GalleryLink).count(), read_only=True) == 1


def test_new_link_replaces_the_live_one_for_a_family_or_makes_one_per_person(client, day):
    """An admin's new link for a family ends its old one; a person's code makes a link to their photos only."""
    old = family_link()
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    client.post("/admin/galleries", data={"owner": "Berg@Example.com"})
    client.post("/admin/galleries", data={"owner": "CARL"})
    refused = client.post("/admin/galleries", data={"owner": "nobody@example.com"}, follow_redirects=True)
    assert "Nobody is registered with nobody@example.com" in refused.get_data(as_text=True)
    assert get(client, f"/gallery/{old}").status_code == 404
    tokens = run_in_transaction(
        lambda: {
            (link.family_email or link.person_id): gallery_links.token_for(link.seed)
            for link in db.session.scalars(select(GalleryLink).where(gallery_links.is_live()))
        },
        read_only=True,
    )
    assert len(tokens) == 2
    family = get(client, f"/gallery/{tokens['berg@example.com']}").get_data(as_text=True)
    assert shown_photo_ids(family) == delivered("ANNA", "BEN")
    [carl] = [token for owner, token in tokens.items() if owner != "berg@example.com"]
    assert shown_photo_ids(get(client, f"/gallery/{carl}").get_data(as_text=True)) == delivered("CARL")


def test_requests_over_the_limit_from_one_address_get_a_429_page(app, client, day):
    """Pages, downloads and unknown tokens count per address; past the limit everything (thumbnails too)
    gets a 429 page with Retry-After, while another address still gets in."""
    app.config["GALLERY_PER_ADDRESS_PER_MINUTE"] = 4
    token = family_link()
    for _ in range(3):
        assert get(client, f"/gallery/{token}/{day[1]}/thumb").status_code == 200  # pictures do not count
    assert get(client, f"/gallery/{token}").status_code == 200
    assert get(client, f"/gallery/{token}/photos.zip").status_code == 200
    assert get(client, f"/gallery/{gallery_links.token_for('guess 1')}").status_code == 404
    assert get(client, "/gallery/guess-2").status_code == 404
    for path in ("", "/photos.zip", f"/{day[1]}/thumb"):
        limited = get(client, f"/gallery/{token}{path}")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert "Too many requests" in limited.get_data(as_text=True)
    elsewhere = get(client, f"/gallery/{token}", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert elsewhere.status_code == 200
    assert link_row().views == 2  # the refused request was not counted


@pytest.mark.both_databases
def test_opened_at_is_the_first_view_for_each_person_of_the_link(client, day):
    """opened_at_by_person gives both siblings the family link's first view time, and nobody else."""
    token = family_link()
    assert run_in_transaction(galleries.opened_at_by_person, read_only=True) == {}
    get(client, f"/gallery/{token}")
    first = link_row().first_opened_at
    get(client, f"/gallery/{token}")
    opened = run_in_transaction(galleries.opened_at_by_person, read_only=True)
    ids = person_ids()
    assert opened == {ids["ANNA"]: first, ids["BEN"]: first}


def photos_ready(mailbox: Mailbox, count: int) -> list:
    return wait_for(
        lambda: outbox.send_due() is not None and len(mailbox.messages()) >= count and mailbox.messages(), 20, "mail"
    )


def gallery_links_in(message) -> set[str]:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    found = set(re.findall(rf"{PUBLIC}/gallery/[\w-]+", text))
    assert found == set(re.findall(rf'href="({PUBLIC}/gallery/[\w-]+)"', html))
    return found


def test_photos_ready_mails_carry_one_family_link_reused_until_revoked(client, day, mailbox):
    """Both siblings' e-mails carry the same family link (text and HTML), a later delivery version the same
    link again; after a revoke the next e-mail has none, until an admin makes a new link."""
    ids = person_ids()
    for code in ("ANNA", "BEN"):
        db_commit_with_retry(export.record_export, ids[code], 1)
    messages = photos_ready(mailbox, 2)
    assert sorted(m["To"] for m in messages) == ["berg@example.com", "berg@example.com"]
    [link] = gallery_links_in(messages[0])
    assert gallery_links_in(messages[1]) == {link}
    assert get(client, link.removeprefix(PUBLIC)).status_code == 200
    db_commit_with_retry(export.record_export, ids["ANNA"], 2)
    assert gallery_links_in(photos_ready(mailbox, 3)[-1]) == {link}
    db_commit_with_retry(gallery_links.revoke, link_row().id, None)
    db_commit_with_retry(export.record_export, ids["ANNA"], 3)
    assert gallery_links_in(photos_ready(mailbox, 4)[-1]) == set()
    db_commit_with_retry(gallery_links.new_link, "berg@example.com")
    db_commit_with_retry(export.record_export, ids["ANNA"], 4)
    [new] = gallery_links_in(photos_ready(mailbox, 5)[-1])
    assert new != link and get(client, new.removeprefix(PUBLIC)).status_code == 200


def test_an_expired_family_link_is_replaced_by_the_next_mail(client, day, mailbox):
    """A family link that ran out (not revoked) gives way to a new one in the next e-mail."""
    old = family_link()

    def expire():
        db.session.execute(update(GalleryLink).values(expires_at=utcnow() - timedelta(seconds=1)))

    db_commit_with_retry(expire)
    db_commit_with_retry(export.record_export, person_ids()["ANNA"], 1)
    [new] = gallery_links_in(photos_ready(mailbox, 1)[0])
    assert new != f"{PUBLIC}/gallery/{old}" and get(client, new.removeprefix(PUBLIC)).status_code == 200


def test_after_a_new_secret_key_the_next_mail_replaces_the_link_it_cannot_write_out(app, client, day, mailbox):
    """A link made under the old SECRET_KEY still opens; the next e-mail carries a new link, which ends it."""
    old = family_link()
    app.config["SECRET_KEY"] = "a new secret key"
    assert get(client, f"/gallery/{old}").status_code == 200
    db_commit_with_retry(export.record_export, person_ids()["ANNA"], 1)
    [new] = gallery_links_in(photos_ready(mailbox, 1)[0])
    assert get(client, new.removeprefix(PUBLIC)).status_code == 200
    assert get(client, f"/gallery/{old}").status_code == 404


def person_ids() -> dict[str, int]:
    return run_in_transaction(
        lambda: dict(db.session.execute(select(Person.code, Person.id)).tuples().all()), read_only=True
    )
