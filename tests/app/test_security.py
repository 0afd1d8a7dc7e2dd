"""Who gets in: every route is guarded unless it is on the public list, admin pages refuse staff, forged
posts are refused, card codes reveal nothing, logins are rate limited, cookies are locked down."""

import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import func, select

from blueprints.hardening import RAW_BODY_ENDPOINTS
from data.database import db_commit_with_retry
from data.extensions import db
from data.models import Batch, LoginAttempt, Person, PersonAlias, Photo, ReviewCorrection, Setting, User
from data.states import UserRole
from services import accounts, gallery_links
from tests.support.apps import build_app
from tests.support.factories import PASSWORD, login, make_person, make_scanned_batch, make_user, register

# Rules anyone may use. Everything else in app.url_map must refuse an anonymous visitor.
PUBLIC_RULES = {
    "/register",
    "/login",
    "/card/<code>",
    "/card/<code>.png",
    "/card/<code>.svg",
    "/family/<token>",
    "/cards/again",
    "/static/<path:filename>",
    "/api/health",
    # A private gallery opens by its unguessable token, not a login (tests/app/test_galleries.py).
    "/gallery/<token>",
    "/gallery/<token>/<int:photo_id>",
    "/gallery/<token>/<int:photo_id>/thumb",
    "/gallery/<token>/<int:photo_id>/large",
    "/gallery/<token>/<int:photo_id>/full",
    "/gallery/<token>/photos.zip",
}
# Endpoints that must refuse staff (403). Every rule under /admin/ is admin-only too.
ADMIN_ENDPOINTS = {
    "review.correct",
    "review.undo",
    "review.undo_last",
    "review.link",
    "review.rerun",
    "review.portrait_in_batch",
    "review.portrait",
    "people.import_form",
    "people.import_preview",
    "people.import_confirm",
    "people.edit_form",
    "people.edit",
    "people.merge",
    "people.delete",
    "admin.settings",
    "admin.set_switch",
    "admin.set_fields",
    "uploads.delete",
}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ORIGIN = "http://localhost"


def routes(app) -> list[tuple[str, str, str]]:
    """(rule, method, endpoint) for every route the app has now, new ones included."""
    return sorted(
        (rule.rule, method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def guarded_routes(app) -> list[tuple[str, str, str]]:
    found = [route for route in routes(app) if route[0] not in PUBLIC_RULES]
    assert len(found) >= 20, "the route table looks empty: the test would prove nothing"
    return found


def is_admin_only(rule: str, endpoint: str) -> bool:
    return endpoint in ADMIN_ENDPOINTS or rule.startswith("/admin/")


def make_app(database_url: str, data_dir, monkeypatch, **overrides):
    """An app whose test requests each get their own app context. (The shared `app` fixture keeps one
    context open, so Flask-Login's user cached in `g` would leak from one browser's request to the next.)"""
    app = build_app(data_dir, database_url, monkeypatch, **overrides)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def web(database_url, data_dir, monkeypatch):
    yield from make_app(database_url, data_dir, monkeypatch, WTF_CSRF_ENABLED=False)


@pytest.fixture
def csrf_app(database_url, data_dir, monkeypatch):
    yield from make_app(database_url, data_dir, monkeypatch, WTF_CSRF_ENABLED=True)


def setup(app, unit, *args, **kwargs):
    with app.app_context():
        return unit(*args, **kwargs)


def seed_ids() -> dict[str, object]:
    anna = make_person("ANNA", "Anna")
    batch_id, photo_ids = make_scanned_batch([("card", "ANNA"), ("photo",)])
    target = make_user("target")  # the account the account pages act on: not one the test logs in with
    link_id = db_commit_with_retry(lambda: gallery_links.new_link(person_id=anna.id).id)
    return {
        "user_id": target.id,
        "batch_id": batch_id,
        "photo_id": photo_ids[1],
        "correction_id": 1,
        "code": "ANNA",
        "action": "regroup",
        "filename": "style.css",
        "link_id": link_id,
        "switch": "registration",
    }


@pytest.fixture
def ids(web) -> dict[str, object]:
    """Real ids for the URL arguments, so a guard cannot hide behind a 404."""
    return setup(web, seed_ids)


def url_of(rule: str, ids: dict[str, object]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(ids.get(m.group(1), "x")), rule)


def call(client, method: str, url: str, **kwargs):
    return client.open(url, method=method, **kwargs)


def goes_to_login(response) -> bool:
    return response.status_code in (302, 303) and urlsplit(response.headers["Location"]).path == "/login"


def logged_in_client(app, username: str, role: UserRole):
    setup(app, make_user, username, role)
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def test_every_route_off_the_public_list_refuses_anonymous_visitors(web, ids):
    """Pages redirect to /login and /api/* answers 401, for every method of every non-public rule."""
    client, wrong = web.test_client(), []
    for rule, method, endpoint in guarded_routes(web):
        response = call(client, method, url_of(rule, ids))
        expected_ok = response.status_code == 401 if rule.startswith("/api/") else goes_to_login(response)
        if not expected_ok:
            wrong.append(f"{method} {rule} ({endpoint}) -> {response.status_code}")
    assert wrong == [], "\n".join(wrong)


def test_public_routes_answer_without_login(web):
    """The public list really is public (otherwise the allow-list above would hide a broken page)."""
    client = web.test_client()
    for url in ("/register", "/login", "/api/health", "/cards/again"):
        assert client.get(url).status_code == 200, url


def test_staff_are_refused_admin_routes_and_admins_are_not(web, ids):
    """Every admin-only route answers 403 to staff; admins pass every guard and no route answers 5xx."""
    staff = logged_in_client(web, "staff", UserRole.STAFF)
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    wrong = []
    for rule, method, endpoint in guarded_routes(web):
        if endpoint in ("auth.logout", "auth.logout_everywhere"):
            continue  # would end the session the loop uses; covered by its own test
        url = url_of(rule, ids)
        as_staff, as_admin = call(staff, method, url), call(admin, method, url)
        if is_admin_only(rule, endpoint):
            if as_staff.status_code != 403:
                wrong.append(f"staff {method} {rule} -> {as_staff.status_code}, expected 403")
        elif as_staff.status_code in (401, 403) or goes_to_login(as_staff) or as_staff.status_code >= 500:
            wrong.append(f"staff {method} {rule} -> {as_staff.status_code}")
        if as_admin.status_code in (401, 403) or goes_to_login(as_admin) or as_admin.status_code >= 500:
            wrong.append(f"admin {method} {rule} -> {as_admin.status_code}")
    assert wrong == [], "\n".join(wrong)
    assert any(is_admin_only(rule, endpoint) for rule, _, endpoint in routes(web))


def test_logout_needs_a_login_and_ends_the_session(web):
    """Logout refuses an anonymous post and, for a logged-in user, sends every page back to /login."""
    assert goes_to_login(web.test_client().post("/logout"))
    staff = logged_in_client(web, "staff", UserRole.STAFF)
    assert staff.get("/").status_code == 200
    assert staff.post("/logout").status_code == 302
    assert goes_to_login(staff.get("/"))


def table_counts() -> dict[str, int]:
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Batch, Person, PersonAlias, Photo, ReviewCorrection, Setting, User)
    }


def csrf_token(client, url: str = "/login") -> str:
    page = client.get(url).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_every_unsafe_route_refuses_a_forged_request(csrf_app):
    """With CSRF on, every unsafe method without a token (or another session's) is a 400 and changes nothing."""
    ids = setup(csrf_app, seed_ids)
    setup(csrf_app, make_user, "boss", UserRole.ADMIN)
    admin = csrf_app.test_client()
    token = csrf_token(admin)
    assert admin.post("/login", data={"username": "boss", "password": PASSWORD, "csrf_token": token}).status_code == 302
    other_token = csrf_token(csrf_app.test_client())
    before = setup(csrf_app, table_counts)
    unsafe = [(rule, method, endpoint) for rule, method, endpoint in routes(csrf_app) if method in UNSAFE_METHODS]
    assert len(unsafe) >= 10
    form = {
        "label": "forged",
        "name": "Mallory",
        "email": "m@example.com",
        "consent": "yes",
        "on": "0",
        "username": "boss",
        "password": PASSWORD,
        "kind": "exclude",
        "photo_id": str(ids["photo_id"]),
        "fields": "Shoe size",
    }
    wrong = []
    for rule, method, endpoint in unsafe:
        # A raw-body route refuses any form before reading it, the CSRF check included.
        refused = 415 if endpoint in RAW_BODY_ENDPOINTS else 400
        for data in (form, {**form, "csrf_token": other_token}):
            response = call(admin, method, url_of(rule, ids), data=data, headers={"X-File-Name": "forged.jpg"})
            if response.status_code != refused:
                wrong.append(f"{method} {rule} -> {response.status_code}")
    assert wrong == [], "\n".join(wrong)
    assert setup(csrf_app, table_counts) == before
    assert admin.get("/").status_code == 200, "the forged /logout must not have logged out"


def card_code(response) -> str:
    return urlsplit(response.headers["Location"]).path.split("/")[-1]


def comparable(response) -> tuple:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "Date")
    return response.status_code, headers, response.data


def test_someone_elses_card_is_indistinguishable_from_no_card(web):
    """From another browser, an existing card and a made-up code give the same 404: status, headers, body."""
    owner = web.test_client()
    registered = card_code(register(owner, "owner@example.com"))
    assert owner.get(f"/card/{registered}").status_code == 200
    setup(web, make_person, "ANNA", "Anna Berg")
    stranger = web.test_client()
    card_code(register(stranger, "stranger@example.com"))  # a browser holding a card of its own
    for browser in (stranger, web.test_client()):
        browser.get("/card/WARMUP00")  # a browser's first request may refresh its session cookie
        for suffix in ("", ".png", ".svg"):
            missing = browser.get(f"/card/ZZZZZZZZ{suffix}")
            assert missing.status_code == 404
            for code in (registered, "ANNA"):
                assert comparable(browser.get(f"/card/{code}{suffix}")) == comparable(missing)


def test_card_lookup_takes_the_same_time_for_existing_and_made_up_codes(web):
    """Interleaved timings of an existing and a made-up code differ by no more than noise."""
    registered = card_code(register(web.test_client(), "owner@example.com"))
    stranger = web.test_client()
    timings: dict[str, list[float]] = {registered: [], "ZZZZZZZZ": []}
    for _ in range(60):
        for code in timings:
            started = time.perf_counter()
            assert stranger.get(f"/card/{code}").status_code == 404
            timings[code].append(time.perf_counter() - started)
    existing, made_up = (statistics.median(t[10:]) for t in timings.values())
    assert abs(existing - made_up) <= 0.25 * max(existing, made_up) + 0.001, (existing, made_up)


def test_registering_with_someone_elses_email_does_not_reveal_their_card(web):
    """Knowing a person's email (registered or on the roster) does not get another browser their card."""
    code = card_code(register(web.test_client(), "victim@example.com", "Victim"))
    setup(web, make_person, "ANNA", "Anna Berg", email="anna@example.com")
    for email, their_code in (("victim@example.com", code), ("ANNA@example.com", "ANNA")):
        attacker = web.test_client()
        response = register(attacker, email, "Mallory")
        assert their_code not in response.headers.get("Location", "") + response.text
        assert attacker.get(f"/card/{their_code}").status_code == 404
        assert attacker.get(f"/card/{their_code}.png").status_code == 404


def count_attempts() -> int:
    return db.session.scalar(select(func.count()).select_from(LoginAttempt))


def test_login_is_rate_limited_per_address_whatever_the_headers_say(web):
    """30 failures from one address (any usernames, any X-Forwarded-For) lock it out, even the right password."""
    setup(web, make_user)
    client = web.test_client()
    for i in range(30):
        response = client.post(
            "/login",
            data={"username": f"guess{i}", "password": "wrong password"},
            headers={"X-Forwarded-For": f"10.0.{i}.1"},
        )
        assert response.status_code == 401
    locked = client.post(
        "/login", data={"username": "staff", "password": PASSWORD}, headers={"X-Forwarded-For": "10.9.9.9"}
    )
    assert locked.status_code == 429 and b"Too many failed logins" in locked.data
    assert goes_to_login(client.get("/"))
    assert setup(web, count_attempts) == 30


def login_from(client, address: str, password: str):
    return client.post(
        "/login", data={"username": "staff", "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def test_guesses_from_one_address_do_not_lock_the_owner_out_elsewhere(web):
    """Five wrong passwords from one address slow that address down; the right password from another
    address still logs in (once, 5 failures locked the account for everyone)."""
    setup(web, make_user)
    client = web.test_client()
    for _ in range(5):
        assert login_from(client, "192.0.2.1", "nope nope").status_code == 401
    refused = login_from(client, "192.0.2.1", PASSWORD)
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 15 * 60 + 1
    assert login_from(web.test_client(), "198.51.100.7", PASSWORD).status_code == 302


def parallel_logins(app, password: str, count: int) -> list[int]:
    """`count` logins to one account from one address, all at once; their status codes."""
    ready = threading.Barrier(count)

    def attempt(_):
        client = app.test_client()
        ready.wait()
        return login_from(client, "203.0.113.9", password).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(attempt, range(count)))


@pytest.mark.both_databases
def test_parallel_guesses_are_counted_before_their_passwords_are_checked(web, monkeypatch):
    """40 wrong passwords sent at once: exactly 5 reach the password check (once 19 did), the rest get 429."""
    setup(web, make_user)
    checked = []
    real_check = accounts.check_password_hash

    def counting_check(password_hash, password):
        checked.append(password)
        return real_check(password_hash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting_check)
    codes = parallel_logins(web, "wrong password", 40)
    assert len(checked) == accounts.MAX_FAILURES_PER_USER
    assert sorted(codes) == [401] * 5 + [429] * 35


@pytest.mark.both_databases
def test_a_burst_of_correct_logins_on_one_account_all_get_in(web):
    """Ten laptops behind one address logging in to one shared account at once are all let in: logins
    still being checked make the others wait, not fail."""
    setup(web, make_user)
    assert parallel_logins(web, PASSWORD, 10) == [302] * 10


def test_an_admin_unlocks_an_account(web):
    """After the unlock, the address that used up its failures may log in again."""
    setup(web, make_user)
    client = web.test_client()
    for _ in range(5):
        login_from(client, "192.0.2.1", "nope nope")
    assert login_from(client, "192.0.2.1", PASSWORD).status_code == 429
    admin = logged_in_client(web, "boss", UserRole.ADMIN)
    assert "staff" in admin.get("/admin/accounts").text
    staff_id = setup(web, lambda: db.session.scalar(select(User.id).where(User.username == "staff")))
    assert admin.post(f"/admin/accounts/{staff_id}/unlock").status_code == 303
    assert login_from(client, "192.0.2.1", PASSWORD).status_code == 302


def session_cookie_header(response) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return header


def test_session_cookie_is_httponly_and_samesite_lax(web):
    """The login and the registration sessions set a cookie JavaScript cannot read, not sent cross-site."""
    setup(web, make_user)
    for response in (login(web.test_client()), register(web.test_client(), "cookie@example.com")):
        attributes = {
            part.strip().split("=")[0].lower(): part.strip() for part in session_cookie_header(response).split(";")[1:]
        }
        assert "httponly" in attributes
        assert attributes.get("samesite") == "SameSite=Lax"


def test_session_cookie_is_dead_after_logout(web):
    """A session cookie copied before logout (a shared venue laptop) no longer lets anyone in."""
    setup(web, make_user)
    client = web.test_client()
    captured = session_cookie_header(login(client)).split(";")[0].split("=", 1)[1]
    thief = web.test_client()
    thief.set_cookie("session", captured)
    assert thief.get("/").status_code == 200, "the copied cookie should work while the user is logged in"
    assert client.post("/logout").status_code == 302
    assert goes_to_login(thief.get("/"))


def test_forged_session_signed_with_another_key_is_ignored(web):
    """A session cookie claiming a user or a card, signed with a guessed key, is worth nothing."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    setup(web, make_user, "boss", UserRole.ADMIN)
    setup(web, make_person, "ANNA", "Anna")
    forger = Flask("forger")
    forger.secret_key = "guessed"
    client = web.test_client()
    client.set_cookie(
        "session",
        SecureCookieSessionInterface()
        .get_signing_serializer(forger)
        .dumps({"_user_id": "1", "_fresh": True, "cards": ["ANNA"]}),
    )
    assert goes_to_login(client.get("/"))
    assert client.get("/card/ANNA").status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/x",
        "/\\evil.example/x",
        "/\t/evil.example/x",
        "\\\\evil.example/x",
        "/\\/evil.example/x",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
    ],
)
def test_login_never_redirects_off_site(web, target):
    """After login, ?next= sends the browser only to this site: no scheme, no host, no backslash or tab tricks."""
    setup(web, make_user)
    response = web.test_client().post(
        "/login", query_string={"next": target}, data={"username": "staff", "password": PASSWORD}
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    # What a browser does with the header (WHATWG URL): drop tabs and newlines, read \ as /.
    as_browser = urljoin(f"{ORIGIN}/login", re.sub(r"[\t\n\r]", "", location).replace("\\", "/"))
    assert urlsplit(as_browser).netloc == urlsplit(ORIGIN).netloc, location
    assert urlsplit(as_browser).scheme == "http", location


def test_a_csrf_token_from_before_login_is_refused_after_it(csrf_app):
    """A token planted in a browser before login (session fixation of the CSRF secret) stops working at
    login; the token the logged-in pages carry works."""
    setup(csrf_app, make_user)
    client = csrf_app.test_client()
    planted = csrf_token(client)
    form = {"username": "staff", "password": PASSWORD, "csrf_token": planted}
    assert client.post("/login", data=form).status_code == 302
    assert client.post("/batches", data={"label": "x", "csrf_token": planted}).status_code == 400
    fresh = csrf_token(client, "/batches/new")
    assert fresh != planted
    assert client.post("/batches", data={"label": "x", "csrf_token": fresh}).status_code in (302, 303)
