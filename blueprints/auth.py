"""Staff login and logout."""

import secrets
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from blueprints.web import staff_required
from data.database import db_commit_with_retry, db_retry, run_in_transaction
from data.extensions import db, login_manager
from data.models import User
from services.accounts import TooManyAttempts, check_login, record_login

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login_form"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The cookie names the user and their current session token; an old token is logged out."""
    number, _, token = user_id.partition(":")
    if not number.isdigit() or not token:
        return None
    user = db.session.get(User, int(number))
    if user is None or not user.active or not secrets.compare_digest(user.session_token, token):
        return None
    return user


@bp.get("/login")
def login_form():
    return render_template("auth/login.html")


@bp.post("/login")
def login():
    """Not one retried unit: the password check runs as a read, the outcome is written after."""
    username = request.form.get("username", "").strip()[:80]
    ip = request.remote_addr or ""
    try:
        user = run_in_transaction(check_login, username, request.form.get("password", ""), ip, read_only=True)
    except TooManyAttempts as error:
        flash(str(error), "error")
        return render_template("auth/login.html"), 429
    db_commit_with_retry(record_login, username, ip, user is not None)
    if user is None:
        flash("Wrong username or password.", "error")
        return render_template("auth/login.html"), 401
    login_user(user)
    return redirect(safe_next(request.args.get("next")))


@bp.post("/logout")
@staff_required
@db_retry
def logout():
    """Ends this session and every copy of its cookie."""
    current_user.new_session_token()
    logout_user()
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
