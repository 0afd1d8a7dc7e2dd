"""E-mail through a real SMTP server started by the test: queued once, sent outside transactions,
temporary failures retried, permanent ones shown with a resend action."""

import pytest
from sqlalchemy import select

from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from data.models import OutboxMessage, Person
from data.states import MailKind, MailState, UserRole
from services import export, outbox
from tests.conftest import BACKENDS
from tests.support.factories import login, make_person, make_scanned_batch, make_user, register
from tests.support.smtpserver import Mailbox, smtp_server, smtp_settings
from tests.support.waiting import wait_for

WAIT = 20


def outbox_rows() -> list[OutboxMessage]:
    return run_in_transaction(
        lambda: list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))), read_only=True
    )


def send_until_delivered(mailbox: Mailbox, count: int = 1) -> list:
    """Run the worker step until the server holds `count` messages (retries wait out their backoff)."""
    return wait_for(lambda: outbox.send_due() and len(mailbox.messages()) >= count and mailbox.messages(), WAIT, "mail")


@pytest.fixture
def mail_on(app, tmp_path):
    """An SMTP server that requires STARTTLS and AUTH, and the app sending through it."""
    mailbox = Mailbox()
    with smtp_server(mailbox, certificate_in=tmp_path) as server:
        app.config.update(smtp_settings(server), PUBLIC_URL="https://photos.school.example")
        yield mailbox


def test_registration_mails_the_card_over_starttls_with_auth_once(client, mail_on):
    """A registration e-mails its card (PNG, link, text and HTML parts) through STARTTLS and AUTH, once."""
    register(client, email="ann@example.com", name="Ann <b>&")
    [message] = send_until_delivered(mail_on)
    assert mail_on.logins == ["intake"]
    code = run_in_transaction(lambda: db.session.scalar(select(Person.code)), read_only=True)
    assert message["To"] == "ann@example.com" and message["Subject"] == "Your photo card"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "https://photos.school.example/family/" in text and code in text
    assert "Ann &lt;b&gt;&amp;" in html and "<b>" not in html
    [card] = list(message.iter_attachments())
    assert card.get_content_type() == "image/png" and card.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    outbox.send_due()
    assert len(mail_on.messages()) == 1 and [row.state for row in outbox_rows()] == [MailState.SENT]


def test_no_mail_is_queued_while_smtp_host_is_unset(app, client):
    """With SMTP_HOST unset e-mail is off: a registration queues nothing."""
    assert app.config["SMTP_HOST"] == ""
    register(client)
    assert outbox_rows() == [] and outbox.send_due() == {"sent": 0, "failed": 0}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_photos_ready_is_queued_once_per_delivery_version_with_the_drive_link(app, mail_on):
    """An export queues "your photos are ready" once per delivery version, with the Drive folder link."""
    person = make_person("P1", "Pat", email="pat@example.com")
    make_scanned_batch([("card", "P1"), ("photo",)])

    def link_folder():
        db.session.get(Person, person.id).drive_folder_link = "https://drive.example/folders/p1"

    db_commit_with_retry(link_folder)
    for _ in range(2):  # an export re-run records the same version again
        db_commit_with_retry(export.record_export, person.id, 1)
    [message] = send_until_delivered(mail_on)
    assert message["Subject"] == "Your photos are ready"
    assert "https://drive.example/folders/p1" in message.get_body(("plain",)).get_content()
    db_commit_with_retry(export.record_export, person.id, 1)
    outbox.send_due()
    assert len(mail_on.messages()) == 1
    assert [(row.kind, row.version) for row in outbox_rows()] == [(MailKind.PHOTOS_READY, 1)]


def test_no_photos_ready_mail_for_a_person_without_photos(app, mail_on):
    """An export of someone with no photos tells them nothing."""
    person = make_person("P2", email="nobody@example.com")
    db_commit_with_retry(export.record_export, person.id, 1)
    assert outbox_rows() == []


def test_a_refused_recipient_is_failed_shown_not_retried_and_can_be_resent(app, client, tmp_path):
    """A 5xx recipient refusal fails the message for good; the dashboard shows it; an admin resends it."""
    mailbox = Mailbox(refuse={"gone@example.com"})
    with smtp_server(mailbox) as server:
        app.config.update(smtp_settings(server), MAIL_RETRY_BASE_SECONDS=0.0)
        register(client, email="gone@example.com")
        assert outbox.send_due() == {"sent": 0, "failed": 1}
        assert outbox.send_due() == {"sent": 0, "failed": 0}
        assert mailbox.refused == ["gone@example.com"] and mailbox.messages() == []
        [row] = outbox_rows()
        assert row.state == MailState.FAILED and row.attempts == 1 and "550" in row.last_error
        make_user("helper")
        login(client, "helper")
        assert client.post("/admin/emails/resend").status_code == 403
        assert "Send the failed e-mails again" not in client.get("/").get_data(as_text=True)
        make_user("boss", UserRole.ADMIN)
        login(client, "boss")
        assert client.get("/api/dashboard").get_json()["emails"]["failed"] == 1
        page = client.get("/").get_data(as_text=True)
        assert "1 failed" in page and "gone@example.com: 550" in page
        assert client.post("/admin/emails/resend").status_code == 303
        mailbox.refuse.clear()
        [message] = send_until_delivered(mailbox)
        assert message["To"] == "gone@example.com" and outbox_rows()[0].state == MailState.SENT


def test_a_connection_dropped_during_data_is_retried_and_delivered_exactly_once(app, client):
    """A connection cut during DATA is a temporary failure: retried after a backoff, delivered once."""
    mailbox = Mailbox(drop_data=2)
    with smtp_server(mailbox) as server:
        app.config.update(smtp_settings(server), MAIL_RETRY_BASE_SECONDS=0.05)
        register(client, email="ann@example.com")
        assert outbox.send_due() == {"sent": 0, "failed": 0}
        [row] = outbox_rows()
        assert row.state == MailState.PENDING and row.attempts == 1 and row.next_attempt_at > row.created_at
        [message] = send_until_delivered(mailbox)
        outbox.send_due()
        assert mailbox.data_commands == 3 and len(mailbox.messages()) == 1
        [row] = outbox_rows()
        assert row.state == MailState.SENT and row.attempts == 3
        assert mailbox.data_message_ids == [message["Message-ID"]] * 3


def test_temporary_failures_back_off_exponentially_up_to_the_cap(app):
    """The wait after each temporary failure doubles from the base and stops at the cap."""
    app.config.update(MAIL_RETRY_BASE_SECONDS=30.0, MAIL_RETRY_MAX_SECONDS=200.0)
    assert [outbox.retry_delay(attempts) for attempts in range(1, 6)] == [30, 60, 120, 200, 200]


def test_a_message_is_failed_after_the_last_allowed_attempt(app, client):
    """A server that keeps dropping the connection fails the message after MAIL_MAX_ATTEMPTS tries."""
    mailbox = Mailbox(drop_data=10)
    with smtp_server(mailbox) as server:
        app.config.update(smtp_settings(server), MAIL_RETRY_BASE_SECONDS=0.0, MAIL_MAX_ATTEMPTS=2)
        register(client, email="ann@example.com")
        wait_for(lambda: outbox.send_due()["failed"], WAIT, "the message to fail")
        [row] = outbox_rows()
        assert row.state == MailState.FAILED and row.attempts == 2 and mailbox.data_commands == 2


def test_implicit_tls_with_auth_delivers(app, client, tmp_path):
    """SMTP_SECURITY=tls speaks TLS from the first byte (port 465 style), then logs in and sends."""
    mailbox = Mailbox()
    with smtp_server(mailbox, certificate_in=tmp_path, security="tls") as server:
        app.config.update(smtp_settings(server))
        register(client, email="ann@example.com")
        [message] = send_until_delivered(mailbox)
        assert message["To"] == "ann@example.com" and mailbox.logins == ["intake"]


def test_a_message_whose_sender_died_is_sent_once_its_claim_runs_out(app, client):
    """A claim left by a sender that died mid-send is taken over after it expires, and the message is sent."""
    mailbox = Mailbox()
    with smtp_server(mailbox) as server:
        app.config.update(smtp_settings(server), SMTP_TIMEOUT_SECONDS=0.05)
        register(client, email="ann@example.com")
        assert db_commit_with_retry(outbox.claim_next) is not None  # ...and the sender dies here
        assert outbox_rows()[0].state == MailState.SENDING
        [message] = send_until_delivered(mailbox)
        assert message["To"] == "ann@example.com" and outbox_rows()[0].attempts == 2


def test_the_processor_delivery_thread_sends_queued_mail(app, client):
    """The processor's e-mail thread (run_every with outbox.send_due) sends a queued card on its own."""
    import threading

    from photo_processor import DELIVERY_THREADS, run_every

    mailbox = Mailbox()
    with smtp_server(mailbox) as server:
        app.config.update(smtp_settings(server), MAIL_SEND_SECONDS=0.05)
        register(client, email="ann@example.com")
        [(_, work, key)] = [thread for thread in DELIVERY_THREADS if thread[0] == "intake-mail"]
        stop = threading.Event()
        sender = threading.Thread(target=run_every, args=(app, stop, work, key), daemon=True)
        sender.start()
        try:
            wait_for(mailbox.messages, WAIT, "the processor thread to send the card")
        finally:
            stop.set()
            sender.join(timeout=WAIT)
        assert not sender.is_alive()


def test_with_drive_on_photos_ready_waits_until_that_version_is_on_drive(app, mail_on):
    """While Drive is on, "your photos are ready" is held until the person's photos of that version are synced."""
    app.config["DRIVE_ROOT_FOLDER_ID"] = "root"
    person = make_person("P3", "Pia", email="pia@example.com")
    make_scanned_batch([("card", "P3"), ("photo",)])
    db_commit_with_retry(export.record_export, person.id, 1)
    assert outbox.send_due() == {"sent": 0, "failed": 0} and mail_on.messages() == []

    def synced():
        found = db.session.get(Person, person.id)
        found.synced_version, found.drive_folder_link = 1, "https://drive.example/folders/p3"

    db_commit_with_retry(synced)
    [message] = send_until_delivered(mail_on)
    assert "https://drive.example/folders/p3" in message.get_body(("plain",)).get_content()


def test_switched_off_e_mail_holds_messages_and_sends_them_when_switched_on(app, client, mail_on):
    """While an admin has e-mail off, registrations still queue their card, nothing is sent and `deliver`
    does not wait for it; switched on again, the waiting messages go out."""
    make_user("boss", UserRole.ADMIN)
    login(client, "boss")
    assert client.post("/admin/settings/email", data={"on": "0"}).status_code == 303
    assert "Sending e-mail is <strong>off</strong>" in client.get("/admin/settings").get_data(as_text=True)
    assert "switched off" in client.get("/").get_data(as_text=True)
    register(app.test_client(), email="ann@example.com")
    assert outbox.send_due() == {"sent": 0, "failed": 0} and mail_on.messages() == []
    assert [row.state for row in outbox_rows()] == [MailState.PENDING] and not outbox.waiting()
    assert client.post("/admin/settings/email", data={"on": "1"}).status_code == 303
    assert outbox.waiting()
    [message] = send_until_delivered(mail_on)
    assert message["To"] == "ann@example.com" and [row.state for row in outbox_rows()] == [MailState.SENT]


def test_staff_cannot_switch_e_mail_off(app, client):
    """The e-mail switch is an admin setting."""
    make_user()
    login(client)
    assert client.post("/admin/settings/email", data={"on": "0"}).status_code == 403
    assert run_in_transaction(outbox.sending_on, read_only=True)
