"""Application factory. Importing this module starts nothing and opens nothing."""

import logging
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask

import cli
from blueprints import (
    admin,
    api,
    auth,
    dashboard,
    gallery,
    hardening,
    people,
    registration,
    review,
    school,
    uploads,
    web,
)
from data import storage
from data.config import Config
from data.database import configure_engine
from data.extensions import csrf, db, login_manager, migrate

ROOT = Path(__file__).resolve().parent


def engine_options(config: dict) -> dict:
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # pysqlite's own timeout is the busy_timeout too; keep the two in step.
        return {"connect_args": {"timeout": config["DB_BUSY_TIMEOUT_MS"] / 1000, "check_same_thread": False}}
    # REPEATABLE READ turns a lost update into a serialization error, which the retry cures,
    # so read-then-write units behave as they do under SQLite's single writer.
    # lock_timeout makes a blocked statement fail (and be retried) as busy_timeout does on SQLite.
    return {
        "pool_pre_ping": True,
        "pool_size": config["DB_POOL_SIZE"],
        "isolation_level": "REPEATABLE READ",
        "connect_args": {"options": f"-c lock_timeout={int(config['DB_BUSY_TIMEOUT_MS'])}"},
    }


def create_app(overrides: dict | None = None) -> Flask:
    load_dotenv(ROOT / ".env")
    config = Config()
    app = Flask(__name__, instance_path=str(config.DATA_DIR))
    app.config.from_object(config)
    app.config.update(overrides or {})
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config))
    storage.make_private(Path(app.config["DATA_DIR"]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    hardening.install(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    with app.app_context():
        configure_engine(db.engine, app.config["DB_BUSY_TIMEOUT_MS"])

    register_blueprints(app)
    web.register_error_handlers(app)
    cli.register(app)
    return app


def register_blueprints(app: Flask) -> None:
    for module in (auth, registration, dashboard, review, api, uploads, people, admin, school, gallery):
        app.register_blueprint(module.bp)
