"""Settings of the persistence service, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import ShardMap, env, env_int

DEFAULT_ADDRESS = "127.0.0.1:50070"


@dataclass(frozen=True)
class Settings:
    # SQLAlchemy URLs, index = database shard (postgresql+psycopg://... or sqlite:///...).
    db_urls: tuple[str, ...]
    shard_map: ShardMap
    address: str = DEFAULT_ADDRESS
    pool_size: int = 8
    drain_seconds: float = 2.0
    # How long startup waits for the databases before giving up.
    startup_wait_seconds: int = 60
    # Delete each matching shard's journal up to its oldest kept snapshot when a new
    # snapshot lands (BOURSE_JOURNAL_PRUNE); off keeps the whole journal (audit setups).
    journal_prune: bool = True

    @classmethod
    def from_env(cls) -> Settings:
        urls = tuple(u.strip() for u in env("BOURSE_DB_URLS", "").split(",") if u.strip())
        if not urls:
            raise SystemExit("BOURSE_DB_URLS is required: comma-separated SQLAlchemy URLs, one per shard")
        try:
            shard_map = ShardMap.from_env()
        except ValueError as e:
            raise SystemExit(f"BOURSE_SHARD_RANGES: {e}") from None
        return cls(
            db_urls=urls,
            shard_map=shard_map,
            address=env("BOURSE_PERSISTENCE_ADDR", DEFAULT_ADDRESS),
            pool_size=env_int("BOURSE_DB_POOL_SIZE", 8),
            drain_seconds=env_int("BOURSE_DRAIN_MS", 2000) / 1000,
            startup_wait_seconds=env_int("BOURSE_DB_STARTUP_WAIT", 60),
            journal_prune=_env_bool("BOURSE_JOURNAL_PRUNE", True),
        )


_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def _env_bool(name: str, default: bool) -> bool:
    raw = env(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise SystemExit(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")
