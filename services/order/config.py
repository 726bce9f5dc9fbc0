"""Order service settings, from the environment (see README for the full list)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.common.config import (
    ShardMap,
    addresses,
    env,
    env_int,
    symbols_from_env,
)
from services.order.batcher import Batcher
from services.order.limits import ORDERS_PER_KEY, RATE_PER_KEY, READS_PER_KEY


@dataclass(frozen=True)
class Batching:
    """How a replica batches its calls to a matching process (the floor benchmark's relay
    reads the same, so that it batches as the order service does)."""

    batch_max: int
    linger_s: float
    # Batches one replica may have in flight to one matching process at once.
    in_flight: int
    call_timeout_s: float

    @classmethod
    def from_env(cls) -> Batching:
        return cls(
            batch_max=env_int("BOURSE_BATCH_MAX", 1024),
            linger_s=env_int("BOURSE_BATCH_LINGER_US", 3000) / 1e6,
            in_flight=max(1, env_int("BOURSE_BATCHES_IN_FLIGHT", 1)),
            call_timeout_s=env_int("BOURSE_CALL_TIMEOUT_MS", 5000) / 1000,
        )

    def batcher(self, send, observe=None) -> Batcher:
        return Batcher(send, self.batch_max, max_in_flight=self.in_flight, linger_s=self.linger_s, observe=observe)


@dataclass(frozen=True)
class OrderSettings:
    address: str
    node_id: int
    matching_addresses: list[str]
    persistence_address: str
    redis_url: str
    # API keys are data (api_keys.py): how often the table is refreshed, and how long
    # startup waits for its first load.
    api_key_refresh_s: float
    startup_timeout_s: float
    symbols: tuple[str, ...]
    shard_map: ShardMap
    batching: Batching
    max_order_subscriptions: int
    max_orders_in_flight_per_key: int
    max_reads_in_flight_per_key: int
    rate_per_key: float
    drain_seconds: float
    order_entry_window: int
    order_entry_sessions_per_key: int
    order_entry_heartbeat_s: float

    @classmethod
    def from_env(cls) -> OrderSettings:
        # Refused, not read: a deployment still configured the old way must not start
        # believing its keys are in force.
        if "BOURSE_API_KEYS" in os.environ:
            raise SystemExit("BOURSE_API_KEYS is no longer read: API keys are data in PostgreSQL. Create them "
                             "with `python -m infra.admin keys create --account N` and unset BOURSE_API_KEYS")
        settings = cls(
            address=env("BOURSE_ORDER_ADDR", "127.0.0.1:50051"),
            node_id=env_int("BOURSE_NODE_ID", 0),
            matching_addresses=addresses(env("BOURSE_MATCHING_ADDRS", "127.0.0.1:50060")),
            persistence_address=env("BOURSE_PERSISTENCE_ADDR", "127.0.0.1:50070"),
            redis_url=env("BOURSE_REDIS_URL", "redis://127.0.0.1:6379/0"),
            api_key_refresh_s=env_int("BOURSE_API_KEY_REFRESH_MS", 1000) / 1000,
            startup_timeout_s=env_int("BOURSE_STARTUP_TIMEOUT_MS", 60000) / 1000,
            symbols=symbols_from_env(),
            shard_map=ShardMap.from_env(),
            batching=Batching.from_env(),
            max_order_subscriptions=env_int("BOURSE_MAX_ORDER_SUBSCRIPTIONS", 1000),
            max_orders_in_flight_per_key=env_int("BOURSE_MAX_ORDERS_IN_FLIGHT_PER_KEY", ORDERS_PER_KEY),
            max_reads_in_flight_per_key=env_int("BOURSE_MAX_READS_IN_FLIGHT_PER_KEY", READS_PER_KEY),
            rate_per_key=float(env_int("BOURSE_RATE_PER_KEY", int(RATE_PER_KEY))),
            drain_seconds=env_int("BOURSE_DRAIN_MS", 2000) / 1000,
            order_entry_window=env_int("BOURSE_ORDER_ENTRY_WINDOW", 1000),
            order_entry_sessions_per_key=env_int("BOURSE_ORDER_ENTRY_SESSIONS_PER_KEY", 16),
            order_entry_heartbeat_s=env_int("BOURSE_ORDER_ENTRY_HEARTBEAT_MS", 15000) / 1000,
        )
        if len(settings.matching_addresses) != len(settings.shard_map):
            raise SystemExit(
                f"BOURSE_MATCHING_ADDRS has {len(settings.matching_addresses)} addresses "
                f"but BOURSE_SHARD_RANGES has {len(settings.shard_map)} shards"
            )
        if not 0 <= settings.node_id < 512:
            raise SystemExit("BOURSE_NODE_ID must be 0-511 (unique per order-service replica)")
        return settings
