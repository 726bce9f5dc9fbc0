"""Fault tests with real processes: under load, SIGKILL a matching shard, the persistence
service, an order-service replica and PostgreSQL itself (the whole server), restart each,
and then require that the load kept going after every restart with no call given up on,
that nothing acknowledged was lost, that every acknowledged fill is a stored trade, that
trades balance, and that every shard's books equal both a replay of its whole journal and
its newest snapshot plus the journal after it. Plus: Redis down, PostgreSQL down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import grpc
import psycopg
import pytest
import redis
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.stack import Stack
from services.common.config import ShardMap, symbols_from_env
from services.common.ids import SnowflakeIds
from services.matching.shard import MatchingShard
from tests.integration.load import Acks, run_load

ALICE = (("authorization", "Bearer demo-key-alice"),)
OPEN = (t.ORDER_STATUS_NEW, t.ORDER_STATUS_PARTIALLY_FILLED)
# What the load may see while parts are down (retried), and cancels of orders already done.
EXPECTED_ERRORS = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "FAILED_PRECONDITION"}
VICTIMS = ("matching-0", "persistence", "order-0", "postgres")
# A snapshot every few hundred commands, so recoveries restore one and replay the rest.
SERVICE_ENV = {"BOURSE_SNAPSHOT_EVERY": "300"}


@pytest.fixture(scope="module")
def stack():
    with Stack(order_replicas=2, service_env=SERVICE_ENV) as running:
        yield running


def query(stack, sql, *params):
    rows = []
    for url in stack.db_urls(driver="postgresql"):
        with psycopg.connect(url) as conn:
            rows += conn.execute(sql, params).fetchall()
    return rows


def shard_status(address: str) -> matching_pb2.GetShardStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return matching_grpc.MatchingServiceStub(channel).GetShardStatus(matching_pb2.GetShardStatusRequest(),
                                                                         timeout=10)


def fresh_shard(stack, index: int) -> MatchingShard:
    owned = ShardMap.parse(stack.shard_ranges).book_ids_of(index, symbols_from_env())
    return MatchingShard(owned, SnowflakeIds(1000), shard_index=index)


def replay_journal(stack, index: int, shard: MatchingShard | None = None) -> MatchingShard:
    """The shard (a fresh one by default) fed its journal after its sequence."""
    shard = shard or fresh_shard(stack, index)
    with grpc.insecure_channel(stack.persistence_address) as channel:
        pages = persistence_grpc.PersistenceServiceStub(channel).ReadJournal(
            persistence_pb2.ReadJournalRequest(matching_shard=index, after_sequence=shard.sequence, page_size=2000),
            timeout=60)
        for page in pages:
            shard.replay(page.entries)
    return shard


def recover_from_snapshot(stack, index: int) -> tuple[int, MatchingShard]:
    """(snapshot sequence, a fresh shard restored from the newest stored snapshot and fed
    the journal after it): the path a restarting shard takes."""
    with grpc.insecure_channel(stack.persistence_address) as channel:
        chunks = [response.chunk for response in persistence_grpc.PersistenceServiceStub(channel).ReadSnapshot(
            persistence_pb2.ReadSnapshotRequest(matching_shard=index), timeout=60)]
    assert chunks, f"shard {index}: no snapshot stored"
    assert [c.index for c in chunks] == list(range(len(chunks))) and chunks[-1].last
    assert len({c.sequence for c in chunks}) == 1
    shard = fresh_shard(stack, index)
    shard.restore(b"".join(c.data for c in chunks))
    assert shard.sequence == chunks[0].sequence > 0
    return chunks[0].sequence, replay_journal(stack, index, shard)


def resting(shard: MatchingShard) -> dict[int, tuple[int, int]]:
    """order_id -> (leaves, filled) of every order resting in the shard's books."""
    return {order_id: (shard.live[order_id].leaves, shard.live[order_id].filled) for order_id in list(shard.live)}


async def _load_with_faults(stack, acks: Acks, progress: dict):
    """Runs the load through one kill and restart of each victim; progress[victim] is
    len(acks.orders) (before the kill, once restarted, 3 s after the restart)."""
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(stack.target, clients=8, stop=stop, acks=acks))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(3)
    for victim in VICTIMS:
        before = len(acks.orders)
        if victim == "postgres":
            await loop.run_in_executor(None, stack.kill_postgres)
            await asyncio.sleep(1)
            await loop.run_in_executor(None, stack.restart_postgres)
        else:
            await loop.run_in_executor(None, stack.kill, victim)
            await asyncio.sleep(1)
            await loop.run_in_executor(None, stack.restart, victim)
        restarted = len(acks.orders)
        await asyncio.sleep(3)
        progress[victim] = (before, restarted, len(acks.orders))
        if load.done():
            break  # a client failed: stop here and let `await load` raise it
    stop.set()
    await load


@pytest.mark.timeout(240)
def test_nothing_acknowledged_is_lost_through_crashes_of_every_part(stack):
    acks, progress = Acks(), {}
    asyncio.run(_load_with_faults(stack, acks, progress))
    print(f"acked {len(acks.orders)} orders, {len(acks.cancels)} cancels; retried {acks.retried}; "
          f"errors {acks.errors}; abandoned {acks.abandoned}; acked orders before kill / at restart / "
          f"3 s later: {progress}")
    assert len(acks.orders) > 100, f"too little load got through: {acks.errors}"

    # The load only met the errors a crash explains, retried each until answered, and got
    # going again within seconds of every restart.
    assert set(acks.errors) <= EXPECTED_ERRORS, f"unexpected errors: {acks.errors}"
    assert not acks.abandoned, f"calls given up on after their retry window: {acks.abandoned}"
    for victim in VICTIMS:
        before, restarted, later = progress[victim]
        assert later > restarted, f"no order acknowledged in the 3 s after {victim} restarted: {progress}"

    # Every acknowledged order is stored as acknowledged (same order, same or later state).
    stored = {row[0]: row[1:] for row in query(
        stack, "SELECT order_id, account_id, client_order_id, symbol, side, price, quantity, status, "
               "filled_quantity, leaves_quantity FROM orders WHERE order_id = ANY(%s)", list(acks.orders))}
    lost = set(acks.orders) - set(stored)
    assert not lost, f"{len(lost)} acknowledged orders lost"
    for order_id, order in acks.orders.items():
        account, coid, symbol, side, price, quantity, status, filled, leaves = stored[order_id]
        assert (account, coid, symbol, side, price, quantity) == (
            order.account_id, order.client_order_id, order.symbol, order.side, order.price, order.quantity), order_id
        assert filled >= order.filled_quantity, order_id
        if order.status not in OPEN:
            assert (status, filled, leaves) == (order.status, order.filled_quantity, 0), order_id
    for order_id, cancelled in acks.cancels.items():
        assert stored.get(order_id, (None,) * 9)[6] == t.ORDER_STATUS_CANCELLED, order_id

    # Every trade is stored once, across all databases, between two stored orders of its
    # symbol on opposite sides; every fill an acknowledgement reported is one of them.
    trades = {}
    for trade_id, symbol, price, quantity, maker, taker in query(
            stack, "SELECT trade_id, symbol, price, quantity, maker_order_id, taker_order_id FROM trades"):
        assert trade_id not in trades, f"trade {trade_id} stored twice"
        trades[trade_id] = (symbol, price, quantity, maker, taker)
    for order_id, order in acks.orders.items():
        # At least what it says it filled (an ack read back from the database may list a
        # fill committed after its order row was read).
        assert sum(fill.quantity for fill in order.fills) >= order.filled_quantity, order_id
        for fill in order.fills:
            assert fill.trade_id in trades, f"order {order_id}: acknowledged trade {fill.trade_id} not stored"
            symbol, price, quantity, maker, taker = trades[fill.trade_id]
            assert (symbol, price, quantity) == (order.symbol, fill.price, fill.quantity), fill.trade_id
            assert order_id in (maker, taker), f"trade {fill.trade_id} is not order {order_id}'s"
            assert fill.maker == (order_id == maker), fill.trade_id

    # Traded quantity balances: each order's fills add up to its filled quantity, and
    # every symbol traded as much on the buy side as on the sell side.
    all_orders = query(stack, "SELECT order_id, symbol, side, quantity, filled_quantity, leaves_quantity, status "
                              "FROM orders")
    by_id = {row[0]: row for row in all_orders}
    filled_by_trades = defaultdict(int)
    for trade_id, (symbol, price, quantity, maker, taker) in trades.items():
        assert maker in by_id and taker in by_id, f"trade {trade_id}: an order is not stored"
        assert by_id[maker][1] == by_id[taker][1] == symbol and by_id[maker][2] != by_id[taker][2], trade_id
        filled_by_trades[maker] += quantity
        filled_by_trades[taker] += quantity
    per_side = defaultdict(int)
    for order_id, symbol, side, quantity, filled, leaves, status in all_orders:
        assert filled == filled_by_trades.get(order_id, 0), f"order {order_id}: fills do not add up"
        assert filled + leaves <= quantity and (leaves > 0) == (status in OPEN), order_id
        per_side[symbol, side] += filled
    for (symbol, side), filled in per_side.items():
        assert filled == per_side.get((symbol, 3 - side), 0), f"{symbol}: buy and sell sides do not balance"

    # The books each shard serves equal a replay of its whole journal and its newest
    # snapshot plus the journal after it, and hold exactly the orders the database says
    # are open, with the same leaves and filled quantities.
    open_orders = {row[0]: (row[5], row[4]) for row in all_orders if row[6] in OPEN}
    resting_orders, sequences = {}, []
    for index, address in enumerate(stack.matching_addresses):
        status = shard_status(address)
        replayed = replay_journal(stack, index)
        snapshot_sequence, recovered = recover_from_snapshot(stack, index)
        assert status.serving
        assert status.snapshot_sequence > 0, f"shard {index} never snapshotted"
        assert status.sequence == replayed.sequence == recovered.sequence, (
            f"shard {index}: serving {status.sequence}, journal {replayed.sequence}, "
            f"snapshot {snapshot_sequence} + journal {recovered.sequence}")
        assert replayed.engine.event_hash() == recovered.engine.event_hash(), (
            f"shard {index}: snapshot {snapshot_sequence} + journal differs from the whole journal")
        assert status.event_hash == replayed.engine.event_hash(), f"shard {index} differs from its journal"
        books = resting(replayed)
        assert resting(recovered) == books, f"shard {index}: snapshot + journal rests other orders"
        resting_orders.update(books)
        sequences.append((snapshot_sequence, status.sequence))
    assert set(resting_orders) == set(open_orders), (
        f"resting, not open: {set(resting_orders) - set(open_orders)}; "
        f"open, not resting: {set(open_orders) - set(resting_orders)}")
    differ = {oid: (resting_orders[oid], stored) for oid, stored in open_orders.items() if resting_orders[oid] != stored}
    assert not differ, f"(leaves, filled) in the books vs the database: {differ}"
    print(f"{len(all_orders)} orders, {len(trades)} trades stored, {len(open_orders)} resting; "
          f"journals and snapshots replayed to identical books (snapshot, last sequence per shard: {sequences})")


@pytest.mark.timeout(120)
def test_trading_goes_on_without_redis_and_market_data_catches_up(stack):
    orders = order_grpc.OrderServiceStub(grpc.insecure_channel(stack.target))
    stack.redis.process.kill()
    stack.redis.process.wait()
    placed = orders.SubmitOrder(pb.SubmitOrderRequest(
        client_order_id=f"no-redis-{time.time_ns()}", symbol="KO", side=t.SIDE_BUY,
        order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=55, quantity=9), metadata=ALICE)
    assert placed.order.status == t.ORDER_STATUS_NEW
    stack.redis.start()  # same port, empty: market data must be published afresh
    deadline = time.monotonic() + 20
    book = None
    while time.monotonic() < deadline:
        orders.SubmitOrder(pb.SubmitOrderRequest(  # any later batch on KO's shard republishes
            client_order_id=f"after-redis-{time.time_ns()}", symbol="KO", side=t.SIDE_SELL,
            order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=99, quantity=1), metadata=ALICE)
        raw = redis.Redis.from_url(stack.redis.url).get("md:book:KO")
        book = json.loads(raw) if raw else None
        if book and book["bids"] and book["bids"][0][0] == 55:
            break
        time.sleep(0.5)
    assert book and book["bids"][0][:2] == [55, 9]


@pytest.mark.timeout(120)
def test_with_postgres_down_submit_fails_fast_and_leaves_nothing_half_written(stack):
    orders = order_grpc.OrderServiceStub(grpc.insecure_channel(stack.target))
    request = pb.SubmitOrderRequest(
        client_order_id=f"pg-down-{time.time_ns()}", symbol="PEP", side=t.SIDE_SELL,
        order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=170, quantity=4)
    stack.kill_postgres()
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            orders.SubmitOrder(request, metadata=ALICE, timeout=8)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 8
    finally:
        stack.restart_postgres()
    assert query(stack, "SELECT 1 FROM orders WHERE client_order_id = %s", request.client_order_id) == []
    deadline = time.monotonic() + 30
    while True:  # the shards recover once the database is back; the same request then succeeds once
        try:
            placed = orders.SubmitOrder(request, metadata=ALICE, timeout=8)
            break
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.5)
    assert placed.order.status == t.ORDER_STATUS_NEW
    counts = query(stack, "SELECT count(*) FROM orders WHERE client_order_id = %s", request.client_order_id)
    assert sum(count for (count,) in counts) == 1
