"""The blocking client (grpcio): one channel to the exchange, the calls, the streams.

    from bourse_client import Client, Side

    with Client("127.0.0.1:8080", api_key="demo-key-alice") as client:
        order = client.submit_order("AAPL", Side.BUY, quantity=5, price=100)
        client.cancel_order(order.order_id, "AAPL")
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
from bourse_sdk.bourse.marketdata.v1 import SubscribeMarketDataRequest, SubscribeMarketDataResponse
from bourse_sdk.bourse.order.v1 import SubscribeOrdersRequest, SubscribeOrdersResponse
from bourse_sdk.bourse.type.v1 import Order

from . import api
from .errors import BourseError, from_rpc_error
from .retry import NEVER, RetryPolicy


class Resumption:
    """How a stream that broke is opened again: while the errors are retryable and the
    last message came less than `policy.for_s` ago, after the policy's backoff."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.failures = 0
        self.last_message = time.monotonic()

    def received(self) -> None:
        self.failures, self.last_message = 0, time.monotonic()

    def wait_before_reopening(self, error: BourseError) -> float | None:
        """Seconds to wait before opening the stream again, or None: give up, raise."""
        if not error.retryable or time.monotonic() - self.last_message > self.policy.for_s:
            return None
        self.failures += 1
        if error.retry_after_s is not None:
            return error.retry_after_s
        return min(self.policy.max_s, self.policy.initial_s * 2 ** (self.failures - 1))


class Client(api.Api):
    """A blocking client of the exchange at `target` (Envoy's address), authenticated by
    `api_key`; over TLS when given `ca_file` (a PEM CA to trust) or `credentials`.

    timeout_s: the default deadline of a unary call (retries included). retry: how long
    and how the SDK sends a call again when the exchange is unavailable (RetryPolicy;
    retry.NEVER to never). Thread-safe: one client may serve many threads."""

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, rpc: api.Rpc, request, timeout: float | None, answer):
        deadline = time.monotonic() + (self.timeout_s if timeout is None else timeout)
        method = self.channel.unary_unary(rpc.path, request_serializer=bytes, response_deserializer=rpc.response.parse)
        policy = self.retry if rpc.repeatable else NEVER
        for attempt in policy.retrying():
            with attempt:
                try:
                    response = method(request, metadata=self.metadata, timeout=max(0.0, deadline - time.monotonic()))
                except grpc.RpcError as error:
                    raise from_rpc_error(error) from None
        return answer(response) if answer else response

    def list_orders(self, symbol: str = "", page_size: int = 100) -> Iterator[Order]:
        """Every order of the account, newest first (optionally of one symbol), read a
        page at a time."""
        token = ""
        while True:
            page = self.list_orders_page(page_size=page_size, page_token=token, symbol=symbol)
            yield from page.orders
            token = page.next_page_token
            if not token:
                return

    def subscribe_orders(self, symbol: str = "", resume_after: str = "") -> OrderUpdates:
        """The account's order updates as they commit (see OrderUpdates)."""
        return OrderUpdates(self, symbol, resume_after)

    def subscribe_market_data(self, symbol: str, depth: int = 10) -> MarketData:
        """The symbol's book and trades as they change (see MarketData)."""
        return MarketData(self, symbol, depth)


class ResumableStream:
    """A server stream that is opened again when it breaks (see Resumption): what the
    blocking and the asyncio streams share."""

    def __init__(self, client: api.Api, path: str, response: type):
        self._client = client
        self._method = client.channel.unary_stream(path, request_serializer=bytes,
                                                   response_deserializer=response.parse)
        self._resumption = Resumption(client.retry)
        self._call = None
        self._closed = False
        self.reopened = 0  # how many times the stream broke and was opened again

    def _request(self):
        raise NotImplementedError

    def _broke(self, error: BourseError) -> float:
        """The stream broke with `error`: seconds to wait before it is opened again, or
        `error` raised when the resumption gives up."""
        self._call = None
        wait = self._resumption.wait_before_reopening(error)
        if wait is None:
            raise error
        self.reopened += 1
        return wait

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()


class _Stream(ResumableStream):
    def __iter__(self):
        return self

    def __next__(self):
        while not self._closed:
            if self._call is None:
                self._call = self._method(self._request(), metadata=self._client.metadata)
            try:
                message = next(self._call)
            except StopIteration:  # the server ended it without an error: open it again
                error = BourseError("the stream ended", code=grpc.StatusCode.UNAVAILABLE)
            except grpc.RpcError as failure:
                if self._closed:
                    break
                error = from_rpc_error(failure)
            else:
                self._resumption.received()
                return message
            time.sleep(self._broke(error))
        raise StopIteration

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OrderUpdates(_Stream):
    """Iterates SubscribeOrdersResponse messages: each with the new state of one of the
    account's orders (and the fills since its last update), or, without an order, the
    mark that the subscription is live (first) or a heartbeat. When the stream breaks
    it is opened again from `resume_token`, the last one seen: no update is missed or
    seen twice. Keep `resume_token` to resume after a restart (`resume_after`). A token
    too old raises UpdatesTrimmed: catch up with list_orders, then subscribe afresh."""

    def __init__(self, client: Client, symbol: str, resume_after: str):
        super().__init__(client, api.SUBSCRIBE_ORDERS, SubscribeOrdersResponse)
        self.symbol, self.resume_token = symbol, resume_after

    def _request(self):
        return SubscribeOrdersRequest(symbol=self.symbol, resume_after=self.resume_token)

    def __next__(self) -> SubscribeOrdersResponse:
        message = super().__next__()
        self.resume_token = message.resume_token or self.resume_token
        return message


class MarketData(_Stream):
    """Iterates SubscribeMarketDataResponse messages: the book (first, and after each
    change, conflated) and each trade. When the stream breaks it is opened again; its
    first message is the whole book again, but trades made while it was down are not
    sent (get_book's recent_trades has them)."""

    def __init__(self, client: Client, symbol: str, depth: int):
        super().__init__(client, api.SUBSCRIBE_MARKET_DATA, SubscribeMarketDataResponse)
        self.symbol, self.depth = symbol, depth

    def _request(self):
        return SubscribeMarketDataRequest(symbol=self.symbol, depth=self.depth)

    def __next__(self) -> SubscribeMarketDataResponse:
        return super().__next__()
