"""Alembic environment of the persistence schema (identical on every database shard).

The service and `python -m services.persistence.migrate` run it through
services/persistence/schema.py, which hands over an open connection per shard. The
alembic command line works too, for one database at a time, e.g. to write a revision:

    .venv/bin/alembic -c services/persistence/alembic.ini -x url=postgresql+psycopg://... \
        revision --autogenerate -m "what changes"
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import services.persistence.models  # noqa: F401  (registers the tables on SQLModel.metadata)

# Any constant: serialises concurrent upgrades of one database (replicas starting at once).
_PG_LOCK_KEY = 7_041_221_311


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("BOURSE_DB_URLS", "").split(",")[0]
    if not url:
        raise SystemExit("give the database: -x url=... or BOURSE_DB_URLS")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
