"""Group commit: one engine pass and one database transaction for many calls.

Calls enqueue their commands and wait. One worker takes everything that queued up
while the previous batch was committing, runs it through the shard in arrival order,
sends one WriteBatch, waits for the commit, publishes market data, and only then
answers the callers: an answer means committed.

If the WriteBatch fails, the engine has applied commands that are not durable. None
of the batch's calls is answered with results (they get Unavailable), and the books
are rebuilt from persistence's open orders before anything else is executed. A call
that gave up (deadline, cancel) before its batch was taken is not executed at all.
"""

from __future__ import annotations

import asyncio
import time

from services.matching.shard import MatchingShard

REBUILD_RETRY_S = 0.2


class Unavailable(Exception):
    """Nothing of the call was committed; the caller may retry."""

    def __init__(self, message: str, reason: str = "PERSISTENCE_UNAVAILABLE"):
        super().__init__(message)
        self.reason = reason


class GroupCommitter:
    def __init__(self, shard: MatchingShard, persistence, market_data, log, clock=time.monotonic):
        self.shard = shard
        self._persistence = persistence
        self._market_data = market_data
        self._log = log
        self._clock = clock
        self._queue: list[tuple[list, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._needs_rebuild = True
        self._last_rebuild_try = float("-inf")
        self.batches = 0  # committed WriteBatch calls, for tests and logs
        self.serving = False

    async def start(self, timeout_s: float = 60.0) -> None:
        """Rebuilds the books (retrying while persistence comes up), then starts the worker."""
        deadline = self._clock() + timeout_s
        while not await self._rebuild():
            if self._clock() >= deadline:
                raise RuntimeError("could not load open orders from persistence")
            await asyncio.sleep(0.5)
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, future in self._queue:
            if not future.done():
                future.set_exception(Unavailable("matching shard stopping", "SHARD_STOPPING"))
        self._queue.clear()

    async def execute(self, commands) -> list:
        """Results of `commands` once committed. Raises InvalidCommand or Unavailable."""
        commands = list(commands)
        self.shard.validate(commands)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            batch = [(commands, future) for commands, future in batch if not future.done()]
            if not batch:
                continue
            try:
                await self._commit(batch)
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one batch
                self._log.exception("batch failed")
                self._needs_rebuild = True
                _fail(batch, Unavailable(f"matching failed: {error!r}", "MATCHING_FAILED"))

    async def _commit(self, batch) -> None:
        if self._needs_rebuild and not await self._rebuild(throttle=True):
            _fail(batch, Unavailable("persistence unavailable: order books are being rebuilt"))
            return
        commands = [command for cmds, _ in batch for command in cmds]
        try:
            outcome = self.shard.execute(commands)
        except Exception as error:  # noqa: BLE001 - an engine bug must not leave half-applied books
            self._log.exception("batch failed in the engine", commands=len(commands))
            self._needs_rebuild = True
            self.shard.commit_failed()
            _fail(batch, Unavailable(f"matching failed: {error!r}", "MATCHING_FAILED"))
            return
        try:
            await self._persistence.write_batch(outcome.write)
        except Exception as error:  # noqa: BLE001 - whatever the cause, nothing is acked
            self._log.warning("batch not committed, rebuilding books", error=repr(error), commands=len(commands))
            self._needs_rebuild = True
            self.shard.commit_failed()
            _fail(batch, Unavailable(f"persistence unavailable: {error!r}"))
            await self._rebuild()
            return
        self.batches += 1
        await self._market_data.publish(outcome.symbols, outcome.trades, self.shard.depth)
        start = 0
        for cmds, future in batch:
            if not future.done():
                future.set_result(outcome.results[start : start + len(cmds)])
            start += len(cmds)

    async def _rebuild(self, throttle: bool = False) -> bool:
        if throttle and self._clock() - self._last_rebuild_try < REBUILD_RETRY_S:
            return False
        self._last_rebuild_try = self._clock()
        self.serving = False
        symbols = sorted(self.shard.symbols)
        try:
            orders = await self._persistence.list_open_orders(symbols)
        except Exception as error:  # noqa: BLE001
            self._log.warning("open orders not loaded", error=repr(error))
            return False
        try:
            resting = self.shard.rebuild(orders)
        except Exception:  # noqa: BLE001 - stored open orders that do not rest: refuse such books
            self._log.exception("open orders do not form valid books")
            return False
        self._needs_rebuild = False
        self.serving = True
        self._log.info("books rebuilt", orders=resting, symbols=len(symbols))
        # Whatever Redis holds may predate a crash: publish every book afresh.
        await self._market_data.publish(symbols, [], self.shard.depth)
        return True


def _fail(batch, error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
