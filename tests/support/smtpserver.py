"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd in a thread): it keeps what it accepted, and can
require STARTTLS with AUTH, refuse recipients with a 5xx, or drop the connection during DATA."""

import datetime
import ipaddress
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Mailbox:
    """The server's behaviour and what it saw. `drop_data` is how many DATA commands to answer by cutting
    the connection after the message arrived and before the reply: the client cannot know the outcome, and
    this server did not keep the message (as a real one does not when the transaction never completed)."""

    refuse: set[str] = field(default_factory=set)
    drop_data: int = 0
    user: str = "intake"
    password: str = "secret"
    accepted: list[EmailMessage] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    data_commands: int = 0
    data_message_ids: list[str] = field(default_factory=list)  # of every DATA, kept or dropped
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            with self.lock:
                self.refused.append(address)
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.data_commands += 1
            self.data_message_ids.append(message_from_bytes(envelope.content, policy=policy.default)["Message-ID"])
            if self.drop_data:
                self.drop_data -= 1
                server.transport.abort()
                return "421 4.3.0 Connection dropped"
            self.accepted.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 2.0.0 Accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
        ok = ok and auth_data.password.decode() == self.password
        if ok:
            with self.lock:
                self.logins.append(self.user)
        return AuthResult(success=ok)

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.accepted)


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    mailbox: Mailbox
    ca_file: str = ""
    security: str = "none"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now: the client trusts exactly this one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextmanager
def smtp_server(mailbox: Mailbox, certificate_in: Path | None = None, security: str = "starttls"):
    """Serve `mailbox` until the block ends. With `certificate_in` (a folder for the certificate) the server
    speaks TLS, by STARTTLS (required, then AUTH required) or (security="tls") from the first byte."""
    import ssl

    options: dict = {}
    ca_file = ""
    if certificate_in is not None:
        cert, key = self_signed(certificate_in)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        # aiosmtpd 1.4 counts only STARTTLS as encrypted: under implicit TLS it offers AUTH only when told
        # TLS is not needed for it, and then refuses to require AUTH (the test checks the login instead).
        implicit = {"ssl_context": context, "auth_require_tls": False, "auth_required": False}
        tls = (
            implicit if security == "tls" else {"tls_context": context, "require_starttls": True, "auth_required": True}
        )
        options = {**tls, "authenticator": mailbox.authenticate}
        ca_file = str(cert)
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), ready_timeout=10, **options)
    controller.start()
    try:
        yield RunningServer("127.0.0.1", controller.port, mailbox, ca_file, security if ca_file else "none")
    finally:
        controller.stop()


def smtp_settings(server: RunningServer) -> dict:
    """The app settings that send through `server`."""
    tls = bool(server.ca_file)
    return {
        "SMTP_HOST": server.host,
        "SMTP_PORT": server.port,
        "SMTP_SECURITY": server.security,
        "SMTP_USER": server.mailbox.user if tls else "",
        "SMTP_PASSWORD": server.mailbox.password if tls else "",
        "SMTP_CA_FILE": server.ca_file,
        "SMTP_TIMEOUT_SECONDS": 10.0,
        "MAIL_FROM": "Photo day <intake@school.example>",
    }
