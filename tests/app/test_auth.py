"""Staff login: passwords, rate limit, safe redirects, logout."""

from tests.support.factories import PASSWORD, login, make_user


def test_login_and_logout(client):
    """Right password logs in and redirects to the dashboard; logout ends the session."""
    make_user()
    response = login(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/logout")
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client):
    """A wrong password or unknown user gets 401 and the same message."""
    make_user()
    assert login(client, password="wrong password").status_code == 401
    assert login(client, username="nobody").status_code == 401


def test_login_attempts_are_rate_limited(client):
    """After five failures for a user, even the right password is refused for a while."""
    make_user()
    for _ in range(5):
        assert login(client, password="nope nope").status_code == 401
    response = login(client, password=PASSWORD)
    assert response.status_code == 429 and b"Too many failed logins" in response.data


def test_next_parameter_cannot_leave_the_site(client):
    """?next= only accepts same-site paths: no open redirect."""
    make_user()
    response = client.post("/login?next=//evil.example/x", data={"username": "staff", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_forged_post_without_csrf_token_is_refused(app, client):
    """With CSRF on (as in production), a form post without the token is refused."""
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/register", data={"name": "A", "email": "a@b.c", "consent": "yes"})
    assert response.status_code == 400
