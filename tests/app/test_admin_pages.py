"""Admin pages around the photo day: the public sign-up address, the poster, the System page; error pages."""

import pytest

from data.states import UserRole
from tests.support.factories import login, make_user


@pytest.fixture
def admin(client):
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    return client


def test_public_address_is_on_settings_and_the_poster(app, admin):
    """INTAKE_PUBLIC_URL is the sign-up address shown on Settings and encoded on the printable poster."""
    app.config["PUBLIC_URL"] = "https://photos.school.example"
    settings = admin.get("/admin/settings").get_data(as_text=True)
    assert "https://photos.school.example/register" in settings and "INTAKE_PUBLIC_URL" not in settings
    poster = admin.get("/admin/poster").get_data(as_text=True)
    assert "https://photos.school.example/register" in poster and "<svg" in poster


def test_without_a_public_address_settings_warns(admin):
    """With no INTAKE_PUBLIC_URL the settings page says the local address may not reach phones."""
    assert "INTAKE_PUBLIC_URL" in admin.get("/admin/settings").get_data(as_text=True)


def test_system_page_is_for_admins(client):
    """The database figures are on the admin System page; staff are refused."""
    make_user("staff")
    login(client)
    assert client.get("/admin/system").status_code == 403
    make_user("admin", UserRole.ADMIN)
    login(client, "admin")
    page = client.get("/admin/system").get_data(as_text=True)
    assert "Write-ahead log" in page and "Lock waits" in page


def test_unknown_address_is_a_styled_page_or_json(client):
    """A 404 is the app's page (with its menu) for people and the JSON error shape for the API."""
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "Page not found" in page.get_data(as_text=True)
    assert "bootstrap.min.css" in page.get_data(as_text=True)
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404 and api.get_json()["error"] == "not-found"
