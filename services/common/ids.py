"""Exchange-wide unique 63-bit ids without a central counter (Snowflake layout).

id = milliseconds since 2026-01-01 (41 bits) | node (10 bits) | sequence (12 bits).
Each process that mints ids has its own node number (order-service replicas 0-511,
matching shards 512+), so ids never collide across processes and grow over time,
which makes "newest first" an order by id. When more than 4096 ids are asked for in
one millisecond the clock runs ahead logically rather than waiting.
"""

from __future__ import annotations

import time

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NODE_BITS = 10
SEQUENCE_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
MATCHING_NODE_BASE = 512


class SnowflakeIds:
    def __init__(self, node: int, clock=time.time):
        if not 0 <= node <= MAX_NODE:
            raise ValueError(f"node must be 0-{MAX_NODE}, got {node}")
        self._node = node
        self._clock = clock
        self._last_ms = -1
        self._sequence = 0

    def next(self) -> int:
        now_ms = int(self._clock() * 1000) - EPOCH_MS
        if now_ms > self._last_ms:
            self._last_ms, self._sequence = now_ms, 0
        else:
            self._sequence += 1
            if self._sequence >> SEQUENCE_BITS:
                self._last_ms, self._sequence = self._last_ms + 1, 0
        return (self._last_ms << (NODE_BITS + SEQUENCE_BITS)) | (self._node << SEQUENCE_BITS) | self._sequence

    @staticmethod
    def node_of(identifier: int) -> int:
        return (identifier >> SEQUENCE_BITS) & MAX_NODE

    @staticmethod
    def age_ms(identifier: int, clock=time.time) -> int:
        """How long ago (by this machine's clock) the id was minted."""
        return int(clock() * 1000) - EPOCH_MS - (identifier >> (NODE_BITS + SEQUENCE_BITS))
