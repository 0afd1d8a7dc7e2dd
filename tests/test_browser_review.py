"""The review page in headless Chromium: an admin fixes a lead-in photo and undoes it."""
import json

import pytest

from tests.browser import chromium, log_in
from tests.liveserver import gunicorn
from tests.photogen import SMALL_SIZE, make_batch

pytestmark = pytest.mark.slow
ADMIN = ("reviewer", "review password 1")


def test_admin_assigns_a_lead_in_photo_and_undoes_it(database_url, data_dir, tmp_path):
    """Select the unassigned photo, assign it to a person by code, see it move; undo puts it back."""
    with gunicorn(data_dir, database_url) as server:
        server.flask("create-user", ADMIN[0], "--role", "admin", "--password-stdin", input_text=ADMIN[1] + "\n")
        roster = tmp_path / "roster.csv"
        roster.write_text("code,name,email,group\nANNA,Anna Berg,,\n")
        server.flask("import-roster", str(roster))
        make_batch(tmp_path / "day", [("photo",), ("card", "ANNA"), ("photo",)], size=SMALL_SIZE)
        batch_id = json.loads(server.flask("ingest", str(tmp_path / "day"), "--wait", "--json").stdout)["batch"]
        assert server.report(batch_id)["photos"][0]["role"] == "unassigned"

        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            log_in(page, server.url, *ADMIN)
            page.goto(f"{server.url}/batches/{batch_id}/review")
            assert page.locator("h2", has_text="Needs attention").is_visible()
            page.locator("section", has_text="Needs attention").locator("input[name=photo_id]").first.check()
            page.select_option("#kind", "assign")
            page.fill("#code", "ANNA")
            page.click("#correct-form button[type=submit]")
            page.wait_for_selector("text=1 photo(s) changed.")
            assert not page.locator("h2", has_text="Needs attention").is_visible()
            entry = server.report(batch_id)["photos"][0]
            assert (entry["role"], entry["person"], entry["needs_review"]) == ("photo", "ANNA", False)

            page.click("button:has-text('Undo')")
            page.wait_for_selector("text=undone")
            entry = server.report(batch_id)["photos"][0]
            assert (entry["role"], entry["person"], entry["needs_review"]) == ("unassigned", None, True)
