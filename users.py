"""Staff accounts."""
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from extensions import db
from models import User
from states import UserRole

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
