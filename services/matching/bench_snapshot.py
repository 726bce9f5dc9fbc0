"""What a large snapshot costs the shard's commands, taken in a forked child or in the
process (a program, not a test).

    bazel run -c opt //services/matching:bench_snapshot -- --orders 1000000 --keys 3000000

    bazel run -c opt //services/matching:bench_snapshot -- --orders 16000 --keys 90000 --rounds 5

Starts a private PostgreSQL and the real persistence process, and builds shard 0 in
process as the matching service runs it (its batches committed straight to PostgreSQL,
its snapshots stored through persistence): `--orders` resting orders, and `--keys`
idempotency keys in all (the rest from IOC orders that find nothing to trade). Then, for each
round (the modes in turn, `--rounds` of each), callers keep sending mixed commands
(cancels, trades, new orders) while one snapshot is taken and stored, and this reports,
while it ran:
  - the calls' latency (p50, p99, max) and commands/s, against the same load before it;
  - how long the books were held (the fork, or the copy), and the snapshot's own CPU.
The modes: forked (a child encodes it), in process (frozen, then encoded on the event loop
in steps: the committer's way below SNAPSHOT_CHILD_FROM_BYTES), and on a thread: the
previous way in process, emulated here for comparison, with the rows packed under the
books' hold and the rest encoded after, both on a thread (so holding the GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import grpc

from services.common import logs
from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.common.server import CHANNEL_OPTIONS
from services.matching.bench_recovery import Bench, Books, shard_symbols
from services.matching.committer import GroupCommitter
from services.matching.direct_writes import DirectWrites
from services.matching.market_data import MarketData
from services.matching.persistence import GrpcPersistence
from services.matching.shard import MatchingShard

CALLERS = 8
COMMANDS_PER_CALL = 50
MODES = ("in process", "forked", "on a thread")


class Load:
    """CALLERS tasks, each sending COMMANDS_PER_CALL mixed commands a call, back to back."""

    def __init__(self, committer: GroupCommitter, books: Books):
        self.committer, self.books = committer, books
        self.calls: list[tuple[float, float]] = []  # (start, seconds)
        self.running = True

    async def caller(self) -> None:
        while self.running:
            commands = [self.books.mixed() for _ in range(COMMANDS_PER_CALL)]
            started = time.perf_counter()
            await self.committer.execute(commands)
            self.calls.append((started, time.perf_counter() - started))

    def during(self, start: float, end: float) -> list[float]:
        """The calls in flight at some time between start and end."""
        return [seconds for at, seconds in self.calls if at < end and at + seconds > start]


async def snapshot_on_a_thread(committer: GroupCommitter) -> tuple[int, int]:
    """The in-process snapshot as it was taken before the steps on the event loop (for
    comparison): rows packed on a thread with the books held, keys and message encoded on
    a thread after, then adopted and stored."""
    shard = committer.shard
    async with committer._books:
        started = time.perf_counter()
        taken = shard.take_snapshot()
        steps = taken.encoding()
        keys_step = await asyncio.to_thread(_first_callable, steps)  # the rows' steps, then the keys' sort
        paused = time.perf_counter() - started
    await asyncio.to_thread(lambda: (keys_step(), [step() for step in steps if step is not None]))
    async with committer._books:
        shard.adopt(taken)
    for _ in taken.view.release():
        pass
    await committer._persistence.save_snapshot(shard.shard_index, shard.sequence, taken.data)
    committer.last_snapshot = {"books_paused_s": paused, "work_s": float("nan")}
    return shard.sequence, len(taken.data)


def _first_callable(steps):
    return next(step for step in steps if step is not None)


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


def summary(latencies: list[float], seconds: float) -> str:
    if not latencies:
        return "no calls"
    ordered = sorted(latencies)
    p99 = _p99(ordered)
    rate = len(latencies) * COMMANDS_PER_CALL / seconds
    return (f"{rate:>8,.0f} commands/s  p50 {statistics.median(ordered) * 1e3:6.1f} ms"
            f"  p99 {p99 * 1e3:7.1f} ms  max {ordered[-1] * 1e3:7.1f} ms")


async def rounds(args, persistence_address: str, db_url: str) -> None:
    log = logs.configure("bench-snapshot")
    books = Books(sorted(shard_symbols(0)))
    async with grpc.aio.insecure_channel(persistence_address, options=CHANNEL_OPTIONS) as channel:
        client = GrpcPersistence(channel, write_timeout_s=60, direct=DirectWrites(db_url, 0, timeout_s=60))
        shard = MatchingShard(shard_symbols(0), SnowflakeIds(MATCHING_NODE_BASE), shard_index=0)
        committer = GroupCommitter(shard, client, MarketData(None, log), log, snapshot_every=10**12)
        await committer.start(timeout_s=30)
        started = time.perf_counter()
        for done in range(0, args.orders, 5000):
            await committer.execute([books.passive() for _ in range(min(5000, args.orders - done))])
        for done in range(0, max(0, args.keys - args.orders), 5000):
            await committer.execute([books.unfilled() for _ in range(min(5000, args.keys - args.orders - done))])
        print(f"built: {len(shard.live):,} resting orders, {shard.sequence:,} commands "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        await committer.take_snapshot()  # the first: what a fresh shard's first snapshot pays alike
        results: dict[str, list] = {mode: [] for mode in MODES}
        for round_ in range(args.rounds):
            for mode in (MODES if round_ % 2 == 0 else MODES[::-1]):
                committer._snapshot_in_child = mode == "forked"
                committer._snapshot_child_from = 0  # whatever the state's size
                load = Load(committer, books)
                callers = [asyncio.create_task(load.caller()) for _ in range(CALLERS)]
                await asyncio.sleep(args.before_s)
                cpu, began = time.process_time(), time.perf_counter()
                if mode == "on a thread":
                    sequence, size = await snapshot_on_a_thread(committer)
                else:
                    sequence, size = await committer.take_snapshot()
                ended, cpu = time.perf_counter(), time.process_time() - cpu
                await asyncio.sleep(0.5)
                load.running = False
                await asyncio.gather(*callers)
                during = load.during(began, ended)
                before = load.during(began - args.before_s + 0.5, began)
                line = committer.last_snapshot
                results[mode].append((ended - began, line["books_paused_s"], line["work_s"], cpu, during))
                print(f"[{mode:>10}] {size / 1e6:6.1f} MB at {sequence:,}: stored in {ended - began:5.2f} s, "
                      f"books held {line['books_paused_s'] * 1e3:7.1f} ms, snapshot CPU {line['work_s']:5.2f} s, "
                      f"this process's CPU meanwhile {cpu:5.2f} s", flush=True)
                print(f"{'':>13}before: {summary(before, args.before_s - 0.5)}", flush=True)
                print(f"{'':>13}during: {summary(during, ended - began)}", flush=True)
        print(f"\nmedians over the rounds, seconds ({' / '.join(MODES)}), and each against in process:")
        columns = [(name, lambda r, i=index: r[i]) for name, index in
                   (("stored in", 0), ("books held", 1), ("process CPU meanwhile", 3))]
        columns += [("p99 call during", lambda r: _p99(r[4])), ("slowest call during", lambda r: max(r[4], default=0))]
        for name, column in columns:
            values = [statistics.median(column(r) for r in results[mode]) for mode in MODES]
            print(f"  {name:<22}" + " / ".join(f"{value:7.4f}" for value in values)
                  + "   " + " / ".join(f"{value / max(values[0], 1e-9):.2f}x" for value in values))
        await committer.stop()
        await client.close()


async def run(bench: Bench, args) -> None:
    await rounds(args, await bench.start_persistence(), bench.postgres.url("bourse_shard0"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300_000, help="resting orders")
    parser.add_argument("--keys", type=int, default=1_000_000, help="idempotency keys (at least --orders)")
    parser.add_argument("--rounds", type=int, default=2, help="snapshots taken each way")
    parser.add_argument("--before-s", type=float, default=3.0, help="load before each snapshot, seconds")
    args = parser.parse_args()
    bench = Bench(args)
    print(f"a snapshot under load, shard 0: {args.orders:,} resting orders, {args.keys:,} keys "
          f"(logs in {bench.log_dir})", flush=True)
    try:
        asyncio.run(run(bench, args))
    finally:
        bench.close()


if __name__ == "__main__":
    main()
