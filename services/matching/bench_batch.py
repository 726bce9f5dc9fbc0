"""CPU per order of a matching process's batch, stage by stage (a program, not a test).

    bazel run -c opt //services/matching:bench_batch -- --batches 400 --batch 250

Runs what a matching process does with one ExecuteStream message under the stream load,
in process and without I/O, so that each stage's cost is measured without the noise of
the whole stack: decode the request (as gRPC hands it over), run it through the shard
(engine, order descriptions, idempotency keys), build the database statement's
parameters (direct_writes.py, everything but the round trip), record and take the
market data (market_data.py, everything but the Redis call: the client's packing of the
send included), and encode the response.
The order mix is the load generator's (80% limit GTC around a moving mid, 10% market
IOC, 10% cancels of resting orders) on --symbols symbols of one shard.

Prints microseconds of CPU per order per stage, the best of --rounds rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import deque

from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t
from redis.asyncio.connection import Connection

from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.matching import direct_writes
from services.matching.market_data import MarketData
from services.matching.service import add_results
from services.matching.shard import MatchingShard


class _NoRedis:
    """What MarketData needs of a Redis client to build its sends (never sent here)."""

    def register_script(self, script):
        return None


class _NoLog:
    def warning(self, *args, **kwargs):
        pass


def requests(symbols: list[str], batches: int, size: int, seed: int = 7) -> list[bytes]:
    """Serialized ExecuteStreamRequests with the load generator's mix."""
    rng = random.Random(seed)
    ids = SnowflakeIds(3, clock=time.time)
    mids = {symbol: 10_000 + 100 * i for i, symbol in enumerate(symbols)}
    resting: dict[str, deque] = {symbol: deque(maxlen=1000) for symbol in symbols}
    out = []
    count = 0
    for batch_id in range(batches):
        commands = []
        for _ in range(size):
            symbol = rng.choice(symbols)
            mids[symbol] = max(10, mids[symbol] + rng.choice((-1, 1)))
            roll = rng.random()
            account = 1 + rng.randrange(4)
            if roll < 0.10 and resting[symbol]:
                order_id, owner = resting[symbol].popleft()
                commands.append(m.Command(cancel_order=m.CancelOrder(order_id=order_id, account_id=owner,
                                                                     symbol=symbol)))
                continue
            count += 1
            order_id = ids.next()
            side = rng.choice((t.SIDE_BUY, t.SIDE_SELL))
            if roll < 0.20:
                order = m.NewOrder(order_id=order_id, account_id=account, client_order_id=f"bench-{count}",
                                   symbol=symbol, side=side, order_type=t.ORDER_TYPE_MARKET,
                                   time_in_force=t.TIME_IN_FORCE_IOC, quantity=1 + rng.randrange(5))
            else:
                order = m.NewOrder(order_id=order_id, account_id=account, client_order_id=f"bench-{count}",
                                   symbol=symbol, side=side, order_type=t.ORDER_TYPE_LIMIT,
                                   time_in_force=t.TIME_IN_FORCE_GTC,
                                   price=mids[symbol] + rng.randrange(-5, 6), quantity=1 + rng.randrange(10))
                resting[symbol].append((order_id, account))
            commands.append(m.Command(new_order=order))
        out.append(m.ExecuteStreamRequest(batch_id=batch_id, commands=commands).SerializeToString())
    return out


async def run(symbols: list[str], wire: list[bytes]) -> tuple[dict[str, float], int]:
    """Seconds of CPU per stage over all batches, and the commands run."""
    shard = MatchingShard({symbol: i + 1 for i, symbol in enumerate(symbols)}, SnowflakeIds(MATCHING_NODE_BASE))
    market = MarketData(_NoRedis(), _NoLog())
    redis_client = Connection()  # packs the send as redis-py would, never connects

    async def books_of(names):
        return {name: (*shard.depth(name), shard.trading_status(name)) for name in names}

    stages = dict.fromkeys(("decode", "execute", "statement", "market data", "response"), 0.0)
    commands = 0
    clock = time.process_time
    for data in wire:
        started = clock()
        request = m.ExecuteStreamRequest.FromString(data)
        batch = list(request.commands)
        shard.validate(batch)
        decoded = clock()
        outcome = shard.execute(batch)
        executed = clock()
        direct_writes.statement_parameters(0, outcome.write)
        written = clock()
        market.record(outcome.symbols, outcome.trades, books_of,
                      orders=[*outcome.write.new_rows, *outcome.write.updated_rows], answered=outcome.answered)
        redis_client.pack_command("EVALSHA", "0" * 40, 0, *await market._take())
        published = clock()
        response = m.EncodedExecuteStreamResponse(batch_id=request.batch_id)
        add_results(response.results, outcome.results)
        response.SerializeToString()
        answered = clock()
        for stage, (begin, end) in zip(stages, ((started, decoded), (decoded, executed), (executed, written),
                                                (written, published), (published, answered))):
            stages[stage] += end - begin
        commands += len(batch)
    return stages, commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch", type=int, default=250, help="commands per ExecuteStream message")
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    wire = requests(symbols, args.batches, args.batch)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        stages, commands = asyncio.run(run(symbols, wire))
        for stage, seconds in stages.items():
            best[stage] = min(best.get(stage, float("inf")), seconds / commands * 1e6)
    print(f"{args.batches} batches of {args.batch} commands, {args.symbols} symbols; us of CPU per command "
          f"(best of {args.rounds}):")
    for stage, us in best.items():
        print(f"  {stage:12s} {us:7.2f}")
    print(f"  {'total':12s} {sum(best.values()):7.2f}")


if __name__ == "__main__":
    main()
