"""Settings of the persistence service, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from services.common.config import ShardMap
from services.common.settings import Shared


class PersistenceEnv(Shared):
    """The persistence service's variables (BOURSE_*), beyond the shared ones."""

    db_urls: str = Field(description="comma-separated SQLAlchemy URLs, one per shard")
    db_pool_size: int = Field(8, ge=1)
    db_startup_wait: int = Field(60, ge=0)  # seconds
    journal_prune: bool = True


@dataclass(frozen=True)
class Settings:
    # SQLAlchemy URLs, index = database shard (postgresql+psycopg://... or sqlite:///...).
    db_urls: tuple[str, ...]
    shard_map: ShardMap
    address: str
    pool_size: int
    drain_seconds: float
    # How long startup waits for the databases before giving up.
    startup_wait_seconds: int
    # Delete each matching shard's journal up to its oldest kept snapshot when a new
    # snapshot lands (BOURSE_JOURNAL_PRUNE); off keeps the whole journal (audit setups).
    journal_prune: bool

    @classmethod
    def from_env(cls) -> Settings:
        env = PersistenceEnv.load()
        urls = tuple(u.strip() for u in env.db_urls.split(",") if u.strip())
        if not urls:
            raise SystemExit("BOURSE_DB_URLS is required: comma-separated SQLAlchemy URLs, one per shard")
        try:
            shard_map = ShardMap.parse(env.shard_ranges)
        except ValueError as e:
            raise SystemExit(f"BOURSE_SHARD_RANGES: {e}") from None
        return cls(
            db_urls=urls,
            shard_map=shard_map,
            address=env.persistence_addr,
            pool_size=env.db_pool_size,
            drain_seconds=env.drain_ms / 1000,
            startup_wait_seconds=env.db_startup_wait,
            journal_prune=env.journal_prune,
        )
