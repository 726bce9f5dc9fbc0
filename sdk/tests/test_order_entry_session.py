"""The SDK's order-entry session against a scripted OrderEntry server (a real grpc.aio
server on a socket): a stream the server ends without an error is reconnected and its
unanswered commands sent again, and an answer that never comes is a TimeoutError by
the command's deadline, not a caller waiting forever."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2
from bourse_client.order_entry import OrderEntrySession
from bourse_sdk.bourse.order.v1 import SubmitOrderRequest
from bourse_sdk.bourse.type.v1 import OrderType, Side, TimeInForce


class ScriptedOrderEntry(order_grpc.OrderServiceServicer):
    """Stream n (from 0) runs `scripts[n]` (or the last one): 'answer' answers every
    command with an order whose id is 1,000 + its correlation id; 'end' returns as soon
    as a command arrives, unanswered and without an error; 'silent' reads and never answers."""

    def __init__(self, scripts):
        self.scripts = scripts
        self.streams = 0
        self.commands_seen: list[str] = []

    async def OrderEntry(self, request_iterator, context):
        script = self.scripts[min(self.streams, len(self.scripts) - 1)]
        self.streams += 1
        async for request in request_iterator:
            self.commands_seen += [c.submit.client_order_id for c in request.commands]
            if script == "end" and request.commands:
                return
            if script == "answer" and request.commands:
                yield pb.OrderEntryResponse(results=[
                    pb.OrderEntryResult(correlation_id=c.correlation_id, order=types_pb2.Order(
                        order_id=1000 + c.correlation_id, client_order_id=c.submit.client_order_id,
                        status=types_pb2.ORDER_STATUS_NEW)) for c in request.commands])


async def _serving(servicer):
    server = grpc.aio.server()
    order_grpc.add_OrderServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def _submit(client_order_id: str) -> SubmitOrderRequest:
    return SubmitOrderRequest(client_order_id=client_order_id, symbol="AAPL", side=Side.BUY,
                              order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, price=10, quantity=1)


def test_a_stream_the_server_ends_without_an_error_is_reconnected_and_the_command_sent_again():
    async def scenario():
        servicer = ScriptedOrderEntry(["end", "answer"])
        server, target = await _serving(servicer)
        try:
            async with OrderEntrySession(target, api_key="k", command_timeout_s=10) as session:
                order = await session.submit(_submit("a-1"))
                later = await session.submit(_submit("a-2"))  # the session still works afterwards
            return order, later, session.reconnects, servicer.commands_seen
        finally:
            await server.stop(None)

    order, later, reconnects, seen = asyncio.run(scenario())
    assert (order.client_order_id, later.client_order_id) == ("a-1", "a-2")
    assert reconnects == 1
    assert seen == ["a-1", "a-1", "a-2"]  # the unanswered command went again on the new stream


def test_an_answer_that_never_comes_times_out_and_is_not_sent_again():
    async def scenario():
        servicer = ScriptedOrderEntry(["silent"])
        server, target = await _serving(servicer)
        try:
            async with OrderEntrySession(target, api_key="k", command_timeout_s=0.3) as session:
                started = asyncio.get_running_loop().time()
                with pytest.raises(TimeoutError):
                    await session.submit(_submit("b-1"))
                waited = asyncio.get_running_loop().time() - started
                unanswered = dict(session._unanswered)
            return waited, unanswered
        finally:
            await server.stop(None)

    waited, unanswered = asyncio.run(asyncio.wait_for(scenario(), 10))  # close() did not wait for it either
    assert 0.3 <= waited < 5
    assert unanswered == {}
