"""The review page in headless Chromium: an admin takes a messy batch to a correct delivery."""

import json
import time
from pathlib import Path

import pytest

from tests.support.browser import chromium, log_in
from tests.support.liveserver import gunicorn
from tests.support.photogen import SMALL_SIZE, make_batch

pytestmark = pytest.mark.slow
ADMIN = ("reviewer", "review password 1")
# A lead-in photo, a card the scanner cannot see (BEN's, shot as a plain frame), an unknown code.
MESSY = [("photo",), ("card", "ANNA"), ("photo",), ("photo",), ("photo",), ("card", "ZED"), ("photo",)]


def select_photos(page, *names: str) -> None:
    for name in names:
        page.locator(f"label.thumb[data-name='{name}'] input[name=photo_id]").first.check()


def apply(page, kind: str, code: str = "") -> None:
    page.select_option("#kind", kind)
    page.fill("#code", code)
    page.click("#correct-form button[type=submit]")
    page.wait_for_load_state()


def exported(data_dir: Path, timeout: float = 30) -> dict[str, set[str]]:
    """Export folders once the processor has caught up with the corrections."""
    deadline = time.monotonic() + timeout
    while True:
        listing = {folder.name: {f.name for f in folder.glob("*.JPG")} for folder in (data_dir / "export").iterdir()}
        if len(listing) == 3 or time.monotonic() > deadline:
            return listing
        time.sleep(0.3)


def test_admin_fixes_a_messy_batch_in_the_browser(database_url, data_dir, tmp_path):
    """Lead-in photo assigned, missed card marked, unknown code linked, an undo: delivery ends up right."""
    with gunicorn(data_dir, database_url) as server:
        server.flask("create-user", ADMIN[0], "--role", "admin", "--password-stdin", input_text=ADMIN[1] + "\n")
        roster = tmp_path / "roster.csv"
        roster.write_text("code,name,email,group\nANNA,Anna Berg,,\nBEN,Ben Cho,,\nCARL,Carl Dahl,,\n")
        server.flask("import-roster", str(roster))
        make_batch(tmp_path / "day", MESSY, size=SMALL_SIZE)
        batch_id = json.loads(server.flask("ingest", str(tmp_path / "day"), "--wait", "--json").stdout)["batch"]
        before = server.report(batch_id)["photos"]
        assert [e["needs_review"] for e in before] == [True, False, False, False, False, True, True]

        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("dialog", lambda dialog: dialog.accept())  # undo and link ask first
            log_in(page, server.url, *ADMIN)
            page.goto(f"{server.url}/batches/{batch_id}/review")
            assert page.locator("h2", has_text="Needs attention").is_visible()

            select_photos(page, "IMG_0004.JPG")
            apply(page, "card", "BEN")
            page.wait_for_selector("text=1 photo(s) changed.")
            select_photos(page, "IMG_0001.JPG")
            apply(page, "assign", "BEN")
            assert server.report(batch_id)["photos"][0]["person"] == "BEN"
            page.click("button:has-text('Undo last')")
            page.wait_for_load_state()
            assert server.report(batch_id)["photos"][0]["person"] is None
            select_photos(page, "IMG_0001.JPG")
            apply(page, "assign", "ANNA")
            page.fill("#link-code", "ZED")
            page.fill("input[name=person_code]", "CARL")
            page.click("button:has-text('Link')")
            page.wait_for_load_state()
            assert page.locator("h2", has_text="Needs attention (0)").is_visible()

        after = server.report(batch_id)["photos"]
        assert [(e["role"], e["person"]) for e in after] == [
            ("photo", "ANNA"),
            ("separator", "ANNA"),
            ("photo", "ANNA"),
            ("separator", "BEN"),
            ("photo", "BEN"),
            ("separator", "CARL"),
            ("photo", "CARL"),
        ]
        assert not any(e["needs_review"] for e in after)
        assert exported(data_dir) == {
            "ANNA Anna Berg": {"IMG_0001.JPG", "IMG_0003.JPG"},
            "BEN Ben Cho": {"IMG_0005.JPG"},
            "CARL Carl Dahl": {"IMG_0007.JPG"},
        }
