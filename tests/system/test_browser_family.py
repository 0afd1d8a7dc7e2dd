"""A parent on a phone registers two children with one e-mail and sees both cards on one page; the card
e-mail's link shows the same family's cards in another browser. Real gunicorn (with its processor sending
the mail), a real SMTP server, headless Chromium."""

import re
import shutil

import pytest

from tests.support.browser import chromium
from tests.support.liveserver import LiveServer
from tests.support.pagewalk import SIZES, axe_violations, horizontal_overflow
from tests.support.smtpserver import Mailbox, smtp_server, smtp_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def mailing_server(tmp_path, sqlite_template):
    """gunicorn whose processor sends e-mail to a test SMTP server, with its own address as the public one."""
    shutil.copyfile(sqlite_template, tmp_path / "intake.sqlite3")
    (tmp_path / "data").mkdir()
    mailbox = Mailbox()
    with smtp_server(mailbox) as smtp:
        settings = {key: str(value) for key, value in smtp_settings(smtp).items()}
        server = LiveServer(tmp_path / "data", f"sqlite:///{tmp_path / 'intake.sqlite3'}", 1, **settings)
        server.env.update(INTAKE_PUBLIC_URL=server.url, MAIL_SEND_SECONDS="0.3")
        server.start()
        try:
            yield server, mailbox
        finally:
            server.stop()


def register_child(page, name: str, email: str) -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=email]", email)
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_url("**/card/*")


def card_names(page) -> list[str]:
    return page.locator(".person-card .card-name").all_inner_texts()


def test_a_parent_on_a_phone_registers_two_children_and_sees_both_cards(mailing_server):
    """Two siblings registered one after the other on a phone: both cards (QR, name, PNG) on one page that
    fits the phone and passes axe; the e-mailed link shows both on a laptop."""
    server, mailbox = mailing_server
    with chromium() as browser:
        phone = browser.new_context(viewport=SIZES["phone"], bypass_csp=True).new_page()
        phone.goto(f"{server.url}/register")
        register_child(phone, "Mia Jansen", "jansen@example.com")
        phone.click("text=Register another child")
        register_child(phone, "Noah Jansen", "jansen@example.com")
        assert card_names(phone) == ["Noah Jansen", "Mia Jansen"]
        assert phone.locator(".person-card svg").count() == 2
        assert horizontal_overflow(phone) is None and axe_violations(phone) == []
        with phone.expect_download() as download:
            phone.click("text=Save Mia Jansen's card (PNG)")
        assert download.value.suggested_filename.endswith(".png")

        wait_for(lambda: len(mailbox.messages()) == 2, 60, "both card e-mails")
        text = mailbox.messages()[0].get_body(("plain",)).get_content()
        link = re.search(rf"{re.escape(server.url)}/family/\S+", text)[0]
        laptop = browser.new_context(viewport=SIZES["laptop"], bypass_csp=True).new_page()
        laptop.goto(link)
        laptop.wait_for_url("**/card/*")
        assert sorted(card_names(laptop)) == ["Mia Jansen", "Noah Jansen"]
        assert "/family/" not in laptop.url
