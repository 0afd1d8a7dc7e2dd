"""Every page, as anonymous, staff and admin, at laptop and phone size: axe-core finds no serious or
critical violation, and nothing scrolls sideways."""

import pytest

from tests.support.browser import chromium
from tests.support.liveserver import gunicorn
from tests.support.pagewalk import (
    MISSING_PAGE,
    axe_violations,
    horizontal_overflow,
    page_paths,
    seed_photo_day,
    visits,
    walk_app,
)

pytestmark = pytest.mark.slow


def test_every_page_passes_axe_and_fits_a_phone(database_url, data_dir, tmp_path):
    """Each GET page of the app, for each role that may see it, at 1366x768 and 390x844."""
    with gunicorn(data_dir, database_url, workers=1) as server:
        app = walk_app(server)
        day = seed_photo_day(app, server, tmp_path)
        paths = page_paths(app, day)
        assert {"/", "/batches", f"/batches/{day.batch_id}/review", "/admin/system", MISSING_PAGE} <= set(paths)
        problems, seen = [], set()
        with chromium() as browser:
            for visit in visits(browser, server, paths):
                seen.add((visit.role, visit.path))
                if overflow := horizontal_overflow(visit.page):
                    problems.append((visit.role, visit.size, visit.path, overflow))
                problems += [(visit.role, visit.size, visit.path, v) for v in axe_violations(visit.page)]
        assert problems == [], "\n".join(map(str, problems))
        # Each role saw its pages: the walk did not silently skip them.
        assert ("anonymous", "/register") in seen and ("staff", "/batches/new") in seen
        assert ("admin", "/admin/settings") in seen and ("staff", "/admin/settings") not in seen
