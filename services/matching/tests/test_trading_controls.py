"""Worked examples of a shard's trading controls: halts (an operator's command), mass
cancels, pre-trade limits and the expiry of GTD and DAY orders. Each is a journaled
command, so a restart, a snapshot or a replay reaches the same books; the helpers are
test_matching.py's (the engine, the group commit and the in-process store)."""

import asyncio
import time

import pytest
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t

from services.common.ids import SnowflakeIds
from services.matching.shard import InvalidCommand, MatchingShard
from services.matching.tests.test_matching import (
    BUY,
    SELL,
    SYMBOLS,
    StorePersistence,
    cancel,
    make_store,
    modify,
    new,
    run,
    shard,
)

pytestmark = pytest.mark.timeout(60)
HALTED, TRADING = t.TRADING_STATUS_HALTED, t.TRADING_STATUS_TRADING


def status(symbol, value):
    return m.Command(set_trading_status=m.SetTradingStatus(symbol=symbol, status=value))


def mass_cancel(account, symbol="AAPL"):
    return m.Command(mass_cancel=m.MassCancel(account_id=account, symbol=symbol))


def test_a_halted_symbol_refuses_new_orders_and_modifies_but_cancels_work(tmp_path):
    """Book: AAPL ask 1 (101 x 5, account 1), bid 2 (99 x 5, account 2). Halt AAPL: a
    crossing buy is refused INSTRUMENT_HALTED and creates nothing; modifying order 1 is
    refused and leaves it as it was; cancelling order 2 works; GOOG still trades. Resume:
    the refused buy, sent again with the same client_order_id, trades."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5, account=1), new(2, BUY, 99, 5, account=2)])
            [halt] = await c.execute([status("AAPL", HALTED)])
            assert halt.error_reason == "" and c.shard.trading_status("AAPL") == HALTED
            assert c.shard.trading_status("GOOG") == TRADING

            [refused] = await c.execute([new(3, BUY, 101, 2, account=3, coid="buy-3")])
            assert refused.error_reason == "INSTRUMENT_HALTED"
            assert (refused.order.status, refused.order.reason) == (t.ORDER_STATUS_REJECTED, "INSTRUMENT_HALTED")
            write = p.writes[-1]
            assert (list(write.new_orders), list(write.trades), len(write.journal)) == ([], [], 1)
            assert await p.order(3) is None

            [unmoved] = await c.execute([modify(1, 100, 5)])
            assert unmoved.error_reason == "INSTRUMENT_HALTED"
            assert (unmoved.order.price, unmoved.order.leaves_quantity) == (101, 5)

            [cancelled] = await c.execute([cancel(2, account=2)])
            assert (cancelled.error_reason, cancelled.order.status) == ("", t.ORDER_STATUS_CANCELLED)
            assert c.shard.depth("AAPL") == ([], [(101, 5, 1)])

            [elsewhere] = await c.execute([new(4, SELL, 50, 1, symbol="GOOG")])
            assert elsewhere.order.status == t.ORDER_STATUS_NEW

            await c.execute([status("AAPL", TRADING)])
            [again] = await c.execute([new(5, BUY, 101, 2, account=3, coid="buy-3")])
            assert (again.error_reason, again.order.status, again.order.order_id) == ("", t.ORDER_STATUS_FILLED, 5)
            assert c.shard.depth("AAPL") == ([], [(101, 3, 1)])
    run(go())


def test_a_retry_of_an_order_placed_before_the_halt_is_still_answered_with_the_original(tmp_path):
    """Order 1 rests (client_order_id o-1); AAPL is halted; the same submit again is a
    retry, answered DUPLICATE_CLIENT_ORDER_ID with order 1, not a refusal."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([new(1, SELL, 101, 5, coid="o-1")])
            await c.execute([status("AAPL", HALTED)])
            [retry] = await c.execute([new(2, SELL, 101, 5, coid="o-1")])
            assert (retry.error_reason, retry.order.order_id) == ("DUPLICATE_CLIENT_ORDER_ID", 1)
    run(go())


def test_a_halt_is_journaled_and_holds_after_a_restart_a_snapshot_and_a_replay(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store, snapshot_every=3) as (c, _):
                await c.execute([new(1, SELL, 101, 5), status("AAPL", HALTED), new(2, SELL, 50, 1, symbol="GOOG")])
                await c.execute([new(3, BUY, 99, 1, account=2)])  # refused, and past the snapshot threshold
                await asyncio.sleep(0.1)  # the background snapshot lands
                assert c.snapshot_sequence >= 3
                state = (c.shard.sequence, c.shard.engine.event_hash(), sorted(c.shard.live))
            async with shard(tmp_path, store) as (c, _):  # restored from the snapshot
                assert (c.shard.sequence, c.shard.engine.event_hash(), sorted(c.shard.live)) == state
                assert c.shard.halted == {"AAPL"}
                [refused] = await c.execute([new(4, BUY, 101, 1, account=2)])
                assert refused.error_reason == "INSTRUMENT_HALTED"
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(610))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            assert fresh.halted == {"AAPL"} and fresh.sequence == state[0] + 1
            assert fresh.engine.event_hash() == c.shard.engine.event_hash()
        finally:
            store.close()
    run(go())


def test_mass_cancel_cancels_the_accounts_working_orders_on_the_symbol_in_id_order(tmp_path):
    """Book (AAPL): asks 1 (101 x 5, account 1), 2 (101 x 5, account 2), 3 (102 x 5,
    account 1); bid 5 (99 x 5, account 1); GOOG: ask 7 (50 x 5, account 1). A buy of 2 at
    101 fills 2 of order 1. A mass cancel of account 1 on AAPL cancels 1, 3 and 5 (order 1
    with its 2 filled), reason MASS_CANCEL, and leaves order 2 and GOOG's order 7."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5), new(2, SELL, 101, 5, account=2), new(3, SELL, 102, 5),
                             new(5, BUY, 99, 5), new(7, SELL, 50, 5, symbol="GOOG")])
            await c.execute([new(8, BUY, 101, 2, account=3)])
            [answer] = await c.execute([mass_cancel(1)])
            assert (answer.error_reason, answer.cancelled_count) == ("", 3)
            updated = {o.order_id: o for o in p.writes[-1].updated_orders}
            assert sorted(updated) == [1, 3, 5]
            assert {(o.status, o.reason, o.leaves_quantity) for o in updated.values()} == {
                (t.ORDER_STATUS_CANCELLED, "MASS_CANCEL", 0)}
            assert updated[1].filled_quantity == 2
            assert c.shard.depth("AAPL") == ([], [(101, 5, 1)])
            assert c.shard.depth("GOOG") == ([], [(50, 5, 1)])
            [done] = await c.execute([cancel(3)])
            assert done.error_reason == "ORDER_DONE"
            [none] = await c.execute([mass_cancel(1)])
            assert none.cancelled_count == 0
            [taker] = await c.execute([new(9, BUY, 101, 5, account=3)])  # order 2 kept its place
            assert [(f.quantity, f.price) for f in taker.order.fills] == [(5, 101)]
    run(go())


def test_a_mass_cancel_in_a_batch_sees_the_commands_before_it(tmp_path):
    """One batch: order 1 rests, the mass cancel cancels it, order 2 rests after it."""
    async def go():
        async with shard(tmp_path) as (c, p):
            first, cancelled, second = await c.execute([new(1, SELL, 101, 5), mass_cancel(1), new(2, SELL, 102, 5)])
            assert (first.order.status, cancelled.cancelled_count, second.order.status) == (
                t.ORDER_STATUS_NEW, 1, t.ORDER_STATUS_NEW)
            [stored] = [o for o in p.writes[-1].new_orders if o.order_id == 1]
            assert (stored.status, stored.reason) == (t.ORDER_STATUS_CANCELLED, "MASS_CANCEL")
            assert c.shard.depth("AAPL") == ([], [(102, 5, 1)])
    run(go())


def test_a_mass_cancel_is_replayed_to_the_same_books(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store) as (c, _):
                await c.execute([new(1, SELL, 101, 5), new(2, BUY, 99, 5, account=2), new(3, SELL, 103, 5)])
                await c.execute([mass_cancel(1), new(4, SELL, 104, 5)])
                state = (c.shard.engine.event_hash(), sorted(c.shard.live))
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(611))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            assert (fresh.engine.event_hash(), sorted(fresh.live)) == state == (state[0], [2, 4])
        finally:
            store.close()
    run(go())


@pytest.mark.parametrize("command, field", [
    (status("AAPL", t.TRADING_STATUS_UNSPECIFIED), "commands[0].set_trading_status.status"),
    (status("MSFT", HALTED), "commands[0].set_trading_status.symbol"),
    (mass_cancel(0), "commands[0].mass_cancel.account_id"),
    (mass_cancel(1, symbol="MSFT"), "commands[0].mass_cancel.symbol"),
    (m.Command(mass_cancel=m.MassCancel(account_id=1, matching_shard=1)), "commands[0].mass_cancel.matching_shard"),
])
def test_a_malformed_control_command_is_refused_naming_the_field(command, field):
    with pytest.raises(InvalidCommand) as refused:
        MatchingShard(SYMBOLS, SnowflakeIds(612)).validate([command])
    assert refused.value.field == field


def test_the_published_book_carries_the_trading_status(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([new(1, SELL, 101, 5), status("AAPL", HALTED)])
            books = await c.committed_books(["AAPL", "GOOG"])
            assert books == {"AAPL": ([], [(101, 5, 1)], HALTED), "GOOG": ([], [], TRADING)}
    run(go())


def limits(account, **values):
    return m.Command(set_risk_limits=m.RiskLimits(account_id=account, **values))


def market(order_id, side, qty, account=1, symbol="AAPL"):
    return new(order_id, side, 0, qty, account=account, symbol=symbol, order_type=t.ORDER_TYPE_MARKET,
               tif=t.TIME_IN_FORCE_IOC)


def test_an_order_above_the_accounts_maximum_quantity_is_refused_and_creates_nothing(tmp_path):
    """Account 1 may send at most 10 lots an order: 11 is refused (nothing stored, its
    client_order_id free), 10 rests; account 2 has no limits. Lifted, 11 goes."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([limits(1, max_order_quantity=10)])
            [refused] = await c.execute([new(1, SELL, 101, 11, coid="big")])
            assert (refused.error_reason, refused.order.status) == (
                "ORDER_QUANTITY_ABOVE_LIMIT", t.ORDER_STATUS_REJECTED)
            assert list(p.writes[-1].new_orders) == [] and await p.order(1) is None
            [fits] = await c.execute([new(2, SELL, 101, 10)])
            [other] = await c.execute([new(3, SELL, 101, 50, account=2)])
            assert (fits.error_reason, other.error_reason) == ("", "")
            await c.execute([limits(1)])  # every limit 0: lifted
            [again] = await c.execute([new(4, SELL, 101, 11, coid="big")])
            assert (again.error_reason, again.order.status) == ("", t.ORDER_STATUS_NEW)
    run(go())


def test_notional_is_the_limit_price_times_quantity_and_for_a_market_order_the_last_trade(tmp_path):
    """Account 1: at most 1,000 ticks x lots. 10 at 101 (1,010) is refused, 9 at 101 goes.
    A market buy before any trade is not checked; after a trade at 100, a market buy of
    11 (1,100) is refused and 10 goes."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([limits(1, max_notional=1000)])
            [refused, fits] = await c.execute([new(1, BUY, 101, 10), new(2, BUY, 101, 9)])
            assert (refused.error_reason, fits.error_reason) == ("NOTIONAL_ABOVE_LIMIT", "")
            [unpriced] = await c.execute([market(3, SELL, 1, symbol="GOOG")])
            assert unpriced.error_reason == ""  # GOOG never traded: nothing to price it at
            await c.execute([new(4, SELL, 100, 50, account=2), new(5, BUY, 100, 1, account=3)])  # AAPL trades at 100
            [over, under] = await c.execute([market(6, BUY, 11), market(7, BUY, 10)])
            assert (over.error_reason, under.error_reason, under.order.filled_quantity) == (
                "NOTIONAL_ABOVE_LIMIT", "", 10)
    run(go())


def test_the_price_collar_is_measured_in_basis_points_of_the_last_trade(tmp_path):
    """Collar 500 bps (5%) for account 1. Before AAPL trades any price goes. After a trade
    at 100: 106 and 94 are refused, 105 and 95 (exactly 5% away) go; market orders are not
    collared."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([limits(1, price_collar_bps=500)])
            [early] = await c.execute([new(1, SELL, 200, 1)])
            assert early.error_reason == ""
            await c.execute([new(2, SELL, 100, 5, account=2), new(3, BUY, 100, 1, account=3)])
            answers = await c.execute([new(4, SELL, 106, 1), new(5, BUY, 94, 1), new(6, SELL, 105, 1),
                                       new(7, BUY, 95, 1), market(8, BUY, 1)])
            assert [a.error_reason for a in answers] == [
                "PRICE_OUTSIDE_COLLAR", "PRICE_OUTSIDE_COLLAR", "", "", ""]
    run(go())


def test_open_orders_count_what_rests_now_and_free_up_as_orders_finish(tmp_path):
    """Account 1 rests orders 1 and 2, then gets a limit of 2 working orders: a third GTC
    order is refused, an IOC is not (it never rests). Cancelling 1 frees a place (3 rests);
    a fill of 2 by account 2 frees another (4 rests)."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([new(1, SELL, 101, 5), new(2, SELL, 102, 5)])
            await c.execute([limits(1, max_open_orders=2)])
            [full, ioc] = await c.execute([new(3, SELL, 103, 5), new(9, BUY, 90, 1, tif=t.TIME_IN_FORCE_IOC)])
            assert (full.error_reason, ioc.error_reason) == ("TOO_MANY_OPEN_ORDERS", "")
            await c.execute([cancel(1)])
            [rests] = await c.execute([new(3, SELL, 103, 5)])
            assert rests.order.status == t.ORDER_STATUS_NEW
            [refused, _, rests] = await c.execute([new(4, SELL, 104, 5), new(10, BUY, 102, 5, account=2),
                                                   new(4, SELL, 104, 5)])
            assert (refused.error_reason, rests.error_reason) == ("TOO_MANY_OPEN_ORDERS", "")
            assert c.shard.live.open_orders(1) == 2
    run(go())


def test_a_modify_is_held_to_the_limits_and_a_refused_one_leaves_the_order(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([new(1, SELL, 101, 5), limits(1, max_order_quantity=10, max_open_orders=1)])
            [refused] = await c.execute([modify(1, 101, 12)])
            assert (refused.error_reason, refused.order.quantity, refused.order.leaves_quantity) == (
                "ORDER_QUANTITY_ABOVE_LIMIT", 5, 5)
            [moved] = await c.execute([modify(1, 102, 10)])  # at its open-orders limit, a modify still goes
            assert (moved.error_reason, moved.order.price, moved.order.quantity) == ("", 102, 10)
    run(go())


def test_limits_and_last_trade_prices_hold_after_a_restart_a_snapshot_and_a_replay(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store, snapshot_every=3) as (c, _):
                await c.execute([limits(1, max_open_orders=1, price_collar_bps=100), new(1, SELL, 100, 5, account=2),
                                 new(2, BUY, 100, 1, account=3), new(3, SELL, 100, 1)])
                await asyncio.sleep(0.1)  # the background snapshot lands
                assert c.snapshot_sequence >= 3
                state = (c.shard.risk, c.shard.last_prices, c.shard.engine.event_hash())
            async with shard(tmp_path, store) as (c, _):  # restored from the snapshot
                assert (c.shard.risk, c.shard.last_prices, c.shard.engine.event_hash()) == state
                [full, far] = await c.execute([new(4, SELL, 100, 1), new(5, BUY, 98, 1, tif=t.TIME_IN_FORCE_IOC)])
                assert (full.error_reason, far.error_reason) == ("TOO_MANY_OPEN_ORDERS", "PRICE_OUTSIDE_COLLAR")
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(613))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            assert (fresh.risk, fresh.last_prices, fresh.live.open_orders(1)) == (state[0], state[1], 1)
            assert fresh.engine.event_hash() == c.shard.engine.event_hash()
        finally:
            store.close()
    run(go())


@pytest.mark.parametrize("command, field", [
    (limits(0, max_order_quantity=1), "commands[0].set_risk_limits.account_id"),
    (limits(1, max_notional=-1), "commands[0].set_risk_limits.max_notional"),
    (limits(1, price_collar_bps=-5), "commands[0].set_risk_limits.price_collar_bps"),
])
def test_malformed_limits_are_refused_naming_the_field(command, field):
    with pytest.raises(InvalidCommand) as refused:
        MatchingShard(SYMBOLS, SnowflakeIds(614)).validate([command])
    assert refused.value.field == field


GTD_TIF, DAY_TIF = t.TIME_IN_FORCE_GTD, t.TIME_IN_FORCE_DAY


def gtd(order_id, side, price, qty, expire_us, account=1, tif=GTD_TIF, symbol="AAPL"):
    command = new(order_id, side, price, qty, account=account, tif=tif, symbol=symbol)
    command.new_order.expire_time_us = expire_us
    return command


def expire(up_to_us):
    return m.Command(expire_orders=m.ExpireOrders(up_to_time_us=up_to_us))


def test_gtd_orders_expire_at_their_time_soonest_first_and_done_ones_are_skipped(tmp_path):
    """Times in us after T (an hour from now, so the shard's own clock expires nothing
    here). Resting asks: 1 (GTD, expires at T+2,000), 2 (DAY, at T+1,000), 3 (GTD, at
    T+1,000), 4 (GTC), 5 (GTD at T+1,500, cancelled before its time). A buy of 3 at 100
    fills 3 of order 1, the best ask. Expiring up to T+999 does nothing; up to T+1,500
    expires 2 and 3 (tied at T+1,000: by id); up to T+2,000 expires 1 with its 3 filled.
    Each ends CANCELLED with reason EXPIRED; the GTC order 4 stays."""
    base = time.time_ns() // 1000 + 3_600_000_000

    async def go():
        async with shard(tmp_path) as (c, p):
            [first, *_] = await c.execute([
                gtd(1, SELL, 100, 5, base + 2000), gtd(2, SELL, 101, 5, base + 1000, tif=DAY_TIF),
                gtd(3, SELL, 102, 5, base + 1000), new(4, SELL, 103, 5), gtd(5, SELL, 104, 5, base + 1500)])
            assert first.order.expire_time.ToMicroseconds() == base + 2000  # the order says when it expires
            await c.execute([cancel(5), new(6, BUY, 100, 3, account=2)])
            [nothing] = await c.execute([expire(base + 999)])
            assert nothing.cancelled_count == 0
            [two] = await c.execute([expire(base + 1500)])
            assert two.cancelled_count == 2
            assert [(o.order_id, o.status, o.reason, o.time_in_force) for o in p.writes[-1].updated_orders] == [
                (2, t.ORDER_STATUS_CANCELLED, "EXPIRED", DAY_TIF), (3, t.ORDER_STATUS_CANCELLED, "EXPIRED", GTD_TIF)]
            [one] = await c.execute([expire(base + 2000)])
            [first] = p.writes[-1].updated_orders
            assert (one.cancelled_count, first.order_id, first.filled_quantity, first.reason) == (1, 1, 3, "EXPIRED")
            assert c.shard.depth("AAPL") == ([], [(103, 5, 1)])
            assert c.shard.next_expiry_us() is None
    run(go())


def test_a_gtd_order_rests_and_trades_as_gtc_until_it_expires(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, _):
            [rest] = await c.execute([gtd(1, SELL, 100, 5, 4 * 10**15)])
            assert (rest.order.status, rest.order.time_in_force) == (t.ORDER_STATUS_NEW, GTD_TIF)
            [take] = await c.execute([new(2, BUY, 100, 2, account=2)])
            assert take.order.status == t.ORDER_STATUS_FILLED
            [moved] = await c.execute([modify(1, 99, 5)])  # cancel/replace keeps its expiry
            assert moved.order.leaves_quantity == 3 and c.shard.next_expiry_us() == 4 * 10**15
    run(go())


def test_the_shard_expires_due_orders_by_itself_as_journaled_commands(tmp_path):
    async def go():
        async with shard(tmp_path) as (c, p):
            soon = time.time_ns() // 1000 + 200_000
            await c.execute([gtd(1, SELL, 100, 5, soon), gtd(2, SELL, 101, 5, soon + 3_600_000_000)])
            deadline = time.monotonic() + 5
            while len(p.writes) < 2 and time.monotonic() < deadline:  # the expiry's commit
                await asyncio.sleep(0.05)
            assert 1 not in c.shard.live and 2 in c.shard.live
            journaled = [m.Command.FromString(e.command) for w in p.writes for e in w.journal]
            assert [cmd.WhichOneof("command") for cmd in journaled] == ["new_order", "new_order", "expire_orders"]
            assert journaled[-1].expire_orders.up_to_time_us >= soon
            assert (await p.order(1)).reason == "EXPIRED"
    run(go())


def test_expiries_hold_after_a_restart_a_snapshot_and_a_replay(tmp_path):
    async def go():
        store = make_store(tmp_path)
        far = time.time_ns() // 1000 + 3_600_000_000
        try:
            async with shard(tmp_path, store, snapshot_every=3) as (c, _):
                await c.execute([gtd(1, SELL, 100, 5, far), gtd(2, SELL, 101, 5, far + 1), new(3, SELL, 102, 5),
                                 cancel(2)])
                await asyncio.sleep(0.1)  # the background snapshot lands
                assert c.snapshot_sequence >= 3
            async with shard(tmp_path, store) as (c, _):  # restored from the snapshot
                assert c.shard.expiries == [(far, 1)]  # only the resting one was kept
                [one] = await c.execute([expire(far + 1)])
                assert one.cancelled_count == 1 and c.shard.depth("AAPL") == ([], [(102, 5, 1)])
                books = c.shard.engine.event_hash()
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(615))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            assert (fresh.engine.event_hash(), sorted(fresh.live), fresh.next_expiry_us()) == (books, [3], None)
        finally:
            store.close()
    run(go())


@pytest.mark.parametrize("expire_us", [0, 253_402_300_800 * 10**6])  # none; past what a Timestamp holds
def test_a_gtd_or_day_order_without_a_valid_expire_time_is_refused_naming_the_field(expire_us):
    with pytest.raises(InvalidCommand) as refused:
        MatchingShard(SYMBOLS, SnowflakeIds(616)).validate([gtd(1, SELL, 100, 5, expire_us, tif=DAY_TIF)])
    assert refused.value.field == "commands[0].new_order.expire_time_us"


def test_a_mass_cancel_of_every_symbol_of_the_shard_is_one_command(tmp_path):
    """Account 1 rests on AAPL (1, 3) and GOOG (2); account 2 on AMD (4). A mass cancel with
    no symbol, naming shard 0, cancels 1, 2 and 3 in id order, and only those."""
    async def go():
        async with shard(tmp_path) as (c, p):
            await c.execute([new(1, SELL, 101, 5), new(2, SELL, 50, 5, symbol="GOOG"), new(3, BUY, 99, 5),
                             new(4, SELL, 10, 5, account=2, symbol="AMD")])
            [answer] = await c.execute([m.Command(mass_cancel=m.MassCancel(account_id=1, matching_shard=0))])
            assert answer.cancelled_count == 3
            assert [(o.order_id, o.reason) for o in p.writes[-1].updated_orders] == [
                (1, "MASS_CANCEL"), (2, "MASS_CANCEL"), (3, "MASS_CANCEL")]
            assert len(p.writes[-1].journal) == 1 and sorted(c.shard.live) == [4]
    run(go())


def test_a_market_order_is_valued_at_what_it_would_take_from_the_book(tmp_path):
    """Account 1: notional 1,000, collar 500 bps. AAPL last traded at 100; asks rest at 100
    (2 lots) and 10,000 (10 lots). A market buy of 2 takes 200 and goes; a market buy of 3
    would take 100 x 2 + 10,000: refused NOTIONAL_ABOVE_LIMIT. With only the collar (notional
    lifted) it is refused PRICE_OUTSIDE_COLLAR: its worst price, 10,000, is 9,900% away."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([new(1, SELL, 100, 3, account=2), new(2, BUY, 100, 1, account=3),
                             new(3, SELL, 10_000, 10, account=2), limits(1, max_notional=1000, price_collar_bps=500)])
            [over] = await c.execute([market(4, BUY, 3)])
            assert over.error_reason == "NOTIONAL_ABOVE_LIMIT"
            [fits] = await c.execute([market(5, BUY, 2)])
            assert (fits.error_reason, fits.order.filled_quantity) == ("", 2)
            await c.execute([new(6, SELL, 100, 2, account=2), limits(1, price_collar_bps=500)])
            [far] = await c.execute([market(7, BUY, 3)])
            assert far.error_reason == "PRICE_OUTSIDE_COLLAR"
    run(go())


def test_a_reduce_at_the_same_price_is_never_refused_by_a_limit(tmp_path):
    """Account 1 rests 100 lots at 105 (last trade 100), then its limits tighten: at most
    50 lots, collar 100 bps. Reducing to 60 at 105 goes (it lowers the risk); raising to 70
    at 105 is refused ORDER_QUANTITY_ABOVE_LIMIT; moving to 104 (still 4% away) is refused
    PRICE_OUTSIDE_COLLAR."""
    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([new(1, SELL, 100, 1, account=2), new(2, BUY, 100, 1, account=3),
                             new(3, SELL, 105, 100), limits(1, max_order_quantity=50, price_collar_bps=100)])
            [reduced] = await c.execute([modify(3, 105, 60)])
            assert (reduced.error_reason, reduced.order.quantity) == ("", 60)
            [raised] = await c.execute([modify(3, 105, 70)])
            [moved] = await c.execute([modify(3, 104, 40)])
            assert (raised.error_reason, moved.error_reason) == ("ORDER_QUANTITY_ABOVE_LIMIT", "PRICE_OUTSIDE_COLLAR")
    run(go())


def test_gtd_and_day_orders_count_as_working_orders(tmp_path):
    far = time.time_ns() // 1000 + 3_600_000_000

    async def go():
        async with shard(tmp_path) as (c, _):
            await c.execute([limits(1, max_open_orders=1), gtd(1, SELL, 100, 5, far)])
            [day] = await c.execute([gtd(2, SELL, 101, 5, far, tif=DAY_TIF)])
            assert day.error_reason == "TOO_MANY_OPEN_ORDERS"
    run(go())


def test_a_journal_entry_this_release_does_not_know_stops_the_replay():
    shard_ = MatchingShard(SYMBOLS, SnowflakeIds(617))
    from bourse.persistence.v1 import persistence_service_pb2 as pp
    unknown = b"\x7a\x00"  # field 15 of Command, empty: a command kind from a later release
    with pytest.raises(RuntimeError, match="unknown command"):
        shard_.replay([pp.JournalEntry(sequence=1, command=unknown)])


def iceberg(order_id, side, price, qty, display, account=1, symbol="AAPL"):
    command = new(order_id, side, price, qty, account=account, symbol=symbol)
    command.new_order.display_quantity = display
    return command


def test_an_iceberg_shows_a_slice_and_refreshes_it_at_the_back_of_the_queue(tmp_path):
    """Asks at 100: iceberg 1 (10 lots, showing 3), then plain order 2 (2 lots). The book
    shows 5 lots in 2 orders. A buy of 4 takes 1's slice (3) and 1 of order 2; 1's next
    slice (3) now queues behind 2. A buy of 2 takes 2's last lot and 1 of 1's slice. The
    iceberg's leaves count its hidden lots throughout (10, 7, 6)."""
    async def go():
        async with shard(tmp_path) as (c, p):
            [rest, _] = await c.execute([iceberg(1, SELL, 100, 10, 3), new(2, SELL, 100, 2, account=2)])
            assert (rest.order.leaves_quantity, rest.order.display_quantity) == (10, 3)
            assert c.shard.depth("AAPL") == ([], [(100, 5, 2)])
            [take] = await c.execute([new(3, BUY, 100, 4, account=3)])
            assert [(f.quantity, f.price) for f in take.order.fills] == [(3, 100), (1, 100)]
            assert [(tr.maker_order_id, tr.quantity) for tr in p.writes[-1].trades] == [(1, 3), (2, 1)]
            assert c.shard.live[1].leaves == 7 and c.shard.depth("AAPL") == ([], [(100, 4, 2)])
            await c.execute([new(4, BUY, 100, 2, account=3)])
            assert [(tr.maker_order_id, tr.quantity) for tr in p.writes[-1].trades] == [(2, 1), (1, 1)]
            assert c.shard.live[1].leaves == 6 and 2 not in c.shard.live
            assert c.shard.depth("AAPL") == ([], [(100, 2, 1)])
    run(go())


def test_an_iceberg_holds_after_a_restart_from_a_snapshot_and_in_a_replay(tmp_path):
    async def go():
        store = make_store(tmp_path)
        try:
            async with shard(tmp_path, store, snapshot_every=2) as (c, _):
                await c.execute([iceberg(1, SELL, 100, 10, 3), new(2, BUY, 100, 4, account=2)])
                await asyncio.sleep(0.1)  # the background snapshot lands
                assert c.snapshot_sequence >= 2
                state = (c.shard.depth("AAPL"), c.shard.engine.event_hash(), c.shard.live[1].leaves)
            async with shard(tmp_path, store) as (c, _):
                assert (c.shard.depth("AAPL"), c.shard.engine.event_hash(), c.shard.live[1].leaves) == state
                assert state[0] == ([], [(100, 2, 1)])
            fresh = MatchingShard(SYMBOLS, SnowflakeIds(618))
            async for page in StorePersistence(store).read_journal(0, 0):
                fresh.replay(page)
            assert (fresh.depth("AAPL"), fresh.engine.event_hash()) == state[:2]
        finally:
            store.close()
    run(go())


def test_a_gtd_order_past_its_time_is_refused_but_a_late_retry_of_one_placed_in_time_finds_it(tmp_path):
    """The order service cannot tell a retry from a new order; the shard can (its keys), so
    it is the one that refuses a GTD whose time passed: nothing stored, no key bound."""
    async def go():
        async with shard(tmp_path) as (c, _):
            now_us = time.time_ns() // 1000
            [late] = await c.execute([gtd(1, BUY, 90, 1, now_us - 1)])
            assert (late.error_reason, late.order.status) == ("EXPIRE_TIME_PASSED", t.ORDER_STATUS_REJECTED)
            assert 1 not in c.shard.live
            [placed] = await c.execute([gtd(2, BUY, 90, 1, now_us + 300_000)])
            assert placed.order.status == t.ORDER_STATUS_NEW
            await asyncio.sleep(0.4)  # past its time: expired by now, or about to be
            retry = gtd(3, BUY, 90, 1, now_us + 300_000)
            retry.new_order.client_order_id = "c2"
            [again] = await c.execute([retry])
            assert (again.error_reason, again.order.order_id) == ("DUPLICATE_CLIENT_ORDER_ID", 2)
    run(go())
