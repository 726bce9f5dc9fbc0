"""Worked examples of stop and stop-limit orders (engine/README.md, "Stop and stop-limit
orders"): the resting book and waiting stops, the command, every event it emits, and the
book and stops after. Each runs against the C++ engine and the Python reference, so that
`-k reference` runs the model alone."""

import numpy as np
import pytest
from bourse_engine import (
    COMMAND_DTYPE,
    COMMAND_DTYPE_V1,
    COMMAND_DTYPE_V2,
    MAX_PRICE,
    OP_CANCEL,
    OP_MODIFY,
    OP_SUBMIT,
    CancelReason,
    Engine,
    Event,
    EventKind,
    L3Order,
    Level,
    OrderInfo,
    OrderStatus,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    StopOrder,
    TimeInForce,
    TradingStatus,
)
from bourse_engine.events import event_to_raw
from bourse_engine.packed import raw_events
from bourse_engine.reference import ReferenceEngine

# The examples' symbol and builders of events and orders.
from bourse_engine.tests.test_engine_examples import (
    SYM,
    acc,
    cxl,
    done,
    limit,
    rej,
    trade,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
INCOMING, RESTING = SelfTradePrevention.CANCEL_INCOMING, SelfTradePrevention.CANCEL_RESTING
S, R, C = OrderStatus, RejectReason, CancelReason


@pytest.fixture(params=["cpp", "reference"])
def eng(request):
    return Engine() if request.param == "cpp" else ReferenceEngine()


# ---- events -----------------------------------------------------------------------------

def mod(oid, price, qty):
    return Event(EventKind.MODIFIED, oid, SYM, price=price, quantity=qty)


def trig(oid, stop_price, qty, sym=SYM):
    return Event(EventKind.TRIGGERED, oid, sym, price=stop_price, quantity=qty)


def accepted_stop(oid, qty, sym=SYM):
    return [acc(oid, sym), done(oid, S.NEW, 0, qty, sym)]


def rejected(oid, reason):
    return [rej(oid, reason), done(oid, S.REJECTED)]


# ---- commands ---------------------------------------------------------------------------

def stop(eng, oid, acct, side, stop_price, qty, tif=IOC, stp=INCOMING, sym=SYM):
    """A stop: enters as a market order."""
    return eng.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side, order_type=MARKET,
                      tif=tif, price=0, quantity=qty, stp=stp, stop_price=stop_price)


def stop_limit(eng, oid, acct, side, stop_price, price, qty, tif=GTC, display=0, sym=SYM):
    return eng.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side, order_type=LIMIT,
                      tif=tif, price=price, quantity=qty, display_quantity=display,
                      stop_price=stop_price)


def modify(eng, oid, acct, price, qty, stop_price=0, sym=SYM):
    return eng.modify(order_id=oid, account_id=acct, symbol_id=sym, price=price, quantity=qty,
                      stop_price=stop_price)


def print_at(eng, price, sell_id=90, buy_id=91, sym=SYM):
    """One trade at `price` between accounts 5 and 6, so the symbol has a last trade price."""
    limit(eng, sell_id, 5, SELL, price, 1, sym=sym)
    limit(eng, buy_id, 6, BUY, price, 1, sym=sym)
    assert eng.last_trade_price(symbol_id=sym) == price


def book(eng, sym=SYM):
    return eng.depth(symbol_id=sym, levels=100)


def stop_ids(eng, sym=SYM):
    buys, sells = eng.stops(symbol_id=sym)
    return [s.order_id for s in buys], [s.order_id for s in sells]


# ---- acceptance and validation ----------------------------------------------------------

def test_stop_waits_off_the_book_on_a_symbol_that_never_traded(eng):
    assert eng.last_trade_price(symbol_id=SYM) == 0
    assert stop(eng, 1, 7, BUY, 105, 5) == accepted_stop(1, 5)
    # Either side is accepted while nothing has traded: there is no price to compare with.
    assert stop_limit(eng, 2, 7, SELL, 95, 94, 3, display=1) == accepted_stop(2, 3)
    assert book(eng) == ([], [])
    assert eng.l3(symbol_id=SYM) == ([], [])
    assert eng.order(1) is None and eng.order(2) is None
    assert eng.stops(symbol_id=SYM) == (
        [StopOrder(1, 7, BUY, MARKET, IOC, 105, 0, 5, 0)],
        [StopOrder(2, 7, SELL, LIMIT, GTC, 95, 94, 3, 1)])
    assert eng.stops(symbol_id=SYM + 1) == ([], [])
    assert eng.live_orders() == 0
    assert eng.known_ids() == 2  # the ids are taken
    assert stop(eng, 1, 7, BUY, 106, 5) == rejected(1, R.DUPLICATE_ORDER_ID)
    buys, sells = eng.stops(symbol_id=SYM)
    assert type(buys[0].side) is Side and type(sells[0].order_type) is OrderType
    assert type(sells[0].tif) is TimeInForce


@pytest.mark.parametrize("side, otype, tif, price, qty, stop_price, display, post_only, stp, reason", [
    (BUY, MARKET, IOC, 0, 5, -1, 0, False, INCOMING, R.INVALID_STOP_PRICE),
    (BUY, LIMIT, GTC, 100, 5, MAX_PRICE + 1, 0, False, INCOMING, R.INVALID_STOP_PRICE),
    (SELL, MARKET, IOC, 0, 5, 2**70, 0, False, INCOMING, R.INVALID_STOP_PRICE),
    (SELL, MARKET, IOC, 0, 5, -(2**70), 0, False, INCOMING, R.INVALID_STOP_PRICE),
    (BUY, LIMIT, GTC, 100, 5, 105, 0, True, INCOMING, R.INVALID_POST_ONLY),
    # Post-only with a stop price is checked after the stop price's range and the display;
    # post-only on what is no limit GTC, before them.
    (BUY, LIMIT, GTC, 100, 5, -1, 0, True, INCOMING, R.INVALID_STOP_PRICE),
    (BUY, LIMIT, GTC, 100, 5, 105, 7, True, INCOMING, R.INVALID_DISPLAY_QUANTITY),
    (BUY, MARKET, IOC, 0, 5, -1, 0, True, INCOMING, R.INVALID_POST_ONLY),
    # The stop price is checked last in validate_full: earlier reasons win.
    (BUY, LIMIT, GTC, 100, 0, -1, 0, False, INCOMING, R.INVALID_QUANTITY),
    (BUY, MARKET, IOC, 100, 5, 105, 0, False, INCOMING, R.INVALID_PRICE),
    (BUY, LIMIT, GTC, 100, 5, -1, 0, False, 0, R.INVALID_SELF_TRADE_PREVENTION),
    (BUY, MARKET, IOC, 0, 5, -1, 2, False, INCOMING, R.INVALID_DISPLAY_QUANTITY),
    (BUY, LIMIT, IOC, 100, 5, 105, 2, False, INCOMING, R.INVALID_DISPLAY_QUANTITY),
])
def test_invalid_stops_are_rejected_in_validation_order(eng, side, otype, tif, price, qty, stop_price, display,
                                                        post_only, stp, reason):
    assert eng.submit(order_id=1, account_id=7, symbol_id=SYM, side=side, order_type=otype, tif=tif,
                      price=price, quantity=qty, post_only=post_only, stp=stp, display_quantity=display,
                      stop_price=stop_price) == rejected(1, reason)
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert eng.known_ids() == 0


def test_stop_price_range_edges(eng):
    assert stop(eng, 1, 7, BUY, MAX_PRICE, 1) == accepted_stop(1, 1)
    assert stop(eng, 2, 7, SELL, 1, 1) == accepted_stop(2, 1)
    assert stop(eng, 3, 7, SELL, MAX_PRICE + 1, 1) == rejected(3, R.INVALID_STOP_PRICE)


@pytest.mark.parametrize("args, reason", [
    (dict(stop_price=103), R.PRICE_NOT_ON_TICK),
    # The order's own rules, then the display's lot, before the stop price's tick.
    (dict(quantity=3, stop_price=103), R.QUANTITY_NOT_ON_LOT),
    (dict(quantity=12, stop_price=103), R.QUANTITY_ABOVE_MAX),
    (dict(display_quantity=3, stop_price=103), R.INVALID_DISPLAY_QUANTITY),
    (dict(price=101), R.PRICE_NOT_ON_TICK),
])
def test_instrument_rules_and_the_stop_price_tick(eng, args, reason):
    eng.set_instrument(symbol_id=SYM, tick_size=5, lot_size=2, max_quantity=10)
    order = dict(order_id=1, account_id=7, symbol_id=SYM, side=BUY, order_type=LIMIT, tif=GTC, price=100,
                 quantity=6, stop_price=105)
    assert eng.submit(**{**order, **args}) == rejected(1, reason)
    assert eng.submit(**order) == accepted_stop(1, 6)


def test_duplicate_id_is_checked_after_the_tick_and_before_the_trigger(eng):
    eng.set_instrument(symbol_id=SYM, tick_size=5)
    print_at(eng, 100)
    assert stop(eng, 1, 7, BUY, 105, 2) == accepted_stop(1, 2)
    assert stop(eng, 1, 7, BUY, 103, 2) == rejected(1, R.PRICE_NOT_ON_TICK)
    assert stop(eng, 1, 7, BUY, 110, 2) == rejected(1, R.DUPLICATE_ORDER_ID)
    assert stop(eng, 1, 7, BUY, 100, 2) == rejected(1, R.DUPLICATE_ORDER_ID)  # would trigger, too
    assert stop(eng, 2, 7, BUY, 100, 2) == rejected(2, R.STOP_WOULD_TRIGGER)


def test_halted_symbol_rejects_well_formed_stops_and_malformed_keep_their_reason(eng):
    eng.set_instrument(symbol_id=SYM, tick_size=5)
    eng.set_trading_status(symbol_id=SYM, status=TradingStatus.HALTED)
    assert stop(eng, 1, 7, BUY, 105, 2) == rejected(1, R.INSTRUMENT_HALTED)
    assert stop(eng, 1, 7, BUY, 103, 2) == rejected(1, R.INSTRUMENT_HALTED)  # the halt before the tick
    assert stop(eng, 1, 7, BUY, -5, 2) == rejected(1, R.INVALID_STOP_PRICE)
    eng.set_trading_status(symbol_id=SYM, status=TradingStatus.TRADING)
    assert stop(eng, 1, 7, BUY, 105, 2) == accepted_stop(1, 2)  # the halted submits took no id


@pytest.mark.parametrize("side, stop_price, accepted", [
    (BUY, 99, False), (BUY, 100, False), (BUY, 101, True),
    (SELL, 101, False), (SELL, 100, False), (SELL, 99, True),
])
@pytest.mark.parametrize("kind", ["stop", "stop_limit"])
def test_stop_that_the_last_trade_already_triggers_is_rejected(eng, side, stop_price, accepted, kind):
    print_at(eng, 100)
    known = eng.known_ids()
    if kind == "stop":
        events = stop(eng, 1, 7, side, stop_price, 2)
    else:
        events = stop_limit(eng, 1, 7, side, stop_price, 100, 2)
    assert events == (accepted_stop(1, 2) if accepted else rejected(1, R.STOP_WOULD_TRIGGER))
    assert eng.known_ids() == known + (1 if accepted else 0)
    if not accepted:  # the id was not taken
        assert stop(eng, 1, 7, side, 110 if side == BUY else 90, 2) == accepted_stop(1, 2)
    assert book(eng) == ([], [])


# ---- triggering -------------------------------------------------------------------------

def test_buy_stop_triggers_and_enters_as_a_market_order(eng):
    limit(eng, 10, 8, SELL, 100, 2)
    limit(eng, 11, 8, SELL, 101, 3)
    stop(eng, 1, 7, BUY, 100, 4)
    assert limit(eng, 2, 9, BUY, 100, 1) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, BUY, 1, 0), done(2, S.FILLED, 1),
        trig(1, 100, 4),
        trade(10, 1, 8, 7, 100, 1, BUY, 0, 3), trade(11, 1, 8, 7, 101, 3, BUY, 0, 0), done(1, S.FILLED, 4)]
    assert book(eng) == ([], [])
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert eng.last_trade_price(symbol_id=SYM) == 101
    assert eng.order(1) is None
    assert limit(eng, 1, 7, BUY, 100, 1) == rejected(1, R.DUPLICATE_ORDER_ID)  # done, in the id window


def test_sell_stop_limit_triggers_trades_and_rests_its_remainder(eng):
    limit(eng, 10, 8, BUY, 100, 2)
    limit(eng, 11, 8, BUY, 98, 5)
    stop_limit(eng, 1, 7, SELL, 100, 99, 5)
    assert limit(eng, 2, 9, SELL, 100, 1) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, SELL, 1, 0), done(2, S.FILLED, 1),
        trig(1, 100, 5),
        trade(10, 1, 8, 7, 100, 1, SELL, 0, 4), done(1, S.PARTIALLY_FILLED, 1, 4)]
    assert book(eng) == ([Level(98, 5, 1)], [Level(99, 4, 1)])
    assert eng.order(1) == OrderInfo(SYM, SELL, 99, 4)
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert eng.live_orders() == 2


def test_a_sweep_triggers_a_stop_it_passes_through_though_its_last_trade_is_beyond(eng):
    print_at(eng, 105)
    stop(eng, 1, 7, SELL, 102, 2)  # below the last trade: it waits
    limit(eng, 10, 8, SELL, 100, 1)
    limit(eng, 11, 8, SELL, 106, 1)
    limit(eng, 12, 8, BUY, 95, 5)
    # The buy prints 100, then 106: 100 reached the sell stop at 102, 106 alone would not.
    assert limit(eng, 2, 9, BUY, 106, 2) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, BUY, 0, 1), trade(11, 2, 8, 9, 106, 1, BUY, 0, 0),
        done(2, S.FILLED, 2),
        trig(1, 102, 2), trade(12, 1, 8, 7, 95, 2, SELL, 3, 0), done(1, S.FILLED, 2)]
    assert book(eng) == ([Level(95, 3, 1)], [])
    assert eng.last_trade_price(symbol_id=SYM) == 95


def test_a_trade_on_another_symbol_triggers_nothing(eng):
    stop(eng, 1, 7, BUY, 100, 1)
    limit(eng, 10, 8, SELL, 100, 1, sym=4)
    assert limit(eng, 2, 9, BUY, 100, 1, sym=4)[-1] == done(2, S.FILLED, 1, sym=4)
    assert stop_ids(eng) == ([1], [])
    assert eng.last_trade_price(symbol_id=4) == 100 and eng.last_trade_price(symbol_id=SYM) == 0


def test_a_modify_that_trades_triggers_stops(eng):
    limit(eng, 10, 8, SELL, 101, 2)
    limit(eng, 1, 9, BUY, 99, 1)
    stop(eng, 2, 7, BUY, 101, 1)
    assert modify(eng, 1, 9, 101, 1) == [
        mod(1, 101, 1), trade(10, 1, 8, 9, 101, 1, BUY, 1, 0), done(1, S.FILLED, 1),
        trig(2, 101, 1), trade(10, 2, 8, 7, 101, 1, BUY, 0, 0), done(2, S.FILLED, 1)]
    assert book(eng) == ([], [])


# ---- order of entry ---------------------------------------------------------------------

def test_stops_one_trade_triggers_enter_by_stop_price_then_arrival(eng):
    limit(eng, 10, 8, SELL, 100, 1)
    limit(eng, 11, 8, SELL, 101, 10)
    for oid, stop_price in ((3, 100), (1, 99), (2, 100), (4, 98)):
        stop(eng, oid, 7, BUY, stop_price, 1)
    assert eng.stops(symbol_id=SYM)[0] == [
        StopOrder(4, 7, BUY, MARKET, IOC, 98, 0, 1, 0), StopOrder(1, 7, BUY, MARKET, IOC, 99, 0, 1, 0),
        StopOrder(3, 7, BUY, MARKET, IOC, 100, 0, 1, 0), StopOrder(2, 7, BUY, MARKET, IOC, 100, 0, 1, 0)]
    assert limit(eng, 5, 9, BUY, 100, 1) == [
        acc(5), trade(10, 5, 8, 9, 100, 1, BUY, 0, 0), done(5, S.FILLED, 1),
        trig(4, 98, 1), trade(11, 4, 8, 7, 101, 1, BUY, 9, 0), done(4, S.FILLED, 1),
        trig(1, 99, 1), trade(11, 1, 8, 7, 101, 1, BUY, 8, 0), done(1, S.FILLED, 1),
        trig(3, 100, 1), trade(11, 3, 8, 7, 101, 1, BUY, 7, 0), done(3, S.FILLED, 1),
        trig(2, 100, 1), trade(11, 2, 8, 7, 101, 1, BUY, 6, 0), done(2, S.FILLED, 1)]
    assert eng.stops(symbol_id=SYM) == ([], [])


def test_sell_stops_are_listed_and_enter_highest_stop_first(eng):
    limit(eng, 10, 8, BUY, 100, 1)
    limit(eng, 11, 8, BUY, 95, 10)
    for oid, stop_price in ((1, 100), (2, 101), (3, 100), (4, 99)):
        stop(eng, oid, 7, SELL, stop_price, 1)
    assert stop_ids(eng) == ([], [2, 1, 3, 4])
    assert limit(eng, 5, 9, SELL, 100, 1) == [
        acc(5), trade(10, 5, 8, 9, 100, 1, SELL, 0, 0), done(5, S.FILLED, 1),
        trig(2, 101, 1), trade(11, 2, 8, 7, 95, 1, SELL, 9, 0), done(2, S.FILLED, 1),
        trig(1, 100, 1), trade(11, 1, 8, 7, 95, 1, SELL, 8, 0), done(1, S.FILLED, 1),
        trig(3, 100, 1), trade(11, 3, 8, 7, 95, 1, SELL, 7, 0), done(3, S.FILLED, 1),
        trig(4, 99, 1), trade(11, 4, 8, 7, 95, 1, SELL, 6, 0), done(4, S.FILLED, 1)]


def test_three_groups_for_a_buy_whose_first_price_is_below_the_last_trade(eng):
    print_at(eng, 105)
    stop(eng, 1, 7, BUY, 107, 1)
    stop(eng, 2, 7, BUY, 106, 1)
    stop(eng, 3, 7, SELL, 103, 1)
    stop(eng, 4, 7, SELL, 104, 1)
    stop(eng, 5, 7, SELL, 90, 1)  # out of reach
    limit(eng, 10, 8, SELL, 102, 1)
    limit(eng, 11, 8, SELL, 107, 1)
    limit(eng, 12, 8, BUY, 95, 10)
    limit(eng, 13, 8, SELL, 108, 10)
    # The buy prints 102 (F, a fall from 105), then 107 (T): the sell stops the fall reached,
    # highest first, then the buy stops the rise reached, lowest first.
    assert limit(eng, 6, 9, BUY, 107, 2) == [
        acc(6), trade(10, 6, 8, 9, 102, 1, BUY, 0, 1), trade(11, 6, 8, 9, 107, 1, BUY, 0, 0),
        done(6, S.FILLED, 2),
        trig(4, 104, 1), trade(12, 4, 8, 7, 95, 1, SELL, 9, 0), done(4, S.FILLED, 1),
        trig(3, 103, 1), trade(12, 3, 8, 7, 95, 1, SELL, 8, 0), done(3, S.FILLED, 1),
        trig(2, 106, 1), trade(13, 2, 8, 7, 108, 1, BUY, 9, 0), done(2, S.FILLED, 1),
        trig(1, 107, 1), trade(13, 1, 8, 7, 108, 1, BUY, 8, 0), done(1, S.FILLED, 1)]
    assert stop_ids(eng) == ([], [5])
    assert eng.last_trade_price(symbol_id=SYM) == 108


def test_three_groups_for_a_sell_whose_first_price_is_above_the_last_trade(eng):
    print_at(eng, 105)
    stop(eng, 1, 7, SELL, 103, 1)
    stop(eng, 2, 7, SELL, 104, 1)
    stop(eng, 3, 7, BUY, 107, 1)
    stop(eng, 4, 7, BUY, 106, 1)
    stop(eng, 5, 7, BUY, 120, 1)  # out of reach
    limit(eng, 10, 8, BUY, 108, 1)
    limit(eng, 11, 8, BUY, 103, 1)
    limit(eng, 12, 8, BUY, 102, 10)
    limit(eng, 13, 8, SELL, 110, 10)
    assert limit(eng, 6, 9, SELL, 103, 2) == [
        acc(6), trade(10, 6, 8, 9, 108, 1, SELL, 0, 1), trade(11, 6, 8, 9, 103, 1, SELL, 0, 0),
        done(6, S.FILLED, 2),
        trig(4, 106, 1), trade(13, 4, 8, 7, 110, 1, BUY, 9, 0), done(4, S.FILLED, 1),
        trig(3, 107, 1), trade(13, 3, 8, 7, 110, 1, BUY, 8, 0), done(3, S.FILLED, 1),
        trig(2, 104, 1), trade(12, 2, 8, 7, 102, 1, SELL, 9, 0), done(2, S.FILLED, 1),
        trig(1, 103, 1), trade(12, 1, 8, 7, 102, 1, SELL, 8, 0), done(1, S.FILLED, 1)]
    assert stop_ids(eng) == ([5], [])


@pytest.mark.parametrize("aggressor", [BUY, SELL])
def test_one_first_trade_triggers_the_aggressors_side_first(eng, aggressor):
    # Nothing has traded, so stops on either side of the coming price are accepted.
    stop(eng, 1, 7, BUY, 90, 1)
    stop(eng, 2, 7, SELL, 110, 1)
    limit(eng, 10, 8, BUY if aggressor == SELL else SELL, 100, 1)
    limit(eng, 11, 8, SELL, 105, 5)
    limit(eng, 12, 8, BUY, 95, 5)
    buy_enters = [trig(1, 90, 1), trade(11, 1, 8, 7, 105, 1, BUY, 4, 0), done(1, S.FILLED, 1)]
    sell_enters = [trig(2, 110, 1), trade(12, 2, 8, 7, 95, 1, SELL, 4, 0), done(2, S.FILLED, 1)]
    first = [acc(3), trade(10, 3, 8, 9, 100, 1, aggressor, 0, 0), done(3, S.FILLED, 1)]
    assert limit(eng, 3, 9, aggressor, 100, 1) == first + (
        buy_enters + sell_enters if aggressor == BUY else sell_enters + buy_enters)


def test_cascade_through_four_levels_behind_the_stops_already_queued(eng):
    for oid, price in ((10, 100), (11, 101), (12, 102), (13, 103), (14, 104)):
        limit(eng, oid, 8, SELL, price, 1)
    limit(eng, 15, 8, SELL, 105, 5)
    for oid, stop_price in ((1, 100), (5, 100), (2, 101), (3, 103), (6, 104)):
        stop(eng, oid, 7, BUY, stop_price, 1)
    # 4 triggers 1 and 5; 1 triggers 2 (queued behind 5); 2 triggers 3; 3 triggers 6.
    assert limit(eng, 4, 9, BUY, 100, 1) == [
        acc(4), trade(10, 4, 8, 9, 100, 1, BUY, 0, 0), done(4, S.FILLED, 1),
        trig(1, 100, 1), trade(11, 1, 8, 7, 101, 1, BUY, 0, 0), done(1, S.FILLED, 1),
        trig(5, 100, 1), trade(12, 5, 8, 7, 102, 1, BUY, 0, 0), done(5, S.FILLED, 1),
        trig(2, 101, 1), trade(13, 2, 8, 7, 103, 1, BUY, 0, 0), done(2, S.FILLED, 1),
        trig(3, 103, 1), trade(14, 3, 8, 7, 104, 1, BUY, 0, 0), done(3, S.FILLED, 1),
        trig(6, 104, 1), trade(15, 6, 8, 7, 105, 1, BUY, 4, 0), done(6, S.FILLED, 1)]
    assert book(eng) == ([], [Level(105, 4, 1)])
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert eng.last_trade_price(symbol_id=SYM) == 105


# ---- how a triggered stop enters --------------------------------------------------------

def test_triggered_stop_limit_rests_behind_what_was_at_its_price_before_the_trigger(eng):
    limit(eng, 10, 8, SELL, 100, 1)
    stop_limit(eng, 1, 7, BUY, 100, 99, 3)
    limit(eng, 11, 8, BUY, 99, 2)  # arrives after the stop's submit, before its trigger
    assert limit(eng, 2, 9, BUY, 100, 1) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, BUY, 0, 0), done(2, S.FILLED, 1),
        trig(1, 100, 3), done(1, S.NEW, 0, 3)]
    assert eng.l3(symbol_id=SYM) == ([L3Order(11, 8, 99, 2), L3Order(1, 7, 99, 3)], [])
    assert limit(eng, 3, 9, SELL, 99, 3) == [
        acc(3), trade(11, 3, 8, 9, 99, 2, SELL, 0, 1), trade(1, 3, 7, 9, 99, 1, SELL, 2, 0),
        done(3, S.FILLED, 3)]


def test_triggered_fok_that_cannot_fill_is_killed(eng):
    limit(eng, 10, 8, SELL, 100, 1)
    limit(eng, 11, 8, SELL, 101, 2)
    stop_limit(eng, 1, 7, BUY, 100, 101, 5, tif=FOK)
    assert limit(eng, 2, 9, BUY, 100, 1) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, BUY, 0, 0), done(2, S.FILLED, 1),
        trig(1, 100, 5), cxl(1, 5, C.FOK_UNFILLABLE), done(1, S.CANCELLED)]
    assert book(eng) == ([], [Level(101, 2, 1)])
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert stop(eng, 1, 7, BUY, 102, 1) == rejected(1, R.DUPLICATE_ORDER_ID)


def test_triggered_stop_limit_iceberg_trades_whole_then_shows_slices(eng):
    limit(eng, 10, 8, SELL, 100, 1)
    limit(eng, 11, 8, SELL, 101, 2)
    stop_limit(eng, 1, 7, BUY, 100, 101, 10, display=3)
    assert eng.stops(symbol_id=SYM) == ([StopOrder(1, 7, BUY, LIMIT, GTC, 100, 101, 10, 3)], [])
    assert limit(eng, 2, 9, BUY, 100, 1) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, BUY, 0, 0), done(2, S.FILLED, 1),
        trig(1, 100, 10), trade(11, 1, 8, 7, 101, 2, BUY, 0, 8), done(1, S.PARTIALLY_FILLED, 2, 8)]
    assert eng.l3(symbol_id=SYM) == ([L3Order(1, 7, 101, 3, 3)], [])
    assert eng.order(1) == OrderInfo(SYM, BUY, 101, 8)
    assert limit(eng, 3, 9, SELL, 101, 4) == [
        acc(3), trade(1, 3, 7, 9, 101, 3, SELL, 5, 1), trade(1, 3, 7, 9, 101, 1, SELL, 4, 0),
        done(3, S.FILLED, 4)]
    assert eng.l3(symbol_id=SYM) == ([L3Order(1, 7, 101, 2, 3)], [])


@pytest.mark.parametrize("stp, entered", [
    (INCOMING, [cxl(1, 4, C.SELF_TRADE_PREVENTED), done(1, S.CANCELLED)]),
    (RESTING, [cxl(11, 2, C.SELF_TRADE_PREVENTED), done(11, S.CANCELLED),
               trade(12, 1, 8, 7, 102, 3, BUY, 0, 1), cxl(1, 1, C.MARKET_REMAINDER), done(1, S.CANCELLED, 3)]),
])
def test_a_triggered_stop_prevents_self_trades_by_its_own_mode(eng, stp, entered):
    limit(eng, 10, 8, SELL, 100, 1)
    limit(eng, 11, 7, SELL, 101, 2)  # the stop's own account
    limit(eng, 12, 8, SELL, 102, 3)
    stop(eng, 1, 7, BUY, 100, 4, stp=stp)
    assert limit(eng, 2, 9, BUY, 100, 1) == [
        acc(2), trade(10, 2, 8, 9, 100, 1, BUY, 0, 0), done(2, S.FILLED, 1), trig(1, 100, 4)] + entered


def test_a_triggered_stop_is_not_validated_again(eng):
    limit(eng, 10, 8, SELL, 100, 1)
    stop_limit(eng, 1, 7, BUY, 100, 101, 2)
    eng.set_instrument(symbol_id=SYM, tick_size=5)  # 101 is off the tick now
    assert limit(eng, 2, 9, BUY, 100, 1)[3:] == [trig(1, 100, 2), done(1, S.NEW, 0, 2)]
    assert book(eng) == ([Level(101, 2, 1)], [])


# ---- cancel, mass cancel ----------------------------------------------------------------

def test_cancel_a_waiting_stop(eng):
    stop(eng, 1, 7, BUY, 105, 4)
    assert eng.cancel(order_id=1, account_id=8, symbol_id=SYM) == [rej(1, R.UNKNOWN_ORDER)]
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM + 1) == [rej(1, R.UNKNOWN_ORDER, SYM + 1)]
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [cxl(1, 4, C.USER), done(1, S.CANCELLED)]
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [rej(1, R.UNKNOWN_ORDER)]
    assert stop(eng, 1, 7, BUY, 105, 4) == rejected(1, R.DUPLICATE_ORDER_ID)  # done: in the id window
    assert eng.known_ids() == 1


def test_cancel_works_on_a_halted_symbol_and_a_cancelled_id_leaves_the_window_in_turn():
    for eng in (Engine(id_window=1), ReferenceEngine(id_window=1)):
        stop(eng, 1, 7, BUY, 105, 4)
        eng.set_trading_status(symbol_id=SYM, status=TradingStatus.HALTED)
        assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [cxl(1, 4, C.USER), done(1, S.CANCELLED)]
        eng.set_trading_status(symbol_id=SYM, status=TradingStatus.TRADING)
        assert eng.known_ids() == 1
        limit(eng, 2, 7, BUY, 100, 1, tif=IOC)  # done at once: it pushes id 1 out of a window of 1
        assert eng.known_ids() == 1
        assert stop(eng, 1, 7, BUY, 105, 4) == accepted_stop(1, 4)


def test_cancel_all_cancels_waiting_stops_with_resting_orders_in_id_order(eng):
    limit(eng, 5, 7, BUY, 90, 1)
    stop(eng, 2, 7, SELL, 80, 3)
    stop_limit(eng, 4, 7, BUY, 120, 121, 2, sym=4)
    limit(eng, 3, 7, SELL, 130, 1)
    stop(eng, 6, 8, BUY, 110, 1)  # another account's
    assert eng.cancel_all(account_id=7, symbol_id=SYM) == [
        cxl(2, 3, C.MASS_CANCEL), done(2, S.CANCELLED),
        cxl(3, 1, C.MASS_CANCEL), done(3, S.CANCELLED),
        cxl(5, 1, C.MASS_CANCEL), done(5, S.CANCELLED)]
    assert stop_ids(eng) == ([6], [])
    assert stop_ids(eng, 4) == ([4], [])
    assert eng.cancel_all(account_id=7) == [cxl(4, 2, C.MASS_CANCEL, 4), done(4, S.CANCELLED, sym=4)]
    assert eng.cancel_all(account_id=7) == []
    assert book(eng) == ([], [])
    assert eng.known_ids() == 5


# ---- modify -----------------------------------------------------------------------------

def test_modify_keeps_or_loses_the_stops_place(eng):
    for oid in (1, 2, 3):
        stop_limit(eng, oid, 7, BUY, 105, 106, 3)
    # Same stop price and limit price, not larger: its place is kept (a stop price given
    # equal to the old one counts as unchanged).
    assert modify(eng, 1, 7, 106, 2) == [mod(1, 106, 2), done(1, S.NEW, 0, 2)]
    assert modify(eng, 1, 7, 106, 2, stop_price=105) == [mod(1, 106, 2), done(1, S.NEW, 0, 2)]
    assert stop_ids(eng) == ([1, 2, 3], [])
    assert modify(eng, 2, 7, 106, 5) == [mod(2, 106, 5), done(2, S.NEW, 0, 5)]  # larger
    assert stop_ids(eng) == ([1, 3, 2], [])
    assert modify(eng, 1, 7, 107, 2) == [mod(1, 107, 2), done(1, S.NEW, 0, 2)]  # a new limit price
    assert stop_ids(eng) == ([3, 2, 1], [])
    assert modify(eng, 3, 7, 106, 3, stop_price=104) == [mod(3, 106, 3), done(3, S.NEW, 0, 3)]
    assert eng.stops(symbol_id=SYM)[0][0] == StopOrder(3, 7, BUY, LIMIT, GTC, 104, 106, 3, 0)
    assert modify(eng, 3, 7, 106, 3, stop_price=105) == [mod(3, 106, 3), done(3, S.NEW, 0, 3)]
    assert stop_ids(eng) == ([2, 1, 3], [])  # back at 105, behind the stops there
    limit(eng, 10, 8, SELL, 105, 1)
    limit(eng, 11, 8, SELL, 106, 20)
    assert limit(eng, 4, 9, BUY, 105, 1) == [
        acc(4), trade(10, 4, 8, 9, 105, 1, BUY, 0, 0), done(4, S.FILLED, 1),
        trig(2, 105, 5), trade(11, 2, 8, 7, 106, 5, BUY, 15, 0), done(2, S.FILLED, 5),
        trig(1, 105, 2), trade(11, 1, 8, 7, 106, 2, BUY, 13, 0), done(1, S.FILLED, 2),
        trig(3, 105, 3), trade(11, 3, 8, 7, 106, 3, BUY, 10, 0), done(3, S.FILLED, 3)]


def test_modify_a_stop_of_the_market_kind(eng):
    stop(eng, 1, 7, SELL, 95, 3)
    assert modify(eng, 1, 7, 0, 5, stop_price=96) == [mod(1, 0, 5), done(1, S.NEW, 0, 5)]
    assert eng.stops(symbol_id=SYM) == ([], [StopOrder(1, 7, SELL, MARKET, IOC, 96, 0, 5, 0)])


@pytest.mark.parametrize("oid, acct, sym, price, qty, stop_price, reason", [
    (1, 7, SYM, 0, 3, 100, R.STOP_WOULD_TRIGGER),
    (1, 7, SYM, 0, 3, 99, R.STOP_WOULD_TRIGGER),
    (2, 7, SYM, 103, 2, 100, R.STOP_WOULD_TRIGGER),
    (1, 8, SYM, 0, 3, 0, R.UNKNOWN_ORDER),
    (1, 7, SYM + 1, 0, 3, 0, R.UNKNOWN_ORDER),
    (1, 7, SYM, 0, 0, 0, R.INVALID_QUANTITY),
    (1, 7, SYM, 0, 0, -1, R.INVALID_QUANTITY),   # the quantity before the stop price
    (1, 7, SYM, 5, 3, 0, R.INVALID_PRICE),       # a stop's price is 0
    (2, 7, SYM, 0, 2, 0, R.INVALID_PRICE),       # a stop-limit's is a limit price
    (2, 7, SYM, MAX_PRICE + 1, 2, 0, R.INVALID_PRICE),
    (1, 7, SYM, 5, 3, -1, R.INVALID_PRICE),      # the price before the stop price
    (1, 7, SYM, 0, 3, -1, R.INVALID_STOP_PRICE),
    (1, 7, SYM, 0, 3, MAX_PRICE + 1, R.INVALID_STOP_PRICE),
    (1, 7, SYM, 0, 3, 2**70, R.INVALID_STOP_PRICE),
    (2, 7, SYM, MAX_PRICE, 10**12, 0, R.NOTIONAL_OVERFLOW),
])
def test_rejected_modify_leaves_the_stop_untouched(eng, oid, acct, sym, price, qty, stop_price, reason):
    print_at(eng, 100)
    stop(eng, 1, 7, BUY, 102, 3)
    stop_limit(eng, 2, 7, BUY, 102, 103, 2)
    stop(eng, 3, 7, BUY, 102, 1)
    before = eng.stops(symbol_id=SYM)
    assert modify(eng, oid, acct, price, qty, stop_price, sym=sym) == [rej(oid, reason, sym)]
    assert eng.stops(symbol_id=SYM) == before


@pytest.mark.parametrize("oid, price, qty, stop_price, reason", [
    (1, 0, 2, 103, R.PRICE_NOT_ON_TICK),   # the stop price on the tick
    (2, 105, 2, 0, R.PRICE_NOT_ON_TICK),   # a new limit price on the tick
    (1, 0, 3, 0, R.QUANTITY_NOT_ON_LOT),
    (1, 0, 12, 0, R.QUANTITY_ABOVE_MAX),
    (1, 0, 2, 99, R.PRICE_NOT_ON_TICK),    # the tick before the trigger
    (1, 0, 2, 100, R.STOP_WOULD_TRIGGER),
    (2, 103, 2, 104, None),                # the old limit price binds no tick
    (1, 0, 2, 0, None),
])
def test_modify_a_stop_under_instrument_rules(eng, oid, price, qty, stop_price, reason):
    print_at(eng, 100)
    stop(eng, 1, 7, BUY, 102, 3)
    stop_limit(eng, 2, 7, BUY, 102, 103, 2)
    eng.set_instrument(symbol_id=SYM, tick_size=2, lot_size=2, max_quantity=10)
    expected = [rej(oid, reason)] if reason else [mod(oid, price, qty), done(oid, S.NEW, 0, qty)]
    assert modify(eng, oid, 7, price, qty, stop_price) == expected


def test_a_kept_stop_price_binds_no_tick_set_after_it(eng):
    stop(eng, 1, 7, BUY, 102, 4)
    eng.set_instrument(symbol_id=SYM, tick_size=4)  # 102 is off the tick now
    assert modify(eng, 1, 7, 0, 4) == [mod(1, 0, 4), done(1, S.NEW, 0, 4)]
    assert modify(eng, 1, 7, 0, 4, stop_price=102) == [mod(1, 0, 4), done(1, S.NEW, 0, 4)]
    assert modify(eng, 1, 7, 0, 4, stop_price=106) == [rej(1, R.PRICE_NOT_ON_TICK)]
    assert modify(eng, 1, 7, 0, 4, stop_price=108) == [mod(1, 0, 4), done(1, S.NEW, 0, 4)]
    assert eng.stops(symbol_id=SYM) == ([StopOrder(1, 7, BUY, MARKET, IOC, 108, 0, 4, 0)], [])


def test_modify_of_a_stop_on_a_halted_symbol(eng):
    stop(eng, 1, 7, BUY, 102, 3)
    eng.set_trading_status(symbol_id=SYM, status=TradingStatus.HALTED)
    assert modify(eng, 1, 7, 0, 2) == [rej(1, R.INSTRUMENT_HALTED)]
    assert modify(eng, 1, 7, 0, 0) == [rej(1, R.INSTRUMENT_HALTED)]  # the halt before the values
    assert modify(eng, 1, 8, 0, 2) == [rej(1, R.UNKNOWN_ORDER)]     # the lookup before the halt
    assert eng.stops(symbol_id=SYM) == ([StopOrder(1, 7, BUY, MARKET, IOC, 102, 0, 3, 0)], [])


def test_modify_of_a_resting_order_with_a_stop_price_is_rejected(eng):
    limit(eng, 1, 7, BUY, 100, 5)
    assert modify(eng, 1, 7, 100, 4, stop_price=105) == [rej(1, R.INVALID_STOP_PRICE)]
    assert modify(eng, 1, 7, 101, 5, stop_price=-1) == [rej(1, R.INVALID_STOP_PRICE)]
    assert modify(eng, 1, 7, 0, 0, stop_price=105) == [rej(1, R.INVALID_STOP_PRICE)]  # before the values
    assert modify(eng, 1, 8, 100, 4, stop_price=105) == [rej(1, R.UNKNOWN_ORDER)]
    eng.set_trading_status(symbol_id=SYM, status=TradingStatus.HALTED)
    assert modify(eng, 1, 7, 100, 4, stop_price=105) == [rej(1, R.INSTRUMENT_HALTED)]
    eng.set_trading_status(symbol_id=SYM, status=TradingStatus.TRADING)
    assert eng.l3(symbol_id=SYM) == ([L3Order(1, 7, 100, 5)], [])
    assert eng.stops(symbol_id=SYM) == ([], [])
    assert modify(eng, 1, 7, 100, 4) == [mod(1, 100, 4), done(1, S.NEW, 0, 4)]


# ---- snapshot, raw and packed calls -----------------------------------------------------

def test_snapshot_and_restore_keep_the_stops_and_the_last_trade_price(eng):
    print_at(eng, 100)
    stop(eng, 1, 7, BUY, 101, 1)
    stop_limit(eng, 2, 7, BUY, 101, 102, 2, display=1)
    stop(eng, 3, 7, SELL, 98, 2)
    stop(eng, 4, 7, BUY, 101, 1)
    stop(eng, 5, 7, BUY, 200, 1, sym=4)
    stop(eng, 6, 7, BUY, 150, 1)
    eng.cancel(order_id=6, account_id=7, symbol_id=SYM)
    modify(eng, 1, 7, 0, 1, stop_price=101)  # unchanged: keeps its place ahead of 2
    limit(eng, 10, 8, SELL, 101, 1)
    limit(eng, 11, 8, SELL, 102, 5)
    other = type(eng).restore(eng.snapshot())
    for sym in (SYM, 4):
        assert other.stops(symbol_id=sym) == eng.stops(symbol_id=sym)
        assert other.last_trade_price(symbol_id=sym) == eng.last_trade_price(symbol_id=sym)
    assert other.known_ids() == eng.known_ids() - 3 == 7  # the done orders' ids are not in it
    assert other.event_hash() == eng.event_hash()
    if isinstance(eng, Engine):
        assert other.snapshot() == eng.snapshot()
    expected = [
        acc(7), trade(10, 7, 8, 9, 101, 1, BUY, 0, 0), done(7, S.FILLED, 1),
        trig(1, 101, 1), trade(11, 1, 8, 7, 102, 1, BUY, 4, 0), done(1, S.FILLED, 1),
        trig(2, 101, 2), trade(11, 2, 8, 7, 102, 2, BUY, 2, 0), done(2, S.FILLED, 2),
        trig(4, 101, 1), trade(11, 4, 8, 7, 102, 1, BUY, 1, 0), done(4, S.FILLED, 1)]
    assert limit(other, 7, 9, BUY, 101, 1) == limit(eng, 7, 9, BUY, 101, 1) == expected
    assert other.event_hash() == eng.event_hash()
    # The stop ids survive as taken; a cancelled stop's id does not survive a restore.
    assert stop(other, 3, 7, SELL, 90, 1) == rejected(3, R.DUPLICATE_ORDER_ID)
    assert stop(other, 6, 7, BUY, 150, 1) == accepted_stop(6, 1)
    # The last trade price survived: a stop it already triggers is refused.
    assert stop(type(eng).restore(eng.snapshot()), 8, 7, SELL, 102, 1) == rejected(8, R.STOP_WOULD_TRIGGER)


def test_stops_through_the_packed_batch_api(eng):
    rows = [  # op, side, order_type, tif, oid, acct, price, qty, stop_price
        (OP_SUBMIT, SELL, LIMIT, GTC, 10, 8, 100, 1, 0),
        (OP_SUBMIT, BUY, MARKET, IOC, 1, 7, 0, 2, 100),
        (OP_SUBMIT, SELL, LIMIT, GTC, 11, 8, 101, 5, 0),
        (OP_MODIFY, 0, 0, 0, 1, 7, 0, 3, 100),
        (OP_SUBMIT, SELL, LIMIT, GTC, 3, 7, 0, 1, 99),      # a stop-limit's bad limit price
        (OP_SUBMIT, BUY, LIMIT, GTC, 4, 7, 110, 1, 120),
        (OP_CANCEL, 0, 0, 0, 4, 7, 0, 0, 0),
        (OP_SUBMIT, BUY, LIMIT, GTC, 2, 9, 100, 1, 0),      # triggers 1
        (OP_MODIFY, 0, 0, 0, 11, 8, 101, 1, 50),            # a resting order's: INVALID_STOP_PRICE
    ]
    cmds = np.zeros(len(rows), dtype=COMMAND_DTYPE)
    for i, (op, side, otype, tif, oid, acct, price, qty, stop_price) in enumerate(rows):
        cmds[i] = (op, side, otype, tif, 0, 0, 0, SYM, 0, oid, acct, price, qty, 0, stop_price)
    objs = type(eng)()
    expected = []
    expected += limit(objs, 10, 8, SELL, 100, 1)
    expected += stop(objs, 1, 7, BUY, 100, 2)
    expected += limit(objs, 11, 8, SELL, 101, 5)
    expected += modify(objs, 1, 7, 0, 3, stop_price=100)
    expected += stop_limit(objs, 3, 7, SELL, 99, 0, 1)
    expected += stop_limit(objs, 4, 7, BUY, 120, 110, 1)
    expected += objs.cancel(order_id=4, account_id=7, symbol_id=SYM)
    expected += limit(objs, 2, 9, BUY, 100, 1)
    expected += modify(objs, 11, 8, 101, 1, stop_price=50)
    assert [e.kind for e in expected].count(EventKind.TRIGGERED) == 1
    assert expected[-1] == rej(11, R.INVALID_STOP_PRICE)
    out = raw_events(eng.execute_packed(cmds))
    assert out == [event_to_raw(e) for e in expected]
    assert eng.event_hash() == objs.event_hash()
    assert eng.stops(symbol_id=SYM) == objs.stops(symbol_id=SYM) == ([], [])
    if isinstance(eng, Engine):
        assert raw_events(Engine().execute_packed(cmds.tobytes())) == out  # 64-byte records
    # The older layouts run alike, without stop prices: the stop submits are plain orders.
    for legacy_dtype in (COMMAND_DTYPE_V2, COMMAND_DTYPE_V1):
        legacy = np.zeros(len(cmds), dtype=legacy_dtype)
        for name in legacy_dtype.names:
            legacy[name] = cmds[name]
        plain = type(eng)()
        expected = []
        for row in cmds[[0, 2, 7]]:  # the plain submits
            expected += plain.submit(order_id=int(row["order_id"]), account_id=int(row["account_id"]), symbol_id=SYM,
                                     side=int(row["side"]), order_type=int(row["order_type"]), tif=int(row["tif"]),
                                     price=int(row["price"]), quantity=int(row["quantity"]))
        assert raw_events(type(eng)().execute_packed(legacy[[0, 2, 7]])) == [event_to_raw(e) for e in expected]


def test_stops_through_the_raw_calls():
    typed, raw, wrapped = Engine(), Engine(), Engine()
    events = []
    for e in (typed, raw, wrapped):
        limit(e, 10, 8, SELL, 100, 1)
        limit(e, 11, 8, SELL, 102, 5)
    events += stop_limit(typed, 1, 7, BUY, 100, 101, 4, display=2)
    events += modify(typed, 1, 7, 102, 3, stop_price=101)
    events += limit(typed, 2, 9, BUY, 102, 2)  # prints 100 and 102, through the stop at 101
    raws = raw.raw.submit(1, 7, SYM, int(BUY), int(LIMIT), int(GTC), 101, 4, False, 1, 2, 100)
    raws += raw.raw.modify(1, 7, SYM, 102, 3, 101)
    raws += raw.raw.submit(2, 9, SYM, int(BUY), int(LIMIT), int(GTC), 102, 2, False, 1)
    assert raws == [event_to_raw(e) for e in events]
    assert EventKind.TRIGGERED in [e.kind for e in events]
    got = wrapped.submit_raw(1, 7, SYM, BUY, LIMIT, GTC, 101, 4, False, 1, 2, 100)
    got += wrapped.modify_raw(1, 7, SYM, 102, 3, 101)
    got += wrapped.submit_raw(2, 9, SYM, BUY, LIMIT, GTC, 102, 2, False, 1)
    assert got == raws
    assert typed.event_hash() == raw.event_hash() == wrapped.event_hash()
    assert wrapped.submit_raw(3, 7, SYM, SELL, MARKET, IOC, 0, 1, False, 1, 0, 2**80) == [
        event_to_raw(e) for e in rejected(3, R.INVALID_STOP_PRICE)]
    assert raw.raw.stops(SYM) == ([], []) and raw.raw.last_trade_price(SYM) == 102
    raw.raw.submit(4, 7, SYM, int(SELL), int(MARKET), int(IOC), 0, 1, False, 1, 0, 90)
    assert raw.raw.stops(SYM) == ([], [(4, 7, int(SELL), int(MARKET), int(IOC), 90, 0, 1, 0)])


def test_triggered_is_a_typed_event_kind():
    eng = Engine()
    limit(eng, 10, 8, SELL, 100, 2)
    stop(eng, 1, 7, BUY, 100, 1)
    events = limit(eng, 2, 9, BUY, 100, 1)
    assert events[3].kind is EventKind.TRIGGERED and events[3].reason is None
    assert EventKind.TRIGGERED == 7 and R.INVALID_STOP_PRICE == 19 and R.STOP_WOULD_TRIGGER == 20
