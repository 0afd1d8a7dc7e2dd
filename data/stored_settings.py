"""Settings that admins change while the app runs (environment settings live in config.py)."""

from typing import Any

from data.database import upsert
from data.extensions import db
from data.models import Setting


def read_setting(key: str, default: Any = None) -> Any:
    setting = db.session.get(Setting, key)
    return default if setting is None else setting.value


def write_setting(key: str, value: Any) -> None:
    """One statement by key, so two admins saving at once are one retried conflict, not a duplicate."""
    upsert(Setting, {"key": key}, {"value": value})
