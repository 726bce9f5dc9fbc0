"""Fault tests with real processes: under load, SIGKILL a matching shard, the persistence
service, an order-service replica and PostgreSQL itself, restart each, and then require
that nothing acknowledged was lost or duplicated, that trades balance, and that every
shard's books equal a replay of its journal. Plus: Redis down, PostgreSQL down.
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
from services.common.config import ShardMap, symbol_ids, symbols_from_env
from services.common.ids import SnowflakeIds
from services.matching.shard import MatchingShard
from tests.integration.load import run_load

ALICE = (("authorization", "Bearer demo-key-alice"),)
OPEN = (t.ORDER_STATUS_NEW, t.ORDER_STATUS_PARTIALLY_FILLED)
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


def replay_journal(stack, index: int) -> MatchingShard:
    """A fresh shard fed its whole journal, from sequence 1."""
    listed = symbols_from_env()
    ids = symbol_ids(listed)
    owned = {s: ids[s] for s in ShardMap.parse(stack.shard_ranges).symbols_of(index, listed)}
    shard = MatchingShard(owned, SnowflakeIds(1000), shard_index=index)
    with grpc.insecure_channel(stack.persistence_address) as channel:
        pages = persistence_grpc.PersistenceServiceStub(channel).ReadJournal(
            persistence_pb2.ReadJournalRequest(matching_shard=index, after_sequence=0, page_size=2000), timeout=60)
        for page in pages:
            shard.replay(page.entries)
    return shard


async def _load_with_faults(stack, acks_box):
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(stack.target, clients=8, stop=stop))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(3)
    for victim in ("matching-0", "persistence", "order-0", "postgres"):
        if victim == "postgres":
            await loop.run_in_executor(None, stack.kill_postgres)
            await asyncio.sleep(1)
            await loop.run_in_executor(None, stack.restart_postgres)
        else:
            await loop.run_in_executor(None, stack.kill, victim)
            await asyncio.sleep(1)
            await loop.run_in_executor(None, stack.restart, victim)
        await asyncio.sleep(3)
    stop.set()
    acks_box.append(await load)


@pytest.mark.timeout(240)
def test_nothing_acknowledged_is_lost_through_crashes_of_every_part(stack):
    box = []
    asyncio.run(_load_with_faults(stack, box))
    acks = box[0]
    print(f"acked {len(acks.orders)} orders, {len(acks.cancels)} cancels; retried {acks.retried}; "
          f"errors {acks.errors}")
    assert len(acks.orders) > 100, f"too little load got through: {acks.errors}"

    # Every acknowledged order is stored, in its acked state or a later one.
    stored = {oid: (status, filled, leaves, qty) for oid, status, filled, leaves, qty in query(
        stack, "SELECT order_id, status, filled_quantity, leaves_quantity, quantity FROM orders "
               "WHERE order_id = ANY(%s)", list(acks.orders))}
    lost = set(acks.orders) - set(stored)
    assert not lost, f"{len(lost)} acknowledged orders lost"
    for order_id, order in acks.orders.items():
        status, filled, leaves, quantity = stored[order_id]
        assert filled >= order.filled_quantity, order_id
        if order.status not in OPEN:
            assert (status, filled) == (order.status, order.filled_quantity), order_id
    for order_id, cancelled in acks.cancels.items():
        assert stored.get(order_id, (None,))[0] == t.ORDER_STATUS_CANCELLED

    # Nothing duplicated: one order per idempotency key, one trade per id (keys enforce the rest).
    assert query(stack, "SELECT account_id, client_order_id FROM orders WHERE client_order_id <> '' "
                        "GROUP BY 1, 2 HAVING count(*) > 1") == []

    # Traded quantity balances: each order's fills add up to its filled quantity, and
    # every symbol traded as much on the buy side as on the sell side.
    filled_by_trades = defaultdict(int)
    for maker, taker, quantity in query(stack, "SELECT maker_order_id, taker_order_id, quantity FROM trades"):
        filled_by_trades[maker] += quantity
        filled_by_trades[taker] += quantity
    all_orders = query(stack, "SELECT order_id, symbol, side, quantity, filled_quantity, leaves_quantity, status "
                              "FROM orders")
    per_side = defaultdict(int)
    for order_id, symbol, side, quantity, filled, leaves, status in all_orders:
        assert filled == filled_by_trades.get(order_id, 0), f"order {order_id}: fills do not add up"
        assert filled + leaves <= quantity and (leaves > 0) == (status in OPEN), order_id
        per_side[symbol, side] += filled
    for (symbol, side), filled in per_side.items():
        assert filled == per_side.get((symbol, 3 - side), 0), f"{symbol}: buy and sell sides do not balance"

    # The books each shard serves equal a replay of its journal, and hold exactly the
    # orders the database says are open.
    open_ids = {row[0] for row in all_orders if row[6] in OPEN}
    resting_ids = set()
    for index, address in enumerate(stack.matching_addresses):
        status = shard_status(address)
        replayed = replay_journal(stack, index)
        assert status.serving
        assert status.sequence == replayed.sequence
        assert status.event_hash == replayed.engine.event_hash(), f"shard {index} differs from its journal"
        assert status.snapshot_sequence > 0, f"shard {index} never snapshotted"
        resting_ids |= set(replayed.live)
    assert resting_ids == open_ids
    print(f"{len(all_orders)} orders stored, {len(open_ids)} resting; journals replayed to identical books")


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
