"""Headless Debian Chromium driven by Playwright (never a downloaded browser)."""

from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.support.factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialing Google, which this network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium():
    if not CHROMIUM.exists():
        raise RuntimeError("Debian's chromium is not installed: run scripts/bootstrap --dev")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def log_in_and_create_batch(page: Page, base_url: str) -> int:
    """Log in as the factories' staff user and create a batch; returns its id."""
    log_in(page, base_url, "staff", PASSWORD)
    page.goto(f"{base_url}/batches/new")
    page.fill("input[name=label]", "Camera 1")
    page.click("text=Create and upload")
    page.wait_for_url("**/batches/*/upload")
    return int(page.url.rstrip("/").split("/")[-2])


def add_folder(page: Page, folder: Path) -> None:
    page.set_input_files("#uppy-dashboard input[webkitdirectory]", folder)
