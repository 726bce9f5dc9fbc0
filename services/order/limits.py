"""Per-API-key limits, so one key cannot slow everyone: a rate, and calls in flight.

Each replica keeps, per account:
- a **rate**: a token bucket of BOURSE_RATE_PER_KEY calls per second (any call), with a
  burst of one second's worth. A call with no token left ends RESOURCE_EXHAUSTED, reason
  RATE_LIMITED, with a RetryInfo saying when the next token comes.
- two allowances of calls **in flight**: order entry (submit, cancel, modify) and reads
  (GetOrder, ListOrders, GetBook). Reads get a small allowance of their own: a key
  firing thousands of reads (the abuse probe's 1,500 concurrent GetOrders raised other
  clients' submit latency from 25 ms to 1.3 s) is refused at once beyond it, and cannot
  take the capacity order entry needs. Beyond: RESOURCE_EXHAUSTED, reason
  TOO_MANY_IN_FLIGHT, with a RetryInfo.

The limits are per replica (Envoy spreads a key's calls over the replicas, so a key gets
about as many times the limits as there are replicas). Checking costs about 2 us a call.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field

import grpc

from services.common.errors import BourseError

RETRY_AFTER_S = 0.1
ORDERS_PER_KEY = 200
READS_PER_KEY = 16
RATE_PER_KEY = 2000.0


class InFlight:
    def __init__(self, kind: str, limit: int):
        self.kind = kind
        self.limit = limit
        self._counts: dict[int, int] = defaultdict(int)

    @contextlib.contextmanager
    def call(self, account_id: int):
        """Counts one call of `account_id` while it runs; raises BourseError beyond the limit."""
        if self._counts[account_id] >= self.limit:
            raise BourseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_IN_FLIGHT",
                              f"this API key has {self.limit} {self.kind} in flight on this server, its most: "
                              "wait for some to be answered", retry_after_s=RETRY_AFTER_S)
        self._counts[account_id] += 1
        try:
            yield
        finally:
            self._counts[account_id] -= 1
            if not self._counts[account_id]:
                del self._counts[account_id]

    def __len__(self) -> int:
        return sum(self._counts.values())


class Rate:
    """A token bucket per account: `rate` calls per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # account -> (tokens, when)

    def take(self, account_id: int) -> None:
        now = self._clock()
        tokens, then = self._buckets.get(account_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[account_id] = (tokens, now)
            raise BourseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED",
                              f"this API key made more than {self.rate:g} calls per second to this server",
                              retry_after_s=(1 - tokens) / self.rate)
        self._buckets[account_id] = (tokens - 1, now)


@dataclass
class KeyLimits:
    """One replica's limits, shared by its servicers."""

    orders: InFlight = field(default_factory=lambda: InFlight("orders", ORDERS_PER_KEY))
    reads: InFlight = field(default_factory=lambda: InFlight("reads", READS_PER_KEY))
    rate: Rate = field(default_factory=lambda: Rate(RATE_PER_KEY))

    def admit(self, kind: str, account_id: int):
        """A context manager around one call of `kind` ("orders" or "reads")."""
        self.rate.take(account_id)
        return (self.orders if kind == "orders" else self.reads).call(account_id)
