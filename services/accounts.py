"""Staff accounts and logging in."""

from datetime import timedelta

from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from data.extensions import db
from data.models import LoginAttempt, User, utcnow
from data.states import UserRole

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 30

# Same cost for an unknown user as for a wrong password, so timing does not reveal usernames.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")


def create_user(username: str, password: str, role: UserRole) -> User:
    username = username.strip()
    if not username:
        raise ValueError("username must not be empty")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username)
        db.session.add(user)
    user.password_hash = generate_password_hash(password, method="scrypt")
    user.new_session_token()  # a new password logs out every existing session
    user.role = role
    db.session.flush()
    return user


def authenticate(username: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def has_admin() -> bool:
    return db.session.scalar(select(User.id).where(User.role == UserRole.ADMIN).limit(1)) is not None


class TooManyAttempts(Exception):
    pass


def check_login_rate(username: str, ip: str) -> None:
    since = utcnow() - FAILURE_WINDOW
    recent = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.at >= since)
    if (
        db.session.scalar(recent.where(LoginAttempt.username == username)) >= MAX_FAILURES_PER_USER
        or db.session.scalar(recent.where(LoginAttempt.ip == ip)) >= MAX_FAILURES_PER_IP
    ):
        raise TooManyAttempts("Too many failed logins. Please wait 15 minutes and try again.")


def check_login(username: str, password: str, ip: str) -> User | None:
    """Authenticate within the rate limit. Read-only: the slow password hash must not be computed
    while holding the database's write lock."""
    check_login_rate(username, ip)
    return authenticate(username, password)


def record_login(username: str, ip: str, succeeded: bool) -> None:
    """A failure counts towards the limit; a success clears the user's record."""
    if succeeded:
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
    else:
        db.session.add(LoginAttempt(username=username, ip=ip[:45]))
