"""Deadlines of many waiting futures: one heap and one reaper task, not a timer each.

A timer per call (asyncio.timeout) cost a sixth of an order replica's CPU under streams,
and an eighth of the load generator's. Here a task wakes every `every_s`, and fails what
is due then: a deadline is kept to within that.

Futures are held weakly. A caller answered long before its deadline must not leave its
future, and the result in it, here until then: at the stream's rate that is about 50,000
results per process, 5 s each, all walked by the garbage collector's full collections. A
caller that still waits holds its future itself.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable

REAP_EVERY_S = 0.02


class Deadlines:
    def __init__(self, expire: Callable[[asyncio.Future, object], None], every_s: float = REAP_EVERY_S):
        """`expire(future, key)` fails a future still pending at its deadline (`key`: what
        `add` was given with it)."""
        self._expire = expire
        self._every = every_s
        self._heap: list[tuple[float, int, weakref.ref, object]] = []  # soonest first
        self._numbers = itertools.count()

    def add(self, deadline: float, future: asyncio.Future, key: object = None) -> None:
        """`deadline` by the event loop's clock."""
        heapq.heappush(self._heap, (deadline, next(self._numbers), weakref.ref(future), key))

    async def run(self) -> None:
        """The reaper: run it as a task for as long as deadlines are added."""
        loop = asyncio.get_running_loop()
        heap = self._heap
        while True:
            await asyncio.sleep(self._every)
            now = loop.time()
            while heap and heap[0][0] <= now:
                _, _, ref, key = heapq.heappop(heap)
                future = ref()
                if future is not None and not future.done():
                    self._expire(future, key)
