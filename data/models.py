"""The data model of the whole product. The schema changes only through migrations."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from data.extensions import db
from data.states import (
    BatchPhase,
    BatchSource,
    BatchStatus,
    LockEventKind,
    MailKind,
    MailState,
    PersonSource,
    PhotoRole,
    ScanState,
    SyncState,
    UserRole,
    check_transition,
)
from engine.grouping import CorrectionKind


def utcnow() -> datetime:
    """Naive UTC: one convention for every timestamp, on SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def enum_column(enum_type, length: int = 20, **kwargs) -> Mapped[Any]:
    # Stored as plain strings: portable, and a new state needs no ALTER TYPE.
    return mapped_column(
        sa.Enum(
            enum_type,
            native_enum=False,
            length=length,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
            create_constraint=False,
        ),
        **kwargs,
    )


class Person(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    group_name: Mapped[str | None] = mapped_column(sa.String(200))
    source: Mapped[PersonSource] = enum_column(PersonSource, default=PersonSource.REGISTERED)
    consent: Mapped[bool] = mapped_column(default=False)
    extra: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    drive_folder_id: Mapped[str | None] = mapped_column(sa.String(128))
    # The folder's webViewLink, for the delivery e-mail; only drive_shared_with (an e-mail
    # address, or "anyone" with the link) can open it, besides the shared drive's members.
    drive_folder_link: Mapped[str | None] = mapped_column(sa.String(512))
    drive_shared_with: Mapped[str | None] = mapped_column(sa.String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped whenever this person's set of photos changes; export and Drive sync each record the
    # version they delivered, so "needs delivery" survives crashes and never races a new change.
    delivery_version: Mapped[int] = mapped_column(default=0)
    exported_version: Mapped[int] = mapped_column(default=0)
    synced_version: Mapped[int] = mapped_column(default=0)
    # The yearbook portrait an admin picked; ignored while that photo is not deliverable to this person
    # (services/yearbook falls back to the first photo after the card).
    portrait_photo_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("photo.id", ondelete="SET NULL", name="fk_person_portrait_photo_id_photo")
    )

    aliases: Mapped[list["PersonAlias"]] = relationship(back_populates="person")


class PersonAlias(db.Model):
    """Another card code that means this person (an unknown card linked in review)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("person.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="aliases")


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[UserRole] = enum_column(UserRole, default=UserRole.STAFF)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The token of the login session this request came with (set by the user loader, never stored here).
    login_token = ""

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    def get_id(self) -> str:
        """What the login cookie names: the user and this browser's own session record."""
        return f"{self.id}:{self.login_token}"


class LoginSession(db.Model):
    """One logged-in browser. Its token is in that browser's cookie; here only its hash, so a copy of the
    database logs nobody in. Logging out deletes the row; "everywhere" deletes all of a user's rows."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginAttempt(db.Model):
    """A login being checked (`checking`) or that failed: both count towards the limits, so parallel
    guesses are counted before their slow password checks. A success deletes its own row."""

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    username: Mapped[str] = mapped_column(sa.String(80), index=True)
    ip: Mapped[str] = mapped_column(sa.String(45), index=True)
    checking: Mapped[bool] = mapped_column(default=False)


class RateEvent(db.Model):
    """One use of a rate-limited action (a registration), by bucket (e.g. per address and overall)."""

    __table_args__ = (sa.Index("ix_rate_event_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(sa.String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class CardGrant(db.Model):
    """A browser's right to see one person's card: an opaque token in its session, never the code.
    `once` (shared-device mode): the card is shown one time, then the grant is spent."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("person.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    once: Mapped[bool] = mapped_column(default=False)
    shown_at: Mapped[datetime | None]
    # Granted by opening a family link: ends when that link expires or is revoked.
    family_link_id: Mapped[int | None] = mapped_column(sa.ForeignKey("family_link.id", ondelete="CASCADE"))


class FamilyLink(db.Model):
    """An e-mailed link that shows every card registered under one e-mail address, on any device. Only the
    token's hash is kept; the link ends at `expires_at`, or earlier when an admin revokes it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    email: Mapped[str] = mapped_column(sa.String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class RegistrationSubmission(db.Model):
    """The idempotency key of a registration form that was posted: posting it again (a double click, a
    retry after a dropped connection) answers with the same person instead of registering again."""

    key_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # None until the post that claimed the key has registered someone.
    person_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Written by every post of the key: posts racing on one key conflict on this row and count each other.
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    status: Mapped[BatchStatus] = enum_column(BatchStatus, default=BatchStatus.UPLOADING, index=True)
    source: Mapped[BatchSource] = enum_column(BatchSource, default=BatchSource.WEB)
    # For `flask ingest`: the folder or zip, so running the same command again resumes this batch.
    source_path: Mapped[str | None] = mapped_column(sa.String(1024), index=True)
    # The new-batch form's one-time token: the same form sent twice (a double click) is the same batch.
    form_token: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The processor's claim: whoever holds an unexpired lease owns the batch.
    lease_owner: Mapped[str | None] = mapped_column(sa.String(120))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    phase: Mapped[BatchPhase | None] = enum_column(BatchPhase)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)

    photos: Mapped[list["Photo"]] = relationship(back_populates="batch", order_by="Photo.id")

    def move_to(self, status: BatchStatus, note: str = "") -> None:
        """Change status if allowed, keeping the history in the processing log."""
        check_transition(self.status, status)
        if self.status != status:
            db.session.add(ProcessingLog(batch=self, message=f"{self.status} -> {status} {note}".strip()))
        self.status = status

    def fail(self, reason: str) -> None:
        """Stop the batch with a reason people can act on; logged once, at error level."""
        check_transition(self.status, BatchStatus.FAILED)
        db.session.add(ProcessingLog(batch=self, level="error", message=f"{self.status} -> failed: {reason}"))
        self.status, self.error = BatchStatus.FAILED, reason


class Photo(db.Model):
    __table_args__ = (sa.UniqueConstraint("batch_id", "original_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("batch.id", ondelete="CASCADE"), index=True)
    original_name: Mapped[str] = mapped_column(sa.String(1024))
    content_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    extension: Mapped[str] = mapped_column(sa.String(10))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    scan_state: Mapped[ScanState] = enum_column(ScanState, default=ScanState.PENDING)
    scanned_at: Mapped[datetime | None]
    error_reason: Mapped[str | None] = mapped_column(sa.Text)
    camera_make: Mapped[str | None] = mapped_column(sa.String(100))
    camera_model: Mapped[str | None] = mapped_column(sa.String(100))
    camera_serial: Mapped[str | None] = mapped_column(sa.String(100))
    captured_at: Mapped[datetime | None]
    orientation: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]
    qr_texts: Mapped[list] = mapped_column(sa.JSON, default=list)
    # the scan saw a card-like object (a QR finder pattern) but no decoder read a code from it
    unreadable_card: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    role: Mapped[PhotoRole | None] = enum_column(PhotoRole)
    # Text: a frame with several long unknown codes has a long key ("A+B+..."), up to 64 chars each.
    group_key: Mapped[str | None] = mapped_column(sa.Text)
    needs_review: Mapped[bool] = mapped_column(default=False)
    review_reason: Mapped[str | None] = mapped_column(sa.Text)
    excluded: Mapped[bool] = mapped_column(default=False)
    duplicate_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("photo.id", ondelete="SET NULL"))

    batch: Mapped[Batch] = relationship(back_populates="photos")
    people: Mapped[list[Person]] = relationship(secondary="photo_person", order_by="Person.code")

    @property
    def camera_key(self) -> str | None:
        parts = [p for p in (self.camera_make, self.camera_model, self.camera_serial) if p]
        return " ".join(parts) or None

    def move_scan_to(self, state: ScanState) -> None:
        check_transition(self.scan_state, state)
        self.scan_state = state


photo_person = sa.Table(
    "photo_person",
    db.metadata,
    sa.Column("photo_id", sa.ForeignKey("photo.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("person_id", sa.ForeignKey("person.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class ReviewCorrection(db.Model):
    """A manual fix from review, as recorded: who, when, undone or not (grouping.Correction is what applies)."""

    __tablename__ = "correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("batch.id", ondelete="CASCADE"), index=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    kind: Mapped[CorrectionKind] = enum_column(CorrectionKind)
    code: Mapped[str | None] = mapped_column(sa.String(64))
    # The corrections one admin action made (several photos at once) share it: they are undone together.
    action_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]


class AuditLog(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(sa.String(50))
    entity: Mapped[str] = mapped_column(sa.String(50))
    entity_id: Mapped[int | None]
    before: Mapped[dict | None] = mapped_column(sa.JSON)
    after: Mapped[dict | None] = mapped_column(sa.JSON)


class ProcessingLog(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batch.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(sa.String(10), default="info")
    message: Mapped[str] = mapped_column(sa.Text)

    batch: Mapped[Batch | None] = relationship()


class DriveItem(db.Model):
    """One photo delivered (or to be delivered) into one person's Drive folder."""

    __table_args__ = (sa.UniqueConstraint("photo_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photo.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("person.id", ondelete="CASCADE"), index=True)
    state: Mapped[SyncState] = enum_column(SyncState, default=SyncState.PENDING, index=True)
    file_id: Mapped[str | None] = mapped_column(sa.String(128))
    folder_id: Mapped[str | None] = mapped_column(sa.String(128))
    md5: Mapped[str | None] = mapped_column(sa.String(32))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def move_to(self, state: SyncState) -> None:
        check_transition(self.state, state)
        self.state = state


class OutboxMessage(db.Model):
    """One e-mail to send: queued once per (person, kind, delivery version), so a re-run queues nothing new;
    claimed, sent outside any transaction, and its outcome recorded."""

    __table_args__ = (sa.UniqueConstraint("person_id", "kind", "version", name="uq_outbox_person_kind_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("person.id", ondelete="CASCADE"), index=True)
    kind: Mapped[MailKind] = enum_column(MailKind)
    version: Mapped[int] = mapped_column(default=0)
    to_address: Mapped[str] = mapped_column(sa.String(320))
    state: Mapped[MailState] = enum_column(MailState, default=MailState.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A sender that died mid-send leaves its claim; after this the message is tried again.
    claimed_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class LockEvent(db.Model):
    """A retry or a long lock wait, kept so the dashboard can show the data layer's health."""

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[LockEventKind] = enum_column(LockEventKind, length=10)
    wait_ms: Mapped[int] = mapped_column(default=0)
    label: Mapped[str] = mapped_column(sa.String(120), default="")


class Setting(db.Model):
    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    value: Mapped[Any] = mapped_column(sa.JSON)


class GalleryLink(db.Model):
    """A private gallery: a family's (everyone with `family_email`) or one person's photos, behind an
    unguessable link. Only the token's hash is kept; the token itself is derived from `seed` with the app's
    secret key (services/gallery_links.py), so each e-mail can carry the same link and a copy of the
    database alone opens nothing."""

    # Exactly one owner: a family (by e-mail) or one person.
    __table_args__ = (sa.CheckConstraint("(family_email IS NULL) <> (person_id IS NULL)", name="one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    seed: Mapped[str] = mapped_column(sa.String(64))
    family_email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    person_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    views: Mapped[int] = mapped_column(default=0)
    downloads: Mapped[int] = mapped_column(default=0)
    first_opened_at: Mapped[datetime | None]
    last_opened_at: Mapped[datetime | None]
