"""Benchmark (a program, not a test): a matching shard's group commits to a PostgreSQL on
the same machine, over its Unix socket against loopback TCP, side by side in one run.

    bazel run //services/matching:bench_transport -- --batch 40 --rounds 6

One private cluster (fsync and synchronous_commit on, the stack's settings), one
DirectWrites connection per transport, each writing the same kind of batches as a
shard does (direct_writes.py: one statement per batch): --batch commands, each a
journal entry and a new order, the previous batch's orders updated, a trade for every
other one. The transports take turns, --seconds each, --rounds times, and each turn's
client CPU (this process) and server CPU (the connection's backend) are counted per
batch. Prints each turn, then the medians and their ratios (socket over TCP).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time

import psutil

from infra.local.servers import Postgres
from services.common.config import ShardMap
from services.matching.direct_writes import DirectWrites
from services.matching.shard_write import ShardWrite, TradeRow
from services.persistence.store import ShardedStore

DATABASE = "bench_transport"
COMMAND = bytes(range(60))  # a journaled command's bytes, about what a submit takes


class Batches:
    """ShardWrites shaped like a shard's under the stream load."""

    def __init__(self, size: int):
        self._size = size
        self._ids = itertools.count(1)
        self._sequence = itertools.count(1)
        self._previous: list[tuple] = []

    def next(self) -> ShardWrite:
        now_us = time.time_ns() // 1000
        ids = [next(self._ids) for _ in range(self._size)]
        new = [(i, 1 + i % 50, f"c{i}", "AAPL", 1 + i % 2, 1, 1, 1, 10_000 + i % 100, 10, 0, 10, "", now_us, now_us,
                0, 0, 0, 0) for i in ids]
        updated = [(*row[:7], 2, row[8], 10, 5, 5, "", row[13], now_us, *row[15:]) for row in self._previous]
        trades = [TradeRow(next(self._ids), "AAPL", 10_000, 5, i - 1, i, 1, 2, 2, now_us) for i in ids if i % 2 == 0]
        journal = [(next(self._sequence), COMMAND, now_us) for _ in ids]
        self._previous = new
        return ShardWrite(0, journal, new, updated, trades)


async def backend(writes: DirectWrites) -> psutil.Process:
    """The server process of the connection `writes` holds (opened by a first batch)."""
    conn = await writes._connection()
    return psutil.Process((await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0])


async def turn(writes: DirectWrites, server: psutil.Process, batches: Batches, seconds: float) -> dict:
    me = psutil.Process()
    client0, server0 = sum(me.cpu_times()[:2]), sum(server.cpu_times()[:2])
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        await writes.write_batch(batches.next())
        count += 1
    elapsed = time.perf_counter() - started
    return {"batches_per_s": count / elapsed,
            "client_us": (sum(me.cpu_times()[:2]) - client0) / count * 1e6,
            "server_us": (sum(server.cpu_times()[:2]) - server0) / count * 1e6}


async def run(args) -> dict[str, list[dict]]:
    pg = Postgres()
    try:
        pg.start([DATABASE])
        ShardedStore([pg.url(DATABASE)], ShardMap.parse("A-Z")).create_schema()
        urls = {"socket": pg.url(DATABASE, socket=True), "tcp": pg.url(DATABASE)}
        turns: dict[str, list[dict]] = {name: [] for name in urls}
        writers = {name: DirectWrites(url, 0) for name, url in urls.items()}
        batches = {name: Batches(args.batch) for name in urls}
        # Each connection's own orders: the batches of one never update the other's.
        batches["tcp"]._ids = itertools.count(10**12)
        batches["tcp"]._sequence = itertools.count(10**12)
        servers = {}
        for name, writes in writers.items():
            servers[name] = await backend(writes)
            await turn(writes, servers[name], batches[name], 0.5)  # warm: the statement prepared, plans cached
        for index in range(args.rounds):
            for name in (list(urls) if index % 2 == 0 else list(urls)[::-1]):  # neither always goes second
                measured = await turn(writers[name], servers[name], batches[name], args.seconds)
                turns[name].append(measured)
                print(f"round {index + 1} {name:>6}: {measured['batches_per_s']:7.0f} batches/s  client "
                      f"{measured['client_us']:6.0f} us  server {measured['server_us']:6.0f} us per batch", flush=True)
        for writes in writers.values():
            await writes.close()
        return turns
    finally:
        pg.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=40, help="commands per batch (40: a shard's at half the maximum)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0, help="per transport per round")
    args = parser.parse_args(argv)
    turns = asyncio.run(run(args))
    medians = {name: {key: statistics.median(t[key] for t in runs) for key in runs[0]} for name, runs in turns.items()}
    print(f"\nmedians of {args.rounds} rounds, {args.batch} commands per batch:")
    for name, values in medians.items():
        print(f"{name:>8}: {values['batches_per_s']:7.0f} batches/s  client {values['client_us']:6.0f} us  "
              f"server {values['server_us']:6.0f} us  together {values['client_us'] + values['server_us']:6.0f} us")
    socket, tcp = medians["socket"], medians["tcp"]
    print(f"socket / tcp: batches/s {socket['batches_per_s'] / tcp['batches_per_s']:.2f}x  client CPU "
          f"{socket['client_us'] / tcp['client_us']:.2f}x  server CPU {socket['server_us'] / tcp['server_us']:.2f}x  "
          f"together {(socket['client_us'] + socket['server_us']) / (tcp['client_us'] + tcp['server_us']):.2f}x")


if __name__ == "__main__":
    main()
