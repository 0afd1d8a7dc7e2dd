"""The JSON API's one error shape."""

import pytest


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/api/dashboard", 401, "login"),
        ("GET", "/api/people?q=a", 401, "login"),
        ("POST", "/api/batches/1/complete", 401, "login"),
        ("GET", "/api/no-such-thing", 404, "not-found"),
        ("POST", "/api/health", 405, "method-not-allowed"),
    ],
)
def test_api_errors_have_one_shape(client, method, path, status, error):
    """Every /api error, the login manager's 401 included, is {"error", "message"} with a fitting status."""
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.json["error"] == error
    assert set(response.json) == {"error", "message"} and response.json["message"]


def test_pages_still_send_people_to_the_login_form(client):
    """A page visited without a login redirects to the form instead of answering JSON."""
    response = client.get("/people")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
