"""Every route, route by route: security headers on every answer, a size limit on every body, read before
nothing; private caching behind the login; HTTPS honoured only from a trusted proxy."""

import io

import pytest

from data.states import UserRole
from tests.app.test_security import logged_in_client, make_app, routes, seed_ids, setup, url_of
from tests.support.apps import build_app
from tests.support.factories import PASSWORD, make_user


@pytest.fixture
def web(database_url, data_dir, monkeypatch):
    yield from make_app(database_url, data_dir, monkeypatch, WTF_CSRF_ENABLED=False)


@pytest.fixture
def ids(web) -> dict[str, object]:
    return setup(web, seed_ids)


HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
# Routes that take more than a form, and how much (config key).
LARGE_BODY_ENDPOINTS = {
    "api.receive": "MAX_ZIP_UPLOAD_BYTES",
    "api.present": None,
    "people.import_preview": "ROSTER_MAX_BYTES",
    "people.import_confirm": "ROSTER_MAX_BYTES",
}


def missing_headers(response) -> list[str]:
    wrong = [
        f"{name}: {response.headers.get(name)!r}"
        for name, value in HEADERS.items()
        if response.headers.get(name) != value
    ]
    policy = response.headers.get("Content-Security-Policy", "")
    for directive in ("frame-ancestors 'none'", "script-src 'self'", "object-src 'none'", "base-uri 'none'"):
        if directive not in policy:
            wrong.append(f"CSP lacks {directive}")
    if "unsafe-inline" in policy or "unsafe-eval" in policy:
        wrong.append("CSP allows inline code")
    return wrong


def test_every_route_sends_the_security_headers_to_anyone(web, ids):
    """Anonymous, staff and admin answers of every rule and method carry CSP, nosniff, frame and referrer rules."""
    clients = {
        "anonymous": web.test_client(),
        "staff": logged_in_client(web, "staff", UserRole.STAFF),
        "admin": logged_in_client(web, "boss", UserRole.ADMIN),
    }
    wrong = []
    for who, client in clients.items():
        for rule, method, endpoint in routes(web):
            if endpoint in ("auth.logout", "auth.logout_everywhere"):
                continue  # would end the session the loop uses
            response = client.open(url_of(rule, ids), method=method)
            wrong += [f"{who} {method} {rule}: {problem}" for problem in missing_headers(response)]
    assert wrong == [], "\n".join(wrong)


def test_every_route_refuses_a_body_over_its_limit_before_reading_it(web, ids):
    """A body one byte over the form limit is a 413 on every route that takes forms, for anyone; the
    body is never read (the test's input stream would fail if it were)."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    limit = web.config["FORM_MAX_BYTES"]
    wrong, checked = [], 0
    for client in (web.test_client(), admin):
        for rule, method, endpoint in routes(web):
            if method not in ("POST", "PUT", "PATCH", "DELETE") or endpoint in LARGE_BODY_ENDPOINTS:
                continue
            response = client.open(
                url_of(rule, ids),
                method=method,
                input_stream=UnreadableBody(),
                content_type="application/x-www-form-urlencoded",
                environ_overrides={"CONTENT_LENGTH": str(limit + 1)},
            )
            checked += 1
            if response.status_code != 413 and not (client is not admin and response.status_code in (302, 401)):
                wrong.append(f"{method} {rule} -> {response.status_code}")
    assert checked >= 10
    assert wrong == [], "\n".join(wrong)


def test_large_body_routes_keep_their_own_limit(web, ids):
    """The upload list and the roster import take more than a form, and still have a limit."""
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    for url, size in (
        (f"/api/batches/{ids['batch_id']}/present", 8 * 1024 * 1024 + 1),
        ("/people/import", web.config["ROSTER_MAX_BYTES"] * 2),
    ):
        response = admin.post(
            url,
            input_stream=UnreadableBody(),
            content_type="application/json",
            environ_overrides={"CONTENT_LENGTH": str(size)},
        )
        assert response.status_code == 413, url
    roster = b"code,name\n" + b"".join(b"C%06d,Someone with a long enough name\n" % i for i in range(4000))
    assert len(roster) > web.config["FORM_MAX_BYTES"]
    response = admin.post("/people/import", data={"file": (io.BytesIO(roster), "roster.csv")})
    assert response.status_code == 200


class UnreadableBody:
    """A request body that fails the test if anything reads it."""

    def read(self, *_args):
        raise AssertionError("the body was read")

    readline = read

    def tell(self) -> int:
        return 0

    def seek(self, *_args) -> int:
        return 0


def test_pages_behind_the_login_are_never_publicly_cached(web, ids):
    """Every answer to a logged-in user is Cache-Control private (thumbnails included), never public."""
    staff = logged_in_client(web, "staff", UserRole.STAFF)
    wrong = []
    for rule, method, endpoint in routes(web):
        if method != "GET" or endpoint in ("static", "api.health"):
            continue
        cache = staff.get(url_of(rule, ids)).headers.get("Cache-Control", "")
        if "private" not in cache or "public" in cache:
            wrong.append(f"{rule}: {cache!r}")
    assert wrong == [], "\n".join(wrong)


def test_thumbnails_are_private(web, ids):
    """A thumbnail, once said `public, max-age=86400`, may be kept by this browser only."""
    from data.extensions import db
    from data.models import Photo
    from data.storage import thumbnail_path

    with web.app_context():
        photo = db.session.get(Photo, ids["photo_id"])
        path = thumbnail_path(photo.content_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xd9")
    staff = logged_in_client(web, "staff", UserRole.STAFF)
    with staff.get(f"/photos/{ids['photo_id']}/thumb") as response:
        assert response.status_code == 200
        assert "private" in response.headers["Cache-Control"] and "public" not in response.headers["Cache-Control"]


@pytest.fixture
def behind_proxy(database_url, data_dir, monkeypatch):
    app = build_app(data_dir, database_url, monkeypatch, WTF_CSRF_ENABLED=False, TRUSTED_PROXIES=1)
    with app.app_context():
        make_user()
    yield app


def secure_cookie_and_hsts(response) -> tuple[bool, bool]:
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    return "Secure" in cookie, "Strict-Transport-Security" in response.headers


def test_https_from_a_trusted_proxy_gets_hsts_and_secure_cookies(behind_proxy):
    """Behind a proxy the settings trust, X-Forwarded-Proto: https makes cookies Secure and adds HSTS."""
    client = behind_proxy.test_client()
    response = client.post(
        "/login", data={"username": "staff", "password": PASSWORD}, headers={"X-Forwarded-Proto": "https"}
    )
    assert response.status_code == 302
    assert secure_cookie_and_hsts(response) == (True, True)


def test_forwarded_https_from_an_untrusted_client_changes_nothing(web):
    """With no trusted proxy, a client saying X-Forwarded-Proto: https gets neither HSTS nor a Secure cookie;
    a direct HTTPS request gets both."""
    with web.app_context():
        make_user()
    form = {"username": "staff", "password": PASSWORD}
    forged = web.test_client().post("/login", data=form, headers={"X-Forwarded-Proto": "https"})
    assert secure_cookie_and_hsts(forged) == (False, False)
    direct = web.test_client().post("/login", data=form, base_url="https://localhost")
    assert secure_cookie_and_hsts(direct) == (True, True)


def test_the_size_limit_comes_before_the_csrf_check_reads_the_form(database_url, data_dir, monkeypatch):
    """With CSRF protection on (it parses the form), an oversized anonymous post is refused unread: a 300 MB
    file part to /register once spooled to /tmp before any check."""
    for app in make_app(database_url, data_dir, monkeypatch, WTF_CSRF_ENABLED=True):
        response = app.test_client().post(
            "/register",
            input_stream=UnreadableBody(),
            content_type="multipart/form-data; boundary=x",
            environ_overrides={"CONTENT_LENGTH": str(300 * 1024 * 1024)},
        )
        assert response.status_code == 413
