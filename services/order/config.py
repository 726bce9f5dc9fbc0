"""Order service settings, from the environment (see README for the full list)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydantic import Field

from services.common.config import ShardMap, addresses, symbols_from_env
from services.common.settings import Downstream
from services.order.batcher import Batcher
from services.order.limits import ORDERS_PER_KEY, RATE_PER_KEY, READS_PER_KEY


class OrderEnv(Downstream):
    """An order-service replica's variables (BOURSE_*), beyond the shared ones."""

    order_addr: str = "127.0.0.1:50051"
    node_id: int = Field(0, ge=0, le=511, description="unique per order-service replica")
    matching_addrs: str = "127.0.0.1:50060"  # one per shard, comma separated
    api_key_refresh_ms: int = Field(1000, gt=0)
    batch_max: int = Field(4096, gt=0)
    batches_in_flight: int = Field(1, gt=0)
    call_timeout_ms: int = Field(5000, gt=0)
    max_order_subscriptions: int = Field(1000, ge=0)
    max_orders_in_flight_per_key: int = Field(ORDERS_PER_KEY, gt=0)
    max_reads_in_flight_per_key: int = Field(READS_PER_KEY, gt=0)
    rate_per_key: int = Field(int(RATE_PER_KEY), gt=0)
    order_entry_window: int = Field(1000, gt=0)
    order_entry_sessions_per_key: int = Field(16, gt=0)
    order_entry_heartbeat_ms: int = Field(15_000, gt=0)
    trading_day_end: str = Field("00:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                                 description="HH:MM, UTC: when DAY orders expire")


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
    def from_env(cls, env: OrderEnv | None = None) -> Batching:
        env = env or OrderEnv.load()
        return cls(
            batch_max=env.batch_max,
            linger_s=env.batch_linger_us / 1e6,
            in_flight=env.batches_in_flight,
            call_timeout_s=env.call_timeout_ms / 1000,
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
    trading_day_end_s: int  # seconds after midnight UTC

    @classmethod
    def from_env(cls) -> OrderSettings:
        # Refused, not read: a deployment still configured the old way must not start
        # believing its keys are in force.
        if "BOURSE_API_KEYS" in os.environ:
            raise SystemExit("BOURSE_API_KEYS is no longer read: API keys are data in PostgreSQL. Create them "
                             "with `python -m infra.admin keys create --account N` and unset BOURSE_API_KEYS")
        env = OrderEnv.load()
        settings = cls(
            address=env.order_addr,
            node_id=env.node_id,
            matching_addresses=addresses(env.matching_addrs),
            persistence_address=env.persistence_addr,
            redis_url=env.redis_url,
            api_key_refresh_s=env.api_key_refresh_ms / 1000,
            startup_timeout_s=env.startup_timeout_ms / 1000,
            symbols=symbols_from_env(),
            shard_map=ShardMap.parse(env.shard_ranges),
            batching=Batching.from_env(env),
            max_order_subscriptions=env.max_order_subscriptions,
            max_orders_in_flight_per_key=env.max_orders_in_flight_per_key,
            max_reads_in_flight_per_key=env.max_reads_in_flight_per_key,
            rate_per_key=float(env.rate_per_key),
            drain_seconds=env.drain_ms / 1000,
            order_entry_window=env.order_entry_window,
            order_entry_sessions_per_key=env.order_entry_sessions_per_key,
            order_entry_heartbeat_s=env.order_entry_heartbeat_ms / 1000,
            trading_day_end_s=int(env.trading_day_end[:2]) * 3600 + int(env.trading_day_end[3:]) * 60,
        )
        if len(settings.matching_addresses) != len(settings.shard_map):
            raise SystemExit(
                f"BOURSE_MATCHING_ADDRS has {len(settings.matching_addresses)} addresses "
                f"but BOURSE_SHARD_RANGES has {len(settings.shard_map)} shards"
            )
        return settings
