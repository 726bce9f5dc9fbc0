"""Group commit: one engine pass and one database transaction for many calls.

Calls enqueue their commands and wait. One worker takes everything that queued up
while the previous batch was committing, runs it through the shard in arrival order
(each command gets the next sequence number), sends one WriteBatch carrying the
orders, trades and journal entries, waits for the commit, publishes market data, and
only then answers the callers: an answer means committed.

If the WriteBatch fails, the engine has applied commands that are not durable. None
of the batch's calls is answered with results (they get Unavailable), and the books
are recovered from persistence (newest snapshot, then the journal after it) before
anything else is executed; meanwhile the shard reports NOT_SERVING. A call that gave
up (deadline, cancel) before its batch was taken is not executed at all.

Snapshots are taken between batches (never with a batch in flight, so a snapshot
holds only committed commands): every `snapshot_every` commands and on demand. A
snapshot's work grows with the state (the idempotency keys of the key window, the
resting orders), not with the commands since the last one: at a high rate over a long
run, one every `snapshot_every` commands would take most of the shard's time. So the next one
also waits `snapshot_pace` times the last one's own work (its copy and encoding, timed
on this process): SNAPSHOT_PACE times the number of shards the process serves, which
holds their snapshots together to about 5% of its time. The journal to replay after a
crash grows instead, in proportion to the state. (One pace shared by the shards let the
shard that committed first after it opened take every turn: one shard went five minutes
without a snapshot. Each shard's own pace cannot starve another.)

Once a shard's state is estimated at SNAPSHOT_CHILD_FROM_BYTES or more, the copy is taken
by a forked child (forked_snapshot.py): the shard's batches wait for the fork only, where
a copy in the process held them for seconds at 300 MB. The child's CPU is the work the
pace counts. A fork that fails (no memory for the child) leaves that snapshot to the
process. There, the books are held only to copy the engine's bytes and the keys' records
and to freeze the working orders (LiveOrders.freeze: copy-on-write); the rows are packed
and the snapshot encoded after, on the event loop in short steps (`_encoded`): 5-8 ms held
at 16,000 working orders, where packing them under the hold took 25-45.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from bourse.matching.v1 import matching_service_pb2 as matching_pb2

from services.common import metrics, tracing
from services.matching import forked_snapshot, snapshot_codec
from services.matching.shard import MatchingShard

RECOVER_RETRY_S = 0.2
SNAPSHOT_PACE = 20
# A snapshot smaller than this (estimated from the state) is copied in the process: the
# fork's own costs (the child's start, the pages the shard writes while it lives) took
# 5% more CPU per order in 20 s stack runs whose snapshots stayed under 30 MB, and so
# small a copy holds the books for little. The bytes a key and a working order add to a
# snapshot, measured at 1M orders and 3M keys (293 MB):
SNAPSHOT_CHILD_FROM_BYTES = 64 * 2**20
SNAPSHOT_KEY_BYTES, SNAPSHOT_ORDER_BYTES = 40, 175


# After each of an in-process snapshot's steps on the event loop, a rest this many times as
# long: the snapshot takes a tenth of the loop meanwhile. In the stack at 13,900 calls/s
# (BOURSE_SNAPSHOT_EVERY=30000, eight snapshots a run), acks over 50 ms within 250 ms of a
# snapshot's start, three runs each way: 3,131, 3,575, 4,309 with no rest, 3,565, 937,
# 1,450 with this one; at about 90% of 2 cores, a burst of 25 ms of steps queued every shard's
# batches behind it.
SNAPSHOT_STEP_REST = 9.0


class Unavailable(Exception):
    """The call was not answered: nothing of it committed, or (a write whose answer was
    lost) its outcome is unknown. The caller may retry; an order's retry with the same
    client_order_id finds the original if it did commit."""

    def __init__(self, message: str, reason: str = "PERSISTENCE_UNAVAILABLE"):
        super().__init__(message)
        self.reason = reason


# A shard with no command for this long forgets the idempotency keys past their window.
IDLE_RECLAIM_S = 5.0
# How often the shard looks for GTD and DAY orders due when none is due sooner (an order
# placed meanwhile may be due sooner than the one it knew of).
EXPIRY_POLL_S = 0.25


async def _no_health(serving: bool) -> None:
    return None


class GroupCommitter:
    def __init__(self, shard: MatchingShard, persistence, market_data, log, clock=time.monotonic,
                 snapshot_every: int = 100_000, set_serving=_no_health, linger_s: float = 0.0,
                 snapshot_pace: float = SNAPSHOT_PACE, snapshot_in_child: bool = forked_snapshot.available(),
                 snapshot_child_from_bytes: int = SNAPSHOT_CHILD_FROM_BYTES):
        self.shard = shard
        self._persistence = persistence
        self._market_data = market_data
        self._log = log
        self._clock = clock
        self._set_serving = set_serving
        self._queue: list[tuple[list, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._books = asyncio.Lock()  # held while a batch is between engine and commit
        self._needs_recovery = True
        self._last_recovery_try = float("-inf")
        self._snapshot_every = snapshot_every
        # How long a batch may wait for more commands before it runs, once the last one
        # had several calls: a few milliseconds under load share one transaction and one
        # commit among many more orders; a lone call at light load runs at once.
        self._linger = linger_s
        self._last_calls = 0  # calls in the last batch: one alone means light load, no linger
        self._snapshot_task: asyncio.Task | None = None
        self._expiry_task: asyncio.Task | None = None
        self._snapshot_lock = asyncio.Lock()
        self._snapshot_bytes = 0  # size of the snapshot at snapshot_sequence, if this process took it
        self._snapshot_pace = snapshot_pace
        self._snapshot_in_child = snapshot_in_child
        self._snapshot_child_from = snapshot_child_from_bytes
        self._next_snapshot_at = float("-inf")  # by self._clock
        self.snapshot_sequence = 0
        self.last_snapshot: dict = {}  # what the log line of the last one stored says
        self.batches = 0  # committed WriteBatch calls, for tests and logs
        self.committed_commands = 0
        self.durable_sequence = 0  # of the last command committed
        self.serving = False
        self._observed = None  # (commands, group commit, database commit) histograms, when metrics are on
        self._waiting = tracing.Waiting()  # the calls' spans, for their group commit's span

    @property
    def queued_commands(self) -> int:
        return sum(len(commands) for commands, _ in self._queue)

    async def start(self, timeout_s: float = 60.0) -> None:
        """Recovers the books (retrying while persistence comes up), then starts the worker."""
        if metrics.enabled():
            label = str(self.shard.shard_index)
            self._observed = (metrics.GROUP_COMMIT_COMMANDS.labels(label), metrics.GROUP_COMMIT_SECONDS.labels(label),
                              metrics.PERSISTENCE_COMMIT_SECONDS.labels(label))
            metrics.watch_shard(self.shard.shard_index, self._gauges)
            metrics.watch_books(sorted(self.shard.symbols), self.shard.depth)
        deadline = self._clock() + timeout_s
        while not await self._recover():
            if self._clock() >= deadline:
                raise RuntimeError("could not recover the books from persistence")
            await asyncio.sleep(0.5)
        self._task = asyncio.create_task(self._run(), name="group-commit")
        self._expiry_task = asyncio.create_task(self._expire_due(), name="expiries")

    async def _expire_due(self) -> None:
        """Issues ExpireOrders, in line with the other commands (so journaled and replayed
        alike), whenever a resting GTD or DAY order's time has come."""
        while True:
            due = self.shard.next_expiry_us()
            wait_s = EXPIRY_POLL_S if due is None else (due - time.time_ns() // 1000) / 1e6
            await asyncio.sleep(min(max(wait_s, 0.0), EXPIRY_POLL_S))
            now_us = time.time_ns() // 1000
            due = self.shard.next_expiry_us()
            if due is None or due > now_us or self._needs_recovery:
                continue
            try:
                await self.execute([matching_pb2.Command(expire_orders={"up_to_time_us": now_us})])
            except Unavailable as error:  # tried again at the next poll
                self._log.warning("expiry not committed", error=str(error))
                await asyncio.sleep(EXPIRY_POLL_S)

    async def stop(self) -> None:
        for task in (self._task, self._snapshot_task, self._expiry_task):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for _, future in self._queue:
            if not future.done():
                future.set_exception(Unavailable("matching shard stopping", "SHARD_STOPPING"))
        self._queue.clear()

    async def execute(self, commands, validated: bool = False) -> list:
        """Results of `commands` once committed. Raises InvalidCommand or Unavailable.
        `validated`: the caller ran shard.validate on them already."""
        commands = list(commands)
        if not validated:
            self.shard.validate(commands)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        self._waiting.add(future)
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(IDLE_RECLAIM_S):
                    await self._wakeup.wait()
            except TimeoutError:  # quiet: give back what the expired idempotency keys hold
                if not self._needs_recovery and self.serving:
                    async with self._books:
                        self.shard.reclaim_keys()
                continue
            if self._linger and self._last_calls > 1:  # concurrent callers: wait for company
                await asyncio.sleep(self._linger)
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            self._waiting.forget_done(batch)
            batch = [(commands, future) for commands, future in batch if not future.done()]
            self._last_calls = len(batch)
            if not batch:
                continue
            try:
                async with self._books:
                    with self._waiting.batch_span("matching.group_commit", batch, **{
                            "bourse.shard": self.shard.shard_index, "bourse.calls": len(batch)}):
                        await self._commit(batch)
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one batch
                self._log.exception("batch failed")
                self._needs_recovery = True
                _fail(batch, Unavailable(f"matching failed: {error!r}", "MATCHING_FAILED"))
            if (self.shard.sequence - self.snapshot_sequence >= self._snapshot_every and not self._snapshotting
                    and self._clock() >= self._next_snapshot_at):
                self._snapshot_task = asyncio.create_task(self.take_snapshot())

    async def _commit(self, batch) -> None:
        if self._needs_recovery and not await self._recover(throttle=True):
            _fail(batch, Unavailable("persistence unavailable: order books are being recovered"))
            return
        commands = [command for cmds, _ in batch for command in cmds]
        started = time.perf_counter() if self._observed else 0.0
        try:
            with tracing.span("matching.engine", **{"bourse.commands": len(commands)}):
                outcome = self.shard.execute(commands)
        except Exception as error:  # noqa: BLE001 - an engine bug must not leave half-applied books
            self._log.exception("batch failed in the engine", commands=len(commands))
            self._needs_recovery = True
            _fail(batch, Unavailable(f"matching failed: {error!r}", "MATCHING_FAILED"))
            return
        writing = time.perf_counter() if started else 0.0
        try:
            with tracing.span("persistence.commit"):
                await self._persistence.write_batch(outcome.write)
        except Exception as error:  # noqa: BLE001 - whatever the cause, nothing is acked
            metrics.DATABASE_ERRORS.labels(str(self.shard.shard_index)).inc()
            self._log.warning("batch not committed, recovering books", error=repr(error), commands=len(commands))
            self._needs_recovery = True
            _fail(batch, Unavailable(f"persistence unavailable: {error!r}"))
            await self._recover()
            return
        self.batches += 1
        self.committed_commands += len(commands)
        self.durable_sequence = self.shard.sequence
        if started:
            done = time.perf_counter()
            sizes, group_commit, database_commit = self._observed
            sizes.observe(len(commands))
            group_commit.observe(done - started)
            database_commit.observe(done - writing)
        self._market_data.record(outcome.symbols, outcome.trades, self.committed_books,
                                 orders=[*outcome.write.new_rows, *outcome.write.updated_rows],
                                 answered=outcome.answered)
        start = 0
        for cmds, future in batch:
            if not future.done():
                future.set_result(outcome.results[start : start + len(cmds)])
            start += len(cmds)

    def _gauges(self) -> dict[str, float]:
        """The shard's gauges (metrics.watch_shard), read when /metrics is scraped."""
        return {"sequence": self.shard.sequence, "durable_sequence": self.durable_sequence,
                "snapshot_sequence": self.snapshot_sequence, "resting_orders": len(self.shard.live),
                "queued_commands": self.queued_commands}

    async def _recover(self, throttle: bool = False) -> bool:
        """Newest snapshot, then the journal after it. False if persistence is not there."""
        if throttle and self._clock() - self._last_recovery_try < RECOVER_RETRY_S:
            return False
        self._last_recovery_try = self._clock()
        if self.serving:
            self.serving = False
            await self._set_serving(False)
        started = time.perf_counter()
        index = self.shard.shard_index
        try:
            self.shard.reset()
            snapshot = await self._persistence.read_snapshot(index)
            if snapshot:
                self.shard.restore(snapshot)
            self.snapshot_sequence = self.shard.sequence
            replayed = 0
            async for entries in self._persistence.read_journal(index, self.shard.sequence):
                self.shard.replay(entries)
                replayed += len(entries)
        except Exception as error:  # noqa: BLE001 - persistence down or data unusable: try again later
            self._log.warning("books not recovered", error=repr(error))
            return False
        self._needs_recovery = False
        self.durable_sequence = self.shard.sequence  # recovered from what persistence holds
        self.serving = True
        await self._set_serving(True)
        self._log.info("books recovered", sequence=self.shard.sequence, snapshot=self.snapshot_sequence,
                       replayed=replayed, resting=len(self.shard.live),
                       seconds=round(time.perf_counter() - started, 3))
        # Whatever Redis holds may predate a crash: publish every book afresh.
        self._market_data.record(sorted(self.shard.symbols), [], self.committed_books)
        return True

    async def committed_books(self, symbols) -> dict[str, tuple[list, list, int]]:
        """(bids, asks, trading status) of each symbol's book between batches (never with
        a batch in flight)."""
        async with self._books:
            if self._needs_recovery:
                return {}  # published again once recovered
            shard = self.shard
            return {symbol: (*shard.depth(symbol), shard.trading_status(symbol)) for symbol in symbols}

    async def _child_result(self, child: forked_snapshot.ForkedSnapshot, live) -> tuple[bytes, bool]:
        """(the snapshot's bytes, whether the rows the child packed now describe the orders
        untouched since the fork)."""
        packed = None
        try:
            data, packed_bytes = await child.result()
            packed = await asyncio.to_thread(snapshot_codec.descriptions, packed_bytes)
        finally:
            async with self._books:  # the shard may have recovered meanwhile: other orders then
                adopted = live.adopt(packed if live is self.shard.live else None)
        return data, adopted

    async def _encoded(self, taken, live) -> tuple[bytes, bool, float]:
        """(the snapshot's bytes, whether its rows now describe the orders untouched since,
        the CPU it took): encoded on the event loop in steps of a few milliseconds at most,
        each followed by a rest (SNAPSHOT_STEP_REST), with batches of every shard running
        between them; the step that releases the GIL (the keys' sort) on a thread. On a
        thread throughout, the snapshot held the GIL for 20-40 ms at 16,000 working orders,
        and the event loop, waiting for it at each of its system calls, committed next to
        nothing meanwhile: in the stack, no shard of the process committed for 60 ms."""
        work, data, steps = 0.0, b"", taken.encoding()
        try:
            while True:
                started, cpu = time.perf_counter(), time.thread_time()
                step = next(steps, steps)
                work += time.thread_time() - cpu
                if step is steps:
                    break
                if step is None:
                    await asyncio.sleep((time.perf_counter() - started) * SNAPSHOT_STEP_REST)
                else:
                    work += (await asyncio.to_thread(_cpu_timed, step))[1]
            data = taken.data
        finally:
            async with self._books:  # the shard may have recovered meanwhile: other orders then
                adopted = self.shard.adopt(taken) if data and live is self.shard.live else live.adopt(None)
            for _ in taken.view.release():  # the last references to the states it froze
                await asyncio.sleep(0)
        return data, adopted, work

    def _forks_snapshot(self) -> bool:
        shard = self.shard
        size = SNAPSHOT_KEY_BYTES * len(shard.client_ids) + SNAPSHOT_ORDER_BYTES * len(shard.live)
        return self._snapshot_in_child and size >= self._snapshot_child_from

    def _child_turn(self, in_child: bool):
        """The process's one snapshot child at a time (forked_snapshot.turn), when forking."""
        return forked_snapshot.turn() if in_child else contextlib.nullcontext()

    @property
    def _snapshotting(self) -> bool:
        return self._snapshot_task is not None and not self._snapshot_task.done()

    async def take_snapshot(self) -> tuple[int, int]:
        """Snapshots the committed books and stores them; returns (sequence, bytes).

        One upload at a time: a second request waits for the one running (two uploads
        of one sequence would interleave their chunks), then snapshots only if batches
        committed since."""
        work, paused, adopted = 0.0, 0.0, False
        in_child = self._forks_snapshot()
        try:
            async with self._snapshot_lock, self._child_turn(in_child):
                child = None
                async with self._books:
                    if self._needs_recovery:
                        raise Unavailable("books are being recovered")
                    sequence = self.shard.sequence
                    if sequence == self.snapshot_sequence and self._snapshot_bytes:
                        return sequence, self._snapshot_bytes
                    if in_child:  # the books wait for the fork only
                        try:
                            child = forked_snapshot.ForkedSnapshot(self.shard.snapshot_parts)
                        except OSError as error:  # e.g. no memory for the child: this one in process
                            self._log.warning("snapshot child not forked: copying in the process", error=str(error))
                    live = self.shard.live
                    if child is not None:
                        paused = child.fork_s
                        live.mark()
                    else:
                        started = time.perf_counter()
                        taken, work = _cpu_timed(self.shard.take_snapshot)
                        paused = time.perf_counter() - started
                if child is not None:
                    data, adopted = await self._child_result(child, live)
                    work = child.cpu_s + child.fork_s
                else:
                    data, adopted, encoding = await self._encoded(taken, live)
                    work += encoding
                await self._persistence.save_snapshot(self.shard.shard_index, sequence, data)
                self.snapshot_sequence = max(self.snapshot_sequence, sequence)
                self._snapshot_bytes = len(data)
        finally:
            self._next_snapshot_at = self._clock() + self._snapshot_pace * work
        self.last_snapshot = {"sequence": sequence, "bytes": len(data), "work_s": round(work, 4),
                              "books_paused_s": round(paused, 4), "in_child": child is not None,
                              "rows_adopted": adopted}
        self._log.info("snapshot stored", **self.last_snapshot)
        return sequence, len(data)


def _cpu_timed(work):
    """work() and the CPU time it took on its thread."""
    started = time.thread_time()
    result = work()
    return result, time.thread_time() - started


def _fail(batch, error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
