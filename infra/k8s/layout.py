"""The deployment's shape: the ports and shared object names every manifest agrees on,
and the Layout (shard ranges, databases, replicas) everything else is derived from.

The addresses here are the ones the services are given; the object builders
(objects_*.py) create the Services that answer at them, and checks.py verifies that
they do, with the services' own config code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.common.config import (
    DEFAULT_SHARD_RANGES,
    DEFAULT_SYMBOLS,
    SYMBOL_PATTERN,
    ShardMap,
)

ORDER_PORT = 50051
MATCHING_PORT = 50060
PERSISTENCE_PORT = 50070
METRICS_PORT = 9464  # every Python service's /metrics (BOURSE_METRICS_ADDR), and Envoy's stats
ENVOY_PORT = 8080
ENVOY_ADMIN_PORT = 9901
POSTGRES_PORT = 5432
REDIS_PORT = 6379

CONFIG = "bourse-config"  # ConfigMap: settings every service reads
SECRETS = "bourse-secrets"  # Secret: API keys, PostgreSQL password
DB_USER = DB_NAME = "bourse"
# Snowflake node ids of order replicas are their StatefulSet ordinals: 0-511 (ids.py).
MAX_ORDER_REPLICAS = 512
# After the drain (health NOT_SERVING, wait, then grace for in-flight calls: 2 x
# BOURSE_DRAIN_MS, see services/common/server.py) a service closes its clients and the
# matching shard flushes its last batch: this much more before SIGKILL.
CLOSE_MARGIN_S = 10


@dataclass(frozen=True)
class Layout:
    shard_ranges: str = DEFAULT_SHARD_RANGES
    db_shards: int = 0  # PostgreSQL servers; 0 = one per shard range
    symbols: str = DEFAULT_SYMBOLS
    namespace: str = "bourse"
    image: str = "bourse:dev"
    order_replicas: int = 2
    order_max_replicas: int = 8
    envoy_replicas: int = 2
    drain_ms: int = 5000

    @property
    def shard_map(self) -> ShardMap:
        return ShardMap.parse(self.shard_ranges)

    @property
    def shards(self) -> int:
        return len(self.shard_map)

    @property
    def databases(self) -> int:
        return self.db_shards or self.shards

    @property
    def symbol_list(self) -> list[str]:
        return sorted(set(self.symbols.replace(",", " ").split()))

    def check(self) -> None:
        """Refuses a layout the services would refuse or silently get wrong."""
        shard_map = self.shard_map  # ValueError on a bad range
        bad = [s for s in self.symbol_list if not SYMBOL_PATTERN.fullmatch(s)]
        if bad or not self.symbol_list:
            raise ValueError(f"bad or no symbols: {' '.join(bad)}")
        orphans = [s for s in self.symbol_list if shard_map.shard_of(s) is None]
        if orphans:
            raise ValueError(f"symbols in no shard range {self.shard_ranges!r}: {' '.join(orphans)}")
        if self.databases < 1:
            raise ValueError("db_shards must be at least 1")
        if not 1 <= self.order_replicas <= self.order_max_replicas <= MAX_ORDER_REPLICAS:
            raise ValueError(f"want 1 <= order_replicas <= order_max_replicas <= {MAX_ORDER_REPLICAS}")
        if self.envoy_replicas < 1 or self.drain_ms < 0:
            raise ValueError("envoy_replicas must be at least 1 and drain_ms not negative")

    # Addresses, as the services are given them (short names: the pod's DNS search path
    # adds the namespace).
    def matching_address(self, shard: int) -> str:
        return f"matching-{shard}:{MATCHING_PORT}"

    def db_url(self, db: int) -> str:
        # No password in the URL: libpq reads PGPASSWORD (from the Secret).
        return f"postgresql+psycopg://{DB_USER}@postgres-{db}.postgres:{POSTGRES_PORT}/{DB_NAME}"

    @property
    def grace_seconds(self) -> int:
        return math.ceil(2 * self.drain_ms / 1000) + CLOSE_MARGIN_S
