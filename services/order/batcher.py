"""Coalesces the items of concurrent callers into one internal call.

Whatever arrives while a call is in flight goes in the next one (the same group commit
the matching shard does with the database), so one internal message carries many
orders under load and a lone order still goes out at once. Used for the commands
sent to each matching shard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Result]]],
        batch_max: int = 1024,
        max_in_flight: int = 2,
        linger_s: float = 0.0,
    ):
        """`send` takes a batch of items and returns one result per item, in order.

        `linger_s`: how long a batch may wait for company once a slot is free; under
        load a millisecond buys batches several times larger, whose fixed costs (a call,
        a transaction, a commit) are then shared by more orders. It lingers only after a
        batch of several items (a sign of concurrent callers): a lone caller at light
        load is sent at once.
        """
        self._send = send
        self._batch_max = batch_max
        self._linger = linger_s
        self._last_size = 0  # items in the batch sent last
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task | None = None
        self._flushes: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # What is still queued will never be sent: its callers learn it now, not at their deadline.
        queued, self._queue = self._queue, []
        _fail(queued, RuntimeError("the batcher stopped"))

    async def execute(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wakeup.set()
        return await future

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
            batch = [(item, future) for item, future in batch if not future.done()]
            self._last_size = len(batch)
            if not batch:
                self._slots.release()
                continue
            flush = asyncio.create_task(self._flush(batch))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch) -> None:
        try:
            results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"answered {len(results)} results for {len(batch)} items")
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


def _fail(batch, error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
