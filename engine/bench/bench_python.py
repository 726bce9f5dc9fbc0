"""Python-side engine throughput: the packed batch API against the object API.

    bazel run -c opt //engine:engine_bench_python -- [orders] [batch] [runs]
        (defaults 1,000,000 orders, batches of 10,000 commands, 5 runs; medians)

Scenarios (one symbol):
  insert   alternating buy/sell GTC limits in a 10-tick band (crosses often)
  modify   1,000 passive resting orders, then 90% price modifies / 10% new
           passive orders (nothing crosses, so every id stays live)
Each is run through execute_packed (numpy commands in, numpy events out), and,
for comparison, through submit_batch and one submit() call per order.
Timed: the engine calls only (command arrays are built beforehand), plus for
execute_packed the numpy view of the returned events.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from bourse_engine import COMMAND_DTYPE, OP_MODIFY, OP_SUBMIT, Engine

MID = 100_000


def insert_commands(n: int, rng: np.random.Generator) -> np.ndarray:
    c = np.zeros(n, dtype=COMMAND_DTYPE)
    c["op"] = OP_SUBMIT
    c["side"] = 1 + (np.arange(n) % 2)
    c["order_type"] = 1
    c["tif"] = 1
    c["symbol_id"] = 1
    c["order_id"] = np.arange(1, n + 1)
    c["account_id"] = rng.integers(1, 101, n)
    c["price"] = MID - 5 + rng.integers(0, 10, n)
    c["quantity"] = rng.integers(1, 101, n)
    return c


def modify_commands(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(prefill, ops). Buys rest below MID, sells at or above it, modifies keep
    their side of the book, so nothing ever trades."""
    def passive(side, k):
        off = rng.integers(0, 50, k)
        return np.where(side == 1, MID - 1 - off, MID + off)

    base = 1000
    pre = np.zeros(base, dtype=COMMAND_DTYPE)
    pre["op"], pre["order_type"], pre["tif"], pre["symbol_id"] = OP_SUBMIT, 1, 1, 1
    pre["side"] = 1 + (np.arange(1, base + 1) % 2)  # id parity, as for ops below
    pre["order_id"] = np.arange(1, base + 1)
    pre["account_id"] = 1 + np.arange(base) % 100
    pre["price"] = passive(pre["side"], base)
    pre["quantity"] = rng.integers(1, 101, base)

    ops = np.zeros(n, dtype=COMMAND_DTYPE)
    new = rng.random(n) < 0.10
    new_ids = base + np.cumsum(new)
    # A modify names a random order that exists by then (ids only ever grow).
    target = (rng.random(n) * np.maximum(new_ids - 1, base)).astype(np.int64) + 1
    ops["op"] = np.where(new, OP_SUBMIT, OP_MODIFY)
    ops["order_id"] = np.where(new, new_ids, target)
    ops["side"] = 1 + (ops["order_id"] % 2)   # modify: the order's own side (id parity)
    ops["order_type"], ops["tif"], ops["symbol_id"] = 1, 1, 1
    ops["account_id"] = 1 + (ops["order_id"] - 1) % 100
    ops["price"] = passive(ops["side"], n)
    ops["quantity"] = rng.integers(1, 101, n)
    return pre, ops


def run_packed(pre: np.ndarray | None, cmds: np.ndarray, batch: int) -> tuple[float, int]:
    eng = Engine()
    if pre is not None:
        eng.execute_packed(pre)
    events = 0
    t0 = time.perf_counter()
    for i in range(0, len(cmds), batch):
        events += len(eng.execute_packed(cmds[i:i + batch]))
    return time.perf_counter() - t0, events


def columns(cmds: np.ndarray) -> dict:
    return {k: cmds[k] for k in ("order_id", "account_id", "symbol_id", "side", "price",
                                 "quantity")} | {"order_type": cmds["order_type"],
                                                 "tif": cmds["tif"]}


def run_submit_batch(cmds: np.ndarray, batch: int) -> float:
    eng = Engine()
    cols = {k: v.tolist() for k, v in columns(cmds).items()}
    t0 = time.perf_counter()
    for i in range(0, len(cmds), batch):
        eng.submit_batch(**{k: v[i:i + batch] for k, v in cols.items()})
    return time.perf_counter() - t0


def run_submit(cmds: np.ndarray) -> float:
    eng = Engine()
    rows = cmds[["order_id", "account_id", "symbol_id", "side", "order_type", "tif", "price",
                 "quantity"]].tolist()
    t0 = time.perf_counter()
    for oid, acct, sym, side, ot, tif, px, qty in rows:
        eng.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side, order_type=ot,
                   tif=tif, price=px, quantity=qty)
    return time.perf_counter() - t0


def median_rate(n: int, times: list[float]) -> str:
    rates = sorted(n / t for t in times)
    return f"median {statistics.median(rates):>11,.0f} /s  (min {rates[0]:,.0f}, max {rates[-1]:,.0f})"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rng = np.random.default_rng(1)

    ins = insert_commands(n, rng)
    results = [run_packed(None, ins, batch) for _ in range(runs)]
    print(f"insert  execute_packed  orders  {median_rate(n, [t for t, _ in results])}"
          f"  events/order {results[0][1] / n:.2f}  batch {batch}")
    small = ins[: max(n // 10, 1)]
    print(f"insert  submit_batch    orders  "
          f"{median_rate(len(small), [run_submit_batch(small, batch) for _ in range(runs)])}")
    print(f"insert  submit() each   orders  "
          f"{median_rate(len(small), [run_submit(small) for _ in range(runs)])}")

    pre, ops = modify_commands(n, rng)
    results = [run_packed(pre, ops, batch) for _ in range(runs)]
    print(f"modify  execute_packed  cmds    {median_rate(n, [t for t, _ in results])}"
          f"  events/cmd {results[0][1] / n:.2f}")


if __name__ == "__main__":
    main()
