"""Sending one message through the configured SMTP server, and telling a failure worth retrying from one
that is not. Never called inside a database transaction: a slow server must not hold the write lock."""

import smtplib
import ssl
from email.message import EmailMessage

from flask import current_app


class TemporaryFailure(Exception):
    """Try again later: a 4xx reply, a dropped or refused connection, a timeout."""


class PermanentFailure(Exception):
    """Sending again would get the same answer (a 5xx reply, e.g. an unknown recipient)."""


def mail_enabled() -> bool:
    return bool(current_app.config["SMTP_HOST"])


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=current_app.config["SMTP_CA_FILE"] or None)


def connect() -> smtplib.SMTP:
    config = current_app.config
    host, port, timeout = config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_TIMEOUT_SECONDS"]
    if config["SMTP_SECURITY"] == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if config["SMTP_SECURITY"] == "starttls":
            smtp.starttls(context=tls_context())
        if config["SMTP_USER"]:
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
    except BaseException:
        smtp.close()
        raise
    return smtp


def classify(error: Exception) -> Exception:
    """The failure as TemporaryFailure or PermanentFailure, with the server's words."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        kind = PermanentFailure if codes and all(code >= 500 for code in codes) else TemporaryFailure
        return kind(
            "; ".join(
                f"{to}: {code} {reply.decode(errors='replace')}" for to, (code, reply) in error.recipients.items()
            )
        )
    if isinstance(error, smtplib.SMTPResponseException):
        kind = PermanentFailure if error.smtp_code >= 500 else TemporaryFailure
        return kind(f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}")
    return TemporaryFailure(f"{type(error).__name__}: {error}")


def send(message: EmailMessage) -> None:
    """Hand the message to the server; raises TemporaryFailure or PermanentFailure."""
    try:
        smtp = connect()
    except (smtplib.SMTPException, OSError) as error:
        raise classify(error) from error
    try:
        smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        raise classify(error) from error
    finally:
        hang_up(smtp)


def hang_up(smtp: smtplib.SMTP) -> None:
    """QUIT, politely; the message was already accepted or refused, so a failure here changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
