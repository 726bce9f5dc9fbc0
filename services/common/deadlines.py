"""Deadlines of many waiters, kept by one task instead of a timer each.

A timer per waiter (asyncio.timeout, wait_for) cost a sixth of an order replica's CPU
and an eighth of the load generator's under the stream load. Here each waiter's
deadline goes on a heap, and one task, every REAP_EVERY_S, expires the waiters whose
deadline has passed and that are not done yet: a deadline is kept to within that.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

REAP_EVERY_S = 0.02


class Deadlines:
    def __init__(self, every_s: float = REAP_EVERY_S):
        self._every = every_s
        self._heap: list[tuple[float, int, asyncio.Future, Callable[[asyncio.Future], None]]] = []
        self._numbers = itertools.count()  # ties in deadline never compare the futures

    def add(self, deadline: float, future: asyncio.Future, expire: Callable[[asyncio.Future], None]) -> None:
        """`expire(future)` once the event loop's clock passes `deadline`, unless the
        future is done by then."""
        heapq.heappush(self._heap, (deadline, next(self._numbers), future, expire))

    async def run(self) -> None:
        """Expires waiters until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._every)
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                _, _, future, expire = heapq.heappop(self._heap)
                if not future.done():
                    expire(future)
