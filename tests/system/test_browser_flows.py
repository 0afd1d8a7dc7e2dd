"""The staff's flows in Chromium at laptop and phone size: menu, review by keyboard and by mouse, the
person picker, merging a twin, a parent registering; each page state checked by axe and for overflow."""

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.support.browser import chromium, log_in
from tests.support.liveserver import gunicorn
from tests.support.pagewalk import (
    ACCOUNTS,
    SIZES,
    axe_violations,
    horizontal_overflow,
    register_parent,
    seed_photo_day,
    walk_app,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory, sqlite_template):
    """One seeded photo day behind gunicorn for the module's flows."""
    folder = tmp_path_factory.mktemp("flows")
    shutil.copyfile(sqlite_template, folder / "intake.sqlite3")
    (folder / "data").mkdir()
    # Actions on more than 2 photos ask first, so a small seeded day can show the confirmation.
    database_url = f"sqlite:///{folder / 'intake.sqlite3'}"
    with gunicorn(folder / "data", database_url, workers=1, INTAKE_REVIEW_CONFIRM_OVER="2") as server:
        app = walk_app(server)
        yield server, seed_photo_day(app, server, folder)


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture(params=list(SIZES))
def admin_page(request, served, browser):
    server, _ = served
    context = browser.new_context(viewport=SIZES[request.param], bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, server.url, *ACCOUNTS["admin"])
    yield page
    context.close()


def assert_clean(page) -> None:
    assert horizontal_overflow(page) is None
    assert axe_violations(page) == []


def test_menu_leads_to_upload_at_both_sizes(admin_page, served):
    """The menu's Upload photos action opens the new-batch form (behind the menu button on a phone)."""
    assert admin_page.locator("#main-nav").is_visible() != admin_page.locator(".navbar-toggler").is_visible()
    open_menu(admin_page)
    admin_page.locator("#main-nav").get_by_role("link", name="Upload photos").click()
    expect(admin_page).to_have_url(re.compile(r"/batches/new$"), timeout=20_000)
    assert_clean(admin_page)


def open_menu(page) -> None:
    """On a phone the menu sits behind its button; like a person, tap an item once the menu has opened."""
    toggler = page.locator(".navbar-toggler")
    if toggler.is_visible():
        toggler.click()
        page.locator("#main-nav.collapse.show").wait_for()


def test_admin_pages_sit_in_one_admin_menu_and_log_out_in_the_user_menu(admin_page, served):
    """The header stays one line on a laptop; Admin opens a menu of the admin pages, the user's menu logs out."""
    header = admin_page.locator("header nav").bounding_box()
    if admin_page.viewport_size["width"] >= 1366:
        assert header["height"] < 80
    open_menu(admin_page)
    admin_page.get_by_role("button", name="Admin").click()
    admin_page.get_by_role("link", name="Yearbook").click()
    admin_page.wait_for_url("**/admin/yearbook")
    assert_clean(admin_page)
    open_menu(admin_page)
    admin_page.get_by_role("button", name=ACCOUNTS["admin"][0]).click()
    admin_page.get_by_role("button", name="Log out", exact=True).click()
    admin_page.wait_for_url("**/login**")


def test_review_by_keyboard(admin_page, served):
    """Arrows move between photos, Enter opens one large, arrows move there too, x excludes the photo shown."""
    server, day = served
    admin_page.goto(f"{server.url}/batches/{day.batch_id}/review")
    admin_page.locator(".thumb[data-name='IMG_0002.JPG'] input").first.focus()
    admin_page.keyboard.press("ArrowRight")
    assert admin_page.evaluate("document.activeElement.closest('.thumb').dataset.name") == "IMG_0003.JPG"
    admin_page.keyboard.press("Enter")
    viewer = admin_page.locator("#viewer")
    assert viewer.is_visible() and "IMG_0003.JPG" in admin_page.locator("#viewer-title").inner_text()
    assert_clean(admin_page)
    admin_page.keyboard.press("ArrowRight")
    assert "IMG_0004.JPG" in admin_page.locator("#viewer-title").inner_text()
    admin_page.keyboard.press("x")
    admin_page.wait_for_selector("text=photo(s) changed")
    history = admin_page.locator("#history-title ~ * tbody tr, section[aria-labelledby=history-title] tbody tr").first
    assert "exclude from delivery" in history.inner_text() and "IMG_0004.JPG" in history.inner_text()


def test_shift_click_selects_a_range_and_shows_it(admin_page, served):
    """Shift-click selects every photo between; a selected photo is marked in words, not colour alone."""
    server, day = served
    admin_page.goto(f"{server.url}/batches/{day.batch_id}/review")
    run = admin_page.locator("h3", has_text="ANNA").locator("xpath=following-sibling::div[1]")
    run.locator(".thumb[data-name='IMG_0002.JPG'] input").click()
    run.locator(".thumb[data-name='IMG_0004.JPG'] input").click(modifiers=["Shift"])
    assert admin_page.locator("#selection").inner_text() == "3 photos selected."
    marker = run.locator(".thumb[data-name='IMG_0003.JPG']").evaluate(
        "thumb => getComputedStyle(thumb, '::after').content"
    )
    assert "selected" in marker
    assert_clean(admin_page)


def test_picker_by_name_and_empty_apply(admin_page, served):
    """Apply with nothing selected explains itself; a name picked from the suggestions assigns the photo."""
    server, day = served
    admin_page.goto(f"{server.url}/batches/{day.batch_id}/review")
    admin_page.click("#correct-form button[type=submit]")
    admin_page.wait_for_selector("text=Select one or more photos first")
    admin_page.locator(".thumb[data-name='IMG_0001.JPG'] input").first.check()
    admin_page.fill("#code", "Ben")
    admin_page.wait_for_function("document.querySelector('#people option')?.value === 'Ben Cho (BEN)'")
    admin_page.fill("#code", "Ben Cho (BEN)")
    admin_page.click("#correct-form button[type=submit]")
    admin_page.wait_for_selector("text=photo(s) changed")
    assert "assign to person Ben Cho (BEN)" in admin_page.content()
    assert_clean(admin_page)


def test_parent_registers_on_a_phone(served, browser):
    """The sign-up form and the card fit a phone and pass axe."""
    server, _ = served
    context = browser.new_context(viewport=SIZES["phone"], bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.url}/register")
    assert_clean(page)
    register_parent(page, server, "phone-parent@example.com")
    assert page.locator(".person-card svg").is_visible()
    assert_clean(page)
    context.close()


def test_link_unknown_code_to_a_person_picked_by_name(admin_page, served):
    """The unknown code's photos go to the person typed by name (on the second size: already linked)."""
    server, day = served
    admin_page.goto(f"{server.url}/batches/{day.batch_id}/review")
    admin_page.fill("#link-code", "ZED")
    admin_page.fill("#link-person", "Carl Dahl")
    admin_page.click("button:has-text('Link')")
    admin_page.wait_for_selector("text=/now means this person|already belongs to someone/")
    assert admin_page.locator(".thumb .reason", has_text="unknown code ZED").count() == 0
    assert_clean(admin_page)


def test_twin_is_flagged_and_merged_by_name(admin_page, served, tmp_path, request):
    """A child on the roster twice is flagged as a likely duplicate and merged from its page, picked by name."""
    server, _ = served
    size = request.node.callspec.params["admin_page"]
    roster = tmp_path / "twins.csv"
    roster.write_text(f"code,name,email,group\nT1{size},Twin {size},,7C\nT2{size},Twin {size},,7C\n")
    assert server.flask("import-roster", str(roster)).returncode == 0
    admin_page.goto(f"{server.url}/people/duplicates")
    assert f"T2{size}" in admin_page.content()
    assert_clean(admin_page)
    admin_page.click(f"a[href='/person/T2{size}']")
    admin_page.fill("#merge-into", f"T1{size}")
    admin_page.click("button:has-text('Merge into them')")
    admin_page.wait_for_url(f"**/person/T1{size}")
    assert f"merged into Twin {size}" in admin_page.content()
    assert_clean(admin_page)


@pytest.mark.parametrize("size", list(SIZES))
def test_staff_open_a_photo_large_with_its_view_button(served, browser, size):
    """Staff (no corrections) open the large view by button, move with arrows, close with Escape."""
    server, day = served
    context = browser.new_context(viewport=SIZES[size], bypass_csp=True)
    page = context.new_page()
    log_in(page, server.url, *ACCOUNTS["staff"])
    page.goto(f"{server.url}/batches/{day.batch_id}/review")
    assert page.locator("input[name=photo_id]").count() == 0
    page.get_by_role("button", name="View IMG_0005.JPG large").first.click()
    assert "IMG_0005.JPG" in page.locator("#viewer-title").inner_text()
    assert_clean(page)
    page.keyboard.press("ArrowLeft")
    assert "IMG_0005.JPG" not in page.locator("#viewer-title").inner_text()
    page.keyboard.press("Escape")
    assert not page.locator("#viewer").is_visible()
    context.close()


def test_an_action_on_many_photos_asks_first(served, browser):
    """An action on more photos than the threshold asks first: "no" changes nothing, "yes" applies it."""
    server, day = served
    context = browser.new_context(viewport=SIZES["laptop"], bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    log_in(page, server.url, *ACCOUNTS["admin"])
    page.goto(f"{server.url}/batches/{day.batch_id}/review")
    run = page.locator("h3", has_text="ANNA").locator("xpath=following-sibling::div[1]")
    run.locator(".thumb[data-name='IMG_0002.JPG'] input").click()
    run.locator(".thumb[data-name='IMG_0004.JPG'] input").click(modifiers=["Shift"])
    page.fill("#code", "ANNA")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#correct-form button[type=submit]")
    assert asked == ["Apply this to 3 photos?"] and "photo(s) changed" not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#correct-form button[type=submit]")
    page.wait_for_selector("text=photo(s) changed")
    context.close()


def test_p_in_the_large_view_picks_the_yearbook_portrait(admin_page, served):
    """p on a photo shown large makes it its person's portrait; their page says so and goes back to the default."""
    server, day = served
    admin_page.goto(f"{server.url}/batches/{day.batch_id}/review")
    admin_page.locator(".thumb[data-name='IMG_0003.JPG'] input").first.focus()
    admin_page.keyboard.press("Enter")
    assert "IMG_0003.JPG" in admin_page.locator("#viewer-title").inner_text()
    admin_page.keyboard.press("p")
    admin_page.wait_for_selector("text=Yearbook portrait of Anna Berg picked")
    admin_page.goto(f"{server.url}/person/ANNA")
    portrait = admin_page.locator("#portrait")
    assert "IMG_0003.JPG" in portrait.inner_text() and "picked by an admin" in portrait.inner_text()
    assert_clean(admin_page)
    admin_page.get_by_role("button", name="Back to the default portrait").click()
    admin_page.wait_for_selector("text=back to the first photo after the card")
    assert "the first photo after the card" in admin_page.locator("#portrait").inner_text()
