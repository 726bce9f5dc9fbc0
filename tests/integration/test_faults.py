"""Fault tests with real processes: under load, SIGKILL a matching shard, the persistence
service, an order-service replica and PostgreSQL itself (the whole server), restart each,
and then require that the load kept going after every restart with no call given up on,
that nothing acknowledged was lost, that every acknowledged fill is a stored trade, that
trades balance, and that every shard's books equal two independent recoveries: its oldest
kept snapshot (or the start, while nothing is pruned) plus the journal after it, and its
newest snapshot plus the journal after it. The journal is pruned (the default) exactly up
to the oldest kept snapshot and has no gap after. Plus: Redis down, Redis stalled,
persistence stalled, PostgreSQL down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections import defaultdict

import grpc
import psycopg
import pytest
import redis
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.stack import Stack
from infra.local.supervisor import FIRST_BACKOFF_S, Supervisor
from services.common.config import ShardMap, symbols_from_env
from services.common.errors import reason_of, retry_after_of
from services.common.ids import SnowflakeIds
from services.matching.shard import MatchingShard
from tests.integration.load import Acks, run_load

ALICE = (("authorization", "Bearer demo-key-alice"),)
OPEN = (t.ORDER_STATUS_NEW, t.ORDER_STATUS_PARTIALLY_FILLED)
# What the load may see while parts are down (retried), and cancels of orders already done.
EXPECTED_ERRORS = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "FAILED_PRECONDITION"}
# matching-0 is the one process serving every shard (the Stack default, as in the demo).
VICTIMS = ("matching-0", "persistence", "order-0", "postgres")
# A snapshot every few hundred commands, so recoveries restore one and replay the rest,
# and the journal gets pruned (BOURSE_JOURNAL_PRUNE is left at its default: on).
SNAPSHOT_EVERY = 300
SERVICE_ENV = {"BOURSE_SNAPSHOT_EVERY": str(SNAPSHOT_EVERY)}


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


def shard_status(address: str, index: int) -> matching_pb2.GetShardStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return matching_grpc.MatchingServiceStub(channel).GetShardStatus(
            matching_pb2.GetShardStatusRequest(shard_index=index), timeout=10)


def fresh_shard(stack, index: int) -> MatchingShard:
    owned = ShardMap.parse(stack.shard_ranges).book_ids_of(index, symbols_from_env())
    return MatchingShard(owned, SnowflakeIds(1000), shard_index=index)


def settled_status(address: str, index: int) -> matching_pb2.GetShardStatusResponse:
    """The shard's status once no snapshot is running or due (the load has stopped), so
    no snapshot lands, and prunes the journal, while the checks read it. A snapshot is
    due from SNAPSHOT_EVERY commands after the last one; TakeSnapshot waits for one
    running, or takes the one due."""
    status = shard_status(address, index)
    if status.sequence - status.snapshot_sequence >= SNAPSHOT_EVERY:
        with grpc.insecure_channel(address) as channel:
            matching_grpc.MatchingServiceStub(channel).TakeSnapshot(
                matching_pb2.TakeSnapshotRequest(shard_index=index), timeout=30)
        status = shard_status(address, index)
    return status


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


def recover_from_stored_snapshot(stack, index: int, sequence: int) -> MatchingShard:
    """A fresh shard restored from the stored snapshot at `sequence`, read from the
    database (ReadSnapshot serves only the newest), and fed the journal after it."""
    shard = fresh_shard(stack, index)
    shard.restore(b"".join(bytes(data) for (data,) in query(
        stack, "SELECT data FROM snapshots WHERE matching_shard = %s AND sequence = %s ORDER BY chunk_index",
        index, sequence)))
    assert shard.sequence == sequence
    return replay_journal(stack, index, shard)


def journal_state(stack, index: int) -> tuple[list[int], int, int, int]:
    """(sequences of the stored snapshots, first and last journal sequence, entries)."""
    heads = sorted(sequence for (sequence,) in query(
        stack, "SELECT sequence FROM snapshot_heads WHERE matching_shard = %s", index))
    [(first, last, entries)] = [row for row in query(
        stack, "SELECT min(sequence), max(sequence), count(*) FROM journal WHERE matching_shard = %s", index)
        if row[2]]
    return heads, first, last, entries


def resting(shard: MatchingShard) -> dict[int, tuple[int, int]]:
    """order_id -> (leaves, filled) of every order resting in the shard's books."""
    return {order_id: (shard.live[order_id].leaves, shard.live[order_id].filled) for order_id in list(shard.live)}


def _operator_call(stack, send) -> bool:
    """One operator command to every matching process; False if a part was down."""
    try:
        for index, address in enumerate(stack.matching_addresses):
            with grpc.insecure_channel(address) as channel:
                send(matching_grpc.MatchingServiceStub(channel), index)
        return True
    except grpc.RpcError:
        return False


async def _operate(stack, stop: asyncio.Event, done: dict) -> None:
    """An operator at work beside the load: limits for bob (orders above 4 lots refused) and
    halts and resumes of one of the load's symbols, journaled commands that every recovery
    must replay alike. A call made while a part is down is made again."""
    loop = asyncio.get_running_loop()
    shard = ShardMap.parse(stack.shard_ranges).shard_of("ZM")
    limits = matching_pb2.RiskLimits(account_id=2, max_order_quantity=4)
    halted = False
    while not stop.is_set():
        if not done.get("limits"):
            done["limits"] = await loop.run_in_executor(None, _operator_call, stack, lambda stub, index: (
                stub.SetRiskLimits(matching_pb2.SetRiskLimitsRequest(shard_index=index, limits=limits), timeout=5)))
        status = t.TRADING_STATUS_TRADING if halted else t.TRADING_STATUS_HALTED
        request = matching_pb2.SetTradingStatusRequest(command=matching_pb2.SetTradingStatus(symbol="ZM", status=status))
        if await loop.run_in_executor(None, _operator_call, stack, lambda stub, index: (
                stub.SetTradingStatus(request, timeout=5) if index == shard else None)):
            halted = not halted
            done["status changes"] = done.get("status changes", 0) + 1
        await asyncio.sleep(0.5)
    while halted and not await loop.run_in_executor(None, _operator_call, stack, lambda stub, index: (
            stub.SetTradingStatus(matching_pb2.SetTradingStatusRequest(command=matching_pb2.SetTradingStatus(
                symbol="ZM", status=t.TRADING_STATUS_TRADING)), timeout=5) if index == shard else None)):
        await asyncio.sleep(0.5)


async def _load_with_faults(stack, acks: Acks, progress: dict, operated: dict):
    """Runs the load through one kill and restart of each victim; progress[victim] is
    len(acks.orders) (before the kill, once restarted, 3 s after the restart)."""
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(stack.target, clients=8, stop=stop, acks=acks))
    operator = asyncio.create_task(_operate(stack, stop, operated))
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
    await operator


@pytest.mark.timeout(240)
def test_nothing_acknowledged_is_lost_through_crashes_of_every_part(stack):
    acks, progress, operated = Acks(), {}, {}
    asyncio.run(_load_with_faults(stack, acks, progress, operated))
    # The load's GTD orders expire within 4 s of their submit, by the shard's own clock: let
    # the last ones expire, or the database read below could still see one open that the
    # books, read later, no longer hold.
    time.sleep(5)
    print(f"acked {len(acks.orders)} orders, {len(acks.modifies)} modified, {len(acks.cancels)} cancels, "
          f"{acks.mass_cancels} mass cancels ({acks.mass_cancelled} orders); refused {acks.refused}; "
          f"operator {operated}; "
          f"retried {acks.retried}; "
          f"errors {acks.errors}; abandoned {acks.abandoned}; acked orders before kill / at restart / "
          f"3 s later: {progress}")
    assert len(acks.orders) > 100, f"too little load got through: {acks.errors}"
    assert acks.mass_cancels, "no mass cancel was acknowledged"
    assert operated.get("limits") and operated.get("status changes", 0) >= 4, operated
    assert {"INSTRUMENT_HALTED", "ORDER_QUANTITY_ABOVE_LIMIT"} <= set(acks.refused), acks.refused

    # The load only met the errors a crash explains, retried each until answered, and got
    # going again within seconds of every restart.
    late = {"INVALID_ARGUMENT"} if acks.errors.get("INVALID_ARGUMENT") == acks.refused.get("INVALID_EXPIRE_TIME") \
        else set()  # only GTD retries that came after their time
    assert set(acks.errors) <= EXPECTED_ERRORS | late, f"unexpected errors: {acks.errors}"
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
    triggered = sum(count for (count,) in query(stack, "SELECT count(*) FROM orders WHERE triggered = 1"))
    assert triggered, "no stop triggered under the load"
    for order_id, order in acks.orders.items():
        account, coid, symbol, side, price, quantity, status, filled, leaves = stored[order_id]
        assert (account, coid, symbol, side) == (order.account_id, order.client_order_id, order.symbol, order.side)
        # Price and total quantity as the last acknowledged modify set them (else as
        # submitted), or as a modify sent later set them: its answer may have been lost.
        latest = acks.modifies.get(order_id, order)
        assert (price, quantity) in {(latest.price, latest.quantity)} | acks.modify_attempts.get(order_id, set()), (
            order_id)
        assert filled >= latest.filled_quantity, order_id
        if latest.status not in OPEN:
            assert (status, filled, leaves) == (latest.status, latest.filled_quantity, 0), order_id
    assert acks.modifies, "no modify was acknowledged"
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
    for order_id, modified in acks.modifies.items():  # fills a modify got: as the taker, or from a stop it set off
        for fill in modified.fills:
            assert fill.trade_id in trades, f"order {order_id}: trade {fill.trade_id} of a modify not stored"
            symbol, price, quantity, maker, taker = trades[fill.trade_id]
            assert (symbol, price, quantity, maker if fill.maker else taker) == (
                modified.symbol, fill.price, fill.quantity, order_id), fill.trade_id

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

    # The books each shard serves equal two independent recoveries from what persistence
    # holds: the oldest kept snapshot (the start, while nothing is pruned) plus the
    # journal after it, and the newest snapshot plus the journal after it. The journal
    # was pruned exactly up to the oldest kept snapshot and has no gap from there on.
    # The books hold exactly the orders the database says are open, with the same leaves
    # and filled quantities.
    open_orders = {row[0]: (row[5], row[4]) for row in all_orders if row[6] in OPEN}
    resting_orders, sequences, pruned = {}, [], []
    for index, address in enumerate(stack.matching_addresses):
        status = settled_status(address, index)
        heads, first, last, entries = journal_state(stack, index)
        fallback = heads[0] if len(heads) > 1 else 0  # the oldest kept snapshot, once there are two
        assert first == fallback + 1, f"shard {index}: journal starts at {first}, snapshots {heads}"
        assert last == status.sequence and entries == last - first + 1, (
            f"shard {index}: journal {first}-{last} holds {entries} entries, shard at {status.sequence}")
        if fallback:
            pruned.append(index)
            oldest = recover_from_stored_snapshot(stack, index, fallback)
            with grpc.insecure_channel(stack.persistence_address) as channel, pytest.raises(grpc.RpcError) as e:
                list(persistence_grpc.PersistenceServiceStub(channel).ReadJournal(
                    persistence_pb2.ReadJournalRequest(matching_shard=index), timeout=60))
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(e.value) == "JOURNAL_PRUNED"
        else:
            oldest = replay_journal(stack, index)
        snapshot_sequence, recovered = recover_from_snapshot(stack, index)
        assert status.serving
        assert status.snapshot_sequence > 0, f"shard {index} never snapshotted"
        assert snapshot_sequence == heads[-1]
        assert status.sequence == oldest.sequence == recovered.sequence, (
            f"shard {index}: serving {status.sequence}, snapshot {fallback} + journal {oldest.sequence}, "
            f"snapshot {snapshot_sequence} + journal {recovered.sequence}")
        assert oldest.engine.event_hash() == recovered.engine.event_hash(), (
            f"shard {index}: snapshot {snapshot_sequence} + journal differs from snapshot {fallback} + journal")
        assert status.event_hash == oldest.engine.event_hash(), f"shard {index} differs from its recoveries"
        books = resting(oldest)
        assert resting(recovered) == books, f"shard {index}: the two recoveries rest other orders"
        resting_orders.update(books)
        sequences.append((fallback, snapshot_sequence, status.sequence))
    # Every shard runs well past two snapshots here; one suffices to prove the default prunes.
    assert pruned, f"no journal was pruned (snapshots every {SNAPSHOT_EVERY}; fallback, newest, last: {sequences})"
    assert set(resting_orders) == set(open_orders), (
        f"resting, not open: {set(resting_orders) - set(open_orders)}; "
        f"open, not resting: {set(open_orders) - set(resting_orders)}")
    differ = {oid: (resting_orders[oid], stored) for oid, stored in open_orders.items() if resting_orders[oid] != stored}
    assert not differ, f"(leaves, filled) in the books vs the database: {differ}"
    print(f"{len(all_orders)} orders, {len(trades)} trades stored, {len(open_orders)} resting; both kept "
          f"snapshots + journal recovered identical books (oldest kept, newest, last sequence per shard: "
          f"{sequences}; pruned shards {pruned})")


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
def test_a_redis_stall_neither_doubles_a_trade_nor_loses_an_order_update(stack):
    """The abuse probe's repro: Carol rests a sell on HD; Redis stops (SIGSTOP); Dave buys
    IOC, then rests a buy; 6 s later Redis resumes. Dave's trade must be in md:trades:HD
    and on a live SubscribeMarketData stream once, and his SubscribeOrders stream must show
    both his orders."""
    channel = grpc.insecure_channel(stack.target)
    orders = order_grpc.OrderServiceStub(channel)
    carol, dave = (("authorization", "Bearer demo-key-carol"),), (("authorization", "Bearer demo-key-dave"),)
    trades_seen, updates_seen = [], []
    market = md_grpc.MarketDataServiceStub(channel).SubscribeMarketData(
        md_pb2.SubscribeMarketDataRequest(symbol="HD"), metadata=carol)
    updates = orders.SubscribeOrders(pb.SubscribeOrdersRequest(symbol="HD"), metadata=dave)
    next(market), next(updates)  # both live

    def collect(stream, keep):
        with contextlib.suppress(grpc.RpcError):
            for message in stream:
                keep(message)
    readers = [threading.Thread(target=collect, args=(market, lambda m: m.HasField("trade") and trades_seen.append(
                   m.trade.trade_id)), daemon=True),
               threading.Thread(target=collect, args=(updates, lambda m: m.HasField("order") and updates_seen.append(
                   (m.order.order_id, m.order.status))), daemon=True)]
    for reader in readers:
        reader.start()

    def order(side, price, tif, tag):
        return pb.SubmitOrderRequest(client_order_id=f"stall-{tag}-{time.time_ns()}", symbol="HD", side=side,
                                     order_type=t.ORDER_TYPE_LIMIT, time_in_force=tif, price=price, quantity=1)
    orders.SubmitOrder(order(t.SIDE_SELL, 5000, t.TIME_IN_FORCE_GTC, "sell"), metadata=carol)
    os.kill(stack.redis.process.pid, signal.SIGSTOP)
    try:
        taker = orders.SubmitOrder(order(t.SIDE_BUY, 5000, t.TIME_IN_FORCE_IOC, "ioc"), metadata=dave).order
        resting = orders.SubmitOrder(order(t.SIDE_BUY, 10, t.TIME_IN_FORCE_GTC, "rest"), metadata=dave).order
        time.sleep(6)
    finally:
        os.kill(stack.redis.process.pid, signal.SIGCONT)
    [fill] = taker.fills
    assert resting.status == t.ORDER_STATUS_NEW
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
            fill.trade_id in trades_seen and (resting.order_id, t.ORDER_STATUS_NEW) in updates_seen):
        time.sleep(0.2)
    time.sleep(3)  # a retried send lands a second after the first: time for a double to show
    market.cancel(), updates.cancel()
    stored = [json.loads(raw)["trade_id"] for raw in redis.Redis.from_url(stack.redis.url).lrange("md:trades:HD", 0, -1)]
    assert stored.count(fill.trade_id) == 1, stored
    assert trades_seen.count(fill.trade_id) == 1, trades_seen
    assert len(set(trades_seen)) == len(trades_seen), trades_seen
    assert (taker.order_id, t.ORDER_STATUS_FILLED) in updates_seen, updates_seen
    assert (resting.order_id, t.ORDER_STATUS_NEW) in updates_seen, updates_seen


@pytest.mark.timeout(120)
def test_a_stalled_persistence_fails_reads_fast_instead_of_spending_the_clients_deadline(stack):
    """The abuse probe: with persistence SIGSTOPped, a call that needs it waited the
    client's whole 15 s deadline (three internal timeouts: Envoy retried UNAVAILABLE
    twice). Now one internal timeout (BOURSE_CALL_TIMEOUT_MS, 5 s) answers UNAVAILABLE,
    a shorter client deadline ends the call sooner, and order entry is not touched."""
    orders = order_grpc.OrderServiceStub(grpc.insecure_channel(stack.target))
    placed = orders.SubmitOrder(pb.SubmitOrderRequest(
        client_order_id=f"stalled-{time.time_ns()}", symbol="IBM", side=t.SIDE_BUY, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=t.TIME_IN_FORCE_GTC, price=20, quantity=1), metadata=ALICE, timeout=10).order
    persistence = stack.pids()["persistence"]
    os.kill(persistence, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), metadata=ALICE, timeout=15)
        took = time.monotonic() - started
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
        assert reason_of(caught.value) == "PERSISTENCE_UNAVAILABLE"
        assert "client_order_id" not in caught.value.details()  # a read: nothing to resubmit
        assert 4 < took < 8, took
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), metadata=ALICE, timeout=1.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3
        # Order entry does not wait on persistence.
        cancelled = orders.CancelOrder(pb.CancelOrderRequest(order_id=placed.order_id, symbol="IBM"),
                                       metadata=ALICE, timeout=10).order
        assert cancelled.status == t.ORDER_STATUS_CANCELLED
    finally:
        os.kill(persistence, signal.SIGCONT)
    assert orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), metadata=ALICE,
                           timeout=10).order.status == t.ORDER_STATUS_CANCELLED


@pytest.mark.timeout(120)
def test_one_keys_flood_of_reads_is_refused_beyond_its_allowance_and_order_entry_goes_on(stack):
    """The abuse probe: 1,500 concurrent GetOrders of one key raised other clients' submit
    latency from 25 ms to 1.3 s. Reads of one key are allowed 16 at a time per replica:
    with persistence stalled (so that reads pile up), 60 of Alice's reads get at most
    2 x 16 through; the rest are refused at once, RESOURCE_EXHAUSTED with a RetryInfo,
    and Bob's orders go through meanwhile."""
    orders = order_grpc.OrderServiceStub(grpc.insecure_channel(stack.target))
    bob = (("authorization", "Bearer demo-key-bob"),)
    persistence = stack.pids()["persistence"]
    os.kill(persistence, signal.SIGSTOP)
    try:
        reads = [orders.GetOrder.future(pb.GetOrderRequest(order_id=1), metadata=ALICE, timeout=10)
                 for _ in range(60)]
        time.sleep(1.5)  # the refusals come at once; the others wait on the stalled store (5 s)
        refused = [read.exception() for read in reads if read.done()]
        assert len(refused) >= 60 - 2 * 16
        assert {(e.code(), reason_of(e)) for e in refused} == {
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_IN_FLIGHT")}
        assert retry_after_of(refused[0]) == pytest.approx(0.1)
        started = time.monotonic()
        placed = orders.SubmitOrder(pb.SubmitOrderRequest(
            client_order_id=f"flooded-{time.time_ns()}", symbol="IBM", side=t.SIDE_SELL,
            order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=9000, quantity=1),
            metadata=bob, timeout=10)
        assert placed.order.status == t.ORDER_STATUS_NEW and time.monotonic() - started < 3
    finally:
        os.kill(persistence, signal.SIGCONT)
    for read in reads:
        with contextlib.suppress(grpc.RpcError):
            read.result(timeout=15)


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


@pytest.mark.timeout(180)
def test_the_launcher_restarts_whatever_crashed_with_backoff(stack):
    """The abuse probe: under `make up` a SIGKILLed matching process stopped the whole
    stack. Its supervisor (what `stack up` runs) starts again whatever exits: here the
    matching process, Redis and Envoy, SIGKILLed together; then orders trade again."""
    said = []
    supervisor = Supervisor(stack, say=said.append)
    victims = ("matching-0", "envoy")
    for name in victims:
        stack.kill(name)
    stack.redis.process.kill()
    stack.redis.process.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(p.alive() for p in supervisor.parts):
        supervisor.check()
        time.sleep(0.2)
    restarted = {part.name: part.restarts for part in supervisor.parts if part.restarts}
    assert restarted == {"matching-0": 1, "envoy": 1, "redis": 1}, said
    orders = order_grpc.OrderServiceStub(grpc.insecure_channel(stack.target))
    request = pb.SubmitOrderRequest(client_order_id=f"restarted-{time.time_ns()}", symbol="AAPL", side=t.SIDE_BUY,
                                    order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=30,
                                    quantity=1)
    while True:  # the shards rebuild their books first (UNAVAILABLE meanwhile): retry, same key
        try:
            placed = orders.SubmitOrder(request, metadata=ALICE, timeout=10)
            break
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline, error
            time.sleep(0.5)
    assert placed.order.status == t.ORDER_STATUS_NEW
    # A part that keeps crashing waits longer each time.
    [matching] = [part for part in supervisor.parts if part.name == "matching-0"]
    assert matching.backoff_s == 2 * FIRST_BACKOFF_S
