"""The asyncio client (grpc.aio): the same calls as Client, awaited, and the streams as
async iterators, plus order-entry sessions.

    from bourse_client import AsyncClient, Side

    async with AsyncClient("127.0.0.1:8080", api_key="demo-key-alice") as client:
        order = await client.submit_order("AAPL", Side.BUY, quantity=5, price=100)
        async with client.order_entry() as session:
            orders = await asyncio.gather(*(session.submit(...) for ...))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from bourse_sdk.bourse.marketdata.v1 import SubscribeMarketDataRequest, SubscribeMarketDataResponse
from bourse_sdk.bourse.order.v1 import SubscribeOrdersRequest, SubscribeOrdersResponse
from bourse_sdk.bourse.type.v1 import Order

from . import api
from .client import ResumableStream
from .errors import BourseError, from_rpc_error
from .order_entry import OrderEntrySession
from .retry import NEVER


class AsyncClient(api.Api):
    """An asyncio client of the exchange at `target`; the arguments are Client's. Every
    unary call is a coroutine; make and use the client inside one event loop."""

    channels = grpc.aio

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _call(self, rpc: api.Rpc, request, timeout: float | None, answer):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout_s if timeout is None else timeout)
        method = self.channel.unary_unary(rpc.path, request_serializer=bytes, response_deserializer=rpc.response.parse)
        policy = self.retry if rpc.repeatable else NEVER
        async for attempt in policy.async_retrying():
            with attempt:
                try:
                    response = await method(request, metadata=self.metadata,
                                            timeout=max(0.0, deadline - loop.time()))
                except grpc.RpcError as error:
                    raise from_rpc_error(error) from None
        return answer(response) if answer else response

    async def list_orders(self, symbol: str = "", page_size: int = 100) -> AsyncIterator[Order]:
        """Every order of the account, newest first (optionally of one symbol)."""
        token = ""
        while True:
            page = await self.list_orders_page(page_size=page_size, page_token=token, symbol=symbol)
            for order in page.orders:
                yield order
            token = page.next_page_token
            if not token:
                return

    def subscribe_orders(self, symbol: str = "", resume_after: str = "") -> AsyncOrderUpdates:
        """The account's order updates as they commit (see client.OrderUpdates)."""
        return AsyncOrderUpdates(self, symbol, resume_after)

    def subscribe_market_data(self, symbol: str, depth: int = 10) -> AsyncMarketData:
        """The symbol's book and trades as they change (see client.MarketData)."""
        return AsyncMarketData(self, symbol, depth)

    def order_entry(self, *, cancel_on_disconnect: bool = False, window: int = 1000,
                    command_timeout_s: float | None = 60.0) -> OrderEntrySession:
        """An order-entry session over this client's channel (see OrderEntrySession):
        `async with client.order_entry() as session: await session.submit(...)`."""
        return OrderEntrySession(channel=self.channel, metadata=self.metadata,
                                 cancel_on_disconnect=cancel_on_disconnect, window=window,
                                 reconnect_for_s=self.retry.for_s, command_timeout_s=command_timeout_s)


class _AsyncStream(ResumableStream):
    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._closed:
            if self._call is None:
                self._call = self._method(self._request(), metadata=self._client.metadata)
            try:
                message = await self._call.read()
            except grpc.RpcError as failure:
                if self._closed:
                    break
                error = from_rpc_error(failure)
            else:
                if message is not grpc.aio.EOF:
                    self._resumption.received()
                    return message
                error = BourseError("the stream ended", code=grpc.StatusCode.UNAVAILABLE)
            await asyncio.sleep(self._broke(error))
        raise StopAsyncIteration

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class AsyncOrderUpdates(_AsyncStream):
    """client.OrderUpdates, as an async iterator."""

    def __init__(self, client: AsyncClient, symbol: str, resume_after: str):
        super().__init__(client, api.SUBSCRIBE_ORDERS, SubscribeOrdersResponse)
        self.symbol, self.resume_token = symbol, resume_after

    def _request(self):
        return SubscribeOrdersRequest(symbol=self.symbol, resume_after=self.resume_token)

    async def __anext__(self) -> SubscribeOrdersResponse:
        message = await super().__anext__()
        self.resume_token = message.resume_token or self.resume_token
        return message


class AsyncMarketData(_AsyncStream):
    """client.MarketData, as an async iterator."""

    def __init__(self, client: AsyncClient, symbol: str, depth: int):
        super().__init__(client, api.SUBSCRIBE_MARKET_DATA, SubscribeMarketDataResponse)
        self.symbol, self.depth = symbol, depth

    def _request(self):
        return SubscribeMarketDataRequest(symbol=self.symbol, depth=self.depth)
