"""The stream session's own bookkeeping: answers matched by correlation id, and a
command with no answer by its timeout failed DEADLINE_EXCEEDED (by the one reaper)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as pb

from loadgen.stream import REAP_EVERY_S, StreamSession


class _Call:
    """An OrderEntry stream whose server answers only the correlation ids in `answer`."""

    def __init__(self, answer: set[int]):
        self._answer = answer
        self._responses: asyncio.Queue = asyncio.Queue()

    async def write(self, request: pb.OrderEntryRequest) -> None:
        for command in request.commands:
            if command.correlation_id in self._answer:
                self._responses.put_nowait(pb.OrderEntryResponse(results=[pb.OrderEntryResult(
                    correlation_id=command.correlation_id, order={"order_id": 100 + command.correlation_id})]))

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._responses.get()

    def cancel(self) -> None:
        pass


class _Stub:
    def __init__(self, answer: set[int]):
        self.call = _Call(answer)

    def OrderEntry(self, metadata=None):  # noqa: N802
        return self.call


def test_answered_commands_return_their_order_and_unanswered_ones_time_out():
    async def go():
        session = StreamSession(_Stub(answer={1}), metadata=())
        await session.start()
        try:
            loop = asyncio.get_running_loop()
            answered = await session.SubmitOrder(pb.SubmitOrderRequest(symbol="AAPL"), timeout=5)
            assert answered.order.order_id == 101
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await session.SubmitOrder(pb.SubmitOrderRequest(symbol="AAPL"), timeout=0.05)
            assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert 0.05 <= loop.time() - started < 0.05 + 5 * REAP_EVERY_S
            assert not session._waiting  # nothing left behind for a late answer
        finally:
            await session.stop()

    asyncio.run(go())
