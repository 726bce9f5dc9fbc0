"""Recovery time of a matching shard with many resting orders (a program, not a test).

    bazel run -c opt //services/matching:bench_recovery -- --orders 1000000

Starts a private PostgreSQL and the real persistence process, builds shard 0's books
through an in-process shard + group committer writing to that persistence (batches of
`--batch` non-crossing limit orders over many price levels and accounts), takes a
snapshot, adds `--after` more commands (new orders, cancels, crossing orders that
trade) so recovery is restore + replay, then:

* in process: times each phase of recovery (read snapshot, decode, engine restore,
  order descriptions, consistency check, read journal, replay) on a fresh shard;
* as a restarted shard does it: starts `python -m services.matching.main` for shard 0
  and times process start -> gRPC health SERVING, then checks its GetShardStatus
  (sequence, resting orders, event hash) against the in-process shard's, and reports
  its RSS next to an empty shard's (shard 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.matching.v1 import matching_service_pb2_grpc as m_grpc
from bourse.type.v1 import types_pb2 as t
from grpc_health.v1 import health_pb2, health_pb2_grpc

from infra.local.servers import Postgres, free_port
from services.common import logs
from services.common.config import (
    DEFAULT_SHARD_RANGES,
    DEFAULT_SYMBOLS,
    ShardMap,
)
from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.common.server import CHANNEL_OPTIONS
from services.matching.committer import GroupCommitter
from services.matching.market_data import MarketData
from services.matching.persistence import GrpcPersistence
from services.matching.shard import MatchingShard

MID = 100_000
LEVELS = 2_000  # price levels per side and symbol
ACCOUNTS = 200


def shard_symbols(index: int) -> dict[str, int]:
    return ShardMap.parse(DEFAULT_SHARD_RANGES).book_ids_of(index, DEFAULT_SYMBOLS.split())


class Books:
    """Generates commands and remembers which orders rest (for cancels)."""

    def __init__(self, symbols: list[str], seed: int = 7):
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.next_id = 1
        self.resting: list[tuple[int, int, str]] = []  # (order_id, account, symbol); may hold done ones

    def _new(self, side, price, quantity, symbol, tif=t.TIME_IN_FORCE_GTC) -> m.Command:
        order_id, self.next_id = self.next_id, self.next_id + 1
        account = self.rng.randrange(1, ACCOUNTS + 1)
        if tif == t.TIME_IN_FORCE_GTC:
            self.resting.append((order_id, account, symbol))
        return m.Command(new_order=m.NewOrder(
            order_id=order_id, account_id=account, client_order_id=f"cl-{order_id:x}", symbol=symbol, side=side,
            order_type=t.ORDER_TYPE_LIMIT, time_in_force=tif, price=price, quantity=quantity))

    def passive(self) -> m.Command:
        rng = self.rng
        symbol = rng.choice(self.symbols)
        offset = 1 + rng.randrange(LEVELS)
        if rng.random() < 0.5:
            return self._new(t.SIDE_BUY, MID - offset, rng.randrange(1, 100), symbol)
        return self._new(t.SIDE_SELL, MID + offset, rng.randrange(1, 100), symbol)

    def cancel(self) -> m.Command:
        index = self.rng.randrange(len(self.resting))
        self.resting[index], self.resting[-1] = self.resting[-1], self.resting[index]
        order_id, account, symbol = self.resting.pop()
        return m.Command(cancel_order=m.CancelOrder(order_id=order_id, account_id=account, symbol=symbol))

    def crossing(self) -> m.Command:
        rng = self.rng
        symbol = rng.choice(self.symbols)
        tif = t.TIME_IN_FORCE_IOC if rng.random() < 0.5 else t.TIME_IN_FORCE_GTC
        if rng.random() < 0.5:
            return self._new(t.SIDE_BUY, MID + 3, rng.randrange(50, 400), symbol, tif)
        return self._new(t.SIDE_SELL, MID - 3, rng.randrange(50, 400), symbol, tif)

    def unfilled(self) -> m.Command:
        """An IOC buy below every ask: cancelled at once, nothing rests, its key is bound."""
        return self._new(t.SIDE_BUY, MID - LEVELS - 10, 1, self.rng.choice(self.symbols), t.TIME_IN_FORCE_IOC)

    def mixed(self) -> m.Command:
        draw = self.rng.random()
        if draw < 0.4:
            return self.cancel()
        if draw < 0.6:
            return self.crossing()
        return self.passive()


async def wait_serving(address: str, popen: subprocess.Popen, timeout: float = 300.0) -> float:
    """Seconds until health says SERVING (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"process exited with {popen.returncode}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic()
            except grpc.RpcError:
                pass
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{address} not SERVING after {timeout}s")


class Bench:
    def __init__(self, args):
        self.args = args
        self.postgres = Postgres()
        self.processes: list[subprocess.Popen] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="bourse-bench-recovery-"))
        self.rows: list[tuple[str, str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
            PYTHONUNBUFFERED="1",
            BOURSE_SYMBOLS=DEFAULT_SYMBOLS,
            BOURSE_SHARD_RANGES=DEFAULT_SHARD_RANGES,
            BOURSE_DB_URLS=",".join(self.postgres.url(f"bourse_shard{i}") for i in range(3)),
            BOURSE_DRAIN_MS="200",
            **extra,
        )

    def spawn(self, name: str, module: str, **env: str) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            popen = subprocess.Popen([sys.executable, "-m", module], env=self.env(**env), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(popen)
        return popen

    def stop(self, popen: subprocess.Popen) -> None:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()

    def row(self, what: str, value: str) -> None:
        self.rows.append((what, value))
        print(f"  {what:<44} {value}", flush=True)

    async def start_persistence(self) -> str:
        """A private PostgreSQL, migrated, and the persistence process on it; its address."""
        self.postgres.start([f"bourse_shard{i}" for i in range(3)])
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.persistence.migrate"],
                                env=self.env(), check=True, capture_output=True)
        address = f"127.0.0.1:{free_port()}"
        await wait_serving(address, self.spawn("persistence", "services.persistence.main",
                                               BOURSE_PERSISTENCE_ADDR=address))
        return address

    async def run(self) -> None:
        persistence_address = await self.start_persistence()
        expected = await self.build(persistence_address)
        await self.in_process(persistence_address, expected)
        await self.restart(persistence_address, expected)

    async def build(self, persistence_address: str) -> tuple[int, int, int]:
        args = self.args
        log = logs.configure("bench-recovery")
        symbols = shard_symbols(0)
        books = Books(sorted(symbols))
        async with grpc.aio.insecure_channel(persistence_address, options=CHANNEL_OPTIONS) as channel:
            client = GrpcPersistence(channel, write_timeout_s=60)
            shard = MatchingShard(symbols, SnowflakeIds(MATCHING_NODE_BASE), shard_index=0)
            committer = GroupCommitter(shard, client, MarketData(None, log), log, snapshot_every=10**12)
            await committer.start(timeout_s=30)
            started = time.perf_counter()
            done = 0
            while done < args.orders:
                count = min(args.batch, args.orders - done)
                await committer.execute([books.passive() for _ in range(count)])
                done += count
            self.row(f"build: {args.orders:,} resting orders", f"{time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            sequence, size = await committer.take_snapshot()
            self.snapshot_bytes = size
            self.row("take + store snapshot", f"{time.perf_counter() - started:.2f} s, {size / 1e6:.1f} MB")
            done = 0
            while done < args.after:
                count = min(1000, args.after - done)
                await committer.execute([books.mixed() for _ in range(count)])
                done += count
            await committer.stop()
            await client.close()
            expected = (shard.sequence, len(shard.live), shard.engine.event_hash())
            self.row("state before restart (seq, resting)", f"{expected[0]:,}, {expected[1]:,}")
            self.row("  journal entries after the snapshot", f"{shard.sequence - sequence:,}")
            self.before = shard
        return expected

    async def in_process(self, persistence_address: str, expected) -> None:
        async with grpc.aio.insecure_channel(persistence_address, options=CHANNEL_OPTIONS) as channel:
            client = GrpcPersistence(channel)
            shard = MatchingShard(shard_symbols(0), SnowflakeIds(MATCHING_NODE_BASE + 3), shard_index=0)
            total = time.perf_counter()
            started = time.perf_counter()
            data = await client.read_snapshot(0)
            self.row("in-process: read snapshot (gRPC)", f"{time.perf_counter() - started:.3f} s")
            started = time.perf_counter()
            shard.restore(data)
            elapsed = time.perf_counter() - started
            for phase, seconds in getattr(shard, "restore_phases", {}).items():
                self.row(f"  restore: {phase}", f"{seconds:.3f} s")
            self.row("in-process: restore (all)", f"{elapsed:.3f} s")
            started = time.perf_counter()
            pages = [page async for page in client.read_journal(0, shard.sequence)]
            self.row("in-process: read journal (gRPC)", f"{time.perf_counter() - started:.3f} s")
            started = time.perf_counter()
            for page in pages:
                shard.replay(page)
            self.row(f"in-process: replay {sum(map(len, pages)):,} entries", f"{time.perf_counter() - started:.3f} s")
            self.row("in-process: total", f"{time.perf_counter() - total:.3f} s")
            got = (shard.sequence, len(shard.live), shard.engine.event_hash())
            if got != expected:
                raise SystemExit(f"in-process recovery differs: {got} != {expected}")
            self.check_descriptions(shard)
            self.row("in-process: sequence, resting, hash", "identical")

    def check_descriptions(self, shard: MatchingShard) -> None:
        """Every resting order's description equals the original shard's (update times aside:
        a replay cannot know the batch boundaries that set them)."""
        before = self.before.live
        if sorted(shard.live) != sorted(before):
            raise SystemExit("recovered shard rests other orders")
        rng = random.Random(1)
        ids = list(before)
        for order_id in rng.sample(ids, min(20_000, len(ids))):
            a, b = shard.live[order_id], before[order_id]
            fields = ("order_id", "account_id", "client_order_id", "symbol", "side", "order_type", "time_in_force",
                      "price", "quantity", "create_ns", "filled", "leaves", "status", "reason")
            if any(getattr(a, f) != getattr(b, f) for f in fields):
                raise SystemExit(f"order {order_id} differs after recovery: {a} != {b}")

    async def restart(self, persistence_address: str, expected) -> None:
        redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens: market data is skipped
        rss = {}
        for index in (0, 1):
            address = f"127.0.0.1:{free_port()}"
            started = time.monotonic()
            popen = self.spawn(f"matching-{index}", "services.matching.main", BOURSE_SHARD_INDEX=str(index),
                               BOURSE_MATCHING_ADDR=address, BOURSE_PERSISTENCE_ADDR=persistence_address,
                               BOURSE_REDIS_URL=redis_url, BOURSE_SNAPSHOT_EVERY=str(10**12),
                               BOURSE_STARTUP_TIMEOUT_MS="600000")
            serving = await wait_serving(address, popen)
            rss[index] = psutil.Process(popen.pid).memory_info().rss
            if index == 0:
                self.row("process: start -> SERVING", f"{serving - started:.2f} s")
                recovered = self.recovered_line()
                if recovered:
                    self.row("process: recovery as logged (books recovered)", f"{recovered['seconds']:.2f} s")
                async with grpc.aio.insecure_channel(address) as channel:
                    status = await m_grpc.MatchingServiceStub(channel).GetShardStatus(m.GetShardStatusRequest())
                got = (status.sequence, status.resting_orders, status.event_hash)
                if got != expected:
                    raise SystemExit(f"restarted shard differs: {got} != {expected}")
                self.row("process: GetShardStatus seq, resting, hash", "identical")
            self.stop(popen)
        resting = expected[1]
        self.row("process RSS: shard 0 / empty shard 1", f"{rss[0] / 2**20:.0f} MiB / {rss[1] / 2**20:.0f} MiB")
        self.row("RSS per resting order", f"{(rss[0] - rss[1]) / max(resting, 1):.0f} B")

    def recovered_line(self) -> dict | None:
        for line in (self.log_dir / "matching-0.log").read_text().splitlines():
            if '"books recovered"' in line:
                try:
                    return json.loads(line)
                except ValueError:
                    return None
        return None

    def close(self) -> None:
        for popen in reversed(self.processes):
            self.stop(popen)
        self.postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000, help="resting orders in the snapshot")
    parser.add_argument("--after", type=int, default=10_000, help="journaled commands after the snapshot")
    parser.add_argument("--batch", type=int, default=5_000, help="orders per ExecuteBatch while building")
    args = parser.parse_args()
    bench = Bench(args)
    print(f"recovery of matching shard 0: {args.orders:,} resting orders + {args.after:,} journaled commands "
          f"(logs in {bench.log_dir})", flush=True)
    try:
        asyncio.run(bench.run())
    finally:
        bench.close()


if __name__ == "__main__":
    main()
