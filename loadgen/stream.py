"""Stream mode of the load generator: S order-entry sessions (OrderEntry streams), each
driven by W closed-loop clients, so up to W commands per session are in flight and the
session coalesces what is waiting into each message.

A session looks like the unary stub to the rest of the load generator (SubmitOrder,
CancelOrder, ModifyOrder), so the same order mix, latency histograms and lost check
apply; a refused command raises CommandRefused, whose code() is the one the unary call
would have raised. That is how the unary paths' code drives it, a coroutine per call.

Closed loop drives it with ClosedLoop instead: no coroutine, future or stub call per
command, but a table of the commands in flight; each answer settles its command and
hands its client's next command to the session at once. Open loop drives it with
OpenLoop: a tick starts the commands due, each session's in one message. Same clients,
same draws, same accounting: only the load generator's own CPU per order changes, and that CPU is taken
from the stack it measures on a small machine.
"""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import grpc

from bourse.order.v1 import order_service_pb2 as pb
from services.common.deadlines import REAP_EVERY_S, Deadlines  # REAP_EVERY_S: how late a timed-out command fails

_CODES = {code.value[0]: code for code in grpc.StatusCode}
# A session with fewer commands than this waiting lets them gather for a millisecond
# before it writes (as a FIX engine fills a TCP segment): in open loop, calls arrive one
# by one, and a message each (1.2 commands per message at 5,500 calls/s) cost the load
# generator and the order replicas about 100 us per order each. Only a busy session
# (answers outstanding) waits: a lone command goes at once, and so does a closed loop's
# window, which is larger.
LINGER_BELOW = 64
LINGER_S = 0.001


def _code(result) -> grpc.StatusCode | None:
    """The status code a result failed with, or None for an answered command."""
    return _CODES.get(result.error.code, grpc.StatusCode.UNKNOWN) if result.HasField("error") else None


def _pop_late(in_flight: dict, now: float, timeout: float) -> list[tuple]:
    """The entries (client, call, began) in flight for `timeout` or longer at `now`, taken
    out. The table is oldest first, so the first younger entry ends the scan."""
    late = []
    for correlation_id, (_, _, began) in in_flight.items():
        if now - began < timeout:
            break
        late.append(correlation_id)
    return [in_flight.pop(correlation_id) for correlation_id in late]


class CommandRefused(Exception):
    def __init__(self, status):
        super().__init__(status.message)
        self._code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)

    def code(self) -> grpc.StatusCode:
        return self._code


class StreamSession:
    """One OrderEntry stream on `stub`'s channel, shared by several clients."""

    def __init__(self, stub, metadata, max_batch: int = 1000, on_results=None, linger: float = LINGER_S):
        """on_results: called with each response's results (ClosedLoop, OpenLoop), where
        otherwise each result settles the future of the call that sent it. linger: how
        long a busy session lets commands gather (0: OpenLoop posts them gathered)."""
        self._stub, self._metadata, self._max_batch = stub, metadata, max_batch
        self._linger = linger
        self._on_results = on_results
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._outbox: list[pb.OrderEntryCommand] = []
        self._wake = asyncio.Event()
        self._call = None
        self._tasks: list[asyncio.Task] = []
        # Commands sent with a timeout: one reaper fails the late ones (deadlines.py).
        self._deadlines = Deadlines(self._expired)
        self.messages_sent = 0
        self.messages_received = 0

    async def start(self) -> None:
        self._call = self._stub.OrderEntry(metadata=self._metadata)
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._read()),
                       asyncio.create_task(self._deadlines.run())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._call is not None:
            self._call.cancel()

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            if self._linger and len(self._outbox) < LINGER_BELOW and len(self._waiting) > len(self._outbox):
                await asyncio.sleep(self._linger)  # a busy session (answers outstanding): let more gather
            self._wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox[:self._max_batch], self._outbox[self._max_batch:]
                await self._call.write(pb.OrderEntryRequest(commands=batch))
                self.messages_sent += 1

    async def _read(self) -> None:
        try:
            async for response in self._call:
                self.messages_received += 1
                if self._on_results is not None:
                    self._on_results(response.results)
                    continue
                for result in response.results:
                    future = self._waiting.pop(result.correlation_id, None)
                    if future is not None and not future.done():
                        future.set_result(result)
        except grpc.aio.AioRpcError as error:
            self._fail(error)
            return
        self._fail(grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None, "the stream ended"))

    def _expired(self, future: asyncio.Future, correlation_id: int) -> None:
        self._waiting.pop(correlation_id, None)
        future.set_exception(grpc.aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, None, None, "no answer in time"))

    def _fail(self, error) -> None:
        if self._on_results is not None:
            self._on_results(None, error)
            return
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()

    # ClosedLoop's side: commands in flight are its entries, not futures.
    def post(self, items) -> None:
        """Queues (command, entry) pairs for the next message; each command gets its
        correlation id here, and the entry is kept until `pop` takes it back."""
        for command, entry in items:
            command.correlation_id = correlation_id = next(self._ids)
            self._waiting[correlation_id] = entry
            self._outbox.append(command)
        self._wake.set()

    def pop(self, correlation_id: int):
        return self._waiting.pop(correlation_id, None)

    def in_flight(self) -> dict:
        """correlation id -> entry, oldest first."""
        return self._waiting

    async def _send(self, command: pb.OrderEntryCommand, timeout: float | None):
        command.correlation_id = correlation_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting[correlation_id] = future
        self._outbox.append(command)
        self._wake.set()
        if timeout is not None:
            self._deadlines.add(loop.time() + timeout, future, correlation_id)
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


class ClosedLoop:
    """Closed-loop clients on one session, driven by its answers: each answer settles its
    command and the client's next command is queued at once, so a response of n answers
    is followed by a message of n commands (or of more, gathered for a millisecond).

    draw(client) -> (OrderEntryCommand, call): the client's next command.
    settle(client, call, began, ended, result, code): a command's outcome; `result` is
    the OrderEntryResult, or None with `code` (a grpc.StatusCode) when it failed."""

    def __init__(self, stub, metadata, clients: list[int], draw, settle, clock, timeout: float | None):
        self.session = StreamSession(stub, metadata, on_results=self._answered)
        self._clients, self._draw, self._settle = clients, draw, settle
        self._clock, self._timeout = clock, timeout
        self._deadline = 0.0
        self._done = asyncio.Event()

    async def run(self, deadline: float) -> None:
        """Sends until `deadline` (a `clock` time), then waits for the last answers."""
        self._deadline = deadline
        self._send(self._clients)
        reaper = asyncio.create_task(self._reap())
        try:
            await self._done.wait()
        finally:
            reaper.cancel()

    def _send(self, clients) -> None:
        now = self._clock()
        if now < self._deadline:
            draw = self._draw
            self.session.post([(command, (client, call, now))
                               for client in clients for command, call in (draw(client),)])
        elif not self.session.in_flight():
            self._done.set()

    def _answered(self, results, error=None) -> None:
        ended = self._clock()
        if results is None:  # the stream ended: what was in flight failed with it
            for client, call, began in self.session.in_flight().values():
                self._settle(client, call, began, ended, None, error.code())
            self.session.in_flight().clear()
            self._done.set()
            return
        freed = []
        for result in results:
            entry = self.session.pop(result.correlation_id)
            if entry is None:  # answered after its timeout: counted then
                continue
            client, call, began = entry
            code = _code(result)
            self._settle(client, call, began, ended, None if code else result, code)
            freed.append(client)
        self._send(freed)

    async def _reap(self) -> None:
        while self._timeout is not None:
            await asyncio.sleep(REAP_EVERY_S)
            now = self._clock()
            freed = []
            for client, call, began in _pop_late(self.session.in_flight(), now, self._timeout):
                self._settle(client, call, began, now, None, grpc.StatusCode.DEADLINE_EXCEEDED)
                freed.append(client)
            if freed:
                self._send(freed)


class OpenLoop:
    """Open-loop arrivals over S sessions, without a coroutine, future or timer per
    command (as ClosedLoop, but the arrival times drive it, not the answers).

    Every `tick` seconds (sooner if the next arrival is further away: then at its time)
    the commands due by now start, each session's in one post, so one message carries
    every command of a session that fell due in the tick: what a session does with the
    orders its clients hand it while its last message is on the wire. Latency counts
    from the planned time, so the wait for the tick is measured too. Client i sends on
    session i mod S; `openloop.Stats.admit` counts as for `openloop.run` (in flight,
    dropped past `max_in_flight`, start lag)."""

    def __init__(self, stubs, metadata_of, sessions: int, clients: int, draw, settle, clock, timeout: float | None,
                 max_in_flight: int, stats, on_lag, tick: float):
        self.sessions = [StreamSession(stubs[s % len(stubs)], metadata_of(s), linger=0.0,
                                       on_results=lambda results, error=None, s=s: self._answered(s, results, error))
                         for s in range(sessions)]
        self._clients, self._draw, self._settle, self._clock = clients, draw, settle, clock
        self._timeout, self._max_in_flight, self._tick = timeout, max_in_flight, tick
        self.stats, self._on_lag = stats, on_lag
        self._drained = asyncio.Event()

    async def run(self, offsets, origin: float) -> None:
        """Starts the calls at origin + each offset, then waits for the last answers."""
        reaper = asyncio.create_task(self._reap())
        try:
            number = 0
            offsets = iter(offsets)
            offset = next(offsets, None)
            stats, sessions, count = self.stats, self.sessions, len(self.sessions)
            while offset is not None:
                await asyncio.sleep(max(self._tick, origin + offset - self._clock()))
                now = self._clock()
                posts: list[list] = [[] for _ in range(count)]
                while offset is not None and origin + offset <= now:
                    due = origin + offset
                    offset = next(offsets, None)
                    client = number % self._clients
                    number += 1
                    lag = stats.admit(self._max_in_flight, lambda: now - due)
                    if lag is None:
                        continue
                    self._on_lag(lag)
                    command, call = self._draw(client)
                    posts[client % count].append((command, (client, call, due)))
                for session, items in zip(sessions, posts):
                    if items:
                        session.post(items)
            if stats.in_flight:
                await self._drained.wait()
        finally:
            reaper.cancel()

    def _done(self, client, call, began, ended, result, code) -> None:
        self.stats.in_flight -= 1
        self._settle(client, call, began, ended, result, code)
        if self.stats.in_flight == 0:
            self._drained.set()

    def _answered(self, index: int, results, error=None) -> None:
        ended = self._clock()
        session = self.sessions[index]
        if results is None:  # the stream ended: what was in flight on it failed with it
            in_flight = session.in_flight()
            for client, call, began in list(in_flight.values()):
                self._done(client, call, began, ended, None, error.code())
            in_flight.clear()
            return
        for result in results:
            entry = session.pop(result.correlation_id)
            if entry is None:  # answered after its timeout: counted then
                continue
            client, call, began = entry
            code = _code(result)
            self._done(client, call, began, ended, None if code else result, code)

    async def _reap(self) -> None:
        while self._timeout is not None:
            await asyncio.sleep(REAP_EVERY_S)
            now = self._clock()
            for session in self.sessions:
                for client, call, began in _pop_late(session.in_flight(), now, self._timeout):
                    self._done(client, call, began, now, None, grpc.StatusCode.DEADLINE_EXCEEDED)
