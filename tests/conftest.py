"""Fixtures shared by every test folder. Nothing here builds an app or a database unless a test asks for
one, so `pytest tests/unit` runs without either (the app-building code lives in tests/support/apps.py)."""

import os
import shutil
from pathlib import Path

import pytest

# Config() keeps a generated key in the data directory when none is set; tests never want that.
os.environ.setdefault("SECRET_KEY", "test-secret")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_server():
    from tests.support import pgserver

    with pgserver.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    from tests.support.apps import migrate_to_head

    folder = tmp_path_factory.mktemp("template")
    path = folder / "template.sqlite3"
    migrate_to_head(folder, f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server, tmp_path_factory) -> str:
    from tests.support.apps import migrate_to_head

    url = pg_server.create_database("intake_template")
    migrate_to_head(tmp_path_factory.mktemp("pgtemplate"), url)
    return "intake_template"


@pytest.fixture
def database_url(request, tmp_path, sqlite_template) -> str:
    """A fresh, migrated database: a SQLite file, or (param "postgresql") a real PostgreSQL one."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        path = tmp_path / "intake.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    from tests.support.apps import new_pg_database

    return new_pg_database(request.getfixturevalue("pg_server").url, request.getfixturevalue("pg_template"))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def app(database_url, data_dir, monkeypatch):
    from data.extensions import db
    from tests.support.apps import IsolatedClient, build_app

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


@pytest.fixture
def staff(client):
    """The test client, logged in as a staff member."""
    from tests.support.factories import login, make_user

    make_user()
    assert login(client).status_code == 302
    return client


def pytest_generate_tests(metafunc):
    """Tests marked `both_databases` run on SQLite and on PostgreSQL."""
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize("database_url", BACKENDS, indirect=True)
