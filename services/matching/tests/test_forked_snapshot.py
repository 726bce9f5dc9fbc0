"""Snapshots encoded by a forked child (forked_snapshot.py): the same bytes as in
process, the books free while the child works, and a failed or stuck child reported."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from services.common.ids import SnowflakeIds
from services.matching import forked_snapshot, snapshot_codec
from services.matching.forked_snapshot import ForkedSnapshot, SnapshotFailed
from services.matching.shard import MatchingShard
from services.matching.tests.test_matching import (
    BUY,
    LOG,
    SELL,
    SYMBOLS,
    StorePersistence,
    _busy_shard,
    _states,
    cancel,
    make_store,
    modify,
    new,
    run,
)

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not forked_snapshot.available(), reason="needs fork and memfd_create")]


def test_the_child_encodes_the_same_bytes_as_the_process():
    shard = _busy_shard(640)
    expected = shard.snapshot()

    async def go():
        child = ForkedSnapshot(lambda: [shard.snapshot(), b"", b"second"])
        shard.execute([new(70, BUY, 104, 30, account=8)])  # the parent moves on at once
        return child, await child.result()

    child, (data, empty, second) = run(go())
    assert data == expected != shard.snapshot()
    assert (empty, second) == (b"", b"second")
    assert child.cpu_s > 0 and child.fork_s < 1


def test_a_failed_encoding_or_a_stuck_child_is_reported_and_leaves_no_child():
    def fails():
        raise ValueError("boom")

    def hangs():
        time.sleep(60)
        return [b""]

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
                                   snapshot_every=10**9, snapshot_in_child=True,
                                   snapshot_child_from_bytes=0)
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
                                             snapshot_every=10**9, snapshot_in_child=True,
                                             snapshot_child_from_bytes=0))
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


def test_the_rows_the_child_packed_describe_the_orders_untouched_since_and_the_shard_goes_on_alike():
    """In process, a snapshot keeps the working orders as the rows it packed (most of the
    descriptions' memory, and the next snapshot packs only what changed). The child packs
    them instead, as they were at the fork: this process holds those rows for the orders
    untouched since (LiveOrders.adopt), and must go on exactly as a shard that never
    snapshots, orders touched during the child's life included."""
    plain, forked = _busy_shard(650, id_clock=lambda: 1.8e9), _busy_shard(650, id_clock=lambda: 1.8e9)
    during = [cancel(3, account=4), new(80, SELL, 100, 7, account=2), modify(10, 98, 30, account=3),
              new(81, BUY, 104, 12, account=5), cancel(5, account=2)]
    after = [cancel(7, account=4), new(82, SELL, 97, 40, account=1), cancel(80, account=2), modify(12, 99, 9)]

    async def go():
        live, at_fork = forked.live, (forked.sequence, forked.engine.event_hash())
        child = ForkedSnapshot(forked.snapshot_parts)
        live.mark()
        assert forked.execute(during).results == plain.execute(during).results
        data, packed = await child.result()
        return live, at_fork, data, live.adopt(snapshot_codec.descriptions(packed))

    live, at_fork, data, adopted = run(go())
    assert adopted and live is forked.live
    assert len(live._states) <= 8 < len(live)  # the touched ones only; the rest packed
    assert _states(forked) == _states(plain)
    assert forked.execute(after).results == plain.execute(after).results
    assert _states(forked) == _states(plain)
    assert forked.snapshot() == plain.snapshot()
    restored = MatchingShard(SYMBOLS, SnowflakeIds(651))
    restored.restore(data)  # the child's snapshot: the books at the fork
    assert (restored.sequence, restored.engine.event_hash()) == at_fork


def test_rows_that_are_not_the_orders_of_the_mark_are_refused_and_marking_stops():
    shard = _busy_shard(652)
    live = shard.live
    before = _states(shard)
    live.mark()
    other = _busy_shard(653)
    other.execute([new(90, BUY, 50, 1)])  # one order more than the mark's
    assert not live.adopt(snapshot_codec.descriptions(snapshot_codec.encode(b"", other.live)))
    assert live._since is None and _states(shard) == before
    live.mark()
    other = _busy_shard(654)
    victim = other.live[next(iter(other.live))]
    other.execute([cancel(victim.order_id, account=victim.account_id, symbol=victim.symbol),
                   new(90, BUY, 50, 1)])  # as many orders, not the same
    assert len(other.live) == len(live)
    assert not live.adopt(snapshot_codec.descriptions(snapshot_codec.encode(b"", other.live)))
    assert _states(shard) == before
    live.mark()
    assert not live.adopt(None)  # the child failed
    assert live._since is None


def test_a_small_state_is_copied_in_the_process_and_a_large_one_by_a_child(tmp_path):
    """The fork's own costs outweigh a small copy: a state estimated under the threshold
    snapshots in process, one over it in a child."""
    from services.matching.committer import GroupCommitter
    from services.matching.market_data import MarketData

    async def go():
        store = make_store(tmp_path)
        shard = MatchingShard(SYMBOLS, SnowflakeIds(655))
        committer = GroupCommitter(shard, StorePersistence(store), MarketData(None, LOG), LOG, snapshot_every=10**9,
                                   snapshot_in_child=True, snapshot_child_from_bytes=2_000)
        await committer.start(timeout_s=5)
        try:
            kinds = []
            for i in range(1, 21):  # 20 orders resting and 20 keys: 20 x (175 + 40) = 4,300 bytes
                await committer.execute([new(i, BUY, 100 - i, 1)])
                if i in (5, 20):  # 1,075 bytes, then 4,300
                    await committer.take_snapshot()
                    kinds.append(committer.last_snapshot["in_child"])
            assert kinds == [False, True]
        finally:
            await committer.stop()
            store.close()
    run(go())


def test_a_fork_that_fails_leaves_the_snapshot_to_the_process(tmp_path, monkeypatch):
    from services.matching.committer import GroupCommitter
    from services.matching.market_data import MarketData

    def no_memory():
        raise OSError(12, "Cannot allocate memory")

    async def go():
        store = make_store(tmp_path)
        committer = GroupCommitter(MatchingShard(SYMBOLS, SnowflakeIds(656)), StorePersistence(store),
                                   MarketData(None, LOG), LOG, snapshot_every=10**9, snapshot_in_child=True,
                                   snapshot_child_from_bytes=0)
        await committer.start(timeout_s=5)
        try:
            await committer.execute([new(1, BUY, 100, 1)])
            monkeypatch.setattr(os, "fork", no_memory)
            assert await committer.take_snapshot() == (1, committer.last_snapshot["bytes"])
            assert not committer.last_snapshot["in_child"]
            assert committer.shard.live._since is None  # nothing marked
        finally:
            await committer.stop()
            store.close()
    run(go())
