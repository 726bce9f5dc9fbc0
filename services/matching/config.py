"""Matching shard settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.config import ShardMap, addresses, env, env_int, symbols_from_env
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
    # Every shard this process serves -> its symbols (book ids). shard_index is the first
    # of them, symbols their union (one pod per shard: that shard's).
    hosted: dict[int, dict[str, int]] = field(default_factory=dict)
    # Each shard's home database (BOURSE_DB_URLS[shard % len]) when it is PostgreSQL: the
    # shard commits its batches there itself (direct_writes.py); None: through persistence.
    direct_db_urls: dict[int, str | None] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> MatchingSettings:
        shard_map = ShardMap.from_env()
        indexes = _shard_indexes(env("BOURSE_SHARD_INDEX", "0"), len(shard_map))
        listed = symbols_from_env()
        hosted = {index: shard_map.book_ids_of(index, listed) for index in indexes}
        index = indexes[0]
        return cls(
            shard_index=index,
            address=env("BOURSE_MATCHING_ADDR", "127.0.0.1:50060"),
            persistence_address=env("BOURSE_PERSISTENCE_ADDR", "127.0.0.1:50070"),
            redis_url=env("BOURSE_REDIS_URL", "redis://127.0.0.1:6379/0"),
            symbols={symbol: book for books in hosted.values() for symbol, book in books.items()},
            write_timeout_s=env_int("BOURSE_WRITE_TIMEOUT_MS", 3000) / 1000,
            startup_timeout_s=env_int("BOURSE_STARTUP_TIMEOUT_MS", 60000) / 1000,
            drain_seconds=env_int("BOURSE_DRAIN_MS", 2000) / 1000,
            snapshot_every=env_int("BOURSE_SNAPSHOT_EVERY", 100_000),
            batch_linger_s=env_int("BOURSE_BATCH_LINGER_US", 3000) / 1e6,
            market_data_interval_s=env_int("BOURSE_MARKET_DATA_INTERVAL_MS", 20) / 1000,
            hosted=hosted,
            direct_db_urls={i: _home_db(i) for i in indexes},
        )


def _shard_indexes(raw: str, shards: int) -> tuple[int, ...]:
    """`2` or `0,1,2`: the shards this process serves (a small machine runs them all in
    one process: the internal hop then costs a message per batch, not one per shard)."""
    try:
        indexes = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise SystemExit(f"BOURSE_SHARD_INDEX must be shard numbers separated by commas, got {raw!r}") from None
    for index in indexes:
        if not 0 <= index < shards:
            raise SystemExit(f"BOURSE_SHARD_INDEX must be 0-{shards - 1}, got {index}")
    if len(set(indexes)) != len(indexes):
        raise SystemExit(f"BOURSE_SHARD_INDEX names a shard twice: {raw!r}")
    return indexes


def _home_db(shard_index: int) -> str | None:
    urls = addresses(env("BOURSE_DB_URLS", ""))
    if not urls or env("BOURSE_DIRECT_WRITES", "1") == "0":
        return None
    url = urls[shard_index % len(urls)]  # where persistence keeps this shard's journal (store.home_of)
    return url if is_postgres(url) else None
