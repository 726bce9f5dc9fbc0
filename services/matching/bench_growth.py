"""Benchmark: the longest single call while a shard's tables grow, side by side in one run.

    bazel run -c opt //services/matching:bench_growth -- --orders 300000 --keys 2200000 --rounds 3

A table that grows by doubling pauses the call that crosses each power of two, with the
shard's books held (and in the stack every shard of the process, whose answers all wait).
Measured in the stack (2026-12-04, sixteenth session) at half the maximum rate: a submit
took 12-21 ms at 32,768 and 65,536 orders, inside the engine. This times, per call:
- the engine's submit, an Engine grown from its default size against the PresizedEngine
  a shard runs, on the same orders (most cancelled soon after, as in the load: the done
  ones fill the id window);
- the idempotency KeyTable's add, keys bound one a call, past the 2 million a shard
  holds in its 10-minute window at 3,500 new orders a second (its index grows a 256th
  at a time, its ring in blocks, moved not copied).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bourse_engine import Engine, OrderType, Side, TimeInForce

from services.matching.client_ids import new_key_table
from services.matching.shard import PresizedEngine

SLOW_MS = 1.0


def engine_pauses(engine: Engine, orders: int) -> tuple[float, int]:
    """(the longest submit or cancel in ms, how many took over SLOW_MS)."""
    longest, slow = 0.0, 0
    raw = engine.raw
    for order_id in range(1, orders + 1):
        started = time.perf_counter()
        raw.submit(order_id, order_id % 40, 1 + order_id % 30, Side.BUY if order_id % 2 else Side.SELL,
                   OrderType.LIMIT, TimeInForce.GTC, 10_000 + (order_id * 7919) % 400, 1, False, 1, 0, 0)
        if order_id % 8:  # seven in eight cancelled a few orders later
            raw.cancel(order_id - 4 if order_id > 4 else order_id, (order_id - 4) % 40, 1 + (order_id - 4) % 30)
        took = (time.perf_counter() - started) * 1e3
        longest = max(longest, took)
        slow += took > SLOW_MS
    return longest, slow


def key_pauses(keys: int) -> tuple[float, list[tuple[int, float]]]:
    """(the longest add in ms, (keys, ms) of each add over SLOW_MS)."""
    table, rng, now, longest, slow = new_key_table(), random.Random(7), time.time_ns(), 0.0, []
    for i in range(keys):
        digest = rng.getrandbits(128)
        started = time.perf_counter()
        table.add(digest, i, 0, now + i * 1_000, ())
        took = (time.perf_counter() - started) * 1e3
        longest = max(longest, took)
        if took > SLOW_MS:
            slow.append((i + 1, round(took, 1)))
    return longest, slow


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=2_200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ratios = []
    for round_ in range(args.rounds):
        kinds = [("grown", Engine), ("presized", PresizedEngine)]
        if round_ % 2:
            kinds.reverse()
        result = {name: engine_pauses(kind(), args.orders) for name, kind in kinds}
        ratios.append(result["presized"][0] / result["grown"][0])
        print(f"round {round_ + 1}: engine, {args.orders} orders: longest call grown {result['grown'][0]:.1f} ms "
              f"({result['grown'][1]} over {SLOW_MS:g} ms), presized {result['presized'][0]:.1f} ms "
              f"({result['presized'][1]} over); ratio {ratios[-1]:.2f}x", flush=True)
        longest, slow = key_pauses(args.keys)
        print(f"round {round_ + 1}: KeyTable, {args.keys} keys: longest add {longest:.1f} ms; adds over "
              f"{SLOW_MS:g} ms (keys, ms): {slow}", flush=True)
    print(f"engine: longest call, presized over grown, median of {args.rounds}: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
