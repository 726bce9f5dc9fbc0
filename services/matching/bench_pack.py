"""Benchmark: the rows a snapshot builds for the orders that came to rest since the last
one (live_orders.rows_of, natively: state_rows.cc) against numpy a column at a time (what
rows_of did before, kept here as its reference), side by side in one run.

    bazel run -c opt //services/matching:bench_pack -- --orders 30000 --rounds 5 [--packed]

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
from operator import attrgetter

import numpy as np

from services.common.config import DEFAULT_SYMBOLS
from services.matching.live_orders import ROW_DTYPE, LiveOrders, rows_of
from services.matching.order_state import OrderState

# The columns read from the OrderState attribute of the same name.
_ATTRIBUTE_COLUMNS = ("order_id", "account_id", "price", "quantity", "filled", "leaves", "create_ns", "update_ns",
                      "side", "order_type", "time_in_force", "status", "stop_price", "display_quantity",
                      "expire_us", "triggered")


def column_rows(states: list[OrderState], index: dict[str, int], texts: list[str], blob_at: int = 0):
    """The reference, as rows_of: numpy, a column at a time (np.fromiter of each attribute)."""
    count = len(states)
    rows = np.zeros(count, ROW_DTYPE)
    for name in _ATTRIBUTE_COLUMNS:
        rows[name] = np.fromiter(map(attrgetter(name), states), dtype=np.int64, count=count)

    def text(value: str) -> int:
        if value not in index:
            index[value] = len(texts)
            texts.append(value)
        return index[value]

    for name in ("symbol", "reason"):
        rows[name] = np.fromiter(map(text, map(attrgetter(name), states)), dtype=np.int64, count=count)
    coids = [state.client_order_id.encode() for state in states]
    lengths = np.fromiter(map(len, coids), dtype=np.uint32, count=count)
    rows["coid_length"] = lengths
    rows["coid_offset"] = blob_at + np.cumsum(lengths, dtype=np.uint64) - lengths
    return rows, b"".join(coids)


# Kept alive: what was allocated between the orders (resting_orders, scattered).
_BALLAST: list = []


def resting_orders(count: int, seed: int = 7, scattered: bool = False) -> list[OrderState]:
    """`count` orders in id order. scattered: made in a random order, each among other
    objects, as in a shard, where an order's state and values are made when it comes and
    the heap holds everything else the process made meanwhile (measured in the stack, the
    native pass took 0.6-0.75 us an order, where orders made one after another take 0.17)."""
    rng = random.Random(seed)
    symbols = list(DEFAULT_SYMBOLS)
    made = {}
    for i in (rng.sample(range(count), count) if scattered else range(count)):
        if scattered:
            _BALLAST.append([{"n": rng.random()} for _ in range(rng.randint(4, 12))])
        quantity = rng.randint(1, 500)
        filled = rng.choice((0, 0, 0, rng.randint(0, quantity - 1)))
        made[i] = OrderState(
            order_id=10**15 + i * 7, account_id=rng.randint(1, 40), client_order_id=f"run-{i:08d}",
            symbol=rng.choice(symbols), side=rng.choice((1, 2)), order_type=2, time_in_force=1,
            price=rng.randint(9_000, 11_000), quantity=quantity, create_ns=1_700_000_000_000_000_000 + i,
            filled=filled, leaves=quantity - filled, status=1 if filled == 0 else 2)
    return [made[i] for i in range(count)]


def timed(build, states) -> tuple[float, tuple]:
    """(seconds, (rows, client_order_id bytes, texts)), the texts numbered from two known."""
    texts = ["", "AAPL"]
    index = {text: i for i, text in enumerate(texts)}
    started = time.perf_counter()
    rows, coids = build(states, index, texts, 100)
    return time.perf_counter() - started, (rows, coids, texts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--packed", action="store_true", help="orders made one after another (not scattered)")
    args = parser.parse_args(argv)
    states = resting_orders(args.orders, scattered=not args.packed)
    natives, columns, packs = [], [], []
    for round_ in range(args.rounds):
        order = (rows_of, column_rows) if round_ % 2 == 0 else (column_rows, rows_of)
        results = {build: timed(build, states) for build in order}
        (rows, coids, texts), reference = results[rows_of][1], results[column_rows][1]
        if not (np.array_equal(rows, reference[0]) and (coids, texts) == reference[1:]):
            raise SystemExit("the two builds gave different rows")
        natives.append(results[rows_of][0])
        columns.append(results[column_rows][0])
        started = time.perf_counter()
        LiveOrders({state.order_id: state for state in states}).pack()
        packs.append(time.perf_counter() - started)
        print(f"round {round_ + 1}: native {natives[-1] * 1e3:6.1f} ms   numpy a column at a time "
              f"{columns[-1] * 1e3:6.1f} ms   ratio {natives[-1] / columns[-1]:.2f}x   "
              f"(the whole pack {packs[-1] * 1e3:.1f} ms)", flush=True)
    per_order = 1e6 / args.orders
    print(f"{args.orders} orders, medians: native {statistics.median(natives) * per_order:.2f} us an order, "
          f"numpy a column at a time {statistics.median(columns) * per_order:.2f}, ratio "
          f"{statistics.median(n / c for n, c in zip(natives, columns, strict=True)):.2f}x; "
          f"the whole pack {statistics.median(packs) * per_order:.2f} us an order")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
