"""Migrations are the only way the schema changes: one head, an empty database upgrades, models match."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from data.extensions import db
from tests.support.apps import REPO

MIGRATIONS = str(REPO / "migrations")


def script_directory(app) -> ScriptDirectory:
    return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config(MIGRATIONS))


def test_single_head(app):
    """The migration history has exactly one head."""
    assert len(script_directory(app).get_heads()) == 1


@pytest.mark.both_databases
def test_models_match_migrations(app):
    """The migrated database has exactly the schema the models describe."""
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []


@pytest.mark.both_databases
def test_empty_database_upgrades_and_downgrades(app):
    """From empty to head and back to empty and to head again."""
    downgrade(directory=MIGRATIONS, revision="base")
    assert db.inspect(db.engine).get_table_names() == ["alembic_version"]
    upgrade(directory=MIGRATIONS)
    assert "photo" in db.inspect(db.engine).get_table_names()
