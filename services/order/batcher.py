"""Coalesces the items of concurrent callers into one internal call.

Whatever arrives while a call is in flight goes in the next one (the same group commit
the matching shard does with the database), so one internal message carries many
orders under load and a lone order still goes out at once. Used for the commands
sent to each matching shard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from services.common import tracing
from services.common.deadlines import Deadlines

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Result]]],
        batch_max: int = 1024,
        max_in_flight: int = 2,
        linger_s: float = 0.0,
        observe: Callable[[int, float], None] | None = None,
    ):
        """`send` takes a batch of items and returns one result per item, in order.

        `linger_s`: how long a batch may wait for company once a slot is free; under
        load a millisecond buys batches several times larger, whose fixed costs (a call,
        a transaction, a commit) are then shared by more orders. It lingers only after a
        batch of several items (a sign of concurrent callers): a lone caller at light
        load is sent at once.
        """
        self._send = send
        self._observe = observe  # observe(items, seconds) of each batch answered (metrics)
        self._batch_max = batch_max
        self._linger = linger_s
        self._last_size = 0  # items in the batch sent last
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task | None = None
        self._flushes: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        # Callers with a deadline: one reaper task fails them in time (deadlines.py).
        self._deadlines = Deadlines(_timed_out)
        self._reaper: asyncio.Task | None = None
        self._waiting = tracing.Waiting()  # the callers' spans, for their batch's span

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        self._reaper = asyncio.create_task(self._deadlines.run())

    async def stop(self) -> None:
        for task in (self._task, self._reaper):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        # What is still queued will never be sent: its callers learn it now, not at their deadline.
        queued, self._queue = self._queue, []
        _fail(queued, RuntimeError("the batcher stopped"))

    async def execute(self, item: Item, deadline: float | None = None) -> Result:
        """The item's result; TimeoutError once the event loop's clock passes `deadline`
        (within deadlines.REAP_EVERY_S), whether the item is still queued or in a batch in flight."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._waiting.add(future)
        self._wakeup.set()
        if deadline is not None:
            self._deadlines.add(deadline, future)
        return await future

    def enqueue_group(self, items: Sequence[Item], deadline: float | None = None) -> Group:
        """Many items at once, without a future or a wait per item: a Group, whose
        `future` is done once every item has its result or error (in `outcomes`, in
        order), or fails with TimeoutError at `deadline`."""
        group = Group(asyncio.get_running_loop().create_future(), len(items))
        slots = [(item, _Slot(group, index)) for index, item in enumerate(items)]
        self._queue.extend(slots)
        if slots:  # one span for the group: its first item carries it
            self._waiting.add(slots[0][1])
        self._wakeup.set()
        if deadline is not None:
            self._deadlines.add(deadline, group.future)
        return group

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await self._slots.acquire()
            if self._linger and self._last_size > 1 and len(self._queue) < self._batch_max:
                await asyncio.sleep(self._linger)
            batch, self._queue = self._queue[: self._batch_max], self._queue[self._batch_max :]
            if not self._queue:
                self._wakeup.clear()
            # Callers that gave up (deadline, cancel) are not sent.
            self._waiting.forget_done(batch)
            batch = [(item, future) for item, future in batch if not future.done()]
            self._last_size = len(batch)
            if not batch:
                self._slots.release()
                continue
            flush = asyncio.create_task(self._flush(batch))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
            batch = None  # the flush holds it; this loop must not until the next batch

    async def _flush(self, batch) -> None:
        started = time.perf_counter()
        try:
            with self._waiting.batch_span("order.batch", batch, **{"bourse.commands": len(batch)}):
                results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"answered {len(results)} results for {len(batch)} items")
            if self._observe is not None:
                self._observe(len(batch), time.perf_counter() - started)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
        except Exception as error:  # noqa: BLE001 - every caller of the batch learns the failure
            _fail(batch, error)
        except BaseException as error:  # even a cancelled send answers its callers, or they wait forever
            _fail(batch, RuntimeError(f"batch abandoned: {error!r}"))
            raise
        finally:
            self._slots.release()


def _timed_out(future: asyncio.Future, _key) -> None:
    future.set_exception(TimeoutError("no answer by the deadline"))


def _fail(batch, error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


class Group:
    """The items of one enqueue_group: each one's result, or the exception it failed with."""

    __slots__ = ("future", "outcomes", "_missing")

    def __init__(self, future: asyncio.Future, size: int):
        self.future = future
        self.outcomes: list = [None] * size
        self._missing = size

    def _settle(self, index: int, outcome) -> None:
        self.outcomes[index] = outcome
        self._missing -= 1
        if not self._missing and not self.future.done():
            self.future.set_result(self.outcomes)


class _Slot:
    """One item of a Group, where the batcher keeps a caller's future."""

    __slots__ = ("_group", "_index")

    def __init__(self, group: Group, index: int):
        self._group, self._index = group, index

    def done(self) -> bool:  # a group past its deadline is not sent
        return self._group.future.done()

    def set_result(self, result) -> None:
        self._group._settle(self._index, result)

    def set_exception(self, error: BaseException) -> None:
        self._group._settle(self._index, error)

