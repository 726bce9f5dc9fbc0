"""Schema tool: `python -m services.persistence.migrate` creates missing tables and
indexes on every shard of BOURSE_DB_URLS. Idempotent; it never drops or alters a
column (a changed column needs a hand-written migration)."""

from __future__ import annotations

import sys

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
    print(f"migrate: schema up to date on {len(settings.db_urls)} database(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
