"""Benchmark: the rows a snapshot builds for the orders that came to rest since the last
one (live_orders.rows_of, a column at a time) against a tuple per order turned into the
array (what _pack did before, kept here as its reference), side by side in one run.

    bazel run -c opt //services/matching:bench_pack -- --orders 30000 --rounds 5

A snapshot in the process builds them with the shard's books held (the fourteenth and
fifteenth sessions' stalls, BENCHMARKS.md): at 100,000 commands a shard, about 30,000
orders. Each round times both on the same OrderStates, alternating which goes first, and
checks they give the same rows; then the whole LiveOrders.pack of them, for scale.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np

from services.common.config import DEFAULT_SYMBOLS
from services.matching.live_orders import ROW_DTYPE, LiveOrders, rows_of
from services.matching.order_state import OrderState


def tuple_rows(states: list[OrderState], text) -> np.ndarray:
    """The reference: one tuple per order, then np.array over them."""
    return np.array([
        (s.order_id, s.account_id, s.price, s.quantity, s.filled, s.leaves, s.create_ns, s.update_ns, 0, 0,
         text(s.symbol), text(s.reason), s.side, s.order_type, s.time_in_force, s.status, s.stop_price,
         s.display_quantity, s.expire_us, s.triggered) for s in states
    ], dtype=ROW_DTYPE) if states else np.zeros(0, ROW_DTYPE)


def resting_orders(count: int, seed: int = 7) -> list[OrderState]:
    rng = random.Random(seed)
    symbols = list(DEFAULT_SYMBOLS)
    states = []
    for i in range(count):
        quantity = rng.randint(1, 500)
        filled = rng.choice((0, 0, 0, rng.randint(0, quantity - 1)))
        states.append(OrderState(
            order_id=10**15 + i * 7, account_id=rng.randint(1, 40), client_order_id=f"run-{i:08d}",
            symbol=rng.choice(symbols), side=rng.choice((1, 2)), order_type=2, time_in_force=1,
            price=rng.randint(9_000, 11_000), quantity=quantity, create_ns=1_700_000_000_000_000_000 + i,
            filled=filled, leaves=quantity - filled, status=1 if filled == 0 else 2))
    return states


def timed(build, states) -> tuple[float, tuple]:
    """(seconds, the rows with their symbol and reason as the texts): the two builds number
    the texts in another order (_pack renumbers them canonically afterwards)."""
    index: dict[str, int] = {}
    started = time.perf_counter()
    rows = build(states, lambda value: index.setdefault(value, len(index)))
    seconds = time.perf_counter() - started
    texts = np.array(list(index), dtype=object)
    return seconds, (rows[[name for name in ROW_DTYPE.names if name not in ("symbol", "reason")]],
                     texts[rows["symbol"]], texts[rows["reason"]])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    states = resting_orders(args.orders)
    columns, tuples, packs = [], [], []
    for round_ in range(args.rounds):
        order = (rows_of, tuple_rows) if round_ % 2 == 0 else (tuple_rows, rows_of)
        results = {build: timed(build, states) for build in order}
        if not all(np.array_equal(a, b) for a, b in zip(results[rows_of][1], results[tuple_rows][1], strict=True)):
            raise SystemExit("the two builds gave different rows")
        columns.append(results[rows_of][0])
        tuples.append(results[tuple_rows][0])
        started = time.perf_counter()
        LiveOrders({state.order_id: state for state in states}).pack()
        packs.append(time.perf_counter() - started)
        print(f"round {round_ + 1}: column at a time {columns[-1] * 1e3:6.1f} ms   tuple per order "
              f"{tuples[-1] * 1e3:6.1f} ms   ratio {columns[-1] / tuples[-1]:.2f}x   "
              f"(the whole pack {packs[-1] * 1e3:.1f} ms)", flush=True)
    per_order = 1e6 / args.orders
    print(f"{args.orders} orders, medians: column at a time {statistics.median(columns) * per_order:.2f} us an order, "
          f"tuple per order {statistics.median(tuples) * per_order:.2f}, ratio "
          f"{statistics.median(c / t for c, t in zip(columns, tuples, strict=True)):.2f}x; "
          f"the whole pack {statistics.median(packs) * per_order:.2f} us an order")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
