"""Benchmark (a program, not a test): events/s written to PostgreSQL, side by side in one run.

On one private PostgreSQL (fsync and synchronous_commit on), the same rows through:
  write_batch  ShardedStore.write_batch with group commit: one transaction per batch of
               100 or 1000 orders (what a matching shard does);
  per-order    the same call with one order per transaction (the original design);
  copy         raw psycopg binary COPY of the same rows into the same tables in one
               transaction per batch (the floor: the cheapest bulk load PostgreSQL has;
               updates go through COPY into a temporary table + one UPDATE ... FROM).
A batch of N orders carries what a matching shard's batch does: N new orders, the
updates of the previous batch's N orders (now partially filled), N/2 trades and N
journal entries (the sequenced commands, ~60 bytes each). An event is one row written.

    bazel run //services/persistence:bench_write -- --seconds 5
    PYTHONPATH=.:bazel-bin/protos .venv/bin/python -m services.persistence.bench_write \
        [--seconds 3] [--sizes 1,100,1000] [--compare] [--journal-read 1000000]
--compare adds the portable SQLAlchemy Core path (multi-row VALUES) of write_batch;
--journal-read times reading that many journal entries back (store + protobuf messages,
as ReadJournal does). Set BOURSE_TEST_PG_URL to use a running PostgreSQL instead.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from datetime import UTC, datetime

import psutil
import psycopg

from infra.local.servers import postgres_from_env
from services.common.config import ShardMap
from services.persistence.models import (
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    UPDATABLE_COLUMNS,
    UPDATE_COLUMNS,
)
from services.persistence.store import ShardedStore

_ids = itertools.count(1)
_sequence = itertools.count(1)
COMMAND = bytes(range(60))


def _order(order_id: int, now: datetime, status: int = 1, filled: int = 0) -> dict:
    return {
        "order_id": order_id, "account_id": 1 + order_id % 50, "client_order_id": f"c{order_id}",
        "symbol": "AAPL", "side": 1 + order_id % 2, "order_type": 1, "time_in_force": 1, "status": status,
        "price": 10_000 + order_id % 100, "quantity": 10, "filled_quantity": filled,
        "leaves_quantity": 10 - filled, "reason": "", "create_time": now, "update_time": now, "stop_price": 0,
        "triggered": 0, "display_quantity": 0, "expire_time_us": 0,
    }


class Workload:
    """Batches shaped like a matching shard's: new orders, updates of the previous batch's
    orders, a trade for every other order, one journal entry per order."""

    def __init__(self) -> None:
        self._previous: list[int] = []

    def batch(self, size: int) -> dict:
        now = datetime.now(UTC)
        ids = [next(_ids) for _ in range(size)]
        new = [_order(i, now) for i in ids]
        updated = [_order(i, now, status=2, filled=5) for i in self._previous]
        trades = [
            {"trade_id": next(_ids), "symbol": "AAPL", "price": 10_000, "quantity": 5, "maker_order_id": i - 1,
             "taker_order_id": i, "maker_account_id": 1, "taker_account_id": 2, "aggressor_side": 2, "time": now}
            for i in ids if i % 2 == 0
        ]
        journal = [{"sequence": next(_sequence), "command": COMMAND, "time": now} for _ in ids]
        self._previous = ids
        return {"new_orders": new, "updated_orders": updated, "trades": trades, "matching_shard": 0,
                "journal": journal}


def events(batch: dict) -> int:
    return sum(len(batch[k]) for k in ("new_orders", "updated_orders", "trades", "journal"))


class CopyWriter:
    """The floor: binary COPY of the same rows, one transaction per batch."""

    _ORDER_TYPES = ("int8", "int8", "varchar", "varchar", "int2", "int2", "int2", "int2", "int8", "int8", "int8",
                    "int8", "varchar", "timestamptz", "timestamptz", "int8", "int2", "int8", "int8")
    _TRADE_TYPES = ("int8", "varchar", "int8", "int8", "int8", "int8", "int8", "int8", "int2", "timestamptz")
    _UPDATE_TYPES = ("int8", "int8", "int8", "int8", "int8", "int2", "varchar", "timestamptz", "int8", "int2")
    assert len(_UPDATE_TYPES) == len(UPDATE_COLUMNS)

    def __init__(self, url: str):
        self.conn = psycopg.connect(url)
        self.conn.execute(
            "CREATE TEMP TABLE order_updates (order_id bigint, price bigint, quantity bigint, filled_quantity bigint, "
            "leaves_quantity bigint, status smallint, reason varchar, update_time timestamptz, stop_price bigint, "
            "triggered smallint) ON COMMIT DELETE ROWS")
        self.conn.commit()
        self._update = "UPDATE orders AS o SET {} FROM order_updates AS v WHERE o.order_id = v.order_id".format(
            ", ".join(f"{c} = v.{c}" for c in UPDATABLE_COLUMNS))

    def _copy(self, cur, table: str, columns, types, rows, keys=None) -> None:
        keys = keys or columns
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row([row[k] for k in keys])

    def write(self, batch: dict) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._copy(cur, "orders", ORDER_COLUMNS, self._ORDER_TYPES, batch["new_orders"])
            if batch["updated_orders"]:
                self._copy(cur, "order_updates", UPDATE_COLUMNS,
                           self._UPDATE_TYPES, batch["updated_orders"])
                cur.execute(self._update)
            self._copy(cur, "trades", TRADE_COLUMNS, self._TRADE_TYPES, batch["trades"])
            shard = batch["matching_shard"]
            with cur.copy("COPY journal (matching_shard, sequence, command, time) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int2", "int8", "bytea", "timestamptz"])
                for e in batch["journal"]:
                    cp.write_row((shard, e["sequence"], e["command"], e["time"]))

    def close(self) -> None:
        self.conn.close()


def _cpu_by_pid(root: psutil.Process | None) -> dict[int, float]:
    """CPU seconds of root and its children (PostgreSQL's backends), by pid."""
    if root is None:
        return {}
    found = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            found[p.pid] = sum(p.cpu_times()[:2])
        except psutil.Error:
            pass
    return found


def _cpu_since(root: psutil.Process | None, before: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in _cpu_by_pid(root).items())


async def measure(write, size: int, seconds: float, server: psutil.Process | None) -> tuple[float, float, float]:
    """(events/s, client CPU ms per 1000 events, database CPU ms per 1000 events)."""
    workload = Workload()
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    server0 = _cpu_by_pid(server)
    started = time.perf_counter()
    count = 0
    while time.perf_counter() - started < seconds:
        batch = workload.batch(size)
        await write(batch)
        count += events(batch)
    elapsed = time.perf_counter() - started
    return count / elapsed, (sum(me.cpu_times()[:2]) - cpu0) / count * 1e6, _cpu_since(server, server0) / count * 1e6


async def read_journal(store: ShardedStore, entries: int) -> None:
    from services.persistence.service import journal_response

    now = datetime.now(UTC)
    for first in range(1, entries + 1, 10_000):
        last = min(first + 9_999, entries)
        journal = [{"sequence": s, "command": COMMAND, "time": now} for s in range(first, last + 1)]
        await store.write_batch(matching_shard=7, journal=journal)
    # The first pass over freshly written rows also sets their visibility hint bits.
    for attempt in ("first", "second"):
        started = time.perf_counter()
        got = 0
        async for page in store.read_journal(7, 0, 10_000):
            got += len(journal_response(page).SerializeToString()) and len(page)
        elapsed = time.perf_counter() - started
        print(f"ReadJournal path (store pages of 10000 + protobuf), {attempt} read: {got:,} entries in "
              f"{elapsed:.2f} s = {got / elapsed:,.0f} entries/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode")
    parser.add_argument("--sizes", default="1,100,1000", help="orders per transaction, comma-separated (may be empty)")
    parser.add_argument("--compare", action="store_true", help="also run write_batch on the Core path")
    parser.add_argument("--journal-read", type=int, default=0, metavar="N", help="time reading N journal entries")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    pg = postgres_from_env()
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    try:
        pg.start(["bench_write"])
        server = None if pg.external_url else psutil.Process(pg.pid())
        stores = {"write_batch": ShardedStore([pg.url("bench_write")], ShardMap.parse("A-Z"))}
        if args.compare:
            stores["core"] = ShardedStore([pg.url("bench_write")], ShardMap.parse("A-Z"), pg_arrays=False)
        stores["write_batch"].create_schema()
        copier = CopyWriter(pg.url("bench_write", driver="postgresql"))

        async def copy(batch):
            copier.write(batch)

        for store in stores.values():
            await store.write_batch(**Workload().batch(10))  # warm the pool and statement caches
        copy_batch = Workload().batch(10)
        await copy(copy_batch)

        for size in sizes:
            if size == 1:
                results["per-order", 1] = await measure(lambda b: stores["write_batch"].write_batch(**b), 1,
                                                        args.seconds, server)
                continue
            results["copy", size] = await measure(copy, size, args.seconds, server)
            for name, store in stores.items():
                results[name, size] = await measure(lambda b, s=store: s.write_batch(**b), size, args.seconds,
                                                    server)
        if args.journal_read:
            await read_journal(stores["write_batch"], args.journal_read)
        copier.close()
        for store in stores.values():
            store.close()
    finally:
        pg.stop()

    print(f"\n{'path':>12} {'orders/txn':>10} {'events/s':>10} {'client CPU ms/1k ev':>20} "
          f"{'db CPU ms/1k ev':>16}")
    for (name, size), (rate, cpu, db) in results.items():
        print(f"{name:>12} {size:>10} {rate:>10,.0f} {cpu:>20.1f} {db:>16.1f}")
    print()
    per_order = results.get(("per-order", 1))
    for size in sizes:
        group = results.get(("write_batch", size))
        if group is None:
            continue
        line = f"batch {size:>5}: write_batch / COPY = {group[0] / results['copy', size][0]:.2f}x"
        if per_order:
            line += f", write_batch / per-order = {group[0] / per_order[0]:.1f}x"
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
