"""Order entry sessions: the OrderEntry stream (order_service.proto), one per client
session, each command answered as the unary call would answer it.

A session reads commands, checks each and prepares its matching command (OrderDesk.
prepare), and sends what one request carried to each matching shard's batcher as one
group (with everyone else's commands, in the same batches): no task or future per
command, which cost more than the rest of a replica's work per command. Answers go back
as their groups come back, coalesced into as few messages as are ready together, except
that an answer waits for the earlier commands of its symbol, so that one symbol's
answers keep the order of its commands. An answer that needs a read (a retried submit
finds its original) is the only one with a task of its own.

Bounds: at most `window` commands are in flight (beyond, each is answered
TOO_MANY_IN_FLIGHT at once, in its symbol's order too); what the session holds is
bounded as well, because it stops reading while `window` answers wait to be written or
twice `window` wait for earlier ones: a client that does not read its answers stops
being read, and HTTP/2 flow control holds it there.
"""

from __future__ import annotations

import asyncio
from collections import deque

import grpc
from bourse.order.v1 import order_service_pb2 as order_pb2
from bourse.type.v1 import types_pb2

from services.common.errors import BourseError, invalid, status_message
from services.common.malformed import Undecodable, malformed
from services.order.batcher import Batcher, Group
from services.order.orders import OrderDesk

WORKING = frozenset((types_pb2.ORDER_STATUS_NEW, types_pb2.ORDER_STATUS_PARTIALLY_FILLED))
_END = object()  # queued when nothing more will be answered
# With fewer answers than this ready and more on their way, a session waits a millisecond
# for them before it writes: under an open-loop load, commands arrive a few at a time and
# their answers come back per shard batch, and a message per handful cost more than the
# commands in it. A lone command's answer goes at once.
LINGER_BELOW = 64
LINGER_S = 0.001


def _add(results, result) -> None:
    """Appends an answer (Session entry's `result`) to a response's results."""
    if type(result) is tuple:
        correlation_id, order, replayed = result
        results.add(correlation_id=correlation_id, order=order, replayed=replayed)
    else:
        results.append(result)


def _error(command: order_pb2.OrderEntryCommand, error: BourseError) -> order_pb2.OrderEntryResult:
    return order_pb2.OrderEntryResult(correlation_id=command.correlation_id, error=status_message(error))


class _Entry:
    """A command's place in its symbol's queue, and its answer once it has one."""

    __slots__ = ("command", "result")

    def __init__(self, command: order_pb2.OrderEntryCommand):
        self.command = command
        # The answer: an OrderEntryResult (a refusal), or (correlation_id, Order, replayed),
        # which becomes one in the response itself: the Order is copied once, not twice.
        self.result: order_pb2.OrderEntryResult | tuple | None = None


class Session:
    def __init__(self, desk: OrderDesk, account_id: int, window: int, log, heartbeat_s: float = 15.0):
        self._desk = desk
        self._heartbeat_s = heartbeat_s
        self._account = account_id
        self._window = window
        self._log = log
        self._out: asyncio.Queue = asyncio.Queue()
        self._room = asyncio.Event()  # set while the session may read more (see _has_room)
        self._room.set()
        self._in_flight = 0  # commands running on the desk
        self._held = 0  # answers in the symbols' queues: running, or done behind earlier ones
        self._by_symbol: dict[str, deque] = {}
        self._reading_done = False
        self._ended = False
        self.cancel_on_disconnect = False
        self.clean_close = False  # the client said `close`: its session ended on purpose
        self.refusal: BourseError | None = None  # how the stream must end, once answered
        self.working: dict[int, str] = {}  # order_id -> symbol, of orders this session placed
        # Commands prepared and not yet sent, per shard batcher: sent together, as one group.
        self._groups: dict[Batcher, list[tuple]] = {}
        self._pending: set[asyncio.Future] = set()  # groups sent, and answers that wait for a read

    # -- reading -------------------------------------------------------------------------

    async def read(self, requests, stopping: asyncio.Event) -> None:
        """Reads commands until the client half-closes or `stopping` is set; a request
        marked `close` makes the end clean (no cancel on disconnect)."""
        first = True
        try:
            async for request in requests:
                if isinstance(request, Undecodable):  # the stream ends so, once the rest is answered
                    self._log.warning("malformed order-entry request", error=request.error)
                    self.refusal = malformed("/bourse.order.v1.OrderService/OrderEntry", request)
                    return
                if first:
                    self.cancel_on_disconnect = request.options.cancel_on_disconnect
                    first = False
                for command in request.commands:
                    while not self._has_room():
                        self._send()  # what is prepared goes before the session waits
                        self._room.clear()
                        await self._room.wait()
                    if stopping.is_set():
                        return
                    self._dispatch(command)
                self._send()
                if request.close:
                    self.clean_close = True
                    return
        finally:
            self._send()
            self._reading_done = True
            self._maybe_end()

    def _has_room(self) -> bool:
        return self._out.qsize() < self._window and self._held < 2 * self._window

    def _dispatch(self, command: order_pb2.OrderEntryCommand) -> None:
        """Answers the command at once (refused) or prepares it to go with the others of
        its shard read meanwhile (`_send`): one group per shard, not a task per command."""
        kind = command.WhichOneof("command")
        if kind is None:  # no symbol to keep an order with: answered at once
            self._answer(_error(command, invalid("command", "one of submit, cancel or modify is required")))
            return
        body = getattr(command, kind)
        entry = _Entry(command)
        if self._in_flight >= self._window:
            entry.result = _error(command, BourseError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_IN_FLIGHT",
                f"the session has {self._window} commands in flight: wait for their answers", retry_after_s=0.01))
        else:
            try:
                batcher, matching_command, finish = self._desk.prepare(kind, body, self._account)
            except BourseError as error:
                entry.result = _error(command, error)
            except Exception as error:  # noqa: BLE001  (one command's fault must not end the session)
                self._log.exception("order_entry_command_failed", kind=kind)
                entry.result = _error(command, BourseError(grpc.StatusCode.INTERNAL, "INTERNAL", f"{kind} failed: {error}"))
            else:
                self._in_flight += 1
                self._groups.setdefault(batcher, []).append((entry, kind, body, matching_command, finish))
        symbol = body.symbol
        self._by_symbol.setdefault(symbol, deque()).append(entry)
        self._held += 1
        if entry.result is not None:
            self._release(symbol)

    def _send(self) -> None:
        if not self._groups:
            return
        groups, self._groups = self._groups, {}
        deadline = self._desk.deadline()
        for batcher, members in groups.items():
            group = batcher.enqueue_group([member[3] for member in members], deadline)
            self._pending.add(group.future)
            group.future.add_done_callback(lambda _future, group=group, members=members: self._ran(group, members))

    def _ran(self, group: Group, members: list[tuple]) -> None:
        """A group's answers; the symbols they unblock are released once, after all."""
        self._pending.discard(group.future)
        future = group.future
        missing = None  # what an item without its own outcome answers (the deadline passed)
        if future.cancelled():
            missing = RuntimeError("the batch was abandoned")
        elif future.exception() is not None:
            missing = future.exception()
        symbols = set()
        for (entry, kind, body, _, finish), outcome in zip(members, group.outcomes):
            symbols.add(body.symbol)
            if outcome is None:
                outcome = missing
            if isinstance(outcome, BaseException):
                self._settle(entry, kind, error=self._desk.failed(kind, outcome))
                continue
            try:
                answer = finish(body, self._account, outcome)
            except Exception as error:  # noqa: BLE001 - BourseError, or a fault (INTERNAL)
                self._settle(entry, kind, error=error)
                continue
            if asyncio.iscoroutine(answer):  # it needs a read of the stored order: answered when read
                task = asyncio.ensure_future(answer)
                self._pending.add(task)
                task.add_done_callback(lambda task, entry=entry, kind=kind: self._read_done(task, entry, kind))
            else:
                self._settle(entry, kind, answer)
        for symbol in symbols:
            self._release(symbol)

    def _read_done(self, task: asyncio.Task, entry: _Entry, kind: str) -> None:
        self._pending.discard(task)
        if task.cancelled():
            self._settle(entry, kind, error=RuntimeError("the read was abandoned"))
        elif task.exception() is not None:
            self._settle(entry, kind, error=task.exception())
        else:
            self._settle(entry, kind, task.result())
        self._release(getattr(entry.command, kind).symbol)

    def _settle(self, entry: _Entry, kind: str, answer=None, error: BaseException | None = None) -> None:
        self._in_flight -= 1
        if error is None:
            order, replayed = answer
            if order.status in WORKING:
                self.working[order.order_id] = order.symbol
            else:
                self.working.pop(order.order_id, None)
            entry.result = (entry.command.correlation_id, order, replayed)
            return
        if not isinstance(error, BourseError):
            self._log.error("order_entry_command_failed", kind=kind, error=repr(error))
            error = BourseError(grpc.StatusCode.INTERNAL, "INTERNAL", f"{kind} failed: {error}")
        entry.result = _error(entry.command, error)

    def _release(self, symbol: str) -> None:
        """Answers the symbol's finished commands that no earlier one of it holds back."""
        queue = self._by_symbol.get(symbol)
        while queue and queue[0].result is not None:
            self._held -= 1
            self._answer(queue.popleft().result)
        if queue is not None and not queue:
            del self._by_symbol[symbol]
        if self._has_room():
            self._room.set()
        self._maybe_end()

    # -- writing -------------------------------------------------------------------------

    def _answer(self, result: order_pb2.OrderEntryResult | tuple) -> None:
        self._out.put_nowait(result)

    def _maybe_end(self) -> None:
        if self._reading_done and self._held == 0 and not self._ended:
            self._ended = True
            self._out.put_nowait(_END)

    async def responses(self):
        """The answers, as many per message as are ready; a heartbeat when quiet."""
        while True:
            try:
                async with asyncio.timeout(self._heartbeat_s):
                    first = await self._out.get()
            except TimeoutError:
                yield order_pb2.OrderEntryResponse()
                continue
            response = order_pb2.OrderEntryResponse()
            ended = first is _END
            if not ended and self._held and self._out.qsize() < LINGER_BELOW:
                await asyncio.sleep(LINGER_S)  # more answers are coming: the other shards' batches
            results = response.results
            if not ended:
                _add(results, first)
            while not ended and not self._out.empty():
                result = self._out.get_nowait()
                if result is _END:
                    ended = True
                else:
                    _add(results, result)
            if self._has_room():
                self._room.set()
            if response.results:
                yield response
            if ended:
                return

    # -- the end -------------------------------------------------------------------------

    async def cancel_working(self) -> int:
        """Cancels the orders this session placed that may still work, once its commands
        still running have finished (they may place more); how many it cancelled."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        orders = list(self.working.items())
        self.working.clear()
        results = await asyncio.gather(
            *(self._desk.cancel(order_pb2.CancelOrderRequest(order_id=order_id, symbol=symbol), self._account)
              for order_id, symbol in orders), return_exceptions=True)
        return sum(1 for r in results if not isinstance(r, BaseException))


class SessionCount:
    """Order-entry sessions per API key on this server (each holds a window of commands)."""

    def __init__(self, per_key: int):
        self._per_key = per_key
        self._open: dict[int, int] = {}

    def open(self, account_id: int) -> None:
        if self._open.get(account_id, 0) >= self._per_key:
            raise BourseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_SESSIONS",
                              f"this key has {self._per_key} order-entry sessions on this server: close one",
                              retry_after_s=1.0)
        self._open[account_id] = self._open.get(account_id, 0) + 1

    def close(self, account_id: int) -> None:
        self._open[account_id] -= 1
        if not self._open[account_id]:
            del self._open[account_id]


async def serve(desk: OrderDesk, account_id: int, requests, context, draining: asyncio.Event, window: int, log,
                background: set, heartbeat_s: float = 15.0):
    """One session's answers. Ends when the client half-closed and everything is
    answered, or, once `draining` is set, when what was read is answered (the caller
    then ends the stream UNAVAILABLE)."""
    session = Session(desk, account_id, window, log, heartbeat_s)

    def ended(_call) -> None:
        # However the stream ended, without a `close` the client did not end its session
        # on purpose; a server that stops is not the client going away.
        if session.cancel_on_disconnect and not session.clean_close and not draining.is_set():
            task = asyncio.ensure_future(_cancel_on_disconnect(session, account_id, log))
            background.add(task)
            task.add_done_callback(background.discard)

    context.add_done_callback(ended)
    stopping = asyncio.Event()
    reader = asyncio.create_task(session.read(requests, stopping))
    # A stream that breaks (a reset, a request that does not parse) ends the reading; what
    # broke it is the stream's business, not an unretrieved task error in the log.
    reader.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def stop_reading_on_drain():
        await draining.wait()
        stopping.set()
        reader.cancel()

    watcher = asyncio.create_task(stop_reading_on_drain())
    try:
        async for response in session.responses():
            yield response
    finally:
        watcher.cancel()
        reader.cancel()
    if session.refusal is not None:
        raise session.refusal


async def _cancel_on_disconnect(session: Session, account_id: int, log) -> None:
    working = len(session.working)
    cancelled = await session.cancel_working()
    log.info("order_entry_cancel_on_disconnect", account_id=account_id, working=working, cancelled=cancelled)
