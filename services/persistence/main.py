"""Persistence service process: `python -m services.persistence.main`.

Env: BOURSE_DB_URLS (comma-separated SQLAlchemy URLs, index = database shard),
BOURSE_SHARD_RANGES, BOURSE_PERSISTENCE_ADDR (default 127.0.0.1:50070),
BOURSE_JOURNAL_PRUNE (default on; off keeps every journal entry).
"""

from __future__ import annotations

import asyncio
import time

from services.common import logs, metrics, tracing
from services.common.server import Lifecycle, Service, run, serve
from services.persistence.config import Settings
from services.persistence.service import SERVICE_NAME, PersistenceServicer, register
from services.persistence.store import ShardedStore, StoreUnavailable


async def main() -> None:
    settings = Settings.from_env()
    log = logs.configure("persistence")
    if (spans_to := tracing.configure("persistence")) is not None:  # BOURSE_OTLP_ENDPOINT
        log.info("tracing", exporting_to=spans_to)
    store = ShardedStore(settings.db_urls, settings.shard_map, pool_size=settings.pool_size,
                         journal_prune=settings.journal_prune)

    watcher: list[asyncio.Task] = []

    async def ready() -> None:
        # Databases may start after us (local stack, Kubernetes): wait, then create the
        # schema (idempotent) before reporting SERVING.
        deadline = time.monotonic() + settings.startup_wait_seconds
        while True:
            try:
                await asyncio.to_thread(store.create_schema)
                log.info("schema_ready", databases=len(settings.db_urls))
                if metrics.enabled():
                    watcher.append(asyncio.create_task(
                        metrics.watch_journals(store.shard_state, len(settings.shard_map), log)))
                return
            except StoreUnavailable as e:
                if time.monotonic() > deadline:
                    raise SystemExit(f"databases unavailable at startup: {e}") from e
                log.warning("waiting_for_database", error=str(e))
                await asyncio.sleep(1.0)

    async def closing() -> None:
        for task in watcher:
            task.cancel()
        await asyncio.to_thread(store.close)

    servicer = PersistenceServicer(store, log)

    async def draining() -> None:
        servicer.draining.set()
    await serve(
        [Service(SERVICE_NAME, register(servicer))],
        settings.address,
        log,
        drain_seconds=settings.drain_seconds,
        lifecycle=Lifecycle(ready=ready, draining=draining, closing=closing),
    )


if __name__ == "__main__":
    run(main)
