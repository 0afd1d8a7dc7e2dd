"""Staff accounts, their login sessions, and the limits on guessing passwords."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from data.extensions import db
from data.models import LoginAttempt, LoginSession, User, utcnow
from data.states import UserRole
from services.audit import audit
from services.tokens import token_digest

FAILURE_WINDOW = timedelta(minutes=15)
# Per account and address: the account's owner elsewhere is never refused because of someone's guesses.
MAX_FAILURES_PER_USER = 5
# Per address, any usernames: one machine trying many accounts.
MAX_FAILURES_PER_IP = 30
# A claim whose check never finished (its worker died) counts as a failure after this long.
CHECK_SECONDS = 30
MIN_PASSWORD = 8

# Same cost for an unknown user as for a wrong password, so timing does not reveal usernames.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")


class AccountError(ValueError):
    """A change to an account that cannot be made, with the reason for the admin."""


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many failed logins. Please wait {minutes} minutes and try again.")
        self.retry_after = retry_after


class LoginsInFlight(TooManyAttempts):
    """At the limit only because other logins are still being checked: worth waiting a moment."""


def checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"A password needs at least {MIN_PASSWORD} characters.")
    return generate_password_hash(password, method="scrypt")


def create_user(username: str, password: str, role: UserRole) -> User:
    """Create the account, or set its password and role (the command line's create-user)."""
    username = username.strip()
    if not username:
        raise AccountError("username must not be empty")
    password_hash = checked_password(password)  # refused before anything is changed
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username)
        db.session.add(user)
    user.password_hash = password_hash
    user.role = role
    db.session.flush()
    end_all_sessions(user.id)  # a new password logs out every existing session
    return user


def account_record(user: User) -> dict:
    """What the audit log keeps of an account: never the password hash."""
    return {"username": user.username, "role": user.role.value, "active": user.active}


def audited(action: str, user: User, acting_admin_id: int, before: dict | None) -> User:
    audit(acting_admin_id, action, "user", user.id, before, account_record(user))
    return user


def add_account(username: str, password: str, role: UserRole, acting_admin_id: int) -> User:
    """A new account from the admin pages; an existing username is refused, never overwritten."""
    if db.session.scalar(select(User.id).where(User.username == username.strip())) is not None:
        raise AccountError(f"There is already an account {username.strip()!r}.")
    if len(username.strip()) > 80 or not username.strip().isprintable():
        raise AccountError("A username has at most 80 printable characters.")
    return audited("account.created", create_user(username, password, role), acting_admin_id, None)


def accounts() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def locked_usernames() -> set[str]:
    """Accounts that some address may not try right now (for the admin's Unlock button)."""
    failures = (
        select(LoginAttempt.username)
        .where(LoginAttempt.at >= utcnow() - FAILURE_WINDOW)
        .group_by(LoginAttempt.username, LoginAttempt.ip)
        .having(func.count() >= MAX_FAILURES_PER_USER)
    )
    return set(db.session.scalars(failures))


def set_active(user_id: int, active: bool, acting_admin_id: int) -> User:
    user = db.get_or_404(User, user_id)
    if not active and user.id == acting_admin_id:
        raise AccountError("You cannot disable your own account.")
    before = account_record(user)
    user.active = active
    if not active:
        end_all_sessions(user.id)
    return audited("account.enabled" if active else "account.disabled", user, acting_admin_id, before)


def reset_password(user_id: int, password: str, acting_admin_id: int) -> User:
    user = db.get_or_404(User, user_id)
    user.password_hash = checked_password(password)
    end_all_sessions(user.id)
    return audited("account.password_reset", user, acting_admin_id, account_record(user))


def unlock(user_id: int, acting_admin_id: int) -> User:
    """Forget the failed logins for this account, from every address."""
    user = db.get_or_404(User, user_id)
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.username == user.username))
    return audited("account.unlocked", user, acting_admin_id, account_record(user))


def has_admin() -> bool:
    return db.session.scalar(select(User.id).where(User.role == UserRole.ADMIN).limit(1)) is not None


def start_session(user: User) -> None:
    """A session record of its own for this browser; its token goes into the login cookie."""
    user.login_token = secrets.token_urlsafe(24)
    db.session.add(LoginSession(user_id=user.id, token_hash=token_digest(user.login_token)))


def session_user(user_id: int, token: str) -> User | None:
    """The active user this login cookie belongs to, if its session still exists."""
    user = db.session.scalar(
        select(User)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(User.id == user_id, User.active.is_(True), LoginSession.token_hash == token_digest(token))
    )
    if user is not None:
        user.login_token = token
    return user


def end_session(user_id: int, token: str) -> None:
    db.session.execute(
        delete(LoginSession).where(LoginSession.user_id == user_id, LoginSession.token_hash == token_digest(token))
    )


def end_all_sessions(user_id: int) -> None:
    db.session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


@dataclass(frozen=True)
class Claim:
    id: int
    username: str
    ip: str


def claim_login(username: str, ip: str) -> Claim:
    """Count this attempt before its password is checked, so parallel guesses count each other.

    A claim in flight counts like a failure; the check then settles it. Claims take turns under the database's
    write lock (data/database.py), so each sees the ones committed before it. Raises TooManyAttempts when this
    account from this address, or this address overall, has used its failures in the window.
    """
    ip = ip[:45]
    now = utcnow()
    since = now - FAILURE_WINDOW
    counted = select(LoginAttempt).where(LoginAttempt.at >= since, LoginAttempt.ip == ip)
    for attempts, limit in (
        (db.session.scalars(counted.where(LoginAttempt.username == username)).all(), MAX_FAILURES_PER_USER),
        (db.session.scalars(counted).all(), MAX_FAILURES_PER_IP),
    ):
        if len(attempts) >= limit:
            refuse(attempts, limit, now)
    attempt = LoginAttempt(username=username, ip=ip, at=now, checking=True)
    db.session.add(attempt)
    db.session.flush()
    return Claim(attempt.id, username, ip)


def refuse(attempts: list[LoginAttempt], limit: int, now: datetime) -> None:
    fresh = now - timedelta(seconds=CHECK_SECONDS)
    failures = [a for a in attempts if not (a.checking and a.at >= fresh)]
    # The window slides: the oldest counted attempt leaving it makes room for one more.
    retry_after = int((min(a.at for a in attempts) + FAILURE_WINDOW - now).total_seconds()) + 1
    raise (LoginsInFlight if len(failures) < limit else TooManyAttempts)(retry_after)


def authenticate(username: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def settle_login(claim: Claim, user: User | None) -> None:
    """A failure stays counted; a success removes its claim and this address's settled failures for the
    account (claims still being checked settle themselves), and opens a session."""
    if user is None:
        db.session.execute(update(LoginAttempt).where(LoginAttempt.id == claim.id).values(checking=False))
        return
    db.session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.username == claim.username,
            LoginAttempt.ip == claim.ip,
            LoginAttempt.checking.is_(False) | (LoginAttempt.id == claim.id),
        )
    )
    start_session(db.session.merge(user))
