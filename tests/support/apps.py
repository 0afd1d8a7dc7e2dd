"""Building the app for tests: its environment, fresh migrated databases, a client that acts like a browser."""

import itertools
import os
from pathlib import Path

import flask_migrate
import psycopg
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from app import create_app
from data.extensions import db

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()


def app_environment(data_dir: Path, database_url: str) -> dict[str, str]:
    """The environment a test app (or a gunicorn/CLI subprocess) runs with."""
    return {
        "INTAKE_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret",
        "INTAKE_PROCESSOR": "0",
        "INTAKE_SCAN_WORKERS": "1",
        "DB_BUSY_TIMEOUT_MS": "2000",
        # Tests look at the dashboard right after changing something: no figures shared between polls.
        "INTAKE_DASHBOARD_SHARED_SECONDS": "0",
    }


def build_app(data_dir: Path, database_url: str, monkeypatch=None, **overrides):
    env = app_environment(data_dir, database_url)
    for key, value in env.items():
        if monkeypatch is not None:
            monkeypatch.setenv(key, value)
        else:
            os.environ[key] = value
    return create_app({"TESTING": True, **overrides})


def migrate_to_head(data_dir: Path, database_url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "DATA_DIR": data_dir, "SECRET_KEY": "x"})
    with app.app_context():
        flask_migrate.upgrade(directory=str(REPO / "migrations"))
        db.engine.dispose()


def new_pg_database(server_url: str, template: str) -> str:
    name = f"intake_test_{os.getpid()}_{next(_counter)}"
    admin = make_url(server_url)
    with psycopg.connect(
        host=admin.host, port=admin.port, user=admin.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return admin.set(database=name).render_as_string(hide_password=False)


def sqlite_file(app) -> str:
    """The path of a test app's SQLite database."""
    return make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database


class IsolatedClient(FlaskClient):
    """Each request in its own app context, as in production: `g` (where Flask-Login keeps the
    user) and the database session are not shared with the test's context or other clients."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)
