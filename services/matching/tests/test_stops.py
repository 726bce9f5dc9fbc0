"""Stop and stop-limit orders through the shard, worked examples on test_matching.py's shard:
the book before, the commands, the answers, trades and stored orders after. Accounts: 1
makers, 3 takers, 5 the stops' owner. The engine's own rules: engine/tests/stop_test.cc."""

from __future__ import annotations

import asyncio

import pytest
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t

from services.common.ids import SnowflakeIds
from services.matching.shard import MatchingShard
from services.matching.tests.test_matching import (
    BUY,
    SELL,
    SYMBOLS,
    StorePersistence,
    cancel,
    make_store,
    new,
    run,
    shard,
)

pytestmark = pytest.mark.timeout(60)
STOP, STOP_LIMIT = t.ORDER_TYPE_STOP, t.ORDER_TYPE_STOP_LIMIT
NEW, FILLED = t.ORDER_STATUS_NEW, t.ORDER_STATUS_FILLED


def stop(order_id, side, stop_price, qty, price=0, account=5, tif=t.TIME_IN_FORCE_GTC):
    """A stop (no price) or a stop-limit (with one) of account 5."""
    command = new(order_id, side, price, qty, account=account, order_type=STOP_LIMIT if price else STOP, tif=tif)
    command.new_order.stop_price = stop_price
    return command


def modify_stop(order_id, price, qty, stop_price, account=5):
    return m.Command(modify_order=m.ModifyOrder(order_id=order_id, account_id=account, symbol="AAPL", price=price,
                                                quantity=qty, stop_price=stop_price))


def print_at(price, first_id=900):
    """A trade at `price` between accounts 1 and 3: the symbol's last trade."""
    return [new(first_id, SELL, price, 1, account=1), new(first_id + 1, BUY, price, 1, account=3)]


def stored(write, order_id):
    """The order as a batch wrote it (new or updated)."""
    return next(o for o in (*write.new_orders, *write.updated_orders) if o.order_id == order_id)


def test_a_stop_waits_off_the_book_then_enters_as_a_market_order_when_a_trade_reaches_it(tmp_path):
    """Last trade 100; asks 2 @101 and 5 @102; a buy stop of 3 at 101 waits (the book does not
    show it). A buy of 1 @101 prints 101: the stop enters and buys 1 @101 and 2 @102."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([*print_at(100), new(3, SELL, 101, 2), new(4, SELL, 102, 5)])
            [waiting] = await c.execute([stop(10, BUY, 101, 3)])
            order = waiting.order
            assert (order.status, order.leaves_quantity, order.order_type, order.stop_price, order.triggered,
                    waiting.error_reason) == (NEW, 3, STOP, 101, False, "")
            assert c.shard.depth("AAPL") == ([], [(101, 2, 1), (102, 5, 1)])
            assert stored(p.writes[-1], 10).stop_price == 101
            [take] = await c.execute([new(5, BUY, 101, 1, account=3)])
            assert (take.order.status, take.order.filled_quantity) == (FILLED, 1)
            assert [(tr.maker_order_id, tr.taker_order_id, tr.price, tr.quantity) for tr in p.writes[-1].trades] == [
                (3, 5, 101, 1), (3, 10, 101, 1), (4, 10, 102, 2)]
            entered = stored(p.writes[-1], 10)
            assert (entered.status, entered.filled_quantity, entered.leaves_quantity, entered.triggered) == (
                FILLED, 3, 0, True)
            assert 10 not in c.shard.live
            assert c.shard.depth("AAPL") == ([], [(102, 3, 1)])
    run(go())


def test_a_stop_limit_enters_as_a_limit_order_behind_what_rests_at_its_price(tmp_path):
    """Last trade 100; bid 2 @99; a sell stop-limit at 99 selling at 101 waits; an ask of 1
    @101 rests. A sell of 1 @99 prints 99: the stop-limit enters and rests at 101 behind it."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([*print_at(100), new(6, BUY, 99, 2)])
            await c.execute([stop(10, SELL, 99, 3, price=101), new(8, SELL, 101, 1)])
            await c.execute([new(7, SELL, 99, 1, account=3)])
            entered = stored(p.writes[-1], 10)
            assert (entered.status, entered.leaves_quantity, entered.triggered) == (NEW, 3, True)
            bids, asks = c.shard.engine.l3(symbol_id=c.shard.symbols["AAPL"])
            assert [o.order_id for o in asks] == [8, 10]
            assert c.shard.live[10].triggered == 1
    run(go())


def test_a_stop_the_last_trade_reached_is_rejected_and_cancels_and_modifies_work_while_it_waits(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute(print_at(100))
            [refused] = await c.execute([stop(10, BUY, 100, 1)])
            assert (refused.order.status, refused.order.reason) == (t.ORDER_STATUS_REJECTED, "STOP_WOULD_TRIGGER")
            [_, _] = await c.execute([stop(11, BUY, 105, 2), stop(12, SELL, 95, 2, price=94)])
            [moved] = await c.execute([modify_stop(11, 0, 4, 106)])
            assert (moved.order.stop_price, moved.order.quantity, moved.error_reason) == (106, 4, "")
            [too_far] = await c.execute([modify_stop(12, 94, 2, 100)])
            assert too_far.error_reason == "STOP_WOULD_TRIGGER"
            assert c.shard.live[12].stop_price == 95
            [gone] = await c.execute([cancel(11, account=5)])
            assert (gone.order.status, gone.order.leaves_quantity) == (t.ORDER_STATUS_CANCELLED, 0)
            [mass] = await c.execute([m.Command(mass_cancel=m.MassCancel(account_id=5, symbol="AAPL"))])
            assert mass.cancelled_count == 1 and 12 not in c.shard.live
            assert c.shard.engine.stops(symbol_id=c.shard.symbols["AAPL"]) == ([], [])
    run(go())


def test_a_stop_that_trades_with_the_order_that_triggered_it(tmp_path):
    """Last trade 99; bid 1 @100; a buy stop of 2 at 100 waits. A sell of 3 @100 takes the bid
    (printing 100) and rests 2: the stop enters and buys them. The sell's answer is the
    order after everything: filled 3, the stop's trade included."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([*print_at(99), new(20, BUY, 100, 1)])
            await c.execute([stop(10, BUY, 100, 2)])
            [sell] = await c.execute([new(6, SELL, 100, 3, account=3)])
            assert (sell.order.status, sell.order.filled_quantity, sell.order.leaves_quantity) == (FILLED, 3, 0)
            assert [(f.quantity, f.maker) for f in sell.order.fills] == [(1, False), (2, True)]
            write = p.writes[-1]
            assert [(tr.maker_order_id, tr.taker_order_id, tr.quantity) for tr in write.trades] == [
                (20, 6, 1), (6, 10, 2)]
            assert [o.order_id for o in write.new_orders] == [6]  # written once, in its final state
            assert stored(write, 6).status == FILLED
            assert stored(write, 10).status == FILLED
            assert 6 not in c.shard.live and 10 not in c.shard.live
    run(go())


def test_a_cascade_of_stops_in_one_command(tmp_path):
    """Last trade 99; asks 1 @100, 1 @101, 1 @102, 5 @103; buy stops at 100, 101, 102. A buy
    of 1 @100 triggers the first, whose trade at 101 triggers the next, and so on."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([*print_at(99), *(new(i, SELL, 99 + i, 1 if i < 4 else 5) for i in range(1, 5))])
            await c.execute([stop(10, BUY, 100, 1), stop(11, BUY, 101, 1), stop(12, BUY, 102, 1)])
            await c.execute([new(7, BUY, 100, 1, account=3)])
            assert [(tr.taker_order_id, tr.price) for tr in p.writes[-1].trades] == [
                (7, 100), (10, 101), (11, 102), (12, 103)]
            assert c.shard.depth("AAPL") == ([], [(103, 4, 1)])
            assert c.shard.last_prices["AAPL"] == 103
    run(go())


def test_waiting_stops_hold_after_a_restart_a_snapshot_and_a_replay(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store, snapshot_every=2) as (c, _):
                await c.execute([*print_at(100), new(3, SELL, 101, 2)])
                await c.execute([stop(10, BUY, 101, 1), stop(11, SELL, 95, 2, price=94)])
                await asyncio.sleep(0.1)  # the background snapshot lands
                assert c.snapshot_sequence >= 2
                symbol_id = c.shard.symbols["AAPL"]
                state = (c.shard.depth("AAPL"), c.shard.engine.event_hash(), c.shard.engine.stops(symbol_id=symbol_id),
                         c.shard.live[10].stop_price, c.shard.live[11].order_type)
            async with shard(tmp_path, store) as (c, p):
                assert (c.shard.depth("AAPL"), c.shard.engine.event_hash(),
                        c.shard.engine.stops(symbol_id=c.shard.symbols["AAPL"]), c.shard.live[10].stop_price,
                        c.shard.live[11].order_type) == state
                await c.execute([new(5, BUY, 101, 1, account=3)])  # triggers 10, restored
                assert stored(p.writes[-1], 10).triggered
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(618))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            assert fresh.depth("AAPL") == ([], [])  # 5 and then 10 bought the two
            assert 10 not in fresh.live and fresh.live[11].stop_price == 95
        finally:
            store.close()
    run(go())


def test_a_retry_that_differs_in_its_stop_price_is_another_request(tmp_path):
    """Same client_order_id, another stop price: CLIENT_ORDER_ID_REUSED, not the original."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute(print_at(100))
            [first] = await c.execute([stop(10, BUY, 105, 5)])
            again = stop(11, BUY, 110, 5)
            again.new_order.client_order_id = "c10"
            [second] = await c.execute([again])
            assert (first.error_reason, second.error_reason, second.order.order_id) == (
                "", "CLIENT_ORDER_ID_REUSED", 10)
            same = stop(12, BUY, 105, 5)
            same.new_order.client_order_id = "c10"
            [third] = await c.execute([same])
            assert (third.error_reason, third.order.order_id) == ("DUPLICATE_CLIENT_ORDER_ID", 10)
    run(go())


def test_a_waiting_stop_reduced_is_never_refused_by_a_size_limit(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute(print_at(100))
            await c.execute([stop(10, BUY, 105, 10)])
            await c.execute([m.Command(set_risk_limits=m.RiskLimits(account_id=5, max_order_quantity=5))])
            [reduced] = await c.execute([modify_stop(10, 0, 8, 0)])
            assert (reduced.error_reason, reduced.order.quantity) == ("", 8)
            [raised] = await c.execute([modify_stop(10, 0, 9, 106)])
            assert raised.error_reason == "ORDER_QUANTITY_ABOVE_LIMIT"
    run(go())


@pytest.mark.parametrize("command", [
    stop(1, BUY, 0, 1),  # a STOP without its stop price
    new(2, BUY, 100, 1, account=5),  # a LIMIT with one (set below)
])
def test_a_raw_command_with_a_stop_price_on_the_wrong_order_type_is_refused(tmp_path, command):
    if command.new_order.order_type == t.ORDER_TYPE_LIMIT:
        command.new_order.stop_price = 105

    async def go():
        async with shard(tmp_path) as (c, p):
            [refused] = await c.execute([command])
            assert (refused.error_reason, refused.order.status) == ("INVALID_STOP_PRICE", t.ORDER_STATUS_REJECTED)
            assert not c.shard.live and not p.writes[-1].new_orders  # nothing stored
    run(go())
