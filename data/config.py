"""Settings, read once from the environment (and `.env`), each with a default."""

import os
import secrets
from pathlib import Path


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_parsed(name: str, default, parse, expected: str):
    """The variable through `parse`, the default when it is unset or blank; a clear error when it is wrong."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"{name} must be {expected}, got {raw!r}") from None


def env_int(name: str, default: int) -> int:
    return env_parsed(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return env_parsed(name, default, float, "a number")


def env_choice(name: str, default: str, choices: set[str]) -> str:
    def choose(raw: str) -> str:
        if (value := raw.strip().lower()) not in choices:
            raise ValueError
        return value

    return env_parsed(name, default, choose, f"one of {', '.join(sorted(choices))}")


def env_bool(name: str, default: bool) -> bool:
    return env_parsed(name, default, lambda raw: raw.strip().lower() in {"1", "true", "yes", "on"}, "yes or no")


def persistent_secret_key(data_dir: Path) -> str:
    """Generate the key once and keep it, so sessions survive restarts and all workers agree."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race; use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


class Config:
    """Production defaults. Instantiate after `.env` is loaded: values are read at construction."""

    def __init__(self) -> None:
        self.DATA_DIR = Path(env_str("INTAKE_DATA_DIR", "instance")).resolve()
        self.SQLALCHEMY_DATABASE_URI = env_str("DATABASE_URL", f"sqlite:///{self.DATA_DIR / 'intake.sqlite3'}")
        self.SECRET_KEY = os.environ.get("SECRET_KEY") or persistent_secret_key(self.DATA_DIR)
        # Per-statement wait for a lock inside SQLite, then whole-unit retries with backoff.
        self.DB_BUSY_TIMEOUT_MS = env_int("DB_BUSY_TIMEOUT_MS", 5000)
        self.DB_RETRY_ATTEMPTS = env_int("DB_RETRY_ATTEMPTS", 4)
        self.DB_RETRY_BASE_DELAY = env_float("DB_RETRY_BASE_DELAY", 0.05)
        self.DB_RETRY_MAX_DELAY = env_float("DB_RETRY_MAX_DELAY", 1.0)
        self.DB_POOL_SIZE = env_int("DB_POOL_SIZE", 5)
        self.PROCESSOR_ENABLED = env_bool("INTAKE_PROCESSOR", True)
        self.PROCESSOR_WORKERS = env_int("INTAKE_SCAN_WORKERS", os.cpu_count() or 1)
        self.PROCESSOR_POLL_SECONDS = env_float("INTAKE_PROCESSOR_POLL", 2.0)
        # The dashboard fragment staff poll every second: its figures are computed at most this often per worker
        # and shared by every poll in between (0: every poll computes its own).
        self.DASHBOARD_SHARED_SECONDS = env_float("INTAKE_DASHBOARD_SHARED_SECONDS", 1.0)
        self.LEASE_SECONDS = env_int("INTAKE_LEASE_SECONDS", 60)
        # A batch still uploading is grouped again at most this often as its scans come in.
        self.GROUP_ARRIVALS_SECONDS = env_float("INTAKE_GROUP_ARRIVALS_SECONDS", 5.0)
        # The address people reach the app at (the sign-up poster's QR), e.g. https://photos.school.example
        self.PUBLIC_URL = env_str("INTAKE_PUBLIC_URL", "").rstrip("/")
        self.CARD_PATTERN = env_str("INTAKE_CARD_PATTERN", "")
        self.MAX_UPLOAD_BYTES = env_int("INTAKE_MAX_UPLOAD_MB", 200) * 1024 * 1024
        # A review action on more photos than this asks for a confirmation first.
        self.REVIEW_CONFIRM_OVER = env_int("INTAKE_REVIEW_CONFIRM_OVER", 20)
        self.ROSTER_MAX_BYTES = env_int("INTAKE_ROSTER_MAX_MB", 5) * 1024 * 1024
        self.MAX_ZIP_UPLOAD_BYTES = env_int("INTAKE_MAX_ZIP_MB", 16384) * 1024 * 1024
        # Every other request (headers and body) must arrive within this long and be at most this large:
        # forms are small, and the server reads them whole before a thread works on them.
        self.REQUEST_READ_SECONDS = env_float("INTAKE_REQUEST_READ_SECONDS", 10.0)
        self.FORM_MAX_BYTES = env_int("INTAKE_FORM_MAX_KB", 64) * 1024
        self.MAX_CONTENT_LENGTH = self.FORM_MAX_BYTES
        # Public registrations per minute, from one address and from everyone together (a venue Wi-Fi is
        # often one address for every parent on it).
        self.REGISTER_PER_ADDRESS_PER_MINUTE = env_int("INTAKE_REGISTER_PER_ADDRESS_PER_MINUTE", 60)
        self.REGISTER_PER_MINUTE = env_int("INTAKE_REGISTER_PER_MINUTE", 600)
        # Private galleries: a link works this many days after it was made or last e-mailed; gallery pages,
        # downloads and unknown links per minute from one address.
        self.GALLERY_DAYS = env_int("INTAKE_GALLERY_DAYS", 60)
        self.GALLERY_PER_ADDRESS_PER_MINUTE = env_int("INTAKE_GALLERY_PER_ADDRESS_PER_MINUTE", 120)
        # How long an e-mailed link to a family's cards works (photo day and delivery fit inside).
        self.FAMILY_LINK_DAYS = env_int("INTAKE_FAMILY_LINK_DAYS", 60)
        # A card holds at most a few thousand photos; each entry costs a database write.
        self.MAX_ZIP_ENTRIES = env_int("INTAKE_MAX_ZIP_ENTRIES", 5000)
        # A client silent this long mid-file frees its server thread (venue Wi-Fi gone for good).
        self.UPLOAD_IDLE_SECONDS = env_int("INTAKE_UPLOAD_IDLE_SECONDS", 60)
        # Drive delivery; an empty root folder id turns it off (the local export still works).
        self.DRIVE_ROOT_FOLDER_ID = env_str("DRIVE_ROOT_FOLDER_ID", "")
        self.DRIVE_CREDENTIALS_FILE = env_str("DRIVE_CREDENTIALS_FILE", "")
        self.DRIVE_CREDENTIALS_TYPE = env_str("DRIVE_CREDENTIALS_TYPE", "service_account")
        self.DRIVE_SUBJECT = env_str("DRIVE_SUBJECT", "")
        self.DRIVE_ROOT_URL = env_str("DRIVE_ROOT_URL", "")
        self.DRIVE_CHUNK_BYTES = env_int("DRIVE_CHUNK_MB", 8) * 1024 * 1024
        # How soon a silent, dead connection is given up on (then the upload resumes); it must
        # also cover sending one chunk, so a slow uplink wants smaller chunks, not a longer wait.
        self.DRIVE_TIMEOUT_SECONDS = env_float("DRIVE_TIMEOUT_SECONDS", 30.0)
        self.DRIVE_SYNC_SECONDS = env_float("DRIVE_SYNC_SECONDS", 10.0)
        self.DRIVE_RETRY_BASE_SECONDS = env_float("DRIVE_RETRY_BASE_SECONDS", 1.0)
        # Who may open each person's folder: nobody else, the person's e-mail, or anyone with the link.
        self.DRIVE_SHARE = env_choice("DRIVE_SHARE", "none", {"none", "reader", "anyone"})
        # E-mail through SMTP; an empty host turns it off. SMTP_SECURITY: starttls (usually port 587),
        # tls (implicit, usually 465) or none (a relay on a trusted network, port 25).
        self.SMTP_HOST = env_str("SMTP_HOST", "")
        self.SMTP_SECURITY = env_choice("SMTP_SECURITY", "starttls", {"starttls", "tls", "none"})
        self.SMTP_PORT = env_int("SMTP_PORT", {"starttls": 587, "tls": 465, "none": 25}[self.SMTP_SECURITY])
        self.SMTP_USER = env_str("SMTP_USER", "")
        self.SMTP_PASSWORD = env_str("SMTP_PASSWORD", "")
        # A CA bundle for a relay with a private certificate; empty: the system's trusted CAs.
        self.SMTP_CA_FILE = env_str("SMTP_CA_FILE", "")
        self.SMTP_TIMEOUT_SECONDS = env_float("SMTP_TIMEOUT_SECONDS", 30.0)
        self.MAIL_FROM = env_str("MAIL_FROM", "")
        # Temporary failures are retried after base * 2**attempts seconds, at most the cap, at most so many times.
        self.MAIL_RETRY_BASE_SECONDS = env_float("MAIL_RETRY_BASE_SECONDS", 30.0)
        self.MAIL_RETRY_MAX_SECONDS = env_float("MAIL_RETRY_MAX_SECONDS", 3600.0)
        self.MAIL_MAX_ATTEMPTS = env_int("MAIL_MAX_ATTEMPTS", 12)
        self.MAIL_SEND_SECONDS = env_float("MAIL_SEND_SECONDS", 5.0)
        # The token lives as long as the session: a two-hour upload must not fail on its last file.
        self.WTF_CSRF_TIME_LIMIT = None
        self.EXPORT_CARDS = env_bool("INTAKE_EXPORT_CARDS", False)
        # Cookies are Secure on any HTTPS request anyway; set to 1 to make them Secure on plain HTTP too.
        self.SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
        # How many reverse proxies in front may set X-Forwarded-For/-Proto (0: trust no such header).
        self.TRUSTED_PROXIES = env_int("INTAKE_TRUSTED_PROXIES", 0)
        # Strict-Transport-Security on HTTPS answers; 0 sends none.
        self.HSTS_SECONDS = env_int("INTAKE_HSTS_SECONDS", 31536000)
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
