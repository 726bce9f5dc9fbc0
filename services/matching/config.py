"""Matching shard settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import ShardMap, env, env_int, symbols_from_env
from services.matching.direct_writes import is_postgres


@dataclass(frozen=True)
class MatchingSettings:
    shard_index: int
    address: str
    persistence_address: str
    redis_url: str
    # The symbols this shard owns -> engine symbol id (ids are stable across the listing).
    symbols: dict[str, int]
    write_timeout_s: float
    startup_timeout_s: float
    drain_seconds: float
    snapshot_every: int
    batch_linger_s: float
    # Least time between two market-data sends to Redis (books conflate, trades queue).
    market_data_interval_s: float
    # The shard's home database (BOURSE_DB_URLS[shard % len]) when it is PostgreSQL: the
    # shard commits its batches there itself (direct_writes.py); None: through persistence.
    direct_db_url: str | None = None

    @classmethod
    def from_env(cls) -> MatchingSettings:
        shard_map = ShardMap.from_env()
        index = env_int("BOURSE_SHARD_INDEX", 0)
        if not 0 <= index < len(shard_map):
            raise SystemExit(f"BOURSE_SHARD_INDEX must be 0-{len(shard_map) - 1}, got {index}")
        return cls(
            shard_index=index,
            address=env("BOURSE_MATCHING_ADDR", "127.0.0.1:50060"),
            persistence_address=env("BOURSE_PERSISTENCE_ADDR", "127.0.0.1:50070"),
            redis_url=env("BOURSE_REDIS_URL", "redis://127.0.0.1:6379/0"),
            symbols=shard_map.book_ids_of(index, symbols_from_env()),
            write_timeout_s=env_int("BOURSE_WRITE_TIMEOUT_MS", 3000) / 1000,
            startup_timeout_s=env_int("BOURSE_STARTUP_TIMEOUT_MS", 60000) / 1000,
            drain_seconds=env_int("BOURSE_DRAIN_MS", 2000) / 1000,
            snapshot_every=env_int("BOURSE_SNAPSHOT_EVERY", 100_000),
            batch_linger_s=env_int("BOURSE_BATCH_LINGER_US", 1000) / 1e6,
            market_data_interval_s=env_int("BOURSE_MARKET_DATA_INTERVAL_MS", 20) / 1000,
            direct_db_url=_home_db(index),
        )


def _home_db(shard_index: int) -> str | None:
    urls = [u.strip() for u in env("BOURSE_DB_URLS", "").split(",") if u.strip()]
    if not urls or env("BOURSE_DIRECT_WRITES", "1") == "0":
        return None
    url = urls[shard_index % len(urls)]  # where persistence keeps this shard's journal (store.home_of)
    return url if is_postgres(url) else None
