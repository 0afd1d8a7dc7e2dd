"""Settings that admins change while the app runs (environment settings live in config.py)."""

from typing import Any

from sqlalchemy import select

from data.database import upsert
from data.extensions import db
from data.models import Setting

_READ = "stored_settings"  # session.info key: (the transaction they were read in, the settings)


def stored_settings() -> dict[str, Any]:
    """Every stored setting, read once per transaction: one request asks for several, and a setting left at
    its default has no row, which a lookup by key would ask the database for every time."""
    read = db.session.info.get(_READ)
    if read is None or read[0] is not db.session().get_transaction():
        values = dict(db.session.execute(select(Setting.key, Setting.value)).tuples().all())
        read = db.session.info[_READ] = (db.session().get_transaction(), values)
    return read[1]


def read_setting(key: str, default: Any = None) -> Any:
    return stored_settings().get(key, default)


def write_setting(key: str, value: Any) -> None:
    """One statement by key, so two admins saving at once are one retried conflict, not a duplicate."""
    upsert(Setting, {"key": key}, {"value": value})
    db.session.info.pop(_READ, None)
