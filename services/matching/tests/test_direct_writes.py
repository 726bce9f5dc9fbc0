"""The shard's own group commit (direct_writes.py) on a private PostgreSQL: it stores
exactly what the persistence service stores for the same batches, refuses a sequence
already journaled (a second writer of the shard) committing nothing, and fails fast
when the database is gone."""

import asyncio
import itertools
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t

from infra.local.servers import postgres_from_env
from services.common.config import ShardMap
from services.matching.direct_writes import DirectWrites, WriteFailed, _element, array_literal
from services.matching.shard import MatchingShard
from services.persistence.service import _time, order_row, trade_row
from services.persistence.store import ShardedStore

pytestmark = pytest.mark.timeout(120)
SYMBOLS = {"AAPL": 1, "AMD": 2}


class Ids:
    def __init__(self):
        self._next = itertools.count(1000)

    def next(self):
        return next(self._next)


def shard():
    clock = itertools.count(1_780_000_000_000_000_000, 1_000_000)
    return MatchingShard(SYMBOLS, Ids(), clock_ns=lambda: next(clock), shard_index=0)


def new(order_id, side, price, qty, account=1, tif=t.TIME_IN_FORCE_GTC, coid=None):
    return m.Command(new_order=m.NewOrder(
        order_id=order_id, account_id=account, client_order_id=coid or f"c{order_id}", symbol="AAPL", side=side,
        order_type=t.ORDER_TYPE_LIMIT, time_in_force=tif, price=price, quantity=qty))


BATCHES = [
    [new(1, t.SIDE_SELL, 101, 5), new(2, t.SIDE_SELL, 102, 5, account=2),
     new(3, t.SIDE_BUY, 99, 4, coid='q"uo\\te,{NULL} é')],  # travels inside an array literal
    # Takes all of 1 and 2 of 2 (two trades), modifies 3, cancels 2's rest, a retry of 1.
    [new(4, t.SIDE_BUY, 102, 7, account=3),
     m.Command(modify_order=m.ModifyOrder(order_id=3, account_id=1, symbol="AAPL", price=98, quantity=6)),
     m.Command(cancel_order=m.CancelOrder(order_id=2, account_id=2, symbol="AAPL")),
     new(5, t.SIDE_SELL, 101, 5, coid="c1")],
    # Orders that are not plain (a stop-limit, an iceberg, a GTD): the statement with every column.
    [m.Command(new_order=m.NewOrder(order_id=6, account_id=4, client_order_id="c6", symbol="AAPL", side=t.SIDE_BUY,
                                    order_type=t.ORDER_TYPE_STOP_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=104,
                                    quantity=1, stop_price=103)),
     m.Command(new_order=m.NewOrder(order_id=7, account_id=2, client_order_id="c7", symbol="AAPL", side=t.SIDE_SELL,
                                    order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=103,
                                    quantity=4, display_quantity=1)),
     m.Command(new_order=m.NewOrder(order_id=8, account_id=2, client_order_id="c8", symbol="AAPL", side=t.SIDE_SELL,
                                    order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTD, price=110,
                                    quantity=1, expire_time_us=1_900_000_000_000_000))],
    # A print at 103 sets off the stop-limit, which buys from the iceberg: an update with the trigger.
    [new(10, t.SIDE_BUY, 103, 1, account=5)],
]


@pytest.fixture(scope="module")
def pg():
    server = postgres_from_env()
    try:
        server.start(["direct_a", "direct_b", "direct_c", "direct_d"])
        yield server
    finally:
        server.stop()


def dump(url: str):
    with psycopg.connect(url) as conn:
        return [conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("orders", "trades", "journal")]


def test_direct_writes_store_what_the_persistence_service_stores(pg):
    a, b = pg.url("direct_a"), pg.url("direct_b")
    stores = [ShardedStore([url], ShardMap.parse("A-Z")) for url in (a, b)]
    for store in stores:
        store.create_schema()

    async def go():
        direct, via_service = DirectWrites(a, 0), shard()
        mine = shard()
        now = datetime.now(UTC)
        for commands in BATCHES:
            write = mine.execute(commands).write
            await direct.write_batch(write)
            other = via_service.execute(commands).write
            await stores[1].write_batch(
                [order_row(o, now) for o in other.new_orders], [order_row(o, now) for o in other.updated_orders],
                [trade_row(x, now) for x in other.trades], 0,
                [{"sequence": e.sequence, "command": e.command, "time": _time(e.time, now)} for e in other.journal])
        # A second writer of shard 0 (same sequences): refused, and none of it commits.
        with pytest.raises(WriteFailed):
            await direct.write_batch(shard().execute([new(9, t.SIDE_BUY, 50, 1)]).write)
        await direct.close()

    try:
        asyncio.run(go())
        ours, theirs = dump(pg.url("direct_a", driver="postgresql")), dump(pg.url("direct_b", driver="postgresql"))
        assert ours == theirs
        orders, trades, journal = ours
        assert [o[0] for o in orders] == [1, 2, 3, 4, 6, 7, 8, 10]  # the retry (5) stored nothing
        assert orders[2][2] == 'q"uo\\te,{NULL} é'
        assert len(trades) == 4 and len(journal) == 11
        by_id = {o[0]: o[15:] for o in orders}  # stop_price, triggered, display_quantity, expire_time_us
        assert (by_id[6], by_id[7], by_id[8], by_id[1]) == (
            (103, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1_900_000_000_000_000), (0, 0, 0, 0))
    finally:
        for store in stores:
            store.close()


def test_a_shard_stores_its_snapshots_as_the_persistence_service_does(pg):
    """Saved by the shard itself (in chunks, each its own transaction, the last with the
    head): the service reads back the same bytes; a repeated save of a sequence changes
    nothing; a third snapshot prunes the first, and the journal up to the older one kept;
    with journal_prune off the journal stays whole."""
    for database, prune, journal_left in (("direct_c", True, [8, 9, 10, 11]), ("direct_d", False, list(range(1, 12)))):
        url = pg.url(database)
        store = ShardedStore([url], ShardMap.parse("A-Z"))
        store.create_schema()

        async def newest(store=store):
            return b"".join([bytes(chunk["data"]) async for chunk in store.read_snapshot(1)])

        async def go(url=url, prune=prune, newest=newest):
            direct, mine = DirectWrites(url, 1, journal_prune=prune), MatchingShard(SYMBOLS, Ids(), shard_index=1)
            for commands in BATCHES:
                await direct.write_batch(mine.execute(commands).write)
            for sequence in (3, 7, 11):
                data = bytes(range(256)) * (sequence * 4) + b"end"  # several 1 KB chunks, the last short
                await direct.save_snapshot(1, sequence, data, chunk=1024)
                assert await newest() == data
            await direct.save_snapshot(1, 11, b"other", chunk=1024)  # a retried save: left as it was
            assert await newest() == data
            await direct.close()

        try:
            asyncio.run(go())
            with psycopg.connect(pg.url(database, driver="postgresql")) as conn:
                assert conn.execute("SELECT sequence FROM snapshot_heads ORDER BY 1").fetchall() == [(7,), (11,)]
                assert [row[0] for row in conn.execute("SELECT sequence FROM journal ORDER BY 1")] == journal_left
        finally:
            store.close()


def test_a_dead_database_fails_the_batch_fast():
    async def go():
        direct = DirectWrites("postgresql+psycopg://postgres@127.0.0.1:1/none", 0, timeout_s=3.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(WriteFailed):
            await direct.write_batch(shard().execute([new(1, t.SIDE_BUY, 50, 1)]).write)
        assert loop.time() - started < 3.5

    asyncio.run(go())


_ELEMENTS = st.one_of(st.none(), st.integers(), st.binary(max_size=8), st.text(alphabet='ab",\\{} é', max_size=6))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.lists(st.text(alphabet='ab",\\{} é', max_size=6)), st.lists(st.binary(max_size=8)),
                 st.lists(st.integers()), st.lists(_ELEMENTS)))
def test_whole_column_literals_equal_the_element_by_element_form(column):
    # The fast paths (a column of ints, of plain texts, of bytes) write what _element
    # writes; a column whose first item is an int but not every other is written by
    # _element too (it used to come out as str() of each item).
    assert array_literal(column) == "{" + ",".join(map(_element, column)) + "}"
