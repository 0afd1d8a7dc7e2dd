"""A cookie-keeping HTTP client for tests and benches against a live server (urllib only)."""

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

TOKEN = re.compile(r'(?:name="csrf_token" value|data-csrf)="([^"]+)"')


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class WebClient:
    """One browser: its cookies, and CSRF tokens read from pages as a browser's forms carry them."""

    def __init__(self, base_url: str, follow_redirects: bool = True):
        handlers = [urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())]
        if not follow_redirects:
            handlers.append(_NoRedirects())
        self.base_url = base_url
        self.opener = urllib.request.build_opener(*handlers)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 60
    ) -> Reply:
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=timeout) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, dict(error.headers), error.read())

    def token(self, page: str) -> str:
        found = TOKEN.search(self.request("GET", page).text)
        assert found, f"no CSRF token on {page}"
        return found.group(1)

    def post_form(self, path: str, fields: dict, token_page: str | None = None) -> Reply:
        """Post a form as the page `token_page` (default: the same path) would."""
        data = urllib.parse.urlencode({**fields, "csrf_token": self.token(token_page or path)}).encode()
        return self.request("POST", path, data, {"Content-Type": "application/x-www-form-urlencoded"})

    def login(self, username: str, password: str) -> Reply:
        return self.post_form("/login", {"username": username, "password": password})

    def register(self, email: str, name: str = "Ada") -> Reply:
        return self.post_form("/register", {"name": name, "email": email, "group": "", "consent": "yes"})
