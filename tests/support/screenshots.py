"""`scripts/screenshots [FOLDER]`: a screenshot of every page, per role, at laptop and phone size, on a
seeded photo day (the same walk as the accessibility test), with each page's axe-core findings."""

import json
import os
import sys
import tempfile
from pathlib import Path

from tests.support.apps import migrate_to_head
from tests.support.browser import chromium
from tests.support.liveserver import gunicorn
from tests.support.pagewalk import (
    axe_violations,
    horizontal_overflow,
    page_paths,
    screenshot_name,
    seed_photo_day,
    visits,
    walk_app,
)

DEFAULT_FOLDER = Path("screenshots")


def main(folder: Path) -> int:
    os.environ.setdefault("SECRET_KEY", "screenshots")  # else the app keeps a generated key on disk

    folder.mkdir(parents=True, exist_ok=True)
    findings = {}
    with tempfile.TemporaryDirectory(prefix="intake-screens-") as scratch:
        scratch = Path(scratch)
        data_dir = scratch / "data"
        database_url = f"sqlite:///{scratch / 'intake.sqlite3'}"
        migrate_to_head(data_dir, database_url)
        with gunicorn(data_dir, database_url, workers=1) as server, chromium() as browser:
            app = walk_app(server)
            paths = page_paths(app, seed_photo_day(app, server, scratch))
            for visit in visits(browser, server, paths):
                name = screenshot_name(visit)
                visit.page.screenshot(path=folder / name, full_page=True)
                findings[name] = {"overflow": horizontal_overflow(visit.page), "axe": axe_violations(visit.page)}
                print(name, "ok" if not any(findings[name].values()) else findings[name])
    (folder / "findings.json").write_text(json.dumps(findings, indent=2))
    print(f"{len(findings)} screenshots in {folder}/, axe and overflow findings in {folder}/findings.json")
    return 1 if any(any(f.values()) for f in findings.values()) else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER))
