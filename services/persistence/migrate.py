"""Schema tool: `python -m services.persistence.migrate` upgrades every database of
BOURSE_DB_URLS to the newest Alembic revision (migrations/versions/; see schema.py).
Idempotent. A schema change is a new revision: edit models.py, then

    .venv/bin/alembic -c services/persistence/alembic.ini -x url=<a migrated database> \
        revision --autogenerate -m "what changes"

review the generated file, and the schema test fails until models and revisions agree."""

from __future__ import annotations

import sys

from services.persistence import schema
from services.persistence.config import Settings
from services.persistence.store import ShardedStore, StoreUnavailable


def main() -> int:
    settings = Settings.from_env()
    store = ShardedStore(settings.db_urls, settings.shard_map, pool_size=1)
    try:
        store.create_schema()
    except StoreUnavailable as e:
        print(f"migrate: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"migrate: schema up to date on {len(settings.db_urls)} database(s) (revision {schema.head()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
