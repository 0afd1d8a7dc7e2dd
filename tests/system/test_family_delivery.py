"""A family end to end, in Chromium against a real gunicorn and a real SMTP server: two siblings registered
with one e-mail, their photos ingested and delivered, the "photos ready" e-mail's gallery link opened and
the whole gallery downloaded as a zip holding both siblings' photos."""

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.browser import chromium
from tests.support.liveserver import LiveServer
from tests.support.photogen import SMALL_SIZE, make_batch
from tests.support.smtpserver import Mailbox, smtp_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

EMAIL = "lund.family@example.com"


def register_child(page: Page, name: str) -> str:
    """Fill the registration form as a parent on a phone would; returns the new card's code (shown first, above
    the family's other cards)."""
    page.fill("input[name=name]", name)
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=group]", "3B")
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_url("**/card/*")
    return page.locator(".card-code").first.inner_text().strip()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def photos_ready(mailbox: Mailbox) -> list | None:
    """Both siblings' "photos ready" e-mails, once the SMTP server has them."""
    found = [m for m in mailbox.messages() if m["Subject"] == "Your photos are ready"]
    return found if len(found) >= 2 else None


@pytest.fixture
def smtp():
    with smtp_server(Mailbox()) as server:
        yield server


@pytest.fixture
def server(database_url, data_dir, smtp):
    """gunicorn sending e-mail through the test's SMTP server, reachable at the address its links name."""
    live = LiveServer(
        data_dir,
        database_url,
        workers=1,
        INTAKE_PROCESSOR="0",  # ingest --wait and deliver do the work, so the test knows when it is done
        SMTP_HOST=smtp.host,
        SMTP_PORT=str(smtp.port),
        SMTP_SECURITY="none",
        MAIL_FROM="Photo day <intake@school.example>",
    )
    live.env["INTAKE_PUBLIC_URL"] = live.url
    live.start()
    try:
        yield live
    finally:
        live.stop()


def test_siblings_registered_with_one_email_receive_one_gallery_and_download_both_their_photos(server, smtp, tmp_path):
    """Register two children with one e-mail ("Register another child"), ingest and deliver their photos,
    open the gallery link from the "photos ready" e-mail and download everything: the zip holds exactly
    both siblings' photos, byte for byte."""
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
        page = context.new_page()
        page.goto(f"{server.url}/register")
        mia = register_child(page, "Mia Lund")
        page.click("text=Register another child")
        noah = register_child(page, "Noah Lund")
        assert mia != noah

        files = make_batch(
            tmp_path / "card1",
            [("card", mia), ("photo",), ("photo",), ("card", noah), ("photo",), ("photo",)],
            size=SMALL_SIZE,
        )
        ingest = server.flask("ingest", str(tmp_path / "card1"), "--wait", "--json")
        assert ingest.returncode == 0, ingest.stderr
        deliver = server.flask("deliver", "--wait", "--json")
        assert deliver.returncode == 0, deliver.stderr
        assert json.loads(deliver.stdout)["emails"] == {"sent": 4, "failed": 0}  # two cards, two "photos ready"

        letters = wait_for(lambda: photos_ready(smtp.mailbox), 30, "both photos-ready e-mails")
        assert [m["To"] for m in letters] == [EMAIL, EMAIL]
        gallery = re.compile(rf"{re.escape(server.url)}/gallery/\S+")
        [link] = {gallery.search(m.get_body(("plain",)).get_content())[0] for m in letters}  # one family link

        page.goto(link)
        assert page.locator(".gallery-grid img").count() == 4
        assert page.get_by_role("heading", name="Mia Lund", exact=True).is_visible()
        assert page.get_by_role("heading", name="Noah Lund", exact=True).is_visible()
        page.locator(".gallery-grid a").first.click()
        page.wait_for_url(re.compile(r"/gallery/[\w-]+/\d+$"))
        assert page.locator(".gallery-large img").evaluate("img => img.complete && img.naturalWidth") > 0
        page.click("text=All photos")

        with page.expect_download() as started:
            page.click("text=Download all photos")
        download = started.value
        archive = zipfile.ZipFile(download.path())
        names = archive.namelist()
        assert sorted({name.split("/")[0] for name in names}) == sorted([f"{mia} Mia Lund", f"{noah} Noah Lund"])
        delivered = sorted(sha256(archive.read(name)) for name in names)
        photos = [files[1], files[2], files[4], files[5]]
        assert delivered == sorted(sha256(Path(path).read_bytes()) for path in photos)
        context.close()
