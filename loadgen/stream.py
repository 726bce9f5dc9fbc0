"""Stream mode of the load generator: S order-entry sessions (OrderEntry streams), each
driven by W closed-loop clients, so up to W commands per session are in flight and the
session coalesces what is waiting into each message.

A session looks like the unary stub to the rest of the load generator (SubmitOrder,
CancelOrder, ModifyOrder), so the same order mix, latency histograms and lost check
apply; a refused command raises CommandRefused, whose code() is the one the unary call
would have raised.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from types import SimpleNamespace

import grpc

from bourse.order.v1 import order_service_pb2 as pb

_CODES = {code.value[0]: code for code in grpc.StatusCode}
REAP_EVERY_S = 0.02  # how late a command past its timeout may be failed
# A session with fewer commands than this waiting lets them gather for a millisecond
# before it writes (as a FIX engine fills a TCP segment): in open loop, calls arrive one
# by one, and a message each (1.2 commands per message at 5,500 calls/s) cost the load
# generator and the order replicas about 100 us per order each. Only a busy session
# (answers outstanding) waits: a lone command goes at once, and so does a closed loop's
# window, which is larger.
LINGER_BELOW = 64
LINGER_S = 0.001


class CommandRefused(Exception):
    def __init__(self, status):
        super().__init__(status.message)
        self._code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)

    def code(self) -> grpc.StatusCode:
        return self._code


class StreamSession:
    """One OrderEntry stream on `stub`'s channel, shared by several clients."""

    def __init__(self, stub, metadata, max_batch: int = 1000):
        self._stub, self._metadata, self._max_batch = stub, metadata, max_batch
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._outbox: list[pb.OrderEntryCommand] = []
        self._wake = asyncio.Event()
        self._call = None
        self._tasks: list[asyncio.Task] = []
        # (deadline, correlation id, future) of commands sent with a timeout: one reaper
        # fails the late ones, where a timer per command (asyncio.timeout) cost an eighth
        # of the load generator's CPU.
        self._deadlines: list[tuple[float, int, asyncio.Future]] = []
        self.messages_sent = 0
        self.messages_received = 0

    async def start(self) -> None:
        self._call = self._stub.OrderEntry(metadata=self._metadata)
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._read()),
                       asyncio.create_task(self._reap())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._call is not None:
            self._call.cancel()

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._outbox) < LINGER_BELOW and len(self._waiting) > len(self._outbox):
                await asyncio.sleep(LINGER_S)  # a busy session (answers outstanding): let more gather
            self._wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox[:self._max_batch], self._outbox[self._max_batch:]
                await self._call.write(pb.OrderEntryRequest(commands=batch))
                self.messages_sent += 1

    async def _read(self) -> None:
        try:
            async for response in self._call:
                self.messages_received += 1
                for result in response.results:
                    future = self._waiting.pop(result.correlation_id, None)
                    if future is not None and not future.done():
                        future.set_result(result)
        except grpc.aio.AioRpcError as error:
            self._fail(error)
            return
        self._fail(grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None, "the stream ended"))

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            now = loop.time()
            while self._deadlines and self._deadlines[0][0] <= now:
                _, correlation_id, future = heapq.heappop(self._deadlines)
                if not future.done():
                    self._waiting.pop(correlation_id, None)
                    future.set_exception(grpc.aio.AioRpcError(
                        grpc.StatusCode.DEADLINE_EXCEEDED, None, None, "no answer in time"))

    def _fail(self, error) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()

    async def _send(self, command: pb.OrderEntryCommand, timeout: float | None):
        command.correlation_id = correlation_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting[correlation_id] = future
        self._outbox.append(command)
        self._wake.set()
        if timeout is not None:
            heapq.heappush(self._deadlines, (loop.time() + timeout, correlation_id, future))
        result = await future
        if result.HasField("error"):
            raise CommandRefused(result.error)
        return SimpleNamespace(order=result.order, replayed=result.replayed)

    # The unary stub's surface, as Run.call uses it.
    async def SubmitOrder(self, request, metadata=None, timeout=None):  # noqa: N802
        return await self._send(pb.OrderEntryCommand(submit=request), timeout)

    async def CancelOrder(self, request, metadata=None, timeout=None):  # noqa: N802
        return await self._send(pb.OrderEntryCommand(cancel=request), timeout)

    async def ModifyOrder(self, request, metadata=None, timeout=None):  # noqa: N802
        return await self._send(pb.OrderEntryCommand(modify=request), timeout)
