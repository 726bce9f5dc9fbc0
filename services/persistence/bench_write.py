"""Benchmark (a program, not a test): rows/s of ShardedStore.write_batch by batch size.

Side by side in one run on one private PostgreSQL (fsync and synchronous_commit on):
one transaction per order (what the original system did) versus group commit of 100
and 1000 orders per transaction. Each order brings its own later update and half a
trade, so a batch of N orders writes N inserts, N updates and N/2 trades.

    bazel run //services/persistence:bench_write -- --seconds 5 --compare
    PYTHONPATH=.:bazel-bin/protos .venv/bin/python -m services.persistence.bench_write
Set BOURSE_TEST_PG_URL to use a running PostgreSQL instead of a private one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from datetime import datetime, timezone

import psutil

from infra.local.servers import postgres_from_env
from services.common.config import ShardMap
from services.persistence.store import ShardedStore

_ids = itertools.count(1)


def _order(order_id: int, now: datetime, status: int = 1, filled: int = 0) -> dict:
    return {
        "order_id": order_id, "account_id": 1 + order_id % 50, "client_order_id": f"c{order_id}",
        "symbol": "AAPL", "side": 1 + order_id % 2, "order_type": 1, "time_in_force": 1, "status": status,
        "price": 10_000 + order_id % 100, "quantity": 10, "filled_quantity": filled,
        "leaves_quantity": 10 - filled, "reason": "", "create_time": now, "update_time": now,
    }


def make_batch(size: int) -> tuple[list, list, list]:
    """size new orders, the update of each, size // 2 trades (pairs of them crossing)."""
    now = datetime.now(timezone.utc)
    ids = [next(_ids) for _ in range(size)]
    new = [_order(i, now) for i in ids]
    updated = [_order(i, now, status=2, filled=5) for i in ids]
    trades = [
        {"trade_id": next(_ids), "symbol": "AAPL", "price": 10_000, "quantity": 5, "maker_order_id": a,
         "taker_order_id": b, "maker_account_id": 1, "taker_account_id": 2, "aggressor_side": 2, "time": now}
        for a, b in zip(ids[0::2], ids[1::2])
    ]
    return new, updated, trades


async def measure(store: ShardedStore, orders_per_txn: int, seconds: float) -> tuple[float, float, float]:
    """(rows/s, orders/s, CPU seconds of this process per 1000 orders)."""
    proc = psutil.Process()
    cpu0 = sum(proc.cpu_times()[:2])
    started = time.perf_counter()
    rows = orders = 0
    while time.perf_counter() - started < seconds:
        if orders_per_txn == 1:
            # One transaction per event: insert, update, and every other order a trade.
            new, updated, trades = make_batch(2)
            for batch in (([new[0]], [], []), ([new[1]], [], []), ([], [updated[0]], trades), ([], [updated[1]], [])):
                await store.write_batch(*batch)
        else:
            new, updated, trades = make_batch(orders_per_txn)
            # Inserts and updates of the same orders go in separate batches, as they
            # would arrive from the matching engine (accepted, then filled later).
            await store.write_batch(new, [], [])
            await store.write_batch([], updated, trades)
        rows += len(new) + len(updated) + len(trades)
        orders += len(new)
    elapsed = time.perf_counter() - started
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    return rows / elapsed, orders / elapsed, cpu / orders * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode")
    parser.add_argument("--sizes", default="1,100,1000", help="orders per transaction, comma-separated")
    parser.add_argument("--compare", action="store_true",
                        help="also run the batches through Core multi-row VALUES instead of arrays")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [(size, "arrays") for size in sizes]
    if args.compare:
        modes += [(size, "core") for size in sizes if size > 1]

    pg = postgres_from_env()
    results = {}
    try:
        pg.start(["bench_write"])
        stores = {
            path: ShardedStore([pg.url("bench_write")], ShardMap.parse("A-Z"), pg_arrays=(path == "arrays"))
            for path in {p for _, p in modes}
        }
        for store in stores.values():
            store.create_schema()
            await store.write_batch(*make_batch(10))  # warm the pool and statement caches
        for size, path in modes:
            results[size, path] = await measure(stores[path], size, args.seconds)
        for store in stores.values():
            store.close()
    finally:
        pg.stop()

    base = results[modes[0]][0]
    print(f"{'orders/txn':>10} {'path':>7} {'rows/s':>10} {'orders/s':>10} {'client CPU ms/1k orders':>24} "
          f"{'vs first':>9}")
    for (size, path), (rows, orders, cpu) in results.items():
        print(f"{size:>10} {path:>7} {rows:>10,.0f} {orders:>10,.0f} {cpu * 1000:>24.1f} {rows / base:>8.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
