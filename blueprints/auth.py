"""Staff login and logout (of this browser, or everywhere)."""

import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from blueprints.web import staff_required
from data.database import db_commit_with_retry, db_retry, run_in_transaction
from data.extensions import login_manager
from data.models import User
from services import accounts

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login_form"
# A burst of logins to one shared account waits this long at most for the checks ahead of it (a check
# takes 0.1-0.3 s of CPU, so ten laptops at once on a busy 2-core machine need a few seconds).
IN_FLIGHT_PATIENCE_SECONDS = 15.0


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The cookie names the user and this browser's session record; a session ended anywhere is logged out."""
    number, _, token = user_id.partition(":")
    if not number.isdigit() or not token:
        return None
    return accounts.session_user(int(number), token)


@bp.get("/login")
def login_form():
    return render_template("auth/login.html")


def claim_attempt(username: str, ip: str) -> accounts.Claim:
    """Claim a place under the limits; while the limit is full only of logins still being checked (staff
    logging in together on one account), wait for them rather than refuse."""
    deadline = time.monotonic() + IN_FLIGHT_PATIENCE_SECONDS
    while True:
        try:
            return db_commit_with_retry(accounts.claim_login, username, ip)
        except accounts.LoginsInFlight:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@bp.post("/login")
def login():
    """Claimed, checked, settled: three short units, so the slow password check holds no write lock."""
    username = request.form.get("username", "").strip()[:80]
    ip = request.remote_addr or ""
    try:
        claim = claim_attempt(username, ip)
    except accounts.TooManyAttempts as error:
        flash(str(error), "error")
        return render_template("auth/login.html"), 429, {"Retry-After": str(error.retry_after)}
    user = run_in_transaction(accounts.authenticate, username, request.form.get("password", ""), read_only=True)
    db_commit_with_retry(accounts.settle_login, claim, user)
    if user is None:
        flash("Wrong username or password.", "error")
        return render_template("auth/login.html"), 401
    # A new session: nothing from before the login survives, the CSRF secret included (and the token
    # Flask-WTF caches for this request, made from the old secret).
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    login_user(user)
    return redirect(safe_next(request.args.get("next")))


@bp.post("/logout")
@staff_required
@db_retry
def logout():
    """Ends this browser's session; other browsers of the same account stay logged in."""
    accounts.end_session(current_user.id, current_user.login_token)
    return logged_out()


@bp.post("/logout/everywhere")
@staff_required
@db_retry
def logout_everywhere():
    """Ends every session of this account, on every device (a lost laptop, a shared password)."""
    accounts.end_all_sessions(current_user.id)
    return logged_out()


def logged_out():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login_form"))


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after login is a phishing tool. Browsers drop tabs and
    newlines and read a backslash as a slash, so anything like that is refused outright."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and target.isprintable()
        and "\\" not in target
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("dashboard.index")
