"""Memory of a matching shard over a long trading day (a program, not a test).

    bazel run -c opt //services/matching:bench_memory -- --orders 1000000,5000000

Drives one in-process shard (the real engine, order descriptions, idempotency keys,
finished-order cache) with the same mix, on a simulated clock that advances
--step-us per order, and reports the process's memory at each checkpoint in --orders.
The book it leaves is the same at every checkpoint: a fixed set of far-away resting
orders placed first, and per 10 orders: a sell that rests and the buy that fills it,
an IOC that finds nothing, and a far buy that rests and is cancelled 500 orders later.
Everything else the shard keeps is bounded by design: idempotency keys by their
window (10 minutes of the simulated clock), finished orders by count, the engine's
done ids by its id window. If memory follows the book and not the history, every
checkpoint after the windows fill shows the same memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections import deque

import psutil
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t

from bourse_engine import DEFAULT_ID_WINDOW, Engine

from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.matching.client_ids import KEY_WINDOW_MS
from services.matching.shard import MatchingShard

MID = 100_000
BATCH = 500


def rss_mib() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


class Day:
    def __init__(self, step_us: int, resting: int, id_window: int):
        self.clock_ns = 1_800_000_000 * 10**9
        self.step_ns = step_us * 1000
        ids = SnowflakeIds(7, clock=lambda: self.clock_ns / 1e9)
        self.next_id = ids.next
        self.shard = MatchingShard({"AAPL": 1}, SnowflakeIds(MATCHING_NODE_BASE), clock_ns=lambda: self.clock_ns,
                                   engine_factory=lambda: Engine(id_window))
        self.count = 0
        self.to_cancel: deque[int] = deque()
        self._run([self._new(t.SIDE_SELL, MID + 1000 + i % 500, t.TIME_IN_FORCE_GTC, 1 + i % 7) for i in range(resting)])

    def _new(self, side, price, tif, account=1) -> m.Command:
        self.clock_ns += self.step_ns
        self.count += 1
        order_id = self.next_id()
        return m.Command(new_order=m.NewOrder(
            order_id=order_id, account_id=account, client_order_id=f"day-{order_id:x}", symbol="AAPL", side=side,
            order_type=t.ORDER_TYPE_LIMIT, time_in_force=tif, price=price, quantity=1))

    def _run(self, commands) -> None:
        for start in range(0, len(commands), BATCH):
            self.shard.execute(commands[start:start + BATCH])

    def orders(self, n: int) -> None:
        commands = []
        while n > 0:
            far = self._new(t.SIDE_BUY, MID - 1000, t.TIME_IN_FORCE_GTC, account=3)
            self.to_cancel.append(far.new_order.order_id)
            commands += [
                self._new(t.SIDE_SELL, MID, t.TIME_IN_FORCE_GTC, account=1),
                self._new(t.SIDE_BUY, MID, t.TIME_IN_FORCE_GTC, account=2),
                self._new(t.SIDE_BUY, MID - 1, t.TIME_IN_FORCE_IOC, account=2),
                far,
                *(self._new(t.SIDE_SELL, MID, t.TIME_IN_FORCE_GTC, account=1 + i % 2) for i in range(3)),
                *(self._new(t.SIDE_BUY, MID, t.TIME_IN_FORCE_IOC, account=3) for _ in range(3)),
            ]
            if len(self.to_cancel) > 50:
                old = self.to_cancel.popleft()
                commands.append(m.Command(cancel_order=m.CancelOrder(order_id=old, account_id=3, symbol="AAPL")))
            n -= 10
            if len(commands) >= BATCH:
                self._run(commands)
                commands = []
        self._run(commands)

    def state(self) -> dict:
        shard = self.shard
        return {"orders": self.count, "rss_mib": round(rss_mib(), 1), "resting": len(shard.live),
                "engine_known_ids": shard.engine.known_ids(), "client_order_id_keys": len(shard.client_ids),
                "finished_kept": len(shard.done),
                "simulated_minutes": round(self.count * self.step_ns / 6e10, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", default="1000000,5000000", help="checkpoints, comma separated")
    parser.add_argument("--step-us", type=int, default=1000, help="simulated time per order (1000: 1,000 orders/s)")
    parser.add_argument("--resting", type=int, default=10_000, help="far-away resting orders placed first")
    parser.add_argument("--id-window", type=int, default=DEFAULT_ID_WINDOW,
                        help="the engine's id window (2**40: every id ever accepted stays known, as before)")
    args = parser.parse_args(argv)
    checkpoints = sorted(int(x) for x in args.orders.split(","))
    started = time.perf_counter()
    baseline = rss_mib()
    day = Day(args.step_us, args.resting, args.id_window)
    rows = [{"orders": 0, "rss_mib": round(baseline, 1), "note": "before the shard"}, day.state()]
    for checkpoint in checkpoints:
        day.orders(checkpoint - day.count)
        rows.append(day.state())
        print(json.dumps(rows[-1]), flush=True)
    first, last = rows[2], rows[-1]
    report = {"checkpoints": rows, "key_window_minutes": KEY_WINDOW_MS / 60_000, "engine_id_window": args.id_window,
              "rss_last_over_first_checkpoint": round(last["rss_mib"] / first["rss_mib"], 3),
              "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
