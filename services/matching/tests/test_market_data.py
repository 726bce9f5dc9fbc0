"""Market data conflation against a real Redis: sends at least `interval_s` apart, books
replaced by their newest state, every trade delivered in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

import pytest
import redis.asyncio as redis
import structlog

from infra.local.servers import Redis, running_redis
from services.common.redis_keys import book_key, trades_key
from services.matching.market_data import MarketData
from services.matching.shard_write import TradeRow, order_proto, order_row

LOG = structlog.get_logger()


@pytest.fixture(scope="module")
def redis_url():
    with running_redis() as server:
        yield server.url


def trade(trade_id: int) -> TradeRow:
    return TradeRow(trade_id=trade_id, symbol="AAPL", price=100 + trade_id, quantity=1, maker_order_id=trade_id,
                    taker_order_id=1000 + trade_id, maker_account_id=0, taker_account_id=0, aggressor_side=1,
                    time_us=1_700_000_000_000_000)


async def empty_books(symbols):
    return {s: ([], [], 1) for s in symbols}


@contextlib.asynccontextmanager
async def publishing(redis_url, **options):
    """A MarketData over a flushed Redis, and a second client to read what it sent."""
    reader = redis.from_url(redis_url)
    await reader.flushdb()
    writer = redis.from_url(redis_url)
    market_data = MarketData(writer, LOG, **options)
    try:
        yield market_data, reader
    finally:
        await market_data.close()
        await writer.aclose()
        await reader.aclose()


async def wait_until(check, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        assert loop.time() < deadline, "market data never arrived"
        await asyncio.sleep(0.01)


@pytest.mark.timeout(60)
def test_sends_are_conflated_to_the_interval_and_no_trade_is_dropped(redis_url):
    async def go():
        client = redis.from_url(redis_url)
        reader = redis.from_url(redis_url)
        await reader.flushdb()
        await reader.config_resetstat()
        book = {"bid": 0}

        async def books_of(symbols):
            return {s: ([[book["bid"], 1, 1]], [], 1) for s in symbols}

        market_data = MarketData(client, LOG, interval_s=1.0)
        try:
            market_data.record(["AAPL"], [trade(1)], books_of)
            await wait_until(lambda: reader.llen(trades_key("AAPL")))
            # Within the interval: twenty more batches, none sent yet.
            for trade_id in range(2, 22):
                book["bid"] = trade_id
                market_data.record(["AAPL"], [trade(trade_id)], books_of)
                await asyncio.sleep(0)
            assert await reader.llen(trades_key("AAPL")) == 1

            async def all_trades():
                return await reader.llen(trades_key("AAPL")) == 21
            await wait_until(all_trades)
            newest_first = [json.loads(t)["trade_id"] for t in await reader.lrange(trades_key("AAPL"), 0, -1)]
            assert newest_first == list(range(21, 0, -1))
            assert json.loads(await reader.get(book_key("AAPL")))["bids"] == [[21, 1, 1]]
            stats = await reader.info("commandstats")
            assert stats["cmdstat_lpush"]["calls"] == 2, stats["cmdstat_lpush"]
        finally:
            await market_data.close()
            await reader.aclose()
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_without_an_interval_each_batch_is_sent_as_soon_as_it_is_recorded(redis_url):
    async def go():
        async with publishing(redis_url) as (market_data, reader):
            for trade_id in range(1, 4):
                market_data.record(["AAPL"], [trade(trade_id)], empty_books)

                async def arrived(n=trade_id):
                    return await reader.llen(trades_key("AAPL")) == n
                await wait_until(arrived, timeout_s=5.0)
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_close_sends_what_was_recorded_during_the_interval(redis_url):
    async def go():
        client = redis.from_url(redis_url)
        reader = redis.from_url(redis_url)
        await reader.flushdb()

        async def books_of(symbols):
            return {s: ([[7, 1, 1]], [], 1) for s in symbols}

        market_data = MarketData(client, LOG, interval_s=5.0)
        try:
            market_data.record(["AAPL"], [trade(1)], books_of)
            await wait_until(lambda: reader.llen(trades_key("AAPL")))
            market_data.record(["AAPL"], [trade(2)], books_of)  # waits out the interval...
        finally:
            await market_data.close()  # ...unless the shard stops first
        newest_first = [json.loads(t)["trade_id"] for t in await reader.lrange(trades_key("AAPL"), 0, -1)]
        assert newest_first == [2, 1]
        await reader.aclose()
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_each_changed_order_is_added_to_its_accounts_stream_with_the_fills_since_the_last_send(redis_url):
    from bourse.type.v1 import types_pb2

    def order(order_id, account, status, filled):
        return order_row(types_pb2.Order(order_id=order_id, account_id=account, symbol="AAPL", status=status,
                                         filled_quantity=filled, quantity=5))

    def proto_trade(trade_id, maker, taker, quantity):
        return TradeRow(trade_id=trade_id, symbol="AAPL", price=100, quantity=quantity, maker_order_id=maker,
                        taker_order_id=taker, maker_account_id=0, taker_account_id=0, aggressor_side=1, time_us=0)

    async def go():
        async with publishing(redis_url, interval_s=1.0) as (market_data, reader):
            async def stream(account):
                return [types_pb2.Order.FromString(fields[b"order"])
                        for _, fields in await reader.xrange(f"orders:{account}")]

            market_data.record(["AAPL"], [], empty_books, orders=[order(11, 1, types_pb2.ORDER_STATUS_NEW, 0)])
            await wait_until(lambda: reader.xlen("orders:1"))
            # Within the interval: two batches fill order 11 (account 1) from order 12 and 13
            # (account 2); one entry per order comes, its newest state with both fills.
            market_data.record(["AAPL"], [proto_trade(1, 11, 12, 2)], empty_books, orders=[
                order(11, 1, types_pb2.ORDER_STATUS_PARTIALLY_FILLED, 2), order(12, 2, types_pb2.ORDER_STATUS_FILLED, 2)])
            market_data.record(["AAPL"], [proto_trade(2, 11, 13, 3)], empty_books, orders=[
                order(11, 1, types_pb2.ORDER_STATUS_FILLED, 5), order(13, 2, types_pb2.ORDER_STATUS_FILLED, 3)])

            async def both_sent():
                return await reader.xlen("orders:1") == 2 and await reader.xlen("orders:2") == 2
            await wait_until(both_sent)
            first, eleven = await stream(1)
            assert first.status == types_pb2.ORDER_STATUS_NEW and eleven.status == types_pb2.ORDER_STATUS_FILLED
            assert [(f.trade_id, f.quantity, f.maker) for f in eleven.fills] == [(1, 2, True), (2, 3, True)]
            assert [(o.order_id, [(f.trade_id, f.maker) for f in o.fills]) for o in await stream(2)] == [
                (12, [(1, False)]), (13, [(2, False)])]
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_a_sweep_of_more_trades_than_the_list_keeps_streams_every_one(redis_url):
    async def go():
        async with publishing(redis_url) as (market_data, reader):
            pubsub = reader.pubsub()
            await pubsub.subscribe("md:updates:AAPL")
            assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
            market_data.record(["AAPL"], [trade(i) for i in range(1, 151)], empty_books)
            message = None
            while message is None or message["type"] != "message":
                message = await pubsub.get_message(timeout=5)
            streamed = [t["trade_id"] for t in json.loads(message["data"])["trades"]]
            assert streamed == list(range(1, 151))
            kept = [json.loads(t)["trade_id"] for t in await reader.lrange(trades_key("AAPL"), 0, -1)]
            assert kept == list(range(150, 50, -1))
            await pubsub.aclose()
    asyncio.run(go())


@pytest.mark.timeout(90)
def test_a_redis_stall_neither_doubles_a_trade_nor_loses_an_order_update():
    """The abuse probe's repro, as the publisher sees it: Redis stops (SIGSTOP) with a send
    in hand, every send meanwhile times out and may still be applied when Redis resumes
    (it runs what it had queued). Each trade must then be in md:trades and on md:updates
    once, and every order update in its account's stream once, in order."""
    from bourse.type.v1 import types_pb2

    from prometheus_client import REGISTRY

    from services.matching import market_data as md

    def publish_errors() -> float:
        return REGISTRY.get_sample_value("bourse_redis_errors_total", {"operation": "publish"}) or 0.0

    def order(order_id, account):
        return order_row(types_pb2.Order(order_id=order_id, account_id=account, symbol="AAPL",
                                         status=types_pb2.ORDER_STATUS_NEW, quantity=1))

    server = Redis().start()  # a private one: this test stops it
    messages = []

    async def go():
        reader = redis.from_url(server.url)
        writer = redis.from_url(server.url, socket_timeout=None)
        market_data = MarketData(writer, LOG)
        pubsub = reader.pubsub()
        await pubsub.subscribe("md:updates:AAPL")
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"

        async def listen():
            while True:
                message = await pubsub.get_message(timeout=1)
                if message and message["type"] == "message":
                    messages.extend(t["trade_id"] for t in json.loads(message["data"])["trades"])
        listener = asyncio.create_task(listen())
        try:
            market_data.record(["AAPL"], [trade(1)], empty_books, orders=[order(11, 1)])
            await wait_until(lambda: reader.xlen("orders:1"))
            failed_sends = publish_errors()
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                market_data.record(["AAPL"], [trade(2)], empty_books, orders=[order(12, 2)])
                await asyncio.sleep(md.PUBLISH_TIMEOUT_S + 0.2)  # that send timed out, in Redis's queue
                market_data.record(["AAPL"], [trade(3)], empty_books, orders=[order(13, 2)])
                await asyncio.sleep(2 * md.BACKOFF_S + md.PUBLISH_TIMEOUT_S)  # retried, timed out again
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            # The sends that timed out are counted (bourse_redis_errors_total{operation="publish"}).
            assert publish_errors() >= failed_sends + 2

            async def all_there():
                return await reader.llen(trades_key("AAPL")) >= 3 and await reader.xlen("orders:2") >= 2
            await wait_until(all_there, timeout_s=20)
            await asyncio.sleep(2 * md.BACKOFF_S)  # time for anything doubled to land
            newest_first = [json.loads(t)["trade_id"] for t in await reader.lrange(trades_key("AAPL"), 0, -1)]
            assert newest_first == [3, 2, 1]
            assert messages == [1, 2, 3]
            updates = [types_pb2.Order.FromString(f[b"order"]).order_id for _, f in await reader.xrange("orders:2")]
            assert updates == [12, 13]
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await market_data.close()
            await pubsub.aclose()
            await writer.aclose()
            await reader.aclose()

    try:
        asyncio.run(go())
    finally:
        server.stop()


@pytest.mark.timeout(60)
def test_updates_dropped_past_the_bound_leave_a_visible_gap(redis_url, monkeypatch):
    """Order updates pile up only while Redis is away; past the bound they are dropped,
    and their accounts' streams are trimmed to nothing so a reader sees the gap (the
    order service answers OUT_OF_RANGE) rather than missing an update silently."""
    from bourse.type.v1 import types_pb2

    from services.matching import market_data as md
    monkeypatch.setattr(md, "ORDER_UPDATES_PENDING_MAX", 2)

    def order(order_id):
        return order_row(types_pb2.Order(order_id=order_id, account_id=7, symbol="AAPL", quantity=1))

    async def go():
        async with publishing(redis_url, interval_s=1.0) as (market_data, reader):
            market_data.record(["AAPL"], [], empty_books, orders=[order(1)])
            await wait_until(lambda: reader.xlen("orders:7"))
            # Within the interval (as if Redis were away): three changed orders, one too many.
            market_data.record(["AAPL"], [], empty_books, orders=[order(2), order(3), order(4)])
            market_data.record(["AAPL"], [], empty_books, orders=[order(5)])

            async def trimmed_then_added():
                info = await reader.xinfo_stream("orders:7")
                return info["entries-added"] == 2 and info["length"] == 1
            await wait_until(trimmed_then_added)
            [(_, fields)] = await reader.xrange("orders:7")
            assert types_pb2.Order.FromString(fields[b"order"]).order_id == 5
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_updates_and_trades_travel_packed_and_arrive_byte_for_byte(redis_url):
    # A send carries its order updates back to back (with their lengths) and each
    # symbol's trades one per line: bytes that look like the separators must not split.
    from bourse.type.v1 import types_pb2

    tricky = [types_pb2.Order(order_id=order_id, account_id=account, symbol="AAPL", client_order_id=coid,
                              price=44, quantity=10, status=types_pb2.ORDER_STATUS_NEW)  # 44 is b","
              for order_id, account, coid in ((21, 7, "a,b\nc"), (22, 8, ",,\n\n"), (23, 7, "plain"))]

    async def go():
        async with publishing(redis_url) as (market_data, reader):
            market_data.record(["AAPL"], [trade(1), trade(2), trade(3)], empty_books,
                               orders=[order_row(o) for o in tricky])

            async def sent():
                return await reader.xlen("orders:7") == 2 and await reader.xlen("orders:8") == 1
            await wait_until(sent)
            got = {account: [fields[b"order"] for _, fields in await reader.xrange(f"orders:{account}")]
                   for account in (7, 8)}
            as_sent = [order_proto(order_row(o)).SerializeToString() for o in tricky]  # the row's Order
            assert got == {7: [as_sent[0], as_sent[2]], 8: [as_sent[1]]}
            newest_first = [json.loads(t)["trade_id"] for t in await reader.lrange(trades_key("AAPL"), 0, -1)]
            assert newest_first == [3, 2, 1]
    asyncio.run(go())
