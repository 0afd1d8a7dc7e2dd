"""Google Drive (v3) delivery: each person's photos in their own folder, re-runs never duplicate.

Everything is found by ``appProperties`` (private to this app), never by name: names repeat
and people rename things. Folders carry ``intake_person=<key>``, files ``intake_sha256=<hex>``.
Searches cover only the root folder's shared drive (``corpora=drive``): an ``allDrives``
search may answer ``incompleteSearch`` with items missing, and "not found" must be true.
A folder is created with an id reserved by ``files.generateIds``, so any repeat of the create
(ours after a 5xx, or httplib2's own re-send of a POST whose connection dropped after Google
stored it) is refused with 409 and the folder is then read by that id: never a second copy.
A copy found by its tag counts only if its md5 and size match the local file.
A person's folder can be shared with one reader: their address (without Google's own mail)
or anyone with the link.

Errors: transient ones (429, 5xx, 403 rate limits, timeouts) are retried with capped
exponential backoff and jitter. What needs a person (credentials, sharing, quota) raises a
``DriveConfigError`` or ``DriveQuotaError`` with a message for the dashboard; any other
``DriveError`` means "try again later".

Library behaviour this relies on (googleapiclient 2.202, measured against tests/fakedrive.py):
- httplib2 re-sends by itself a request whose connection dropped before the answer. A chunk
  handed over as a slice of the file goes out empty the second time, and the server waits for
  a body that never comes until the socket timeout; so chunks are handed over as bytes.
- After a failed chunk, ``next_chunk()`` sends the ``bytes */total`` status query and resumes
  from the byte count the server reports (not from a chunk boundary).
- The socket timeout bounds each request: it is how soon a silent, dead line is noticed.
  ``sendall`` counts it over the whole chunk, so it must also cover sending one chunk.
- httplib2 treats 308 as a redirect unless told otherwise; ``build_http()`` tells it.
- ``client_options.api_endpoint`` moves only the host of the upload URL (the scheme stays
  https), so a configured root URL is written into the discovery document instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import mimetypes
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import google.auth.exceptions
import google.oauth2.credentials
import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload, build_http

SCOPES = ["https://www.googleapis.com/auth/drive"]
FOLDER_MIME = "application/vnd.google-apps.folder"
PERSON_KEY = "intake_person"
SHA256_KEY = "intake_sha256"
FILE_FIELDS = "id,name,mimeType,parents,md5Checksum,size,appProperties"
ANYONE = "anyone"  # a reader who is anyone with the link, instead of an e-mail address
CHUNK_ALIGNMENT = 256 * 1024  # Drive accepts chunk sizes in multiples of 256 KiB
SESSION_RESTARTS = 3
# errors[].reason (legacy) and details[] ErrorInfo.reason (current); a 403 with either is a rate limit.
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
QUOTA_REASONS = {
    "storageQuotaExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
    "teamDriveFileLimitExceeded",
    "numChildrenInNonRootLimitExceeded",
    "activeItemCreationLimitExceeded",
}
# Everything a request can raise that _retrying knows how to judge.
_REQUEST_ERRORS = (
    HttpError,
    google.auth.exceptions.GoogleAuthError,
    httplib2.HttpLib2Error,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)

T = TypeVar("T")
log = logging.getLogger("intake.drive")


class DriveError(Exception):
    """Drive delivery failed; the message says why. Plain DriveError: retry later."""


class DriveConfigError(DriveError):
    """Credentials, sharing or folder ids need fixing by a person."""


class DriveQuotaError(DriveError):
    """Drive is full or over a limit; a person must free space or wait."""


class _ChunkBytes(MediaIoBaseUpload):
    """Chunks as bytes, so httplib2's own re-send of a chunk carries the whole body again."""

    def has_stream(self) -> bool:
        return False


class _SessionExpired(Exception):
    """The resumable upload session is gone (404/410); the upload starts over."""


@dataclass(frozen=True)
class DriveSettings:
    """Where and as whom to deliver. An empty root_folder_id means Drive sync is off."""

    root_folder_id: str = ""
    credentials_file: str = ""
    credentials_type: Literal["service_account", "authorized_user", "anonymous"] = "service_account"
    subject: str = ""  # domain-wide delegation: the user a service account acts as
    root_url: str = ""  # e.g. a fake server's URL; empty means Google
    chunk_size: int = 8 * 1024 * 1024
    timeout_seconds: float = 30.0  # per request: how soon a dead line is noticed (see the module docstring)

    def is_configured(self) -> bool:
        return bool(self.root_folder_id)


@dataclass(frozen=True)
class DriveFile:
    id: str
    name: str
    parent_ids: tuple[str, ...]
    md5: str
    size: int
    properties: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, resource: dict[str, Any]) -> DriveFile:
        return cls(
            id=resource["id"],
            name=resource.get("name", ""),
            parent_ids=tuple(resource.get("parents", [])),
            md5=resource.get("md5Checksum", ""),
            size=int(resource.get("size", 0)),
            properties=dict(resource.get("appProperties", {})),
        )


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delays with jitter; ``sleep`` is injectable so tests do not wait."""

    sleep: Callable[[float], None] = time.sleep
    attempts: int = 6
    base_seconds: float = 1.0
    cap_seconds: float = 32.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts):
            ceiling = min(self.cap_seconds, self.base_seconds * 2**attempt)
            yield ceiling * (0.5 + random.random() / 2)  # jitter spreads out clients that failed together


def file_digests(path: str) -> tuple[str, str]:
    """(sha256, md5) hex digests of a local file, read in blocks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as stream:
        while block := stream.read(1024 * 1024):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()


def drive_from_settings(settings: DriveSettings, backoff: Backoff | None = None) -> DriveClient:
    """A ready client; DriveConfigError when the settings cannot work (check is_configured first)."""
    if not settings.is_configured():
        raise DriveConfigError("Drive sync is off: no root folder id is configured.")
    if settings.chunk_size <= 0 or settings.chunk_size % CHUNK_ALIGNMENT:
        raise DriveConfigError(f"Drive chunk size must be a positive multiple of {CHUNK_ALIGNMENT} bytes.")
    if settings.timeout_seconds <= 0:
        raise DriveConfigError("The Drive request timeout must be a positive number of seconds.")
    http = build_http()  # unlike a bare httplib2.Http, it does not follow Drive's 308 "resume incomplete"
    http.timeout = settings.timeout_seconds
    service = build_from_document(
        _discovery_document(settings.root_url), http=AuthorizedHttp(_credentials(settings), http=http)
    )
    return DriveClient(service, settings.root_folder_id, settings.chunk_size, backoff or Backoff())


def _discovery_document(root_url: str) -> dict[str, Any]:
    document = json.loads(get_static_doc("drive", "v3"))
    if root_url:
        # servicePath, batchPath and the upload path are all relative to rootUrl.
        root = root_url if root_url.endswith("/") else root_url + "/"
        document["rootUrl"] = document["mtlsRootUrl"] = root
    return document


def _credentials(settings: DriveSettings) -> Credentials:
    if settings.credentials_type == "anonymous":
        if not settings.root_url:
            raise DriveConfigError("Anonymous Drive access only works against a test server (set root_url).")
        return AnonymousCredentials()
    if not settings.credentials_file:
        raise DriveConfigError("No Drive credentials file is configured.")
    try:
        if settings.credentials_type == "service_account":
            account = service_account.Credentials.from_service_account_file(settings.credentials_file, scopes=SCOPES)
            return account.with_subject(settings.subject) if settings.subject else account
        if settings.credentials_type == "authorized_user":
            return google.oauth2.credentials.Credentials.from_authorized_user_file(
                settings.credentials_file, scopes=SCOPES
            )
    except (OSError, ValueError, KeyError) as error:
        raise DriveConfigError(
            f"Cannot read the Drive credentials file {settings.credentials_file} ({error}). "
            f"Check the path and that it is a {settings.credentials_type} JSON file."
        ) from error
    raise DriveConfigError(f"Unknown Drive credentials type {settings.credentials_type!r}.")


class DriveClient:
    """Drive operations in plain values; every call is retried and raises only DriveError."""

    def __init__(self, service: Any, root_folder_id: str, chunk_size: int, backoff: Backoff) -> None:
        self._service = service
        self._files = service.files()
        self._root_folder_id = root_folder_id
        self._scope: dict[str, Any] | None = None
        self._chunk_size = chunk_size
        self._backoff = backoff

    def __enter__(self) -> DriveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._service.close()  # closes the pooled HTTP connections

    def ensure_folder(self, parent_id: str, name: str, key: str) -> str:
        """The id of the folder under parent_id tagged with key, created (or renamed) as needed."""
        query = _and(_in_parents(parent_id), f"mimeType = '{FOLDER_MIME}'", "trashed = false", _has(PERSON_KEY, key))
        metadata = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent_id], "appProperties": {PERSON_KEY: key}}
        folder = self._retrying(lambda: self._first(query)) or self._create_once(metadata)
        if folder.name != name:
            self._retrying(lambda: self._update(folder.id, body={"name": name}))
        return folder.id

    def deliver(
        self,
        path: str,
        name: str,
        parent_id: str,
        sha256: str,
        md5: str,
        properties: dict[str, str] | None = None,
        movable_id: str | None = None,
    ) -> str:
        """Make this content live in parent_id once; returns the file id.

        An intact copy already there is kept; else movable_id (our copy of a photo re-assigned
        from someone else, who no longer gets it) is moved here if intact; else it is uploaded.
        Only that one known copy is ever moved: a search by content would also find the copy
        of a group photo in another person's folder.
        """
        size = os.path.getsize(path)
        if here := self._intact(self._find_file(parent_id, sha256), md5, size):
            return here.id
        if movable_id and (released := self._intact(self._existing_file(movable_id), md5, size)):
            self.move(released.id, parent_id)
            return released.id
        return self._upload(path, name, parent_id, sha256, md5, size, properties or {})

    def _upload(
        self, path: str, name: str, parent_id: str, sha256: str, md5: str, size: int, properties: dict[str, str]
    ) -> str:
        metadata = {"name": name, "parents": [parent_id], "appProperties": {**properties, SHA256_KEY: sha256}}
        for _ in range(SESSION_RESTARTS):
            if existing := self._intact(self._find_file(parent_id, sha256), md5, size):
                return existing.id  # an earlier session completed after all
            try:
                uploaded = DriveFile.from_api(self._upload_resumable(path, metadata))
            except _SessionExpired:
                continue
            self._check_md5(uploaded, md5)
            return uploaded.id
        raise DriveError(f"The Drive upload session for {name} kept expiring; sync will try again later.")

    def _find_file(self, parent_id: str, sha256: str) -> DriveFile | None:
        return self._retrying(
            lambda: self._first(_and(_in_parents(parent_id), "trashed = false", _has(SHA256_KEY, sha256)))
        )

    def _existing_file(self, file_id: str) -> DriveFile | None:
        """The live file with this id; None when it was deleted or trashed (by a person, say)."""

        def get() -> DriveFile | None:
            try:
                found = self._files.get(
                    fileId=file_id, fields=f"{FILE_FIELDS},trashed", supportsAllDrives=True
                ).execute()
            except HttpError as error:
                if error.status_code == 404:
                    return None
                raise
            return None if found.get("trashed") else DriveFile.from_api(found)

        return self._retrying(get)

    def _intact(self, found: DriveFile | None, md5: str, size: int) -> DriveFile | None:
        """found if its md5 and size match the local file; a damaged copy goes to the trash.

        The appProperties tag says which content a file should hold, not that it holds it.
        """
        if found is None or (found.md5 == md5 and found.size == size):
            return found
        log.warning(
            "Drive copy %s of %s has md5 %s, size %d; replacing it.", found.id, found.name, found.md5, found.size
        )
        self.trash(found.id)
        return None

    def _create_once(self, metadata: dict[str, Any]) -> DriveFile:
        """Create under a reserved id; Drive's 409 for a repeat means an earlier attempt got through."""
        file_id = self._retrying(self._generate_id)

        def create() -> DriveFile:
            try:
                return DriveFile.from_api(self._create({**metadata, "id": file_id}))
            except HttpError as error:
                if error.status_code != 409:
                    raise
            # By id, not by search: the search index may not list a just-created item yet.
            return DriveFile.from_api(
                self._files.get(fileId=file_id, fields=FILE_FIELDS, supportsAllDrives=True).execute()
            )

        return self._retrying(create)

    def move(self, file_id: str, new_parent_id: str) -> None:
        """Re-parent a file (a photo re-assigned to another person); repeating it is harmless."""

        def reparent() -> None:
            found = self._files.get(fileId=file_id, fields="parents", supportsAllDrives=True).execute()
            current = found.get("parents", [])
            stale = [p for p in current if p != new_parent_id]
            if stale or new_parent_id not in current:
                self._update(file_id, addParents=new_parent_id, removeParents=",".join(stale))

        self._retrying(reparent)

    def link(self, file_id: str) -> str:
        """The address a person opens the item at (webViewLink)."""
        found = self._retrying(
            lambda: self._files.get(fileId=file_id, fields="webViewLink", supportsAllDrives=True).execute()
        )
        return found["webViewLink"]

    def share(self, file_id: str, reader: str) -> None:
        """Let reader (an e-mail address, or ANYONE with the link) read the item; repeating is harmless.

        Google sends no mail (our e-mail carries the link). Drive refuses that for an address
        without a Google account (400 invalidSharingRequest): a DriveError.
        """
        permission, notify = _permission(reader)
        permissions = self._service.permissions()
        try:
            self._retrying(
                lambda: permissions.create(
                    fileId=file_id, body=permission, fields="id", supportsAllDrives=True, **notify
                ).execute()
            )
        except DriveConfigError as error:
            if _status(error.__cause__) != 403:
                raise
            # The shared drive's policy, not the account's role, is what usually refuses this.
            raise DriveConfigError(
                f"Drive refused to share a person's folder ({_describe(error.__cause__)}). In the shared "
                "drive's settings allow sharing with non-members (and outside the organisation, for "
                "private addresses), or set DRIVE_SHARE=none."
            ) from error.__cause__

    def unshare(self, file_id: str, reader: str) -> None:
        """Take back what share(file_id, reader) granted; other permissions are left alone."""
        permissions = self._service.permissions()
        wanted = _permission(reader)[0]

        def revoke() -> None:
            found = permissions.list(
                fileId=file_id, fields="permissions(id,type,role,emailAddress)", supportsAllDrives=True
            ).execute()
            for granted in found.get("permissions", []):
                if all(granted.get(key, "").lower() == value.lower() for key, value in wanted.items()):
                    permissions.delete(fileId=file_id, permissionId=granted["id"], supportsAllDrives=True).execute()

        self._retrying(revoke)

    def trash(self, file_id: str) -> None:
        self._retrying(lambda: self._update(file_id, body={"trashed": True}))

    # -- single requests, without retries --

    def _first(self, query: str) -> DriveFile | None:
        found = self._files.list(
            q=query,
            fields=f"incompleteSearch,files({FILE_FIELDS})",
            orderBy="createdTime",  # if two ever exist, everyone picks the same one
            pageSize=1,
            supportsAllDrives=True,
            **self._search_scope(),
        ).execute()
        files = found.get("files", [])
        if found.get("incompleteSearch") and not files:
            raise DriveError("Google Drive answered an incomplete search; sync will try again later.")
        return DriveFile.from_api(files[0]) if files else None

    def _search_scope(self) -> dict[str, Any]:
        """The root folder's shared drive, or (a root in someone's My Drive) that user's files."""
        if self._scope is None:
            root = self._files.get(fileId=self._root_folder_id, fields="driveId", supportsAllDrives=True).execute()
            drive_id = root.get("driveId")
            self._scope = (
                {"corpora": "drive", "driveId": drive_id, "includeItemsFromAllDrives": True}
                if drive_id
                else {"corpora": "user"}
            )
        return self._scope

    def _generate_id(self) -> str:
        return self._files.generateIds(count=1, space="drive", type="files").execute()["ids"][0]

    def _create(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return self._files.create(body=metadata, fields=FILE_FIELDS, supportsAllDrives=True).execute()

    def _update(self, file_id: str, body: dict[str, Any] | None = None, **params: str) -> dict[str, Any]:
        return self._files.update(
            fileId=file_id, body=body or {}, fields=FILE_FIELDS, supportsAllDrives=True, **params
        ).execute()

    def _upload_resumable(self, path: str, metadata: dict[str, Any]) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(metadata["name"])[0] or "application/octet-stream"
        with open(path, "rb") as stream:
            media = _ChunkBytes(stream, mimetype, chunksize=self._chunk_size, resumable=True)
            request = self._files.create(body=metadata, media_body=media, fields=FILE_FIELDS, supportsAllDrives=True)
            delays = self._backoff.delays()
            response = None
            while response is None:
                try:
                    _, response = request.next_chunk()  # no num_retries: our backoff, our error translation
                    delays = self._backoff.delays()  # progress made: a later blip gets a fresh budget
                except _REQUEST_ERRORS as error:
                    if request.resumable_uri and _status(error) in (404, 410):
                        raise _SessionExpired from error
                    self._pause_or_raise(error, delays)
            return response

    def _check_md5(self, uploaded: DriveFile, md5: str) -> None:
        if uploaded.md5 == md5:
            return
        self.trash(uploaded.id)
        raise DriveError(
            f"Drive stored {uploaded.name} with checksum {uploaded.md5 or 'none'} instead of {md5}; "
            "the bad copy is in the Drive trash and the next sync uploads it again."
        )

    # -- retries and error translation --

    def _retrying(self, attempt: Callable[[], T]) -> T:
        delays = self._backoff.delays()
        while True:
            try:
                return attempt()
            except _REQUEST_ERRORS as error:
                self._pause_or_raise(error, delays)

    def _pause_or_raise(self, error: Exception, delays: Iterator[float]) -> None:
        if not _is_transient(error):
            raise _as_drive_error(error) from error
        delay = next(delays, None)
        if delay is None:
            raise DriveError(f"Google Drive kept failing ({_describe(error)}); sync will try again later.") from error
        self._backoff.sleep(delay)


def _permission(reader: str) -> tuple[dict[str, str], dict[str, bool]]:
    """The permission body for reader and, for a person, the request to send no notification."""
    if reader == ANYONE:
        return {"type": "anyone", "role": "reader"}, {}  # the parameter is refused for "anyone"
    return {"type": "user", "role": "reader", "emailAddress": reader}, {"sendNotificationEmail": False}


def _is_transient(error: Exception) -> bool:
    if isinstance(error, HttpError):
        status = error.status_code
        return status == 429 or status >= 500 or (status == 403 and bool(_reasons(error) & RATE_LIMIT_REASONS))
    if isinstance(error, google.auth.exceptions.GoogleAuthError):
        # Token endpoint unreachable or busy; a refused grant (bad credentials) is not retryable.
        unreachable = (google.auth.exceptions.TransportError, google.auth.exceptions.TimeoutError)
        return isinstance(error, unreachable) or error.retryable
    return True  # timeouts, dropped connections, garbled responses


def _as_drive_error(error: Exception) -> DriveError:
    if isinstance(error, google.auth.exceptions.GoogleAuthError):
        return DriveConfigError(
            f"Google refused the Drive credentials ({error}). Replace the credentials file or re-authorize."
        )
    if not isinstance(error, HttpError):
        return DriveError(f"Google Drive request failed: {_describe(error)}.")
    if _reasons(error) & QUOTA_REASONS:
        return DriveQuotaError(
            f"Google Drive is full or over a limit ({_describe(error)}). Free space or raise the quota; "
            "a service account has no storage of its own, so the root folder must be in a shared drive."
        )
    if error.status_code == 401:
        return DriveConfigError(
            f"Google rejected the Drive credentials ({_describe(error)}). Replace the credentials file."
        )
    if error.status_code == 403:
        return DriveConfigError(
            f"The Drive account may not do this ({_describe(error)}). Share the root folder's shared drive "
            "with the account as Content manager."
        )
    if error.status_code == 404:
        return DriveConfigError(
            f"Drive cannot find a folder or file ({_describe(error)}). Check the root folder id and that it "
            "is shared with the account."
        )
    return DriveError(f"Google Drive refused a request ({_describe(error)}).")


def _status(error: Exception) -> int | None:
    return error.status_code if isinstance(error, HttpError) else None


def _reasons(error: HttpError) -> set[str]:
    """Reasons from both errors[] and details[]: googleapiclient keeps only details[] when both are sent."""
    try:
        body = json.loads(error.content)["error"]
    except (ValueError, KeyError, TypeError):
        return set()
    entries = [*body.get("details", []), *body.get("errors", [])]
    return {str(entry["reason"]) for entry in entries if isinstance(entry, dict) and entry.get("reason")}


def _describe(error: Exception) -> str:
    if isinstance(error, HttpError):
        return f"HTTP {error.status_code} {'/'.join(sorted(_reasons(error))) or 'error'}: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _quoted(value: str) -> str:
    """A Drive query string literal: backslash and quote are escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _in_parents(parent_id: str) -> str:
    return f"{_quoted(parent_id)} in parents"


def _has(key: str, value: str) -> str:
    return f"appProperties has {{ key={_quoted(key)} and value={_quoted(value)} }}"


def _and(*clauses: str) -> str:
    return " and ".join(clauses)
