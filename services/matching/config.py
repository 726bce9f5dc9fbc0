"""Matching shard settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from services.common.config import ShardMap, addresses, symbols_from_env
from services.common.settings import Downstream
from services.matching import forked_snapshot
from services.matching.direct_writes import is_postgres
from services.matching.shard import DONE_KEPT


class MatchingEnv(Downstream):
    """A matching process's variables (BOURSE_*), beyond the shared ones."""

    matching_addr: str = "127.0.0.1:50060"
    shard_index: str = "0"  # the shards this process serves: `2`, or `0,1,2`
    db_urls: str = ""  # each shard's home database: the shard commits there itself when PostgreSQL
    direct_writes: bool = True
    # With direct writes the shard stores its snapshots itself, pruning the journal they no
    # longer need unless this is off (the persistence service's setting of the same name).
    journal_prune: bool = True
    write_timeout_ms: int = Field(3000, gt=0)
    snapshot_every: int = Field(100_000, gt=0)
    # Snapshots encoded by a forked child (forked_snapshot.py); off: on a thread of the
    # process, holding the shard's batches while the state is copied.
    snapshot_in_child: bool = True
    finished_kept: int = Field(DONE_KEPT, gt=0)  # finished orders a shard remembers (shard.py)
    market_data_interval_ms: int = Field(20, ge=0)
    # How long a shard's group commit waits for company (once its last commit had several
    # callers); unset: BOURSE_BATCH_LINGER_US, the order replicas' linger too.
    commit_linger_us: int | None = Field(None, ge=0)

    def commit_linger_s(self) -> float:
        return (self.batch_linger_us if self.commit_linger_us is None else self.commit_linger_us) / 1e6


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
    snapshot_in_child: bool
    finished_kept: int
    batch_linger_s: float
    # Least time between two market-data sends to Redis (books conflate, trades queue).
    market_data_interval_s: float
    # Every shard this process serves -> its symbols (book ids). shard_index is the first
    # of them, symbols their union (one pod per shard: that shard's).
    hosted: dict[int, dict[str, int]] = field(default_factory=dict)
    # Each shard's home database (BOURSE_DB_URLS[shard % len]) when it is PostgreSQL: the
    # shard commits its batches there itself (direct_writes.py); None: through persistence.
    direct_db_urls: dict[int, str | None] = field(default_factory=dict)
    journal_prune: bool = True

    @classmethod
    def from_env(cls) -> MatchingSettings:
        env = MatchingEnv.load()
        shard_map = ShardMap.parse(env.shard_ranges)
        indexes = _shard_indexes(env.shard_index, len(shard_map))
        listed = symbols_from_env()
        hosted = {index: shard_map.book_ids_of(index, listed) for index in indexes}
        return cls(
            shard_index=indexes[0],
            address=env.matching_addr,
            persistence_address=env.persistence_addr,
            redis_url=env.redis_url,
            symbols={symbol: book for books in hosted.values() for symbol, book in books.items()},
            write_timeout_s=env.write_timeout_ms / 1000,
            startup_timeout_s=env.startup_timeout_ms / 1000,
            drain_seconds=env.drain_ms / 1000,
            snapshot_every=env.snapshot_every,
            snapshot_in_child=env.snapshot_in_child and forked_snapshot.available(),
            finished_kept=env.finished_kept,
            batch_linger_s=env.commit_linger_s(),
            market_data_interval_s=env.market_data_interval_ms / 1000,
            hosted=hosted,
            direct_db_urls={i: _home_db(env, i) for i in indexes},
            journal_prune=env.journal_prune,
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


def _home_db(env: MatchingEnv, shard_index: int) -> str | None:
    urls = addresses(env.db_urls)
    if not urls or not env.direct_writes:
        return None
    url = urls[shard_index % len(urls)]  # where persistence keeps this shard's journal (store.home_of)
    return url if is_postgres(url) else None
