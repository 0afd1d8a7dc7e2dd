"""The life cycles of batches, photo scans and Drive syncs: which moves are allowed.

States are explicit so work can be re-run: a finished batch can be queued again, a scanned photo
re-scanned, a synced photo synced again after it moved. One place says what is allowed.
"""

from enum import StrEnum


class InvalidTransition(ValueError):
    pass


class BatchStatus(StrEnum):
    UPLOADING = "uploading"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class ScanState(StrEnum):
    PENDING = "pending"
    SCANNED = "scanned"
    REJECTED = "rejected"


class SyncState(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


class MailState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class MailKind(StrEnum):
    CARD = "card"
    PHOTOS_READY = "photos_ready"
    FAMILY_LINK = "family_link"  # "send me my cards again": a link to the family's cards


class PhotoRole(StrEnum):
    SEPARATOR = "separator"
    PHOTO = "photo"
    UNASSIGNED = "unassigned"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


class PersonSource(StrEnum):
    REGISTERED = "registered"
    ROSTER = "roster"


class BatchPhase(StrEnum):
    """What a processing batch is doing now (shown with its progress)."""

    SCAN = "scan"
    GROUP = "group"
    EXPORT = "export"


class BatchSource(StrEnum):
    WEB = "web"
    CLI = "cli"


class LockEventKind(StrEnum):
    RETRY = "retry"  # a unit of work was rolled back and run again
    WAIT = "wait"  # a BEGIN IMMEDIATE waited for another writer


class UserRole(StrEnum):
    STAFF = "staff"
    ADMIN = "admin"


TRANSITIONS: dict[type[StrEnum], dict[StrEnum, set[StrEnum]]] = {
    BatchStatus: {
        BatchStatus.UPLOADING: {BatchStatus.QUEUED, BatchStatus.FAILED},
        BatchStatus.QUEUED: {BatchStatus.PROCESSING, BatchStatus.UPLOADING},
        # Back to queued: a lease that expired, or an operator's re-run.
        BatchStatus.PROCESSING: {BatchStatus.DONE, BatchStatus.FAILED, BatchStatus.QUEUED},
        BatchStatus.DONE: {BatchStatus.QUEUED, BatchStatus.UPLOADING},
        BatchStatus.FAILED: {BatchStatus.QUEUED, BatchStatus.UPLOADING},
    },
    ScanState: {
        ScanState.PENDING: {ScanState.SCANNED, ScanState.REJECTED},
        ScanState.SCANNED: {ScanState.PENDING},
        ScanState.REJECTED: {ScanState.PENDING},
    },
    SyncState: {
        SyncState.PENDING: {SyncState.SYNCED, SyncState.FAILED},
        SyncState.SYNCED: {SyncState.PENDING},
        SyncState.FAILED: {SyncState.PENDING},
    },
}


def check_transition(current: StrEnum, new: StrEnum) -> None:
    """Raise unless `current -> new` is an allowed move (staying put is always allowed)."""
    if current == new:
        return
    allowed = TRANSITIONS[type(current)].get(current, set())
    if new not in allowed:
        raise InvalidTransition(f"{type(current).__name__}: cannot go from {current} to {new}")
