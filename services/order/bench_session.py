"""CPU per command of an order replica's order-entry session (a program, not a test).

    bazel run -c opt //services/order:bench_session -- --messages 200 --per-message 250

Drives one OrderEntry session in process, the way the stream load does: each request
carries --per-message commands of the load generator's mix (limit GTC, market IOC,
cancels), and the next request goes once every answer of the last one is back. Below
the desk, each matching shard is a stand-in that answers every command at once as
the shard answers a new order (NEW, no fills), so what is measured is the replica's
own work per command: validation, ids, batching, the answers and their order. No
gRPC: the request and response messages are still parsed and serialized, as gRPC would.

Prints microseconds of CPU per command, the best of --rounds rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import uvloop

from bourse.matching.v1 import matching_service_pb2 as m
from bourse.order.v1 import order_service_pb2 as pb
from bourse.type.v1 import types_pb2 as t

from services.common.config import ShardMap
from services.common.ids import SnowflakeIds
from services.order import order_entry
from services.order.batcher import Batcher
from services.order.orders import OrderDesk

SYMBOLS = ("AAPL", "IBM", "MSFT")


STAND_IN_S = [0.0]  # CPU the stand-in shards spent, taken out of the measure


async def _shard(commands: list[m.Command]) -> list[m.CommandResult]:
    """A matching shard that rests every new order and cancels what it is asked to; its
    answers go through their wire form, as they reach the replica."""
    m.ExecuteStreamRequest(commands=commands).SerializeToString()  # the replica's: its send
    started = time.process_time()
    results = []
    for command in commands:
        kind = command.WhichOneof("command")
        body = getattr(command, kind)
        if kind == "new_order":
            order = t.Order(order_id=body.order_id, account_id=body.account_id, client_order_id=body.client_order_id,
                            symbol=body.symbol, side=body.side, order_type=body.order_type,
                            time_in_force=body.time_in_force, price=body.price, quantity=body.quantity,
                            leaves_quantity=body.quantity, status=t.ORDER_STATUS_NEW)
        else:
            order = t.Order(order_id=body.order_id, account_id=body.account_id, symbol=body.symbol,
                            status=t.ORDER_STATUS_CANCELLED)
        results.append(m.CommandResult(order=order))
    wire = m.ExecuteStreamResponse(results=results).SerializeToString()
    STAND_IN_S[0] += time.process_time() - started
    await asyncio.sleep(0)
    return m.ExecuteStreamResponse.FromString(wire).results


def requests(messages: int, per_message: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out, count = [], 0
    for _ in range(messages):
        commands = []
        for _ in range(per_message):
            count += 1
            symbol = rng.choice(SYMBOLS)
            roll = rng.random()
            if roll < 0.1:
                commands.append(pb.OrderEntryCommand(correlation_id=count, cancel=pb.CancelOrderRequest(
                    order_id=1 + rng.randrange(10**9), symbol=symbol)))
            elif roll < 0.2:
                commands.append(pb.OrderEntryCommand(correlation_id=count, submit=pb.SubmitOrderRequest(
                    client_order_id=f"bench-{count}", symbol=symbol, side=rng.choice((1, 2)),
                    order_type=t.ORDER_TYPE_MARKET, time_in_force=t.TIME_IN_FORCE_IOC, quantity=1 + rng.randrange(5))))
            else:
                commands.append(pb.OrderEntryCommand(correlation_id=count, submit=pb.SubmitOrderRequest(
                    client_order_id=f"bench-{count}", symbol=symbol, side=rng.choice((1, 2)),
                    order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC,
                    price=1000 + rng.randrange(-5, 6), quantity=1 + rng.randrange(10))))
        out.append(pb.OrderEntryRequest(commands=commands).SerializeToString())
    return out


class _Log:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


async def run(wire: list[bytes]) -> tuple[float, int]:
    """Seconds of CPU for the whole session, and the commands answered."""
    batchers = [Batcher(_shard, linger_s=0.0) for _ in ShardMap.parse("A-G,H-O,P-Z").ranges]
    for batcher in batchers:
        batcher.start()
    desk = OrderDesk(SYMBOLS, ShardMap.parse("A-G,H-O,P-Z"), batchers, persistence=None,
                     ids=SnowflakeIds(1), call_timeout_s=5.0)
    turn = asyncio.Event()

    async def client():
        for data in wire:
            turn.clear()
            yield pb.OrderEntryRequest.FromString(data)
            await turn.wait()

    answered = 0
    per_message = len(pb.OrderEntryRequest.FromString(wire[0]).commands)

    class Context:
        def add_done_callback(self, callback):
            pass

    STAND_IN_S[0] = 0.0
    started = time.process_time()
    async for response in order_entry.serve(desk, 1, client(), Context(), asyncio.Event(), window=per_message,
                                            log=_Log(), background=set()):
        pb.OrderEntryResponse.FromString(response.SerializeToString())
        answered += len(response.results)
        if answered % per_message == 0:
            turn.set()
    elapsed = time.process_time() - started - STAND_IN_S[0]
    for batcher in batchers:
        await batcher.stop()
    return elapsed, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--per-message", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    wire = requests(args.messages, args.per_message)
    best = float("inf")
    for _ in range(args.rounds):
        seconds, answered = uvloop.run(run(wire))
        if answered != args.messages * args.per_message:
            raise SystemExit(f"answered {answered} of {args.messages * args.per_message} commands")
        best = min(best, seconds / answered * 1e6)
    print(f"{args.messages} messages of {args.per_message} commands: {best:.2f} us of CPU per command "
          f"(best of {args.rounds})")


if __name__ == "__main__":
    main()
