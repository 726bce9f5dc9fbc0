"""Worked examples of a matching shard: engine + group commit + an in-process SQLite store.

The store is the real persistence store (services/persistence/store.py) behind the same
two calls the gRPC client makes, with a switch that makes writes fail like a dead
database.
"""

import asyncio
import contextlib
import time
from types import SimpleNamespace
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.persistence.v1 import persistence_service_pb2 as pp
from bourse.type.v1 import types_pb2 as t

from infra.local.servers import free_port
from services.common import logs
from services.common.config import ShardMap
from services.common.ids import SnowflakeIds
from services.matching.client_ids import ClientOrderIds
from services.matching.committer import GroupCommitter, Unavailable
from services.matching.market_data import MarketData
from services.matching.service import add_results, register
from services.matching.shard import InvalidCommand, MatchingShard
from services.matching.persistence import snapshot_chunks
from services.persistence.service import _chunk_row, _time, journal_response, order_message, order_row, trade_row
from services.persistence.store import ShardedStore

pytestmark = pytest.mark.timeout(60)
LOG = logs.configure("matching-test")
SHARDS = ShardMap.parse("A-G,H-O,P-Z")
SYMBOLS = {"AAPL": 1, "AMD": 2, "GOOG": 7}  # shard 0's symbols
BUY, SELL = t.SIDE_BUY, t.SIDE_SELL


class StorePersistence:
    """The persistence calls over an in-process store; `fail` simulates a dead database."""

    def __init__(self, store: ShardedStore, delay: float = 0.0):
        self.store = store
        self.fail = False
        self.delay = delay
        self.writes = []

    def _check(self):
        if self.fail:
            raise ConnectionError("database down")

    async def write_batch(self, request):
        if self.delay:
            await asyncio.sleep(self.delay)
        self._check()
        now = datetime.now(UTC)
        await self.store.write_batch(
            [order_row(o, now) for o in request.new_orders],
            [order_row(o, now) for o in request.updated_orders],
            [trade_row(tr, now) for tr in request.trades],
            request.matching_shard,
            [{"sequence": e.sequence, "command": e.command, "time": _time(e.time, now)} for e in request.journal],
        )
        self.writes.append(request)

    async def read_snapshot(self, shard):
        self._check()
        chunks = [chunk["data"] async for chunk in self.store.read_snapshot(shard)]
        return b"".join(chunks) or None

    async def read_journal(self, shard, after_sequence):
        self._check()
        async for page in self.store.read_journal(shard, after_sequence):
            yield list(journal_response(page).entries)

    async def save_snapshot(self, shard, sequence, data):
        self._check()
        writer = self.store.snapshot_writer()
        for chunk in snapshot_chunks(shard, sequence, data, size=1024):
            await writer.add(_chunk_row(chunk))
        await writer.finish()

    async def order(self, order_id):
        row = await self.store.get_order(order_id)
        return None if row is None else order_message(row)


def new(order_id, side, price, qty, account=1, symbol="AAPL", order_type=t.ORDER_TYPE_LIMIT,
        tif=t.TIME_IN_FORCE_GTC, post_only=False, stp=t.SELF_TRADE_PREVENTION_UNSPECIFIED, coid=None):
    return m.Command(new_order=m.NewOrder(
        order_id=order_id, account_id=account, client_order_id=coid or f"c{order_id}", symbol=symbol, side=side,
        order_type=order_type, time_in_force=tif, price=price, quantity=qty, post_only=post_only,
        self_trade_prevention=stp,
    ))


def modify(order_id, price, qty, account=1, symbol="AAPL"):
    return m.Command(modify_order=m.ModifyOrder(order_id=order_id, account_id=account, symbol=symbol, price=price,
                                                quantity=qty))


def cancel(order_id, account=1, symbol="AAPL"):
    return m.Command(cancel_order=m.CancelOrder(order_id=order_id, account_id=account, symbol=symbol))


def make_store(tmp_path):
    store = ShardedStore([f"sqlite:///{tmp_path}/db{i}.sqlite" for i in range(3)], SHARDS)
    store.create_schema()
    return store


@contextlib.asynccontextmanager
async def shard(tmp_path, store=None, delay=0.0, market_data=None, snapshot_every=100_000):
    own_store = store is None
    store = store or make_store(tmp_path)
    persistence = StorePersistence(store, delay)
    committer = GroupCommitter(MatchingShard(SYMBOLS, SnowflakeIds(512)), persistence,
                               market_data or MarketData(None, LOG), LOG, snapshot_every=snapshot_every)
    await committer.start(timeout_s=5)
    try:
        yield committer, persistence
    finally:
        await committer.stop()
        if own_store:
            store.close()


def run(coro):
    return asyncio.run(coro)


async def snapshots_landed(*committers):
    """Once the background snapshot each committer started, if any, has been stored."""
    await asyncio.sleep(0)  # a snapshot due after the last batch starts meanwhile
    for committer in committers:
        if committer._snapshot_task is not None:
            await asyncio.wait([committer._snapshot_task])


def test_crossing_orders_trade_at_the_makers_price(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            [rest] = await c.execute([new(1, SELL, 101, 10, account=1)])
            assert (rest.order.status, rest.order.leaves_quantity, rest.error_reason) == (t.ORDER_STATUS_NEW, 10, "")
            [take] = await c.execute([new(2, BUY, 103, 4, account=2)])
            o = take.order
            assert (o.status, o.filled_quantity, o.leaves_quantity) == (t.ORDER_STATUS_FILLED, 4, 0)
            assert [(f.price, f.quantity, f.maker) for f in o.fills] == [(101, 4, False)]
            assert o.fills[0].trade_id > 0 and o.client_order_id == "c2" and o.create_time.seconds > 0
            write = p.writes[-1]
            assert [x.order_id for x in write.new_orders] == [2]
            [maker] = write.updated_orders
            assert (maker.order_id, maker.status, maker.filled_quantity, maker.leaves_quantity) == (
                1, t.ORDER_STATUS_PARTIALLY_FILLED, 4, 6)
            [trade] = write.trades
            assert (trade.price, trade.quantity, trade.maker_order_id, trade.taker_order_id, trade.maker_account_id,
                    trade.taker_account_id, trade.aggressor_side, trade.symbol) == (101, 4, 1, 2, 1, 2, BUY, "AAPL")
            assert trade.trade_id == o.fills[0].trade_id
            stored = await p.order(1)
            assert (stored.status, stored.filled_quantity, stored.leaves_quantity) == (t.ORDER_STATUS_PARTIALLY_FILLED, 4, 6)
            assert [(f.quantity, f.maker) for f in stored.fills] == [(4, True)]
            assert c.shard.depth("AAPL") == ([], [(101, 6, 1)])
    run(go())


def test_a_partial_fill_rests_the_remainder_and_a_later_order_takes_the_rest(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 100, 3)])
            [r] = await c.execute([new(2, BUY, 100, 10, account=2)])
            assert (r.order.status, r.order.filled_quantity, r.order.leaves_quantity) == (
                t.ORDER_STATUS_PARTIALLY_FILLED, 3, 7)
            assert c.shard.depth("AAPL") == ([(100, 7, 1)], [])
            assert (await p.order(1)).status == t.ORDER_STATUS_FILLED
            [r] = await c.execute([new(3, SELL, 99, 7, account=3)])
            assert [(f.price, f.quantity) for f in r.order.fills] == [(100, 7)]
            stored = await p.order(2)
            assert (stored.status, stored.filled_quantity, stored.leaves_quantity) == (t.ORDER_STATUS_FILLED, 10, 0)
            assert c.shard.live == {}  # done orders are forgotten
    run(go())


def test_a_market_orders_remainder_is_cancelled(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 100, 2), new(2, SELL, 102, 1)])
            [r] = await c.execute([new(3, BUY, 0, 5, account=2, order_type=t.ORDER_TYPE_MARKET)])
            o = r.order
            assert (o.status, o.filled_quantity, o.leaves_quantity, o.reason) == (
                t.ORDER_STATUS_CANCELLED, 3, 0, "MARKET_REMAINDER")
            assert [(f.price, f.quantity) for f in o.fills] == [(100, 2), (102, 1)]
            assert c.shard.depth("AAPL") == ([], [])
            assert (await p.order(3)).status == t.ORDER_STATUS_CANCELLED
    run(go())


def test_cancel_and_cancels_that_name_no_live_order_of_the_account(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, BUY, 100, 5, account=1)])
            foreign, unknown, wrong_symbol = await c.execute(
                [cancel(1, account=2), cancel(99), cancel(1, symbol="GOOG")])
            for r in (foreign, unknown, wrong_symbol):
                assert r.error_reason == "UNKNOWN_ORDER"
            assert foreign.order.order_id == 1 and foreign.order.status == t.ORDER_STATUS_UNSPECIFIED
            [r] = await c.execute([cancel(1, account=1)])
            o = r.order
            assert (r.error_reason, o.status, o.leaves_quantity, o.quantity, o.reason) == (
                "", t.ORDER_STATUS_CANCELLED, 0, 5, "USER")
            assert (await p.order(1)).status == t.ORDER_STATUS_CANCELLED
            assert c.shard.depth("AAPL") == ([], [])
            # Cancelled: its owner learns it is done (no read of the store needed); to
            # another account it stays unknown.
            again, foreign_again = await c.execute([cancel(1), cancel(1, account=2)])
            assert (again.error_reason, again.order.status) == ("ORDER_DONE", t.ORDER_STATUS_CANCELLED)
            assert foreign_again.error_reason == "UNKNOWN_ORDER"
            assert foreign_again.order.status == t.ORDER_STATUS_UNSPECIFIED
    run(go())


def test_one_call_can_rest_and_fill_an_order_the_store_sees_only_its_final_state(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            a, b = await c.execute([new(1, SELL, 50, 4), new(2, BUY, 50, 4, account=2)])
            assert a.order.status == t.ORDER_STATUS_NEW  # the state after its own command
            assert b.order.status == t.ORDER_STATUS_FILLED
            write = p.writes[-1]
            assert {o.order_id: o.status for o in write.new_orders} == {1: t.ORDER_STATUS_FILLED, 2: t.ORDER_STATUS_FILLED}
            assert list(write.updated_orders) == []
    run(go())


def test_engine_rejects_are_results_not_errors(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            ok, dup, bad_qty, bad_side = await c.execute(
                [new(1, BUY, 100, 5), new(1, SELL, 90, 5, coid="other"), new(2, BUY, 100, 0), new(3, 0, 100, 1)])
            assert ok.order.status == t.ORDER_STATUS_NEW
            assert (dup.order.status, dup.error_reason) == (t.ORDER_STATUS_REJECTED, "DUPLICATE_ORDER_ID")
            assert (bad_qty.order.status, bad_qty.order.reason) == (t.ORDER_STATUS_REJECTED, "INVALID_QUANTITY")
            assert bad_side.error_reason == "INVALID_SIDE"
            # The duplicate did not overwrite the original in the store.
            assert [o.order_id for o in p.writes[-1].new_orders] == [1, 2, 3]
            assert (await p.order(1)).side == BUY
    run(go())


def test_orders_at_the_shared_limits_rest_and_one_past_them_is_refused(tmp_path):
    """services/common/limits.py holds the engine's own bounds (the order service checks
    against it): an order at them rests, one tick or lot past them is refused for that
    field."""
    import bourse_engine

    from services.common import limits

    assert (limits.MAX_PRICE, limits.MAX_QUANTITY) == (bourse_engine.MAX_PRICE, bourse_engine.MAX_QUANTITY)

    async def go():
        async with shard(tmp_path) as (c, _):
            top, big, over_price, over_quantity = await c.execute([
                new(1, SELL, limits.MAX_PRICE, 1), new(2, BUY, 1, limits.MAX_QUANTITY),
                new(3, SELL, limits.MAX_PRICE + 1, 1), new(4, BUY, 1, limits.MAX_QUANTITY + 1)])
            assert (top.order.status, top.order.price) == (t.ORDER_STATUS_NEW, limits.MAX_PRICE)
            assert (big.order.status, big.order.leaves_quantity) == (t.ORDER_STATUS_NEW, limits.MAX_QUANTITY)
            assert (over_price.order.reason, over_quantity.order.reason) == ("INVALID_PRICE", "INVALID_QUANTITY")
    run(go())


def test_a_symbol_of_another_shard_refuses_the_whole_call(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, _):
            with pytest.raises(InvalidCommand, match="MSFT"):
                await c.execute([new(1, BUY, 100, 5), new(2, BUY, 100, 5, symbol="MSFT")])
            assert c.shard.depth("AAPL") == ([], [])
            with pytest.raises(InvalidCommand):
                await c.execute([])
    run(go())


def test_group_commit_gathers_concurrent_calls_into_few_transactions(tmp_path):
    async def go():
        async with shard(tmp_path, delay=0.02) as (c, p):
            calls = [c.execute([new(i, BUY if i % 2 else SELL, 100, 1, account=i, symbol="AMD")]) for i in range(1, 61)]
            results = await asyncio.gather(*calls)
            assert len(p.writes) < 10
            for i, [r] in enumerate(results, start=1):
                assert r.order.order_id == i and r.order.account_id == i
            # 30 buys and 30 sells of 1 lot at one price all matched, in arrival order.
            assert sum(len(w.trades) for w in p.writes) == 30
            assert c.shard.depth("AMD") == ([], [])
            assert c.batches == len(p.writes)
    run(go())


def test_a_failed_commit_acks_nothing_and_the_books_come_back_from_the_store(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 100, 5)])
            p.fail = True
            with pytest.raises(Unavailable):
                await c.execute([new(2, BUY, 100, 3, account=2), new(3, BUY, 99, 4, account=2)])
            with pytest.raises(Unavailable):  # still down: nothing executes
                await asyncio.sleep(0.25)
                await c.execute([new(4, BUY, 99, 4, account=2)])
            p.fail = False
            await asyncio.sleep(0.25)
            # Order 1 is whole again; 2 and 3 never happened.
            [r] = await c.execute([cancel(3, account=2)])
            assert r.error_reason == "UNKNOWN_ORDER"
            assert c.shard.depth("AAPL") == ([], [(100, 5, 1)])
            [r] = await c.execute([new(2, BUY, 100, 3, account=2)])  # the retry is not a duplicate
            assert r.order.status == t.ORDER_STATUS_FILLED
            assert await p.order(3) is None
            assert (await p.order(1)).leaves_quantity == 2
    run(go())


def test_a_restarted_shard_continues_with_its_open_orders_in_time_priority(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store) as (c, p):
                await c.execute([new(1, SELL, 101, 5, account=1), new(2, SELL, 101, 5, account=2)])
                await c.execute([new(3, BUY, 99, 7, account=3, symbol="GOOG"), new(4, SELL, 102, 1)])
                await c.execute([new(5, BUY, 101, 2, account=4)])  # order 1 now has 3 left
                await c.execute([cancel(4)])
                before = {s: c.shard.depth(s) for s in SYMBOLS}
            async with shard(tmp_path, store) as (c, p):
                assert {s: c.shard.depth(s) for s in SYMBOLS} == before
                assert before["AAPL"] == ([], [(101, 8, 2)])
                [r] = await c.execute([new(6, BUY, 101, 4, account=5)])
                assert [f.quantity for f in r.order.fills] == [3, 1]
                write = p.writes[-1]
                assert [(tr.maker_order_id, tr.quantity) for tr in write.trades] == [(1, 3), (2, 1)]
                one = next(o for o in write.updated_orders if o.order_id == 1)
                assert (one.status, one.filled_quantity, one.quantity, one.client_order_id) == (
                    t.ORDER_STATUS_FILLED, 5, 5, "c1")
        finally:
            store.close()
    run(go())


def test_market_data_goes_to_redis_and_a_dead_redis_does_not_stop_trading(tmp_path):
    async def go():
        dead = redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
        async with shard(tmp_path, market_data=MarketData(dead, LOG)) as (c, _):
            [r] = await c.execute([new(1, SELL, 100, 5)])
            assert r.order.status == t.ORDER_STATUS_NEW
    run(go())


def test_every_command_is_journaled_in_sequence_with_its_batch(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 100, 5), new(2, BUY, 100, 2, account=2)])
            await c.execute([cancel(1)])
            sequences = [[e.sequence for e in w.journal] for w in p.writes]
            assert sequences == [[1, 2], [3]] and c.shard.sequence == 3
            assert m.Command.FromString(p.writes[1].journal[0].command) == cancel(1)
    run(go())


def test_recovery_from_a_snapshot_and_the_journal_after_it_gives_identical_books(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store, snapshot_every=4) as (c, p):
                for i in range(1, 11):  # crosses the snapshot threshold twice
                    await c.execute([new(i, SELL if i % 2 else BUY, 100 + i % 3, i, account=i % 3 + 1)])
                await snapshots_landed(c)
                assert c.snapshot_sequence >= 4
                await c.execute([cancel(9, account=1), new(11, BUY, 105, 3, account=2)])
                books = {s: c.shard.depth(s) for s in SYMBOLS}
                state = (c.shard.sequence, c.shard.engine.event_hash(), sorted(c.shard.live))
            async with shard(tmp_path, store) as (c, p):
                assert c.snapshot_sequence >= 4  # restored from a snapshot, not from the start
                assert {s: c.shard.depth(s) for s in SYMBOLS} == books
                assert (c.shard.sequence, c.shard.engine.event_hash(), sorted(c.shard.live)) == state
                [r] = await c.execute([new(12, SELL, 90, 1, account=3)])  # the sequence goes on
                assert p.writes[-1].journal[0].sequence == state[0] + 1
                assert r.order.status == t.ORDER_STATUS_FILLED
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(600))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            async with shard(tmp_path, store) as (c, _):
                assert fresh.engine.event_hash() == c.shard.engine.event_hash()
        finally:
            store.close()
    run(go())


def test_snapshots_wait_a_multiple_of_the_last_ones_work_and_on_demand_ones_do_not(tmp_path):
    """Due every 4 commands, but the next one also waits SNAPSHOT_PACE times the last
    one's work (its copy and encoding, far under a second here) on the committer's clock."""
    from services.matching.committer import GroupCommitter

    async def go():
        store = make_store(tmp_path)
        now = [1000.0]
        committer = GroupCommitter(MatchingShard(SYMBOLS, SnowflakeIds(620)), StorePersistence(store),
                                   MarketData(None, LOG), LOG, clock=lambda: now[0], snapshot_every=4)
        await committer.start(timeout_s=5)
        try:
            for i in range(1, 5):
                await committer.execute([new(i, BUY, 90 + i, 1)])
            await snapshots_landed(committer)
            assert committer.snapshot_sequence == 4
            for i in range(5, 13):  # twice the count again, no time: none
                await committer.execute([new(i, BUY, 80 + i, 1)])
            await snapshots_landed(committer)
            assert committer.snapshot_sequence == 4
            now[0] += 30  # SNAPSHOT_PACE x work is far less than 30 s
            await committer.execute([new(13, BUY, 70, 1)])
            await snapshots_landed(committer)
            assert committer.snapshot_sequence == 13
            await committer.execute([new(14, BUY, 70, 1)])
            assert await committer.take_snapshot() == (14, committer._snapshot_bytes)  # on demand: at once
            assert committer.snapshot_sequence == 14
        finally:
            await committer.stop()
            store.close()
    run(go())


def test_a_shards_snapshot_pace_is_its_own_and_scales_with_the_factor_given(tmp_path):
    """Each shard paces its own snapshots (a pace shared by the shards of a process let
    the quickest take every turn): another shard's snapshot does not hold one back, and
    `snapshot_pace` scales the wait (a process with n shards gives each n times the pace)."""
    from services.matching.committer import GroupCommitter

    async def go():
        now, stores, committers = [1000.0], [], []
        for name, pace in (("a", 1e7), ("b", 20)):
            (tmp_path / name).mkdir()
            stores.append(make_store(tmp_path / name))
            committers.append(GroupCommitter(MatchingShard(SYMBOLS, SnowflakeIds(621)), StorePersistence(stores[-1]),
                                             MarketData(None, LOG), LOG, clock=lambda: now[0], snapshot_every=2,
                                             snapshot_pace=pace))
            await committers[-1].start(timeout_s=5)
        slow, quick = committers
        try:
            for committer in (slow, quick):
                for i in (1, 2):
                    await committer.execute([new(i, BUY, 90 + i, 1)])
            await snapshots_landed(slow, quick)
            assert (slow.snapshot_sequence, quick.snapshot_sequence) == (2, 2)  # neither held back by the other
            now[0] += 30  # beyond 20 x the work, far within 10^7 x
            for committer in (slow, quick):
                for i in (3, 4):
                    await committer.execute([new(i, BUY, 80 + i, 1)])
            await snapshots_landed(slow, quick)
            assert (slow.snapshot_sequence, quick.snapshot_sequence) == (2, 4)
        finally:
            for committer, store in zip(committers, stores):
                await committer.stop()
                store.close()
    run(go())


def test_a_journal_with_a_gap_is_refused():
    shard_ = MatchingShard(SYMBOLS, SnowflakeIds(601))
    entry = new(1, BUY, 10, 1).SerializeToString()
    with pytest.raises(RuntimeError, match="journal gap"):
        shard_.replay([pp.JournalEntry(sequence=2, command=entry)])


CLOCK = [10**18]


def _busy_shard(node=602, id_clock=time.time):
    """A shard with resting, partially filled and cancelled orders on two symbols."""
    CLOCK[0] = 10**18
    shard_ = MatchingShard(SYMBOLS, SnowflakeIds(node, clock=id_clock), clock_ns=lambda: CLOCK[0])
    shard_.execute([new(i, SELL if i % 2 else BUY, 100 + (i % 5 if i % 2 else -(i % 5)), 10 + i, account=i % 4 + 1,
                        symbol="AAPL" if i % 3 else "GOOG") for i in range(1, 41)])
    shard_.execute([new(41, BUY, 101, 25, account=9), cancel(38, account=3, symbol="GOOG"), cancel(2, account=3)])
    return shard_


def _states(shard_):
    return {order_id: shard_.live[order_id] for order_id in sorted(shard_.live)}


def test_a_packed_snapshot_restores_the_same_books_and_descriptions_and_snapshots_identically():
    before = _busy_shard()
    data = before.snapshot()
    assert not m.ShardSnapshot.FromString(data).orders  # the descriptions are packed beside the engine
    after = MatchingShard(SYMBOLS, SnowflakeIds(603), clock_ns=lambda: CLOCK[0])
    after.restore(data)
    assert after.snapshot() == data  # untouched packed rows go out as they came in
    assert (after.sequence, after.engine.event_hash(), len(after.live)) == (
        before.sequence, before.engine.event_hash(), len(before.live))
    assert _states(after) == _states(before)
    # Touch some orders (fill, partial fill, cancel, new resting ones) in both, then again.
    more = [new(50, BUY, 104, 30, account=8), cancel(5, account=2), new(51, SELL, 90, 3, account=8, symbol="GOOG"),
            new(52, BUY, 50, 7, account=8, symbol="AMD")]
    CLOCK[0] = 2 * 10**18  # both shards take the same times from here
    before.execute(more)
    after.execute(more)
    again = MatchingShard(SYMBOLS, SnowflakeIds(604))
    again.restore(after.snapshot())
    assert _states(again) == _states(after) == _states(before)
    assert again.engine.event_hash() == before.engine.event_hash()
    assert len(again.snapshot()) < len(data) + 200  # dead client_order_ids are not carried along


def test_a_snapshot_with_order_messages_still_restores():
    before = _busy_shard()
    legacy = m.ShardSnapshot(shard_index=0, sequence=before.sequence, engine=before.engine.snapshot(),
                             orders=[t.Order.FromString(state.encoded()) for state in before.live.values()],
                             symbol_ids=before.symbols).SerializeToString()
    after = MatchingShard(SYMBOLS, SnowflakeIds(605))
    after.restore(legacy)
    assert _states(after) == _states(before)
    assert after.engine.event_hash() == before.engine.event_hash()


def test_descriptions_that_disagree_with_the_books_are_refused():
    before = _busy_shard()
    legacy = m.ShardSnapshot.FromString(m.ShardSnapshot(
        shard_index=0, sequence=before.sequence, engine=before.engine.snapshot(),
        orders=[t.Order.FromString(state.encoded()) for state in before.live.values()], symbol_ids=before.symbols).SerializeToString())
    for change in (lambda o: o.pop(), lambda o: setattr(o[0], "leaves_quantity", o[0].leaves_quantity + 1),
                   lambda o: setattr(o[1], "account_id", 77), lambda o: setattr(o[2], "symbol", "AMD")):
        snap = m.ShardSnapshot()
        snap.CopyFrom(legacy)
        change(snap.orders)
        with pytest.raises(RuntimeError, match="do not match"):
            MatchingShard(SYMBOLS, SnowflakeIds(606)).restore(snap.SerializeToString())
    packed = m.ShardSnapshot.FromString(before.snapshot())
    packed.engine = packed.engine[:-1]
    with pytest.raises(RuntimeError, match="do not add up"):
        MatchingShard(SYMBOLS, SnowflakeIds(607)).restore(packed.SerializeToString())


def test_a_retry_stays_a_retry_after_a_restore_and_in_replays(tmp_path):
    """The original fills, a snapshot is taken, the retry (same client_order_id, a new
    order id, as the order service sends it) comes after a restart: it must be answered
    with the original live, after a restore, and when the journal is replayed."""
    ids = SnowflakeIds(7)
    maker, original, retry = ids.next(), ids.next(), ids.next()

    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store) as (c, p):
                await c.execute([new(maker, SELL, 100, 10, account=1)])
                [first] = await c.execute([new(original, BUY, 100, 3, account=2, tif=t.TIME_IN_FORCE_IOC)])
                assert first.order.status == t.ORDER_STATUS_FILLED
                await c.take_snapshot()
            async with shard(tmp_path, store) as (c, p):
                [again] = await c.execute([new(retry, BUY, 100, 3, account=2, tif=t.TIME_IN_FORCE_IOC,
                                               coid=f"c{original}")])
                assert again.error_reason == "DUPLICATE_CLIENT_ORDER_ID" and not again.order.fills
                assert again.order.order_id == original
                assert c.shard.depth("AAPL") == ([], [(100, 7, 1)])
                assert await p.order(retry) is None  # nothing stored under the retry's id
                live = (c.shard.sequence, c.shard.engine.event_hash())
            async with shard(tmp_path, store) as (c, p):  # restore + replay of the refused retry
                assert (c.shard.sequence, c.shard.engine.event_hash()) == live
                assert c.shard.depth("AAPL") == ([], [(100, 7, 1)])
                [third] = await c.execute([new(ids.next(), BUY, 100, 3, account=2, tif=t.TIME_IN_FORCE_IOC,
                                               coid=f"c{original}")])
                assert (third.error_reason, third.order.order_id) == ("DUPLICATE_CLIENT_ORDER_ID", original)
        finally:
            store.close()
    run(go())


def test_a_client_order_id_names_one_order_per_account_and_symbol(tmp_path):
    # Book: empty. Account 1 BUY 5 @ 100 AAPL as "k". The same key asking for 6 lots is
    # refused CLIENT_ORDER_ID_REUSED and runs nothing; "k" of account 2 on AAPL and of
    # account 1 on AMD are new orders. Book after: AAPL bids 100 x 5 (1) + 5 (3); AMD 5.
    async def go():
        async with shard(tmp_path) as (c, p):
            first, reused, other_account, other_symbol = await c.execute([
                new(1, BUY, 100, 5, coid="k"), new(2, BUY, 100, 6, coid="k"),
                new(3, BUY, 100, 5, account=2, coid="k"), new(4, BUY, 100, 5, symbol="AMD", coid="k")])
            assert first.order.status == t.ORDER_STATUS_NEW and not first.error_reason
            assert (reused.error_reason, reused.order.order_id) == ("CLIENT_ORDER_ID_REUSED", 1)
            assert not other_account.error_reason and not other_symbol.error_reason
            assert c.shard.depth("AAPL") == ([(100, 10, 2)], [])
            assert c.shard.depth("AMD") == ([(100, 5, 1)], [])
            assert [o.order_id for o in p.writes[-1].new_orders] == [1, 3, 4]
    run(go())


def test_an_order_is_updated_at_the_time_of_the_command_that_changed_it_live_and_in_a_replay():
    # Book: SELL 5 @ 101 (order 1, then order 2). BUY 7 @ 101 takes 1 fully and 2 for 2,
    # then order 4 rests at 99: order 2's update time is the trade's, order 4's its own.
    live = MatchingShard(SYMBOLS, SnowflakeIds(512), shard_index=0)
    journal = []
    for batch in ([new(1, SELL, 101, 5)], [new(2, SELL, 101, 5, account=2)],
                  [new(3, BUY, 101, 7, account=3), new(4, BUY, 99, 1, account=4)]):
        outcome = live.execute(batch)
        journal += outcome.write.journal
    trade_ns = {tr.maker_order_id: tr.time.seconds * 1_000_000_000 + tr.time.nanos for tr in outcome.write.trades}
    two = next(o for o in outcome.write.updated_orders if o.order_id == 2)
    assert (two.status, two.filled_quantity) == (t.ORDER_STATUS_PARTIALLY_FILLED, 2)
    assert two.update_time.seconds * 1_000_000_000 + two.update_time.nanos == trade_ns[2]
    four = next(o for o in outcome.write.new_orders if o.order_id == 4)
    assert four.update_time == four.create_time

    replayed = MatchingShard(SYMBOLS, SnowflakeIds(513), shard_index=0)
    replayed.replay(journal)
    assert {i: live.live[i] for i in live.live} == {i: replayed.live[i] for i in replayed.live}
    assert replayed.live[2].update_ns == trade_ns[2]



# -- modify (cancel/replace) and post-only: worked examples ---------------------------

def test_a_smaller_quantity_at_the_same_price_keeps_time_priority(tmp_path):
    # Book: SELL 5 @ 101 (order 1), then SELL 5 @ 101 (order 2). Order 1 -> 3 lots, same
    # price: still first. BUY 4 @ 101 takes 3 from order 1, then 1 from order 2.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5), new(2, SELL, 101, 5, account=2)])
            [r] = await c.execute([modify(1, 101, 3)])
            o = r.order
            assert r.error_reason == "" and (o.status, o.price, o.quantity, o.leaves_quantity) == (
                t.ORDER_STATUS_NEW, 101, 3, 3)
            [take] = await c.execute([new(3, BUY, 101, 4, account=3)])
            assert [(f.price, f.quantity) for f in take.order.fills] == [(101, 3), (101, 1)]
            assert [tr.maker_order_id for tr in p.writes[-1].trades] == [1, 2]
            stored = await p.order(1)
            assert (stored.status, stored.quantity, stored.filled_quantity, stored.leaves_quantity) == (
                t.ORDER_STATUS_FILLED, 3, 3, 0)
            assert c.shard.depth("AAPL") == ([], [(101, 4, 1)])
    run(go())


def test_a_larger_quantity_goes_to_the_back_of_the_queue(tmp_path):
    # Same book; order 1 -> 8 lots: now behind order 2. BUY 6 @ 101 takes 5 from
    # order 2, then 1 from order 1 (quantity 8, filled 1, leaves 7).
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5), new(2, SELL, 101, 5, account=2)])
            [r] = await c.execute([modify(1, 101, 8)])
            assert (r.order.quantity, r.order.leaves_quantity) == (8, 8)
            await c.execute([new(3, BUY, 101, 6, account=3)])
            assert [(tr.maker_order_id, tr.quantity) for tr in p.writes[-1].trades] == [(2, 5), (1, 1)]
            stored = await p.order(1)
            assert (stored.status, stored.quantity, stored.filled_quantity, stored.leaves_quantity) == (
                t.ORDER_STATUS_PARTIALLY_FILLED, 8, 1, 7)
            assert c.shard.depth("AAPL") == ([], [(101, 7, 1)])
    run(go())


def test_a_new_price_that_crosses_trades_at_once_as_the_taker(tmp_path):
    # Book: BUY 5 @ 99 (order 1), SELL 5 @ 101 (order 2). Order 2 -> 4 lots @ 99: it
    # takes 4 from order 1 at the maker's price, 99, and is filled.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, BUY, 99, 5), new(2, SELL, 101, 5, account=2)])
            [r] = await c.execute([modify(2, 99, 4, account=2)])
            o = r.order
            assert (o.status, o.price, o.quantity, o.filled_quantity, o.leaves_quantity) == (
                t.ORDER_STATUS_FILLED, 99, 4, 4, 0)
            assert [(f.price, f.quantity, f.maker) for f in o.fills] == [(99, 4, False)]
            [trade] = p.writes[-1].trades
            assert (trade.maker_order_id, trade.taker_order_id, trade.aggressor_side, trade.price) == (1, 2, SELL, 99)
            assert (await p.order(2)).price == 99 and (await p.order(1)).leaves_quantity == 1
            assert c.shard.depth("AAPL") == ([(99, 1, 1)], [])
    run(go())


def test_a_partly_filled_order_is_modified_by_its_total_quantity(tmp_path):
    # SELL 10 @ 101 (order 1) is hit for 4; "quantity 6" means 2 more to go.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 10), new(2, BUY, 101, 4, account=2)])
            [r] = await c.execute([modify(1, 101, 6)])
            o = r.order
            assert (o.status, o.quantity, o.filled_quantity, o.leaves_quantity) == (
                t.ORDER_STATUS_PARTIALLY_FILLED, 6, 4, 2)
            # At or below what has filled: refused, the order untouched.
            [r] = await c.execute([modify(1, 101, 4)])
            assert r.error_reason == "QUANTITY_NOT_ABOVE_FILLED" and r.order.leaves_quantity == 2
            assert c.shard.depth("AAPL") == ([], [(101, 2, 1)])
    run(go())


def test_a_modify_that_cannot_apply_leaves_the_order_untouched(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5), new(2, BUY, 100, 1, account=2)])
            writes = len(p.writes)
            results = await c.execute([
                modify(9, 101, 3),             # unknown
                modify(1, 101, 3, account=2),  # another account's: indistinguishable from unknown
                modify(1, 0, 3),               # no price
                modify(1, 101, 0),             # no quantity
            ])
            assert [r.error_reason for r in results] == ["UNKNOWN_ORDER", "UNKNOWN_ORDER", "INVALID_PRICE",
                                                         "QUANTITY_NOT_ABOVE_FILLED"]
            assert results[1].order.leaves_quantity == 0  # nothing of the other account's order shown
            assert c.shard.depth("AAPL") == ([(100, 1, 1)], [(101, 5, 1)])
            assert not p.writes[writes].updated_orders and not p.writes[writes].trades
            await c.execute([new(3, BUY, 101, 5, account=3)])  # order 1 fills...
            [r] = await c.execute([modify(1, 101, 3)])
            assert (r.error_reason, r.order.status) == ("ORDER_DONE", t.ORDER_STATUS_FILLED)  # nothing to modify
    run(go())


def test_post_only_rests_or_is_rejected_but_never_trades(tmp_path):
    # Book: SELL 5 @ 101. A post-only BUY @ 100 rests; a post-only BUY @ 101 would trade:
    # REJECTED (WOULD_TAKE_LIQUIDITY), nothing traded, the ask untouched.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5)])
            [rests, refused] = await c.execute([new(2, BUY, 100, 5, account=2, post_only=True),
                                                new(3, BUY, 101, 5, account=3, post_only=True)])
            assert (rests.order.status, rests.error_reason) == (t.ORDER_STATUS_NEW, "")
            assert (refused.order.status, refused.error_reason) == (t.ORDER_STATUS_REJECTED, "WOULD_TAKE_LIQUIDITY")
            assert not p.writes[-1].trades
            assert c.shard.depth("AAPL") == ([(100, 5, 1)], [(101, 5, 1)])
    run(go())


def test_modifies_are_journaled_and_a_replay_rebuilds_identical_books():
    live = MatchingShard(SYMBOLS, SnowflakeIds(512), shard_index=0)
    journal = []
    for batch in ([new(1, SELL, 101, 5), new(2, SELL, 101, 5, account=2), new(3, BUY, 99, 5, account=3)],
                  [modify(1, 101, 8), modify(2, 102, 5, account=2), modify(3, 101, 4, account=3)],
                  [modify(9, 100, 1), new(4, BUY, 102, 6, account=4)]):
        journal += live.execute(batch).write.journal
    replayed = MatchingShard(SYMBOLS, SnowflakeIds(513), shard_index=0)
    replayed.replay(journal)
    assert replayed.engine.event_hash() == live.engine.event_hash()
    assert {i: live.live[i] for i in live.live} == {i: replayed.live[i] for i in replayed.live}
    assert replayed.depth("AAPL") == live.depth("AAPL")



# -- self-trade prevention modes: worked examples ------------------------------------

def test_cancel_resting_trades_with_others_cancels_its_own_resting_order_and_rests_the_rest(tmp_path):
    # Book: SELL 2 @ 100 (Bob, order 1), SELL 3 @ 101 (Alice, order 2). Alice BUY 5 @ 101
    # CANCEL_RESTING: takes Bob's 2 @ 100, meets her own 101 ask, which is cancelled
    # (SELF_TRADE_PREVENTED), and her remaining 3 rest as the bid at 101.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 100, 2, account=2), new(2, SELL, 101, 3, account=1)])
            [r] = await c.execute([new(3, BUY, 101, 5, account=1, stp=t.SELF_TRADE_PREVENTION_CANCEL_RESTING)])
            o = r.order
            assert (o.status, o.filled_quantity, o.leaves_quantity) == (t.ORDER_STATUS_PARTIALLY_FILLED, 2, 3)
            assert [(f.price, f.quantity) for f in o.fills] == [(100, 2)]
            resting = await p.order(2)
            assert (resting.status, resting.reason, resting.leaves_quantity) == (
                t.ORDER_STATUS_CANCELLED, "SELF_TRADE_PREVENTED", 0)
            assert 2 not in c.shard.live
            assert c.shard.depth("AAPL") == ([(101, 3, 1)], [])
    run(go())


def test_cancel_both_cancels_the_resting_and_the_incoming_order(tmp_path):
    # Book: SELL 3 @ 101 (Alice, order 1). Alice BUY 5 @ 101 CANCEL_BOTH: both cancelled,
    # nothing traded, the book empty.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 3)])
            [r] = await c.execute([new(2, BUY, 101, 5, stp=t.SELF_TRADE_PREVENTION_CANCEL_BOTH)])
            assert (r.order.status, r.order.reason, r.order.filled_quantity) == (
                t.ORDER_STATUS_CANCELLED, "SELF_TRADE_PREVENTED", 0)
            assert (await p.order(1)).status == t.ORDER_STATUS_CANCELLED
            assert not p.writes[-1].trades and c.shard.depth("AAPL") == ([], [])
    run(go())


def test_cancel_incoming_is_the_default_and_keeps_the_resting_order(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 3)])
            [r] = await c.execute([new(2, BUY, 101, 5)])
            assert (r.order.status, r.order.reason) == (t.ORDER_STATUS_CANCELLED, "SELF_TRADE_PREVENTED")
            assert c.shard.depth("AAPL") == ([], [(101, 3, 1)])
    run(go())


def test_self_trade_modes_replay_to_identical_books():
    live = MatchingShard(SYMBOLS, SnowflakeIds(512), shard_index=0)
    journal = []
    for batch in ([new(1, SELL, 100, 2, account=2), new(2, SELL, 101, 3), new(3, SELL, 102, 4)],
                  [new(4, BUY, 101, 5, stp=t.SELF_TRADE_PREVENTION_CANCEL_RESTING),
                   new(5, BUY, 103, 1, account=3, stp=t.SELF_TRADE_PREVENTION_CANCEL_BOTH)],
                  [modify(4, 102, 6)]):
        journal += live.execute(batch).write.journal
    replayed = MatchingShard(SYMBOLS, SnowflakeIds(513), shard_index=0)
    replayed.replay(journal)
    assert replayed.engine.event_hash() == live.engine.event_hash()
    assert {i: live.live[i] for i in live.live} == {i: replayed.live[i] for i in replayed.live}



def test_a_retry_of_a_rejected_order_is_the_original_even_when_it_would_now_pass(tmp_path):
    # Book: SELL 5 @ 101. Post-only BUY 5 @ 101 (order 2, key "c2") is rejected: it would
    # trade. The ask is then cancelled, so the same command would now rest; retried
    # under the same key it must still be the REJECTED original, never a second order.
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5)])
            [first] = await c.execute([new(2, BUY, 101, 5, account=2, post_only=True)])
            assert first.error_reason == "WOULD_TAKE_LIQUIDITY"
            await c.execute([cancel(1)])
            [again] = await c.execute([new(9, BUY, 101, 5, account=2, post_only=True, coid="c2")])
            assert (again.error_reason, again.order.order_id) == ("DUPLICATE_CLIENT_ORDER_ID", 2)
            assert c.shard.depth("AAPL") == ([], [])
            assert (await p.order(2)).status == t.ORDER_STATUS_REJECTED
    run(go())


def test_keys_are_kept_while_their_order_works_or_is_within_the_window():
    from services.matching.client_ids import KEY_WINDOW_MS, ClientOrderIds, key_digest

    clock = [1_800_000_000.0]
    ids = SnowflakeIds(3, clock=lambda: clock[0])
    keys = ClientOrderIds()
    old_done, old_working = ids.next(), ids.next()
    bound_ns = int(clock[0] * 1e9)
    keys.add(key_digest((1, "AAPL", "done")), old_done, 11, bound_ns, working=())
    keys.add(key_digest((1, "AAPL", "working")), old_working, 12, bound_ns, working=())
    assert keys.owner(key_digest((1, "AAPL", "done")), bound_ns + 599 * 10**9, working=()) == (old_done, 11)
    clock[0] += KEY_WINDOW_MS / 1000 + 1
    now_ns = int(clock[0] * 1e9)
    # Past the window, a key no longer names its order unless the order works, at once
    # (whatever memory has been reclaimed yet).
    assert keys.owner(key_digest((1, "AAPL", "done")), now_ns, working={old_working}) is None
    assert keys.owner(key_digest((1, "AAPL", "working")), now_ns, working={old_working}) == (old_working, 12)
    for i in range(3):  # each new key reclaims a few old ones
        keys.add(key_digest((2, "AAPL", f"k{i}")), ids.next(), 0, now_ns, working={old_working})
    assert keys.owner(key_digest((1, "AAPL", "done"))) is None  # forgotten: its memory is back
    assert keys.owner(key_digest((1, "AAPL", "working"))) == (old_working, 12)
    assert len(keys) == 4
    # A key past the window may name a new order.
    keys.add(key_digest((1, "AAPL", "again")), old_done, 11, now_ns, working=())
    renewed = ids.next()
    keys.add(key_digest((1, "AAPL", "again")), renewed, 13, now_ns, working=())
    assert keys.owner(key_digest((1, "AAPL", "again")), now_ns, working=()) == (renewed, 13)
    # With no new orders, an idle reclaim gives the expired keys' memory back.
    later_ns = now_ns + (KEY_WINDOW_MS + 1000) * 10**6
    keys.reclaim(later_ns, {old_working}, limit=100)
    assert len(keys) == 1 and keys.owner(key_digest((1, "AAPL", "working"))) == (old_working, 12)
    assert ClientOrderIds.from_packed(keys.packed()).keys == keys.keys
    # A snapshot written before keys were packed still restores them.
    legacy = ClientOrderIds.from_rows([(1, "AAPL", "working", old_working, 12)])
    assert legacy.owner(key_digest((1, "AAPL", "working"))) == (old_working, 12)


def test_packed_keys_are_the_table_in_digest_order_ties_in_the_high_half_included():
    import random

    import numpy as np

    from services.matching.client_ids import PACKED_KEY

    rng = random.Random(5)
    table = {rng.getrandbits(128): rng.getrandbits(41) << 128 | rng.getrandbits(63) << 64 | rng.getrandbits(63)
             for _ in range(3000)}
    high = rng.getrandbits(64) << 64
    for low in (9, 2, 2**64 - 1, 0):  # four digests alike in their high half: ordered by the low one
        table[high | low] = 1 << 128 | (low % 1000) << 64 | 7
    packed = np.frombuffer(ClientOrderIds(dict(table)).packed(), PACKED_KEY)
    expected = [(d & (2**64 - 1), d >> 64, v >> 64 & (2**64 - 1), v & (2**64 - 1), v >> 128)
                for d, v in sorted(table.items())]
    assert [tuple(int(x) for x in row) for row in packed.tolist()] == expected
    assert ClientOrderIds.from_packed(packed.tobytes()).keys == table


def test_a_snapshot_taken_then_encoded_while_the_shard_moves_on_is_the_books_when_taken():
    shard_ = _busy_shard(605)
    expected = shard_.snapshot()
    taken = shard_.take_snapshot()
    steps = taken.encoding()
    next(steps)  # part encoded, then more commands change the books and bind more keys
    shard_.execute([new(60, BUY, 104, 30, account=8), cancel(7, account=2), new(61, SELL, 99, 2, account=3)])
    for step in steps:
        if step is not None:  # a step for a thread
            step()
    assert taken.data == expected
    assert shard_.snapshot() != expected


def test_a_shard_that_snapshots_goes_on_exactly_as_one_that_never_does():
    """A snapshot keeps the working orders packed from then on, as a restore does
    (MatchingShard.adopt): the shard must answer, write and snapshot exactly as
    one that never snapshots, orders touched after it included (filled, partly filled,
    modified, cancelled, cancelled again once done)."""
    import random

    rng = random.Random(12)
    # Trade ids alike in both: minted on a clock that stands still.
    plain, snapping = _busy_shard(606, id_clock=lambda: 1.8e9), _busy_shard(606, id_clock=lambda: 1.8e9)
    next_id = 100
    for step in range(40):
        commands = []
        for _ in range(25):
            draw, symbol = rng.random(), rng.choice(["AAPL", "GOOG", "AMD"])
            target = rng.randrange(1, next_id)
            if draw < 0.45:
                side = rng.choice([BUY, SELL])
                price = 100 + rng.randrange(-6, 7)
                commands.append(new(next_id, side, price, rng.randrange(1, 40), account=rng.randrange(1, 6),
                                    symbol=symbol))
                next_id += 1
            elif draw < 0.75:
                commands.append(cancel(target, account=rng.randrange(1, 6), symbol=symbol))
            else:
                commands.append(modify(target, 100 + rng.randrange(-6, 7), rng.randrange(1, 40),
                                       account=rng.randrange(1, 6), symbol=symbol))
        CLOCK[0] += 10**9
        expected, got = plain.execute(commands), snapping.execute(commands)
        assert got.results == expected.results
        assert vars(got.write) == vars(expected.write)
        if step % 4 == 1:
            snapping.snapshot()
    assert (snapping.sequence, snapping.engine.event_hash()) == (plain.sequence, plain.engine.event_hash())
    assert _states(snapping) == _states(plain)
    assert snapping.snapshot() == plain.snapshot()


def test_order_updates_sent_from_answers_are_the_bytes_built_from_rows():
    """A new order nothing touched after its answer goes to the order-update stream as its
    answer's Order message: that must be, byte for byte, the update built from its row and
    the fills recorded with it (as orders touched later are sent)."""
    from services.matching.market_data import update_bytes

    class NoRedis:
        def register_script(self, script):
            return None

    shard = MatchingShard(SYMBOLS, SnowflakeIds(602))
    market = MarketData(NoRedis(), LOG)
    batches = [
        [new(1, t.SIDE_SELL, 100, 5), new(2, t.SIDE_SELL, 101, 5, account=2),
         new(3, t.SIDE_BUY, 100, 3, account=3),                 # takes 3 of 1
         new(4, t.SIDE_BUY, 99, 2), cancel(4),                  # touched again in its batch
         new(5, t.SIDE_BUY, 98, 1, account=2)],                 # rests, untouched
        [new(6, t.SIDE_BUY, 101, 4, account=3),                 # takes the rest of 1 and 2 of 2
         modify(5, 97, 2, account=2), new(7, t.SIDE_SELL, 120, 1)],
    ]
    with_answer = set()

    async def go():  # recording starts the sender task, which never runs here: nothing awaits
        for commands in batches:
            outcome = shard.execute(commands)
            market.record(outcome.symbols, outcome.trades, None,
                          orders=[*outcome.write.new_rows, *outcome.write.updated_rows], answered=outcome.answered)
            for order_id, (row, fills, answer) in market._orders.items():
                if answer is not None:
                    with_answer.add(order_id)
                    assert update_bytes(row, fills, answer) == update_bytes(row, fills), order_id
        market._task.cancel()

    asyncio.run(go())
    # 1, 2 and 5 were touched by a later batch before any send: built from rows; 4 in its own.
    assert set(market._orders) == {1, 2, 3, 4, 5, 6, 7}
    assert {i for i, (_, _, answer) in market._orders.items() if answer is not None} == {3, 6, 7}
    assert with_answer >= {3, 6, 7}


def test_encoded_responses_read_as_the_declared_responses():
    order = t.Order(order_id=7, account_id=1, symbol="AAPL", status=t.ORDER_STATUS_NEW, leaves_quantity=5,
                    fills=[t.Fill(trade_id=3, price=100, quantity=2)])
    encoded = m.EncodedExecuteStreamResponse(batch_id=9)
    add_results(encoded.results, [(order.SerializeToString(), "", 0), (b"", "UNKNOWN_ORDER", 0), (b"", "", 4)])
    read = m.ExecuteStreamResponse.FromString(encoded.SerializeToString())
    assert read.batch_id == 9 and [(r.order, r.error_reason, r.cancelled_count) for r in read.results] == [
        (order, "", 0), (t.Order(), "UNKNOWN_ORDER", 0), (t.Order(), "", 4)]
    batch = m.EncodedExecuteBatchResponse()
    add_results(batch.results, [(order.SerializeToString(), "ORDER_DONE", 0)])
    assert m.ExecuteBatchResponse.FromString(batch.SerializeToString()).results[0].order == order
    # Field for field, the Encoded forms mirror the declared ones (numbers, names, kinds).
    for declared, written in ((m.CommandResult, m.EncodedCommandResult),
                              (m.ExecuteStreamResponse, m.EncodedExecuteStreamResponse),
                              (m.ExecuteBatchResponse, m.EncodedExecuteBatchResponse)):
        assert [(f.number, f.name, f.is_repeated) for f in declared.DESCRIPTOR.fields] == [
            (f.number, f.name, f.is_repeated) for f in written.DESCRIPTOR.fields]


def test_the_server_registers_every_method_of_the_service():
    registered = {}

    class Server:
        def add_generic_rpc_handlers(self, handlers):
            pass

        def add_registered_method_handlers(self, service, handlers):
            registered[service] = set(handlers)

    register({0: SimpleNamespace(shard=SimpleNamespace(symbols={"AAPL": 1}))})(Server())
    service = m.DESCRIPTOR.services_by_name["MatchingService"]
    assert registered == {service.full_name: set(service.methods_by_name)}


def test_resting_orders_are_out_of_the_garbage_collectors_view_and_can_be():
    """LiveOrders untracks each OrderState it keeps (gc_untrack.cc), which is only sound
    while an OrderState can never be part of a reference cycle: every field an int or a str."""
    import dataclasses
    import gc

    from services.matching.order_state import OrderState

    assert {field.type for field in dataclasses.fields(OrderState)} <= {"int", "str"}
    shard_ = _busy_shard(607)
    states = list(_states(shard_).values())
    assert states and not any(gc.is_tracked(state) for state in states)
    shard_.snapshot()  # packed from here: taken again as untracked objects
    assert not any(gc.is_tracked(shard_.live[state.order_id]) for state in states)
