"""Coalesces the commands of concurrent clients into one ExecuteBatch per shard.

Whatever arrives while a batch is in flight goes in the next one (the same group
commit the matching shard does with the database), so one internal call carries
many orders under load and a lone order still goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bourse.matching.v1 import matching_service_pb2 as matching_pb2

SendBatch = Callable[[matching_pb2.ExecuteBatchRequest], Awaitable[matching_pb2.ExecuteBatchResponse]]


class ShardBatcher:
    def __init__(self, send: SendBatch, batch_max: int = 1024, max_in_flight: int = 2):
        self._send = send
        self._batch_max = batch_max
        self._queue: list[tuple[matching_pb2.Command, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def execute(self, command: matching_pb2.Command) -> matching_pb2.CommandResult:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await self._slots.acquire()
            batch, self._queue = self._queue[: self._batch_max], self._queue[self._batch_max :]
            if not self._queue:
                self._wakeup.clear()
            # Callers that gave up (deadline, cancel) are not sent.
            batch = [(c, f) for c, f in batch if not f.done()]
            if not batch:
                self._slots.release()
                continue
            asyncio.create_task(self._flush(batch))

    async def _flush(self, batch) -> None:
        try:
            request = matching_pb2.ExecuteBatchRequest(commands=[c for c, _ in batch])
            response = await self._send(request)
            if len(response.results) != len(batch):
                raise RuntimeError(f"shard answered {len(response.results)} results for {len(batch)} commands")
            for (_, future), result in zip(batch, response.results):
                if not future.done():
                    future.set_result(result)
        except Exception as error:  # every caller of the batch learns the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        finally:
            self._slots.release()
