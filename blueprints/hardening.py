"""What holds for every route: a body size limit checked before anything reads the body, security headers,
private caching, HTTPS-aware cookies, and (through ProxyFix) the client's address and scheme as a trusted
proxy reports them."""

from flask import Flask, current_app, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.middleware.proxy_fix import ProxyFix

from blueprints.web import give_up_on_silent_clients

# No inline script or style, no plugins, no framing; the upload page's previews are blob: and data: images.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Shared by every visitor and free of anything personal: the only answers a shared cache may keep.
PUBLIC_ENDPOINTS = {"static", "api.health"}
# Routes that take more than a form (MAX_CONTENT_LENGTH): the setting for each, or a size in bytes.
# (The roster import sets its own limit in its blueprint.)
BODY_LIMITS = {
    "api.receive": "MAX_ZIP_UPLOAD_BYTES",
    "api.present": 8 * 1024 * 1024,  # 5,000 entries of {name (≤ 1,024), sha256, size}
}


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS (directly, or as a trusted proxy
    says), and always when SESSION_COOKIE_SECURE is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or (bool(request) and request.is_secure)


def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure and (seconds := current_app.config["HSTS_SECONDS"]):
        response.headers.setdefault("Strict-Transport-Security", f"max-age={seconds}; includeSubDomains")
    if request.endpoint not in PUBLIC_ENDPOINTS:
        # Pages and thumbnails behind a login, and cards, are for this browser only, never a shared cache.
        response.cache_control.public = False
        response.cache_control.private = True
    return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Routes whose body is one file, as it is: never a form.
RAW_BODY_ENDPOINTS = {"api.receive"}


class FormBody(UnsupportedMediaType):
    name = "Form body"
    description = "Send the file as the raw request body (application/octet-stream)."


def size_request_body(endpoint: str | None, _values) -> None:
    """The body limit of routes that take more than a form (URL value preprocessors run before any
    before_request). A form-typed body keeps the form limit even there: CSRFProtect would parse it, and a
    raw-body route refuses it outright (parsed and emptied, it would be stored as a 0-byte photo)."""
    limit = BODY_LIMITS.get(endpoint or "")
    if limit is None:
        return
    if request.mimetype in FORM_TYPES:
        if endpoint in RAW_BODY_ENDPOINTS:
            raise FormBody()
        return
    request.max_content_length = current_app.config[limit] if isinstance(limit, str) else limit


def refuse_oversized_body() -> None:
    """The first before_request (CSRFProtect's, which reads the form, comes after): a body over this route's
    limit is refused from its Content-Length, even by routes that never read one, and a body too large for
    the server to have read before the request began gets an idle timeout."""
    if (request.content_length or 0) > (request.max_content_length or 0) > 0:
        raise RequestEntityTooLarge()
    if request.content_length or request.headers.get("Transfer-Encoding"):
        give_up_on_silent_clients()


def trust_proxies(app: Flask) -> None:
    """X-Forwarded-For/-Proto are believed only from as many proxies as TRUSTED_PROXIES says are in front;
    with none (the default), a client cannot fake its address or HTTPS by sending the headers itself."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def install(app: Flask) -> None:
    """Before any extension registers its own hooks: the body limit must come before CSRF's form read."""
    app.session_interface = HttpsAwareSessionInterface()
    app.url_value_preprocessor(size_request_body)
    app.before_request(refuse_oversized_body)
    app.after_request(add_security_headers)
    trust_proxies(app)
