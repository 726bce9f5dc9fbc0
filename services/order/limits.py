"""Per-API-key limits of calls in flight, so one key cannot slow everyone.

Each replica counts, per account, the calls it is answering, in two allowances: order
entry (submit, cancel, modify) and reads (GetOrder, ListOrders, GetBook). Reads get a
small allowance of their own: a key firing thousands of reads (the abuse probe's 1,500
concurrent GetOrders raised other clients' submit latency from 25 ms to 1.3 s) is
refused at once beyond it, and cannot take the capacity order entry needs. A call
beyond its allowance ends RESOURCE_EXHAUSTED, reason TOO_MANY_IN_FLIGHT, with a
RetryInfo saying when to try again. Counting costs a dict update per call.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import grpc

from services.common.errors import BourseError

RETRY_AFTER_S = 0.1
ORDERS_PER_KEY = 200
READS_PER_KEY = 16


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


def default_in_flight(orders: int = ORDERS_PER_KEY, reads: int = READS_PER_KEY) -> dict[str, InFlight]:
    """One replica's allowances, shared by its servicers."""
    return {"orders": InFlight("orders", orders), "reads": InFlight("reads", reads)}
