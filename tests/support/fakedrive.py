"""A fake Google Drive v3 server on 127.0.0.1 that speaks the wire protocol googleapiclient uses.

Usage::

    with FakeDrive() as fake:             # serves until the block ends, then joins its threads
        fake.url                          # root URL for DriveSettings.root_url
        fake.root_folder_id               # a folder in the fake shared drive
        fake.fail("chunk", 503)           # the next chunk PUT answers 503
        fake.drop("create", after_store=True)  # the next create is stored, then the connection closes
        fake.stall("chunk")               # half the next chunk arrives, then the line goes silent
        fake.files, fake.contents         # state for assertions

What it speaks: files.list (``q`` subset below), files.get, files.generateIds, files.create
(metadata only; an ``id`` must come from generateIds and a used one is refused with 409, as
on Google), files.update (metadata, addParents/removeParents), permissions.create/list/delete
(reader, for a user or anyone; Google's invitation mail is recorded in ``notifications``, and
an address in ``no_google_account`` cannot be shared with silently, as on Google), resumable
uploads (initiate, chunk PUTs answered 308 + Range, the ``bytes */total`` status query) and an
OAuth token endpoint.
Everything lives in one shared drive, so a request without ``supportsAllDrives=true`` gets
404 and a list without ``includeItemsFromAllDrives=true`` sees nothing, as on Google. A list
finds the shared drive's items only with ``corpora=drive`` and its ``driveId`` (with
``shared_drive=False`` everything is in the user's My Drive instead: ``corpora=user``); a
``corpora=allDrives`` list answers ``incompleteSearch: true`` with nothing found (the worst
Google allows; ``incomplete_corpora`` says which corpora do this). Every item has exactly one
parent, as in a shared drive: a create or update that would leave it with none or two is a 403.
``fields`` is honoured (default: kind, id, name, mimeType), so a client that forgets to ask
for a field does not get it. Errors use Google's current JSON error shape (``status``; rate
limits also carry a ``google.rpc.ErrorInfo`` in ``details[]``, listed before ``errors[]``).

With ``require_auth``, API calls need the bearer token the token endpoint hands out, and the
endpoint grants it to a service account only for a JWT signed (RS256) by a key registered
with ``trust(client_email, public_key_pem)``, for Google's token audience, unexpired, with a scope.

Fault ops: "token", "list", "get", "generateIds", "create", "update", "initiate", "chunk", "status",
"share", "permissions", "unshare", "any". A fault answers with an error, drops the connection
without an answer (``drop``; httplib2 then re-sends the request by itself), or stalls mid-body
like a dead network (``stall``: half the body is received and kept, nothing is answered until
the client hangs up).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FOLDER_MIME = "application/vnd.google-apps.folder"
SHARED_DRIVE_ID = "fake-shared-drive"
ACCESS_TOKEN = "fake-access-token"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google wants in aud, whatever token_uri says
DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")
REQUEST_TIMEOUT_S = 10  # a request whose body never arrives is dropped after this
JOIN_TIMEOUT_S = 10
SHUTDOWN_POLL_S = 0.05  # how soon serve_forever notices shutdown()
USAGE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "storageQuotaExceeded"}
# Rate limits now also carry a google.rpc.ErrorInfo in details[], listed before errors[].
RATE_LIMIT_QUOTAS = {
    "rateLimitExceeded": "defaultPerMinutePerProject",
    "userRateLimitExceeded": "defaultPerMinutePerUser",
}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

Response = tuple[int, dict[str, str], bytes]
Predicate = Callable[[dict[str, Any]], bool]


class ApiError(Exception):
    """An error answer in Google's JSON shape."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.status = status
        self.reason = reason
        self.message = message or f"Fake Drive: {reason}"

    def response(self) -> Response:
        domain = "usageLimits" if self.reason in USAGE_LIMIT_REASONS else "global"
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.reason in RATE_LIMIT_QUOTAS:
            error["details"] = [_error_info(RATE_LIMIT_QUOTAS[self.reason])]
        error["errors"] = [{"message": self.message, "domain": domain, "reason": self.reason}]
        error["status"] = STATUS_NAMES.get(self.status, "UNKNOWN")
        return _json(self.status, {"error": error})


def _error_info(quota_limit: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {"service": "drive.googleapis.com", "quota_limit": quota_limit},
    }


@dataclass
class Fault:
    """Let ``skip`` requests of ``op`` pass, then spoil ``times`` of them.

    action: "error" answers status/reason, "drop" closes the connection without an answer,
    "stall" keeps half the body and goes silent. after_store applies the request first (a lost answer).
    """

    op: str
    status: int
    reason: str
    times: int = 1
    after_store: bool = False
    skip: int = 0
    action: str = "error"


@dataclass
class UploadSession:
    metadata: dict[str, Any]
    total: int
    received: bytearray = field(default_factory=bytearray)
    file_id: str | None = None


class FakeDrive:
    """In-memory Drive state plus the HTTP server that exposes it (a context manager)."""

    def __init__(self, require_auth: bool = False, shared_drive: bool = True) -> None:
        self.require_auth = require_auth
        self.drive_id = SHARED_DRIVE_ID if shared_drive else None
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.sessions: dict[str, UploadSession] = {}
        self.ops: list[str] = []  # one entry per request, e.g. "list", "chunk"
        self.token_requests: list[dict[str, Any]] = []
        self.trusted_keys: dict[str, rsa.RSAPublicKey] = {}
        self.permissions: dict[str, list[dict[str, str]]] = {}  # file id -> permissions granted on it
        self.notifications: list[str] = []  # addresses Google would have mailed an invitation to
        self.no_google_account: set[str] = set()
        self.faults: list[Fault] = []
        self.generated_ids: set[str] = set()
        self.stalled = threading.Event()  # set when a stall fault has swallowed half a body
        self.short_bodies = 0  # requests whose body ended before its Content-Length (client gave up)
        self.chunk_starts: list[int] = []  # first byte of each chunk PUT, to see where uploads resume
        self.corrupt_uploads = 0  # the next N completed uploads store one flipped byte
        self.incomplete_corpora = {"allDrives"}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.root_folder_id = self._store({"name": "Intake root", "mimeType": FOLDER_MIME, "parents": []})

    def __enter__(self) -> FakeDrive:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,), name="fakedrive")
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server and self._thread
        self._server.shutdown()
        self._server.server_close()  # joins the request threads
        self._thread.join(JOIN_TIMEOUT_S)

    @property
    def url(self) -> str:
        assert self._server, "use FakeDrive as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def fail(
        self, op: str, status: int, reason: str = "", times: int = 1, after_store: bool = False, skip: int = 0
    ) -> None:
        default_reason = {404: "notFound", 429: "rateLimitExceeded"}.get(status, "backendError")
        self.faults.append(Fault(op, status, reason or default_reason, times, after_store, skip))

    def drop(self, op: str, after_store: bool = False, times: int = 1, skip: int = 0) -> None:
        self.faults.append(Fault(op, 0, "", times, after_store, skip, action="drop"))

    def stall(self, op: str, skip: int = 0) -> None:
        self.faults.append(Fault(op, 0, "", 1, True, skip, action="stall"))

    def replace_content(self, file_id: str, content: bytes) -> None:
        """Damage a stored file behind the client's back (its tag stays)."""
        self.contents[file_id] = content
        self.files[file_id] |= {"md5Checksum": hashlib.md5(content).hexdigest(), "size": str(len(content))}

    def trust(self, client_email: str, public_key_pem: bytes) -> None:
        """Accept token grants signed by this service account's key."""
        key = serialization.load_pem_public_key(public_key_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        self.trusted_keys[client_email] = key

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        return [f for f in self.files.values() if parent_id in f["parents"] and not f["trashed"]]

    def count(self, op: str) -> int:
        return self.ops.count(op)

    # -- request handling (called from the request threads; the lock makes each request atomic) --

    def handle(self, method: str, target: str, headers: Message, rfile: BufferedIOBase) -> Response | str:
        """The answer to one request, or "drop" / "stall": hang up without answering."""
        url = urlsplit(target)
        query = dict(parse_qsl(url.query))
        route = _route(method, url.path, query, headers)
        length = int(headers.get("Content-Length") or 0)
        with self._lock:
            op = route[0] if route else "unknown"
            self.ops.append(op)
            fault = self._take_fault(op)
        stalled = fault is not None and fault.action == "stall"
        # Read the whole body first, even for an injected error, so the connection stays in sync.
        body = _read_body(rfile, length // 2 if stalled else length)
        if route is None:
            return ApiError(404, "notFound", f"No route for {method} {url.path}").response()
        if len(body) < length and not stalled:
            with self._lock:
                self.short_bodies += 1
            if op != "chunk":  # only upload bytes that arrived count, as on Google
                return "drop"
            fault = Fault(op, 0, "", after_store=True, action="drop")
        response = self._apply(route, query, headers, body, fault)
        if stalled:
            self.stalled.set()
        return fault.action if fault is not None and fault.action != "error" else response

    def _apply(
        self, route: tuple[str, Method, str], query: dict[str, str], headers: Message, body: bytes, fault: Fault | None
    ) -> Response:
        op, handler, arg = route
        with self._lock:
            try:
                if op != "token":
                    self._check_access(op, headers, query)
                if fault and not fault.after_store:
                    raise ApiError(fault.status, fault.reason)
                response = handler(self, arg, query, headers, body)
                if fault and fault.action == "error":
                    raise ApiError(fault.status, fault.reason)
            except ApiError as error:
                if op == "token":  # OAuth endpoints answer in their own shape
                    return _json(error.status, {"error": error.reason, "error_description": error.message})
                if error.status == 404 and op in ("chunk", "status"):
                    self.sessions.pop(query.get("upload_id", ""), None)  # an expired session is gone
                return error.response()
            return response

    def _take_fault(self, op: str) -> Fault | None:
        for fault in self.faults:
            if fault.op in (op, "any"):
                if fault.skip:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _check_access(self, op: str, headers: Message, query: dict[str, str]) -> None:
        if self.require_auth and headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            raise ApiError(401, "authError", "Request had invalid authentication credentials.")
        if op != "generateIds" and query.get("supportsAllDrives") != "true":
            raise ApiError(404, "notFound", "File not found (shared drive item without supportsAllDrives).")

    def _store(self, metadata: dict[str, Any], content: bytes | None = None) -> str:
        file_id = metadata.get("id") or self._new_id()
        resource = {
            "kind": "drive#file",
            "id": file_id,
            "name": metadata.get("name", "Untitled"),
            "mimeType": metadata.get("mimeType", "application/octet-stream"),
            "parents": list(metadata.get("parents", [])),
            "appProperties": dict(metadata.get("appProperties", {})),
            "trashed": False,
        }
        if self.drive_id:
            resource["driveId"] = self.drive_id
        kind = "drive/folders/{}" if resource["mimeType"] == FOLDER_MIME else "file/d/{}/view?usp=drivesdk"
        resource["webViewLink"] = "https://drive.google.com/" + kind.format(file_id)
        if content is not None:
            resource |= {"md5Checksum": hashlib.md5(content).hexdigest(), "size": str(len(content))}
            self.contents[file_id] = content
        self.files[file_id] = resource
        return file_id

    def _new_id(self) -> str:
        return f"fake{next(self._ids):06d}"

    def _check_new_id(self, metadata: dict[str, Any]) -> None:
        file_id = metadata.get("id")
        if file_id in self.files:
            raise ApiError(409, "fileIdInUse", "A file already exists with the provided ID.")
        if file_id is not None and file_id not in self.generated_ids:
            raise ApiError(400, "invalid", "The provided file ID is not usable.")

    def _existing(self, file_id: str) -> dict[str, Any]:
        if file_id not in self.files:
            raise ApiError(404, "notFound", f"File not found: {file_id}.")
        return self.files[file_id]

    def _check_parents(self, parent_ids: list[str]) -> None:
        if len(parent_ids) != 1:
            raise ApiError(403, "teamDrivesParentLimit", "A shared drive item must have exactly one parent.")
        for parent_id in parent_ids:
            parent = self._existing(parent_id)
            if parent["mimeType"] != FOLDER_MIME or parent["trashed"]:
                raise ApiError(404, "notFound", f"File not found: {parent_id}.")

    # -- API methods: (self, path argument, query, headers, body) -> Response --

    def _list(self, _arg: str, query: dict[str, str], _headers: Message, _body: bytes) -> Response:
        predicates = parse_query(query.get("q", ""))
        corpora = query.get("corpora", "user")
        if corpora == "drive" and (self.drive_id is None or query.get("driveId") != self.drive_id):
            raise ApiError(404, "notFound", f"Shared drive not found: {query.get('driveId')}")
        drives = query.get("includeItemsFromAllDrives") == "true"
        corpus = {"drive": {self.drive_id} if drives else set(), "user": {None}}.get(corpora, set())
        found = [f for f in self.files.values() if f.get("driveId") in corpus and all(p(f) for p in predicates)]
        match = re.search(r"files\(([^)]*)\)", query.get("fields", ""))
        names = match.group(1) if match else None
        answer = {"kind": "drive#fileList", "files": [_pick(f, names) for f in found]}
        if corpora in self.incomplete_corpora:
            answer["incompleteSearch"] = True
        return _json(200, answer)

    def _get(self, file_id: str, query: dict[str, str], _headers: Message, _body: bytes) -> Response:
        return _json(200, _pick(self._existing(file_id), query.get("fields")))

    def _create(self, _arg: str, query: dict[str, str], _headers: Message, body: bytes) -> Response:
        metadata = json.loads(body or b"{}")
        self._check_new_id(metadata)
        self._check_parents(metadata.get("parents", []))
        return _json(200, _pick(self.files[self._store(metadata)], query.get("fields")))

    def _generate_ids(self, _arg: str, query: dict[str, str], _headers: Message, _body: bytes) -> Response:
        ids = [self._new_id() for _ in range(int(query.get("count", "10")))]
        self.generated_ids.update(ids)
        return _json(200, {"kind": "drive#generatedIds", "space": query.get("space", "drive"), "ids": ids})

    def _update(self, file_id: str, query: dict[str, str], _headers: Message, body: bytes) -> Response:
        resource = self._existing(file_id)
        changes = json.loads(body or b"{}")
        added = [p for p in query.get("addParents", "").split(",") if p]
        removed = set(query.get("removeParents", "").split(","))
        parents = [p for p in resource["parents"] if p not in removed] + added
        if parents != resource["parents"]:
            self._check_parents(parents)
        resource["parents"] = parents
        for key in ("name", "trashed"):
            if key in changes:
                resource[key] = changes[key]
        return _json(200, _pick(resource, query.get("fields")))

    def _share(self, file_id: str, query: dict[str, str], _headers: Message, body: bytes) -> Response:
        self._existing(file_id)
        wanted = json.loads(body or b"{}")
        kind, email, notify = wanted.get("type"), wanted.get("emailAddress", ""), query.get("sendNotificationEmail")
        if wanted.get("role") != "reader" or kind not in ("user", "anyone") or (kind == "user") != bool(email):
            raise ApiError(400, "invalid", "The fake shares only as reader, with a user's emailAddress or anyone.")
        if kind == "anyone" and notify is not None:
            raise ApiError(400, "invalid", "sendNotificationEmail is only allowed for users and groups.")
        if kind == "user" and notify == "false" and email.lower() in self.no_google_account:
            raise ApiError(
                400,
                "invalidSharingRequest",
                f'Bad Request. User message: "You are trying to invite {email}. '
                "Since there is no Google account associated with this email address, you must check the "
                "'Notify people' box to invite this recipient.\"",
            )
        if kind == "user" and notify != "false":
            self.notifications.append(email)
        granted = self.permissions.setdefault(file_id, [])
        same = [p for p in granted if p["type"] == kind and p.get("emailAddress", "").lower() == email.lower()]
        if not same:  # Drive keeps one permission per grantee
            same = [{"kind": "drive#permission", "id": f"perm{next(self._ids)}", **wanted}]
            granted += same
        return _json(200, _pick(same[0], query.get("fields")))

    def _permission_list(self, file_id: str, _query: dict[str, str], _headers: Message, _body: bytes) -> Response:
        self._existing(file_id)
        return _json(200, {"kind": "drive#permissionList", "permissions": self.permissions.get(file_id, [])})

    def _unshare(self, ids: str, _query: dict[str, str], _headers: Message, _body: bytes) -> Response:
        file_id, permission_id = ids.split("/")
        granted = self.permissions.get(file_id, [])
        if not any(p["id"] == permission_id for p in granted):
            raise ApiError(404, "notFound", f"Permission not found: {permission_id}.")
        self.permissions[file_id] = [p for p in granted if p["id"] != permission_id]
        return 204, {}, b""

    def _initiate(self, _arg: str, query: dict[str, str], headers: Message, body: bytes) -> Response:
        metadata = json.loads(body or b"{}")
        self._check_parents(metadata.get("parents", []))
        session_id = f"session{next(self._ids)}"
        self.sessions[session_id] = UploadSession(metadata, int(headers["X-Upload-Content-Length"]))
        location = f"{self.url}upload/drive/v3/files?{urlencode({**query, 'upload_id': session_id})}"
        return 200, {"Location": location}, b""

    def _chunk(self, session_id: str, query: dict[str, str], headers: Message, body: bytes) -> Response:
        session = self._session(session_id)
        if session.file_id is not None:  # a re-sent last chunk: the file exists already
            return _json(200, _pick(self.files[session.file_id], query.get("fields")))
        first, _last, total = _content_range(headers["Content-Range"])
        self.chunk_starts.append(first)
        if first > len(session.received):
            raise ApiError(400, "badRequest", "Chunk does not continue the bytes received so far.")
        # A re-sent chunk overwrites what it overlaps; bytes already received are never lost.
        session.received[first : first + len(body)] = body
        if len(session.received) < total:
            return _resume_incomplete(session)
        content = bytes(session.received)
        if self.corrupt_uploads:
            self.corrupt_uploads -= 1
            content = bytes([content[0] ^ 0xFF]) + content[1:]
        session.file_id = self._store(session.metadata, content)
        return _json(200, _pick(self.files[session.file_id], query.get("fields")))

    def _status(self, session_id: str, query: dict[str, str], _headers: Message, _body: bytes) -> Response:
        session = self._session(session_id)
        if session.file_id is None:
            return _resume_incomplete(session)
        return _json(200, _pick(self.files[session.file_id], query.get("fields")))

    def _token(self, _arg: str, _query: dict[str, str], _headers: Message, body: bytes) -> Response:
        form = dict(parse_qsl(body.decode()))
        self.token_requests.append(form)
        if "assertion" in form:  # service account: a JWT signed with its private key
            form["claims"] = self._verified_claims(form["assertion"])
        return _json(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        header, payload, signature = (_b64decode(part) for part in assertion.split("."))
        claims = json.loads(payload)
        key = self.trusted_keys.get(claims.get("iss", ""))
        if json.loads(header).get("alg") != "RS256" or key is None:
            raise ApiError(400, "invalid_grant", "Invalid JWT: unknown service account or algorithm.")
        signed = assertion.rsplit(".", 1)[0].encode()
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ApiError(400, "invalid_grant", "Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("aud") != TOKEN_AUDIENCE or not claims.get("iat", now + 1) <= now < claims.get("exp", 0):
            raise ApiError(400, "invalid_grant", "Invalid JWT: wrong audience, or not valid now.")
        if not claims.get("scope"):
            raise ApiError(400, "invalid_scope", "Invalid JWT: no scope.")
        return claims

    def _session(self, session_id: str) -> UploadSession:
        if session_id not in self.sessions:
            raise ApiError(404, "notFound", "Upload session not found or expired.")
        return self.sessions[session_id]


Method = Callable[[FakeDrive, str, dict[str, str], Message, bytes], Response]


def _route(method: str, path: str, query: dict[str, str], headers: Message) -> tuple[str, Method, str] | None:
    files_item = re.fullmatch(r"/drive/v3/files/([^/]+)", path)
    if method == "POST" and path == "/token":
        return "token", FakeDrive._token, ""
    permissions = re.fullmatch(r"/drive/v3/files/([^/]+)/permissions(?:/([^/]+))?", path)
    if permissions and permissions.group(2) and method == "DELETE":
        return "unshare", FakeDrive._unshare, f"{permissions.group(1)}/{permissions.group(2)}"
    if permissions and not permissions.group(2):
        share = {"POST": ("share", FakeDrive._share), "GET": ("permissions", FakeDrive._permission_list)}
        return (*share[method], permissions.group(1)) if method in share else None
    if path == "/drive/v3/files/generateIds" and method == "GET":
        return "generateIds", FakeDrive._generate_ids, ""
    if path == "/drive/v3/files":
        return {"GET": ("list", FakeDrive._list, ""), "POST": ("create", FakeDrive._create, "")}.get(method)
    if files_item and method in ("GET", "PATCH"):
        op, handler = ("get", FakeDrive._get) if method == "GET" else ("update", FakeDrive._update)
        return op, handler, files_item.group(1)
    if path == "/upload/drive/v3/files" and query.get("uploadType") == "resumable":
        if method == "POST":
            return "initiate", FakeDrive._initiate, ""
        if method == "PUT":
            is_status = headers.get("Content-Range", "").startswith("bytes */")
            op, handler = ("status", FakeDrive._status) if is_status else ("chunk", FakeDrive._chunk)
            return op, handler, query.get("upload_id", "")
    return None


_STRING = r"'((?:[^'\\]|\\.)*)'"  # Drive query strings escape ' and \ with a backslash
_CLAUSES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Predicate]]] = [
    (re.compile(_STRING + r"\s+in\s+parents"), lambda m: lambda f: _unescape(m[1]) in f["parents"]),
    (re.compile(r"mimeType\s*=\s*" + _STRING), lambda m: lambda f: f["mimeType"] == _unescape(m[1])),
    (re.compile(r"trashed\s*=\s*(true|false)"), lambda m: lambda f: f["trashed"] == (m[1] == "true")),
    (
        re.compile(r"appProperties\s+has\s*\{\s*key\s*=\s*" + _STRING + r"\s+and\s+value\s*=\s*" + _STRING + r"\s*\}"),
        lambda m: lambda f: f["appProperties"].get(_unescape(m[1])) == _unescape(m[2]),
    ),
]


def parse_query(q: str) -> list[Predicate]:
    """The ``q`` subset the client uses, joined by ``and``; anything else is a 400 as on Google."""
    predicates: list[Predicate] = []
    rest = q.strip()
    while rest:
        for pattern, build in _CLAUSES:
            if match := pattern.match(rest):
                predicates.append(build(match))
                break
        else:
            raise ApiError(400, "invalid", f"Invalid Value: q={q!r}")
        rest = rest[match.end() :].strip()
        if rest and not rest.startswith("and "):
            raise ApiError(400, "invalid", f"Invalid Value: q={q!r}")
        rest = rest.removeprefix("and ").strip()
    return predicates


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _read_body(rfile: BufferedIOBase, length: int) -> bytes:
    """Up to length bytes: fewer when the client hangs up or stays silent past the handler timeout."""
    body = bytearray()
    try:
        while len(body) < length and (block := rfile.read1(length - len(body))):
            body += block
    except OSError:
        pass
    return bytes(body)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _pick(resource: dict[str, Any], fields: str | None) -> dict[str, Any]:
    names = [n.strip() for n in fields.split(",")] if fields else DEFAULT_FIELDS
    if "*" in names:
        return dict(resource)
    return {name: resource[name] for name in names if name in resource}


def _content_range(value: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", value)
    if match is None:
        raise ApiError(400, "badRequest", f"Unsupported Content-Range {value!r}")
    first, last, total = (int(g) for g in match.groups())
    return first, last, total


def _resume_incomplete(session: UploadSession) -> Response:
    headers = {"Range": f"bytes=0-{len(session.received) - 1}"} if session.received else {}
    return 308, headers, b""


def _json(status: int, payload: dict[str, Any]) -> Response:
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(payload).encode()


class _Server(ThreadingHTTPServer):
    def __init__(self, fake: FakeDrive) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-answer (e.g. a timed-out test) is not the server's error."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as httplib2 expects
    disable_nagle_algorithm = True  # headers and body go out as separate writes; don't wait for delayed ACKs
    timeout = REQUEST_TIMEOUT_S

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _answer(self) -> None:
        response = self.server.fake.handle(self.command, self.path, self.headers, self.rfile)
        if isinstance(response, str):
            self.close_connection = True  # no answer: the server closes the socket
            if response == "stall":
                self._wait_for_client_to_give_up()
            return
        status, headers, payload = response
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _wait_for_client_to_give_up(self) -> None:
        """A dead line answers nothing; bounded by the handler timeout."""
        try:
            while self.connection.recv(64 * 1024):  # the rest of a stalled body, then EOF when the client closes
                pass
        except OSError:
            pass  # the client reset the connection, or the handler timeout ran out

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the assertions, not an access log."""
