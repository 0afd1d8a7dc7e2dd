"""Every page of the app, as anonymous, staff and admin see it, at laptop and phone size, on a realistic
photo day. Shared by the accessibility test (tests/system/test_pages.py) and scripts/screenshots."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page

from app import create_app
from data.database import db_commit_with_retry, run_in_transaction
from data.extensions import db
from services import export, gallery_links
from services.directory import person_for_code
from tests.support.browser import log_in
from tests.support.liveserver import LiveServer
from tests.support.photogen import SMALL_SIZE, make_batch

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "static/vendor/axe-core/axe.min.js"
SIZES = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
ACCOUNTS = {"staff": ("desk", "desk password 1"), "admin": ("lead", "lead password 1")}
ROLES = ("anonymous", "staff", "admin")
# A lead-in photo, two people, a card with a code nobody has: a batch with something to review.
MESSY = [("photo",), ("card", "ANNA"), ("photo",), ("photo",), ("card", "BEN"), ("photo",), ("card", "ZED"), ("photo",)]
ROSTER = "code,name,email,group\nANNA,Anna Berg,anna@example.com,5A\nBEN,Ben Cho,,5A\nCARL,Carl Dahl,,5B\n"
# GET routes that are not pages: files (zips are downloads), fragments, JSON and redirects (the walk checks every
# other GET route).
NOT_PAGES = re.compile(r"^/(static|api|family)/|/thumb$|/large$|/full$|\.(png|svg|zip)$|^/dashboard/live$")
# An address that matches no route: the 404 page is a page too.
MISSING_PAGE = "/no-such-page"


@dataclass
class PhotoDay:
    """What the seeded day holds, by the names route arguments use."""

    batch_id: int
    code: str
    photo_id: int  # one of the code's delivered photos
    token: str  # the family gallery of the code's e-mail address

    def argument(self, name: str):
        values = {"batch_id": self.batch_id, "code": self.code, "photo_id": self.photo_id, "token": self.token}
        if name not in values:
            raise KeyError(f"the page walk has no value for route argument {name!r}: add one to PhotoDay")
        return values[name]


def walk_app(server: LiveServer):
    """The server's app, built in this process: its URL map, and its database for looking things up."""
    return create_app(
        {"SQLALCHEMY_DATABASE_URI": server.env["DATABASE_URL"], "DATA_DIR": server.data_dir, "SECRET_KEY": "walk"}
    )


def seed_photo_day(app, server: LiveServer, folder: Path) -> PhotoDay:
    """Accounts, a roster, one messy batch processed (with a refused file in it)."""
    for role, (username, password) in ACCOUNTS.items():
        result = server.flask("create-user", username, "--role", role, "--password-stdin", input_text=password + "\n")
        assert result.returncode == 0, result.stderr
    roster = folder / "roster.csv"
    roster.write_text(ROSTER)
    assert server.flask("import-roster", str(roster)).returncode == 0
    make_batch(folder / "card1", MESSY, size=SMALL_SIZE)
    (folder / "card1" / "IMG_0009.JPG").write_bytes(b"%PDF-1.4 not a photo\n")
    ingest = server.flask("ingest", str(folder / "card1"), "--wait", "--json")
    assert ingest.returncode == 0, ingest.stderr
    batch_id = json.loads(ingest.stdout)["batch"]
    with app.app_context():
        photo_id = run_in_transaction(lambda: export.deliverable_photos(person_for_code("ANNA").id)[0].id)
        token = db_commit_with_retry(lambda: gallery_links.token_for(gallery_links.new_link("anna@example.com").seed))
        db.engine.dispose()
    return PhotoDay(batch_id, "ANNA", photo_id, token)


def page_paths(app, day: PhotoDay) -> list[str]:
    """One address for every GET route of the app that renders a page, arguments filled from the day."""
    paths = {MISSING_PAGE}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or NOT_PAGES.search(rule.rule):
            continue
        paths.add(rule.build({name: day.argument(name) for name in rule.arguments})[1])
    return sorted(paths)


def logged_in_context(browser: Browser, server: LiveServer, role: str, size: str) -> BrowserContext:
    # The test injects axe-core; bypassing CSP lets it run under the app's strict policy.
    context = browser.new_context(viewport=SIZES[size], bypass_csp=True)
    if role != "anonymous":
        log_in(context.new_page(), server.url, *ACCOUNTS[role])
    return context


@dataclass
class Visit:
    role: str
    size: str
    path: str
    page: Page


def visits(browser: Browser, server: LiveServer, paths: list[str]) -> Iterator[Visit]:
    """Each page each role may see, at each size; a page that sends the role to log in, or refuses it, is
    not that role's page. An anonymous visitor is a parent who registered on this device: they see their card."""
    for size in SIZES:
        for role in ROLES:
            context = logged_in_context(browser, server, role, size)
            page = context.new_page()
            own_card = register_parent(page, server, f"parent-{size}@example.com") if role == "anonymous" else None
            for path in paths:
                if own_card and path.startswith("/card/"):
                    path = own_card
                response = page.goto(server.url + path)
                if "/login" in page.url and path != "/login" or response.status == 403:
                    continue
                page.wait_for_load_state("load")
                yield Visit(role, size, path, page)
            context.close()


def register_parent(page: Page, server: LiveServer, email: str) -> str:
    """Sign a child up as a parent on a phone would; returns the address of the card this browser may see."""
    page.goto(f"{server.url}/register")
    page.fill("input[name=name]", "Hana Bakker")
    page.fill("input[name=email]", email)
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_url("**/card/*")
    return page.url.removeprefix(server.url).split("?")[0]


def axe_violations(page: Page) -> list[dict]:
    """Serious and critical axe-core violations on the page as it stands."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "targets": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def horizontal_overflow(page: Page) -> str | None:
    """None when nothing scrolls sideways; else by how much, and the deepest element that sticks out."""
    return page.evaluate(
        """() => {
        const extra = document.documentElement.scrollWidth - window.innerWidth
        if (extra <= 0) return null
        const out = [...document.body.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > innerWidth)
        const last = out.at(-1)
        const name = last ? `${last.tagName.toLowerCase()}.${[...last.classList].join('.')}` : 'body'
        return `${extra}px too wide at ${name}`
    }"""
    )


def screenshot_name(visit: Visit) -> str:
    """A file name that is the same from run to run (a parent's card code is new each time)."""
    path = "/card/own" if visit.role == "anonymous" and visit.path.startswith("/card/") else visit.path
    slug = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-") or "home"
    return f"{slug}.{visit.role}.{visit.size}.png"
