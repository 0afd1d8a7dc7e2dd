"""Staff login and logout; the guards other blueprints use."""
import functools

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from database import db_retry
from extensions import db, login_manager
from models import User
from users import TooManyAttempts, log_in

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


@login_manager.unauthorized_handler
def unauthorized():
    """Pages send people to the login form; API clients get a plain 401."""
    if request.path.startswith("/api/"):
        return jsonify({"error": "login required"}), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def admin_required(view):
    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
@db_retry
def login():
    if request.method == "POST":
        try:
            user = log_in(request.form.get("username", ""), request.form.get("password", ""),
                          request.remote_addr or "")
        except TooManyAttempts as error:
            flash(str(error), "error")
            return render_template("auth/login.html"), 429
        if user is not None:
            login_user(user)
            return redirect(safe_next(request.args.get("next")))
        flash("Wrong username or password.", "error")
        return render_template("auth/login.html"), 401
    return render_template("auth/login.html")


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after login is a phishing tool."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("dashboard.index")
