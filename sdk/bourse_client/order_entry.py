"""An order-entry session (asyncio): many orders over one OrderEntry stream.

    async with AsyncClient("127.0.0.1:8080", api_key="demo-key-alice") as client:
        async with client.order_entry() as session:
            order = await session.submit_order("AAPL", Side.BUY, quantity=5, price=100)
            await session.cancel(order.order_id, "AAPL")

Calls made while the stream is busy are coalesced: whatever is waiting when a message
can leave goes in it. When the stream ends UNAVAILABLE (the replica drains or dies) the
session opens a new one through Envoy and sends again every command not yet answered:
a submit is idempotent by its client_order_id, so it is neither lost nor doubled. (A
cancel or modify sent again after it took effect answers as a repeat would: the
cancel OrderDone, the modify the same order.) A refused command raises the exception
the unary call would have raised (errors.py); a command still unanswered when the
session gives up raises SessionEnded.
"""

from __future__ import annotations

import asyncio
import itertools

import grpc
from bourse_sdk.bourse.order.v1 import (
    CancelOrderRequest,
    ModifyOrderRequest,
    OrderEntryCommand,
    OrderEntryOptions,
    OrderEntryRequest,
    OrderEntryResponse,
    SubmitOrderRequest,
)
from bourse_sdk.bourse.type.v1 import Order
from google.rpc import status_pb2

from .api import submit_request
from .errors import SessionEnded, TooManyInFlight, from_status

METHOD = "/bourse.order.v1.OrderService/OrderEntry"
_RECONNECT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED)


class OrderEntrySession:
    def __init__(self, target: str | None = None, api_key: str | None = None, *,
                 credentials: grpc.ChannelCredentials | None = None, ca_file: str | None = None,
                 channel: grpc.aio.Channel | None = None, metadata: tuple = (),
                 cancel_on_disconnect: bool = False, max_batch: int = 500,
                 window: int = 1000, reconnect_for_s: float = 30.0, command_timeout_s: float | None = 60.0):
        """A session with the exchange at `target` authenticated by `api_key` (over TLS
        with `ca_file` or `credentials`) on a channel of its own; or, as
        AsyncClient.order_entry() makes it, on the client's `channel` with its `metadata`.
        window: commands this session has unanswered at most (the server's own bound,
        BOURSE_ORDER_ENTRY_WINDOW, is 1,000 by default); more calls wait their turn.
        command_timeout_s: how long a call waits for its answer, reconnects included,
        before it raises TimeoutError (None: no limit). A submit that timed out may
        have executed: retry it with the same client_order_id to learn its outcome."""
        if ca_file is not None:
            with open(ca_file, "rb") as ca:
                credentials = grpc.ssl_channel_credentials(ca.read())
        self._target, self._credentials = target, credentials
        self._metadata = metadata if channel is not None else (("authorization", f"Bearer {api_key}"),)
        self._own_channel = channel is None
        self._options = OrderEntryOptions(cancel_on_disconnect=cancel_on_disconnect)
        self._max_batch = max_batch
        self._window = asyncio.Semaphore(window)
        self._reconnect_for_s = reconnect_for_s
        self._command_timeout_s = command_timeout_s
        self._ids = itertools.count(1)
        self._unanswered: dict[int, tuple[OrderEntryCommand, asyncio.Future]] = {}
        self._outbox: list[OrderEntryCommand] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.reconnects = 0
        self._answered = False  # the current stream has answered something
        self._channel = channel
        self._runner: asyncio.Task | None = None

    async def __aenter__(self) -> OrderEntrySession:
        if self._own_channel:
            self._channel = (grpc.aio.secure_channel(self._target, self._credentials) if self._credentials
                             else grpc.aio.insecure_channel(self._target))
        self._runner = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        """Waits for the answers still due, then ends the session cleanly (a request
        marked close: no cancel on disconnect) and half-closes the stream."""
        self._closing = True
        self._wake.set()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._own_channel and self._channel is not None:
            await self._channel.close()

    # -- commands ------------------------------------------------------------------------

    async def submit(self, request: SubmitOrderRequest) -> Order:
        return (await self._send(OrderEntryCommand(submit=request))).order

    async def submit_order(self, symbol: str, side, quantity: int, price: int = 0, **options) -> Order:
        """Client.submit_order over the session: the same defaults (a limit order GTC
        under a fresh client_order_id) and keyword options."""
        return await self.submit(submit_request(symbol, side, quantity, price, **options))

    async def submit_replayed(self, request: SubmitOrderRequest) -> tuple[Order, bool]:
        """The order and whether the exchange answered it as a retry of an earlier submit."""
        result = await self._send(OrderEntryCommand(submit=request))
        return result.order, result.replayed

    async def cancel(self, order_id: int, symbol: str) -> Order:
        return (await self._send(OrderEntryCommand(cancel=CancelOrderRequest(order_id=order_id,
                                                                              symbol=symbol)))).order

    async def modify(self, order_id: int, symbol: str, price: int, quantity: int) -> Order:
        return (await self._send(OrderEntryCommand(modify=ModifyOrderRequest(
            order_id=order_id, symbol=symbol, price=price, quantity=quantity)))).order

    async def _send(self, command: OrderEntryCommand):
        while True:
            if self._closing or self._runner is None or self._runner.done():
                raise RuntimeError("the session is closed")
            async with self._window:
                command.correlation_id = next(self._ids)
                future = asyncio.get_running_loop().create_future()
                self._unanswered[command.correlation_id] = (command, future)
                self._outbox.append(command)
                self._wake.set()
                try:
                    async with asyncio.timeout(self._command_timeout_s):
                        result = await future
                finally:  # answered, timed out or cancelled: not sent again on a reconnect
                    self._unanswered.pop(command.correlation_id, None)
            if result.error is None:
                return result
            refusal = from_status(status_pb2.Status.FromString(bytes(result.error)))
            if not isinstance(refusal, TooManyInFlight):  # the server's window is smaller: wait, again
                raise refusal
            await asyncio.sleep(refusal.retry_after_s or 0.01)

    # -- the stream ----------------------------------------------------------------------

    async def _run(self) -> None:
        give_up_at = None
        while True:
            try:
                await self._stream()
                if self._closing and not self._unanswered:
                    return  # closed cleanly
                # The server ended the stream without an error, and the session goes on.
                raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None,
                                           details="the server ended the stream")
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as error:
                # A stream-level INTERNAL is a reset stream (Envoy resets a client's stream
                # whose replica died mid-flight): a transport failure like UNAVAILABLE. A
                # write to a call that has just ended (UsageError, InvalidStateError) is one too.
                code = error.code() if isinstance(error, grpc.aio.AioRpcError) else grpc.StatusCode.UNAVAILABLE
                loop = asyncio.get_running_loop()
                if self._answered:  # the stream worked for a while: a fresh reconnect_for_s
                    give_up_at = None
                give_up_at = give_up_at or loop.time() + self._reconnect_for_s
                if code not in _RECONNECT or loop.time() > give_up_at or (self._closing and not self._unanswered):
                    self._fail_all(code, str(error.details() if isinstance(error, grpc.aio.AioRpcError) else error))
                    return
            except BaseException as error:
                self._fail_all(grpc.StatusCode.INTERNAL, f"the session failed: {error!r}")
                raise
            self.reconnects += 1
            # Every unanswered command goes again, in the order it was first sent.
            self._outbox = [command for command, _ in self._unanswered.values()]
            await asyncio.sleep(min(0.05 * self.reconnects, 1.0))

    async def _stream(self) -> None:
        call = self._channel.stream_stream(METHOD, request_serializer=bytes,
                                           response_deserializer=OrderEntryResponse.parse)(metadata=self._metadata)
        self._answered = False
        await call.write(OrderEntryRequest(options=self._options))
        reader = asyncio.create_task(self._read(call))
        try:
            while True:
                if not self._outbox:
                    if self._closing and not self._unanswered:
                        # A clean close (no cancel on disconnect), then the half-close.
                        await call.write(OrderEntryRequest(close=True))
                        await call.done_writing()
                        break
                    self._wake.clear()
                    waiter = asyncio.create_task(self._wake.wait())
                    done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if reader in done:
                        break
                    continue
                batch, self._outbox = self._outbox[:self._max_batch], self._outbox[self._max_batch:]
                await call.write(OrderEntryRequest(commands=batch))
            await reader
        finally:
            reader.cancel()
            call.cancel()

    async def _read(self, call) -> None:
        async for response in call:
            self._answered = self._answered or bool(response.results)
            for result in response.results:
                entry = self._unanswered.pop(result.correlation_id, None)
                if entry is not None and not entry[1].done():
                    entry[1].set_result(result)
            if self._closing and not self._unanswered:
                self._wake.set()
        if self._unanswered:  # ended without answering everything: a server that stopped
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None,
                                       details="stream ended with commands unanswered")

    def _fail_all(self, code: grpc.StatusCode, details: str) -> None:
        refused = SessionEnded(details or "the session ended", code=code, reason="SESSION_ENDED")
        for _, future in self._unanswered.values():
            if not future.done():
                future.set_exception(refused)
        self._unanswered.clear()
