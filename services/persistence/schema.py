"""Schema versions by Alembic: revisions in migrations/versions/, applied per database.

Every database shard carries the same schema; `upgrade` brings one to the newest
revision (idempotent, safe to run from several processes at once on PostgreSQL: an
advisory lock serialises them, see migrations/env.py). `differences` compares a
database with models.py, so a model change without its revision is caught by a test.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import services.persistence.models  # noqa: F401  (registers the tables)

_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head() -> str:
    """The newest revision."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config()
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def differences(engine: Engine) -> list:
    """What models.py declares that the database lacks or has otherwise ([] when in step)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
