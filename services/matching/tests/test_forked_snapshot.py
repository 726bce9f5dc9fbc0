"""Snapshots encoded by a forked child (forked_snapshot.py): the same bytes as in
process, the books free while the child works, and a failed or stuck child reported."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from services.common.ids import SnowflakeIds
from services.matching import forked_snapshot
from services.matching.forked_snapshot import ForkedSnapshot, SnapshotFailed
from services.matching.shard import MatchingShard
from services.matching.tests.test_matching import (
    BUY,
    LOG,
    SELL,
    SYMBOLS,
    StorePersistence,
    _busy_shard,
    make_store,
    new,
    run,
)

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not forked_snapshot.available(), reason="needs fork and memfd_create")]


def test_the_child_encodes_the_same_bytes_as_the_process():
    shard = _busy_shard(640)
    expected = shard.snapshot()

    async def go():
        child = ForkedSnapshot(shard.snapshot)
        shard.execute([new(70, BUY, 104, 30, account=8)])  # the parent moves on at once
        return child, await child.result()

    child, data = run(go())
    assert data == expected != shard.snapshot()
    assert child.cpu_s > 0 and child.fork_s < 1


def test_a_failed_encoding_or_a_stuck_child_is_reported_and_leaves_no_child():
    def fails():
        raise ValueError("boom")

    def hangs():
        time.sleep(60)
        return b""

    with pytest.raises(SnapshotFailed, match="wait status"):
        run(ForkedSnapshot(fails).result())
    started = time.monotonic()
    with pytest.raises(SnapshotFailed, match="still ran"):
        run(ForkedSnapshot(hangs).result(timeout_s=0.3))
    assert time.monotonic() - started < 5
    with pytest.raises(ChildProcessError):  # both reaped
        os.waitpid(-1, os.WNOHANG)


def test_the_shard_commits_while_its_snapshot_is_encoded_and_the_snapshot_is_the_books_when_taken(tmp_path):
    """In process, the copy held the shard's batches for as long as it took (seconds for
    a large state); forked, only for the fork. A slow encoding in the child must not
    delay a command sent meanwhile, and must store the books as they were at the fork."""
    from services.matching.committer import GroupCommitter
    from services.matching.market_data import MarketData

    async def go():
        store = make_store(tmp_path)
        shard = MatchingShard(SYMBOLS, SnowflakeIds(641))
        take = shard.take_snapshot

        def slow_copy():  # a large state's copy
            time.sleep(1.5)
            return take()

        shard.take_snapshot = slow_copy
        committer = GroupCommitter(shard, StorePersistence(store), MarketData(None, LOG), LOG,
                                   snapshot_every=10**9, snapshot_in_child=True)
        await committer.start(timeout_s=5)
        try:
            for i in range(1, 9):
                await committer.execute([new(i, SELL if i % 2 else BUY, 100 + i % 3 * (1 if i % 2 else -1), i)])
            at_fork = (shard.sequence, shard.engine.event_hash())
            snapshot = asyncio.create_task(committer.take_snapshot())
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await committer.execute([new(20, BUY, 150, 3)])  # crosses: the books change
            assert time.monotonic() - started < 0.5
            assert not snapshot.done()
            assert await snapshot == (at_fork[0], committer.last_snapshot["bytes"])
            assert committer.last_snapshot["in_child"] and committer.last_snapshot["books_paused_s"] < 0.5
            restored = MatchingShard(SYMBOLS, SnowflakeIds(642))
            restored.restore(await StorePersistence(store).read_snapshot(0))
            assert (restored.sequence, restored.engine.event_hash()) == at_fork
        finally:
            await committer.stop()
            store.close()
    run(go())


def test_the_shards_of_a_process_fork_one_child_at_a_time(tmp_path):
    """Two shards' children at once took more than the machine's second core: a second
    shard's snapshot forks only once the first one's child has exited."""
    from services.matching.committer import GroupCommitter
    from services.matching.market_data import MarketData

    async def go():
        committers, stores = [], []
        for node in (643, 644):
            (tmp_path / str(node)).mkdir()
            stores.append(make_store(tmp_path / str(node)))
            shard = MatchingShard(SYMBOLS, SnowflakeIds(node))
            take = shard.take_snapshot
            shard.take_snapshot = lambda take=take: (time.sleep(0.6), take())[1]
            committers.append(GroupCommitter(shard, StorePersistence(stores[-1]), MarketData(None, LOG), LOG,
                                             snapshot_every=10**9, snapshot_in_child=True))
            await committers[-1].start(timeout_s=5)
            await committers[-1].execute([new(1, BUY, 100, 1)])
        try:
            started = time.monotonic()
            await asyncio.gather(*(committer.take_snapshot() for committer in committers))
            assert time.monotonic() - started >= 1.2
        finally:
            for committer, store in zip(committers, stores):
                await committer.stop()
                store.close()
    run(go())
