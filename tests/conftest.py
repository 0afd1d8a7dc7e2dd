"""Fixtures: an app on a fresh migrated database (SQLite file, and a real PostgreSQL), factories."""

import itertools
import os
import shutil
from pathlib import Path

import flask_migrate
import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from app import create_app
from extensions import db
from tests import pgserver

REPO = Path(__file__).resolve().parents[1]
# Config() keeps a generated key in the data directory when none is set; tests never want that.
os.environ.setdefault("SECRET_KEY", "test-secret")
BACKENDS = ["sqlite", "postgresql"]
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


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    with pgserver.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    path = folder / "template.sqlite3"
    migrate_to_head(folder, f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server, tmp_path_factory) -> str:
    url = pg_server.create_database("intake_template")
    migrate_to_head(tmp_path_factory.mktemp("pgtemplate"), url)
    return "intake_template"


def new_pg_database(pg_server, template: str) -> str:
    name = f"intake_test_{os.getpid()}_{next(_counter)}"
    admin = make_url(pg_server.url)
    with psycopg.connect(
        host=admin.host, port=admin.port, user=admin.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return admin.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def database_url(request, tmp_path, sqlite_template) -> str:
    """A fresh, migrated database: a SQLite file, or (param "postgresql") a real PostgreSQL one."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        path = tmp_path / "intake.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    pg = request.getfixturevalue("pg_server")
    return new_pg_database(pg, request.getfixturevalue("pg_template"))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


class IsolatedClient(FlaskClient):
    """Each request in its own app context, as in production: `g` (where Flask-Login keeps the
    user) and the database session are not shared with the test's context or other clients."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def app(database_url, data_dir, monkeypatch):
    app = build_app(data_dir, database_url, monkeypatch, WTF_CSRF_ENABLED=False)
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def pytest_generate_tests(metafunc):
    """Tests marked `both_databases` run on SQLite and on PostgreSQL."""
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize("database_url", BACKENDS, indirect=True)
