"""The servers the floor benchmark (loadgen/floor.py) measures the stack against.

    python -m loadgen.floor_servers echo --address 127.0.0.1:P --node 0
    python -m loadgen.floor_servers relay-back --address 127.0.0.1:Q
    python -m loadgen.floor_servers relay-front --address 127.0.0.1:R --node 0 --backend 127.0.0.1:Q
    python -m loadgen.floor_servers relay-back --address 127.0.0.1:Q --db-urls URL0,URL1,URL2 --ranges A-G,H-O,P-Z

echo: an OrderService that answers every submit, cancel and modify at once with a
plausible order (NEW with the request's fields and a fresh id; a cancel CANCELLED), in
unary calls and in order-entry sessions (OrderEntry) alike.
relay-front: the same API (order-entry sessions included), but every call becomes a matching Command that goes through
the order service's own batching (Batcher over one long-lived ExecuteStream, as
services/order/main.py wires it) to relay-back, a MatchingService that decodes each
command and answers it with an order built from it: one batched hop, no engine, no
database. Neither authenticates nor validates: a floor does the least a real server
must (decode, answer), so whatever the stack spends beyond it shows.

relay-back with --db-urls is the journal floor: before answering, it makes each command
durable as the matching shards do, and nothing more. Each command goes to the shard that
owns its symbol (--ranges), each shard group-commits what queued up while its last
commit ran (lingering as the shards do: BOURSE_COMMIT_LINGER_US, else
BOURSE_BATCH_LINGER_US), and a commit is the shards' own statement
(services/matching/direct_writes.py) carrying only journal rows: no engine, no orders or
trades tables, no market data. It is the floor of any design in
which an ack waits for a committed journal.

All of them run on the services' own lifecycle (services.common.server: the same gRPC
options, uvloop, the health service Envoy checks, drain on SIGTERM), so the transport
costs the same as in the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc
from bourse.order.v1 import order_service_pb2 as order_pb2
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.type.v1 import types_pb2

from services.common import logs
from services.common.batch_stream import answer_as_done
from services.common.config import ShardMap, symbols_from_env
from services.common.ids import SnowflakeIds
from services.common.server import CHANNEL_OPTIONS, Lifecycle, Service, run, serve
from services.common.settings import Downstream
from services.matching.config import MatchingEnv
from services.matching.direct_writes import DirectWrites
from services.matching.order_state import timestamp
from services.order.batcher import Batcher
from services.order.config import Batching
from services.order.downstream import ShardStream

ORDER_SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
MATCHING_SERVICE = matching_pb2.DESCRIPTOR.services_by_name["MatchingService"].full_name
ACCOUNT = 1  # no authentication: every caller is this account
NEW, CANCELLED = types_pb2.ORDER_STATUS_NEW, types_pb2.ORDER_STATUS_CANCELLED


def accepted(fields, order_id: int, account_id: int) -> types_pb2.Order:
    """A new order as the engine would acknowledge one that rests untouched; `fields` is a
    SubmitOrderRequest or a matching NewOrder (they share the field names)."""
    order = types_pb2.Order(
        order_id=order_id, client_order_id=fields.client_order_id, account_id=account_id, symbol=fields.symbol,
        side=fields.side, order_type=fields.order_type, time_in_force=fields.time_in_force, price=fields.price,
        quantity=fields.quantity, leaves_quantity=fields.quantity, status=NEW)
    order.create_time.FromNanoseconds(time.time_ns())  # the real answer carries one too
    return order


def cancelled(fields, account_id: int) -> types_pb2.Order:
    return types_pb2.Order(order_id=fields.order_id, account_id=account_id, symbol=fields.symbol, status=CANCELLED)


def modified(fields, account_id: int) -> types_pb2.Order:
    return types_pb2.Order(order_id=fields.order_id, account_id=account_id, symbol=fields.symbol, price=fields.price,
                           quantity=fields.quantity, leaves_quantity=fields.quantity, status=NEW)


class EchoOrders(order_grpc.OrderServiceServicer):
    def __init__(self, ids: SnowflakeIds):
        self._ids = ids

    async def SubmitOrder(self, request, context):
        return order_pb2.SubmitOrderResponse(order=accepted(request, self._ids.next(), ACCOUNT))

    async def CancelOrder(self, request, context):
        return order_pb2.CancelOrderResponse(order=cancelled(request, ACCOUNT))

    async def ModifyOrder(self, request, context):
        return order_pb2.ModifyOrderResponse(order=modified(request, ACCOUNT))

    async def OrderEntry(self, request_iterator, context):
        """An order-entry session: each request's commands answered at once, in one
        response (no authentication, flow control or heartbeats: the least a session does)."""
        async for request in request_iterator:
            if request.commands:
                yield order_pb2.OrderEntryResponse(results=[self._result(c) for c in request.commands])
            if request.close:
                return

    def _result(self, command: order_pb2.OrderEntryCommand) -> order_pb2.OrderEntryResult:
        kind = command.WhichOneof("command")
        if kind == "submit":
            order = accepted(command.submit, self._ids.next(), ACCOUNT)
        elif kind == "cancel":
            order = cancelled(command.cancel, ACCOUNT)
        else:
            order = modified(command.modify, ACCOUNT)
        return order_pb2.OrderEntryResult(correlation_id=command.correlation_id, order=order)


class RelayOrders(order_grpc.OrderServiceServicer):
    """Each call as one Command on the batcher; the backend's order is the answer."""

    def __init__(self, batcher: Batcher, ids: SnowflakeIds, timeout_s: float):
        self._batcher = batcher
        self._ids = ids
        self._timeout = timeout_s

    async def _relay(self, command: matching_pb2.Command) -> types_pb2.Order:
        async with asyncio.timeout(self._timeout):
            return (await self._batcher.execute(command)).order

    def _command(self, kind: str, request) -> matching_pb2.Command:
        """The matching Command of a submit, cancel or modify, as the order service makes it."""
        if kind == "submit":
            return matching_pb2.Command(new_order=matching_pb2.NewOrder(
                order_id=self._ids.next(), account_id=ACCOUNT, client_order_id=request.client_order_id,
                symbol=request.symbol, side=request.side, order_type=request.order_type,
                time_in_force=request.time_in_force, price=request.price, quantity=request.quantity))
        if kind == "cancel":
            return matching_pb2.Command(cancel_order=matching_pb2.CancelOrder(
                order_id=request.order_id, account_id=ACCOUNT, symbol=request.symbol))
        return matching_pb2.Command(modify_order=matching_pb2.ModifyOrder(
            order_id=request.order_id, account_id=ACCOUNT, symbol=request.symbol, price=request.price,
            quantity=request.quantity))

    async def SubmitOrder(self, request, context):
        return order_pb2.SubmitOrderResponse(order=await self._relay(self._command("submit", request)))

    async def CancelOrder(self, request, context):
        return order_pb2.CancelOrderResponse(order=await self._relay(self._command("cancel", request)))

    async def ModifyOrder(self, request, context):
        return order_pb2.ModifyOrderResponse(order=await self._relay(self._command("modify", request)))

    async def OrderEntry(self, request_iterator, context):
        """A session as the order service runs one, least: each request's commands join
        the batcher as one group (enqueue_group), and are answered in one response once
        their batches are back; requests run side by side, answered as they finish."""

        async def run(request):
            if not request.commands:
                return None
            commands = [self._command(c.WhichOneof("command"), getattr(c, c.WhichOneof("command")))
                        for c in request.commands]
            group = self._batcher.enqueue_group(commands, asyncio.get_running_loop().time() + self._timeout)
            outcomes = await group.future
            return order_pb2.OrderEntryResponse(results=[
                order_pb2.OrderEntryResult(correlation_id=c.correlation_id, order=o.order)
                for c, o in zip(request.commands, outcomes)])

        async for response in answer_as_done(request_iterator, run, last=lambda request: request.close):
            yield response


def answer(command: matching_pb2.Command) -> matching_pb2.CommandResult:
    kind = command.WhichOneof("command")
    if kind == "new_order":
        order = accepted(command.new_order, command.new_order.order_id, command.new_order.account_id)
    elif kind == "cancel_order":
        order = cancelled(command.cancel_order, command.cancel_order.account_id)
    else:
        order = modified(command.modify_order, command.modify_order.account_id)
    return matching_pb2.CommandResult(order=order)


class Journal:
    """One shard's group commit of journal rows: everything queued while the last
    commit ran goes in the next one (after a linger, once commits carry several calls)."""

    def __init__(self, writes: DirectWrites, shard: int, linger_s: float):
        self._writes = writes
        self._shard = shard
        self._linger = linger_s
        self._queue: list[tuple[list, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._last_calls = 0
        self._sequence = 0
        self._task: asyncio.Task | None = None

    async def commit(self, commands: list) -> None:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._linger and self._last_calls > 1:
                await asyncio.sleep(self._linger)
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            self._last_calls = len(batch)
            journal = []
            for commands, _ in batch:
                for command in commands:
                    self._sequence += 1
                    journal.append(persistence_pb2.JournalEntry(
                        sequence=self._sequence, command=command.SerializeToString(), time=timestamp(time.time_ns())))
            try:
                await self._writes.write_batch(persistence_pb2.WriteBatchRequest(
                    matching_shard=self._shard, journal=journal))
            except Exception as error:  # noqa: BLE001 - every caller of the batch learns it
                for _, future in batch:
                    future.set_exception(error)
                continue
            for _, future in batch:
                future.set_result(None)


class RelayBackend(matching_grpc.MatchingServiceServicer):
    def __init__(self, journals: list[Journal] | None = None, shard_of=None):
        self._journals = journals or []
        self._shard_of = shard_of

    async def ExecuteStream(self, request_iterator, context):
        # Answered in arrival order, each batch as soon as it is read (a shard that
        # commits instantly) or, with journals, once its commands are committed.
        async for request in request_iterator:
            if self._journals:
                await self._commit(request.commands)
            yield matching_pb2.ExecuteStreamResponse(batch_id=request.batch_id,
                                                     results=[answer(c) for c in request.commands])

    async def _commit(self, commands) -> None:
        by_shard: dict[int, list] = {}
        for command in commands:
            symbol = getattr(command, command.WhichOneof("command")).symbol
            by_shard.setdefault(self._shard_of(symbol), []).append(command)
        await asyncio.gather(*(self._journals[shard].commit(part) for shard, part in by_shard.items()))


def _order_service(servicer) -> Service:
    return Service(ORDER_SERVICE, lambda server: order_grpc.add_OrderServiceServicer_to_server(servicer, server))


def _echo(args) -> tuple[list[Service], Lifecycle | None]:
    return [_order_service(EchoOrders(SnowflakeIds(args.node)))], None


def _relay_back(args) -> tuple[list[Service], Lifecycle | None]:
    lifecycle = None
    if args.db_urls:
        urls = args.db_urls.split(",")
        shard_map = ShardMap.parse(args.ranges)
        owner = {symbol: shard_map.shard_of(symbol) for symbol in symbols_from_env()}
        writes = [DirectWrites(url, shard) for shard, url in enumerate(urls)]
        linger_s = MatchingEnv.load().commit_linger_s()  # as matching reads it
        backend = RelayBackend([Journal(w, shard, linger_s) for shard, w in enumerate(writes)], owner.__getitem__)

        async def closing():
            for w in writes:
                await w.close()
        lifecycle = Lifecycle(closing=closing)
    else:
        backend = RelayBackend()
    return [Service(MATCHING_SERVICE,
                    lambda server: matching_grpc.add_MatchingServiceServicer_to_server(backend, server))], lifecycle


def _relay_front(args) -> tuple[list[Service], Lifecycle | None]:
    # The order service's settings (services/order/config.py) and wiring, so a
    # --setting such as BOURSE_BATCH_LINGER_US applies here as it does there.
    batching = Batching.from_env()
    channel = grpc.aio.insecure_channel(args.backend, options=CHANNEL_OPTIONS)
    stream = ShardStream(matching_grpc.MatchingServiceStub(channel), batching.call_timeout_s)
    batcher = batching.batcher(stream)

    async def ready():
        batcher.start()

    async def closing():
        await batcher.stop()
        await stream.close()
        await channel.close()

    servicer = RelayOrders(batcher, SnowflakeIds(args.node), batching.call_timeout_s)
    return [_order_service(servicer)], Lifecycle(ready=ready, closing=closing)


MODES = {"echo": _echo, "relay-front": _relay_front, "relay-back": _relay_back}


async def _serve(args) -> None:
    log = logs.configure(f"floor-{args.mode}").bind(node=args.node)
    services, lifecycle = MODES[args.mode](args)
    await serve(services, args.address, log, drain_seconds=Downstream.load().drain_ms / 1000,
                lifecycle=lifecycle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadgen.floor_servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=list(MODES))
    parser.add_argument("--address", required=True, help="host:port to serve on")
    parser.add_argument("--node", type=int, default=0, help="Snowflake node of the ids minted here (0-511)")
    parser.add_argument("--backend", default="", help="relay-front: the relay-back's host:port")
    parser.add_argument("--db-urls", default="", help="relay-back: journal each command in its shard's database")
    parser.add_argument("--ranges", default="A-G,H-O,P-Z", help="relay-back --db-urls: the symbol ranges of the shards")
    args = parser.parse_args(argv)
    if args.mode == "relay-front" and not args.backend:
        parser.error("relay-front needs --backend")
    run(lambda: _serve(args))


if __name__ == "__main__":
    main()
