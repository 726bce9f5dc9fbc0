"""Worked examples through the typed wrapper: resting book, command, expected
events, book after. Each runs against the C++ engine and the Python reference."""

import pytest

from bourse_engine import (
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
    Side,
    TimeInForce,
    TradingStatus,
)
from bourse_engine.reference import ReferenceEngine

SYM = 3
BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


@pytest.fixture(params=["cpp", "reference"])
def eng(request):
    return Engine() if request.param == "cpp" else ReferenceEngine()


def acc(oid, sym=SYM):
    return Event(EventKind.ACCEPTED, oid, sym)


def rej(oid, reason, sym=SYM):
    return Event(EventKind.REJECTED, oid, sym, reason=reason)


def cxl(oid, remaining, reason, sym=SYM):
    return Event(EventKind.CANCELLED, oid, sym, reason=reason, remaining=remaining)


def done(oid, status, filled=0, remaining=0, sym=SYM):
    return Event(EventKind.DONE, oid, sym, status=status, filled=filled, remaining=remaining)


def trade(maker, taker, maker_acct, taker_acct, price, qty, aggressor, maker_rem, taker_rem,
          sym=SYM):
    return Event(EventKind.TRADE, taker, sym, aggressor_side=aggressor, maker_order_id=maker,
                 taker_order_id=taker, maker_account=maker_acct, taker_account=taker_acct,
                 price=price, quantity=qty, maker_remaining=maker_rem, taker_remaining=taker_rem)


def limit(eng, oid, acct, side, price, qty, tif=GTC, sym=SYM):
    return eng.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side,
                      order_type=OrderType.LIMIT, tif=tif, price=price, quantity=qty)


def market(eng, oid, acct, side, qty, tif=IOC, sym=SYM):
    return eng.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side,
                      order_type=OrderType.MARKET, tif=tif, price=0, quantity=qty)


def book(eng, sym=SYM):
    return eng.depth(symbol_id=sym, levels=100)


def test_limit_rests_in_empty_book(eng):
    assert limit(eng, 1, 7, BUY, 100, 5) == [acc(1), done(1, OrderStatus.NEW, 0, 5)]
    assert book(eng) == ([Level(100, 5, 1)], [])
    assert eng.order(1) == OrderInfo(SYM, BUY, 100, 5)


def test_trade_prints_at_maker_price(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    assert limit(eng, 2, 8, BUY, 105, 5) == [
        acc(2),
        trade(1, 2, 7, 8, 100, 5, BUY, 0, 0),
        done(2, OrderStatus.FILLED, 5, 0),
    ]
    assert book(eng) == ([], [])


def test_partial_fill_keeps_queue_place_and_remainder_rests(eng):
    limit(eng, 1, 7, BUY, 100, 10)
    limit(eng, 2, 8, BUY, 100, 5)
    assert limit(eng, 3, 9, SELL, 100, 4) == [
        acc(3), trade(1, 3, 7, 9, 100, 4, SELL, 6, 0), done(3, OrderStatus.FILLED, 4)]
    assert limit(eng, 4, 9, SELL, 99, 20) == [
        acc(4),
        trade(1, 4, 7, 9, 100, 6, SELL, 0, 14),
        trade(2, 4, 8, 9, 100, 5, SELL, 0, 9),
        done(4, OrderStatus.PARTIALLY_FILLED, 11, 9),
    ]
    assert book(eng) == ([], [Level(99, 9, 1)])


def test_price_then_time_priority_across_levels(eng):
    limit(eng, 1, 7, SELL, 102, 1)
    limit(eng, 2, 7, SELL, 101, 1)
    limit(eng, 3, 7, SELL, 101, 1)
    assert limit(eng, 4, 8, BUY, 102, 3) == [
        acc(4),
        trade(2, 4, 7, 8, 101, 1, BUY, 0, 2),
        trade(3, 4, 7, 8, 101, 1, BUY, 0, 1),
        trade(1, 4, 7, 8, 102, 1, BUY, 0, 0),
        done(4, OrderStatus.FILLED, 3),
    ]
    assert book(eng) == ([], [])


def test_market_remainder_cancelled(eng):
    limit(eng, 1, 7, BUY, 100, 2)
    assert market(eng, 2, 8, SELL, 5) == [
        acc(2),
        trade(1, 2, 7, 8, 100, 2, SELL, 0, 3),
        cxl(2, 3, CancelReason.MARKET_REMAINDER),
        done(2, OrderStatus.CANCELLED, 2),
    ]
    assert book(eng) == ([], [])


def test_market_into_empty_book(eng):
    assert market(eng, 1, 8, BUY, 5, GTC) == [
        acc(1), cxl(1, 5, CancelReason.MARKET_REMAINDER), done(1, OrderStatus.CANCELLED)]


def test_ioc_remainder_cancelled(eng):
    limit(eng, 1, 7, SELL, 100, 2)
    assert limit(eng, 2, 8, BUY, 100, 5, IOC) == [
        acc(2),
        trade(1, 2, 7, 8, 100, 2, BUY, 0, 3),
        cxl(2, 3, CancelReason.IOC_REMAINDER),
        done(2, OrderStatus.CANCELLED, 2),
    ]
    assert book(eng) == ([], [])


def test_fok_killed_without_trades(eng):
    limit(eng, 1, 7, SELL, 100, 2)
    limit(eng, 2, 7, SELL, 101, 2)
    assert limit(eng, 3, 8, BUY, 101, 5, FOK) == [
        acc(3), cxl(3, 5, CancelReason.FOK_UNFILLABLE), done(3, OrderStatus.CANCELLED)]
    assert book(eng) == ([], [Level(100, 2, 1), Level(101, 2, 1)])


def test_fok_fills_completely(eng):
    limit(eng, 1, 7, SELL, 100, 2)
    limit(eng, 2, 7, SELL, 101, 2)
    assert limit(eng, 3, 8, BUY, 101, 4, FOK) == [
        acc(3),
        trade(1, 3, 7, 8, 100, 2, BUY, 0, 2),
        trade(2, 3, 7, 8, 101, 2, BUY, 0, 0),
        done(3, OrderStatus.FILLED, 4),
    ]


def test_cancel(eng):
    limit(eng, 1, 7, BUY, 100, 5)
    limit(eng, 2, 8, SELL, 100, 2)
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [
        cxl(1, 3, CancelReason.USER), done(1, OrderStatus.CANCELLED, 2, 0)]
    assert book(eng) == ([], [])
    assert eng.order(1) is None


@pytest.mark.parametrize("oid, acct, sym", [(99, 7, SYM), (1, 8, SYM), (1, 7, SYM + 1)])
def test_cancel_unknown_foreign_or_wrong_symbol(eng, oid, acct, sym):
    limit(eng, 1, 7, BUY, 100, 5)
    assert eng.cancel(order_id=oid, account_id=acct, symbol_id=sym) == [
        rej(oid, RejectReason.UNKNOWN_ORDER, sym)]
    assert book(eng) == ([Level(100, 5, 1)], [])


def test_cancel_done_order(eng):
    limit(eng, 1, 7, BUY, 100, 5)
    eng.cancel(order_id=1, account_id=7, symbol_id=SYM)
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [
        rej(1, RejectReason.UNKNOWN_ORDER)]


def test_duplicate_order_id(eng):
    limit(eng, 1, 7, BUY, 100, 5)
    eng.cancel(order_id=1, account_id=7, symbol_id=SYM)
    assert limit(eng, 1, 7, BUY, 100, 5) == [
        rej(1, RejectReason.DUPLICATE_ORDER_ID), done(1, OrderStatus.REJECTED)]


@pytest.mark.parametrize(
    "side, otype, tif, price, qty, reason",
    [
        (0, OrderType.LIMIT, GTC, 100, 1, RejectReason.INVALID_SIDE),
        (300, OrderType.LIMIT, GTC, 100, 1, RejectReason.INVALID_SIDE),
        (BUY, 7, GTC, 100, 1, RejectReason.INVALID_ORDER_TYPE),
        (BUY, OrderType.LIMIT, 0, 100, 1, RejectReason.INVALID_TIME_IN_FORCE),
        (BUY, OrderType.LIMIT, GTC, 100, 0, RejectReason.INVALID_QUANTITY),
        (BUY, OrderType.LIMIT, GTC, 100, 10**12 + 1, RejectReason.INVALID_QUANTITY),
        (BUY, OrderType.LIMIT, GTC, 100, 2**70, RejectReason.INVALID_QUANTITY),
        (BUY, OrderType.LIMIT, GTC, 0, 1, RejectReason.INVALID_PRICE),
        (BUY, OrderType.LIMIT, GTC, -(2**80), 1, RejectReason.INVALID_PRICE),
        (BUY, OrderType.LIMIT, GTC, 10**15 + 1, 1, RejectReason.INVALID_PRICE),
        (BUY, OrderType.MARKET, IOC, 100, 1, RejectReason.INVALID_PRICE),
        (BUY, OrderType.LIMIT, GTC, 10**15, 10**12, RejectReason.NOTIONAL_OVERFLOW),
    ],
)
def test_rejects(eng, side, otype, tif, price, qty, reason):
    events = eng.submit(order_id=1, account_id=7, symbol_id=SYM, side=side, order_type=otype,
                        tif=tif, price=price, quantity=qty)
    assert events == [rej(1, reason), done(1, OrderStatus.REJECTED)]
    assert book(eng) == ([], [])


def test_depth_aggregates_best_first(eng):
    for oid, (side, price, qty) in enumerate(
            [(BUY, 99, 1), (BUY, 100, 2), (BUY, 100, 3), (SELL, 103, 4), (SELL, 101, 5)], 1):
        limit(eng, oid, 7, side, price, qty)
    assert eng.depth(symbol_id=SYM, levels=5) == (
        [Level(100, 5, 2), Level(99, 1, 1)], [Level(101, 5, 1), Level(103, 4, 1)])
    assert eng.depth(symbol_id=SYM, levels=1) == ([Level(100, 5, 2)], [Level(101, 5, 1)])
    assert eng.top(symbol_id=SYM) == (Level(100, 5, 2), Level(101, 5, 1))
    assert eng.depth(symbol_id=99, levels=5) == ([], [])


def test_symbols_do_not_interact(eng):
    limit(eng, 1, 7, SELL, 100, 5, sym=1)
    assert limit(eng, 2, 8, BUY, 100, 5, sym=2) == [
        acc(2, 2), done(2, OrderStatus.NEW, 0, 5, 2)]


def test_event_fields_are_typed():
    eng = Engine()
    limit(eng, 1, 7, SELL, 100, 5)
    events = limit(eng, 2, 8, BUY, 100, 2)
    assert [type(e.kind) for e in events] == [EventKind] * 3
    assert events[1].aggressor_side is Side.BUY
    assert events[2].status is OrderStatus.FILLED
    rejected = limit(eng, 2, 8, BUY, 100, 2)
    assert rejected[0].reason is RejectReason.DUPLICATE_ORDER_ID
    assert rejected[0].reason.name == "DUPLICATE_ORDER_ID"


def test_same_script_same_hash_in_cpp_and_reference():
    engines = [Engine(), ReferenceEngine()]
    for e in engines:
        limit(e, 1, 7, SELL, 100, 5)
        limit(e, 2, 8, BUY, 101, 7)
        market(e, 3, 9, SELL, 9)
        e.cancel(order_id=2, account_id=8, symbol_id=SYM)
        e.cancel(order_id=2, account_id=8, symbol_id=SYM)
    assert engines[0].event_hash() == engines[1].event_hash()
    assert Engine().event_hash() == ReferenceEngine().event_hash()


def test_the_python_hash_twin_gives_the_value_the_cpp_test_pins():
    """EventHash.KnownValue (queries_test.cc): ACCEPTED of order 1 on symbol 3, then a
    TRADE of maker 1 and taker 2 (accounts 7 and 8) at 100 for 5, aggressor BUY, the
    maker left with 0 and the taker's remaining -1; as raw tuples in Event order."""
    from bourse_engine.events import EVENT_HASH_SEED, hash_event

    accepted = (1, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    trade = (3, 2, 3, 0, 0, 1, 1, 2, 7, 8, 100, 5, 0, -1, 0, 0)
    assert hash_event(hash_event(EVENT_HASH_SEED, accepted), trade) == 0x2780C8EF89704270


def test_submit_batch_equals_sequential_submits():
    columns = dict(
        order_id=[1, 2, 3, 4], account_id=[7, 8, 7, 9], symbol_id=[SYM] * 4,
        side=[SELL, SELL, BUY, BUY], order_type=[1, 1, 1, 2], tif=[1, 1, 2, 1],
        price=[100, 101, 100, 0], quantity=[5, 5, 7, 3])
    batch, single = Engine(), Engine()
    events = batch.submit_batch(**columns)
    expected = []
    for row in zip(*columns.values()):
        expected += single.submit(**dict(zip(columns, row)))
    assert events == expected
    assert batch.event_hash() == single.event_hash()
    assert batch.depth(symbol_id=SYM) == single.depth(symbol_id=SYM)


def test_submit_batch_accepts_numpy():
    np = pytest.importorskip("numpy")
    eng = Engine()
    events = eng.submit_batch(
        order_id=np.array([1, 2], dtype=np.uint64), account_id=np.array([7, 8]),
        symbol_id=np.array([SYM, SYM]), side=np.array([2, 1]), order_type=np.array([1, 1]),
        tif=np.array([1, 1]), price=np.array([100, 100]), quantity=np.array([5, 5]))
    assert [e.kind for e in events] == [
        EventKind.ACCEPTED, EventKind.DONE, EventKind.ACCEPTED, EventKind.TRADE, EventKind.DONE]


def test_submit_batch_rejects_ragged_columns():
    with pytest.raises(ValueError):
        Engine().submit_batch(order_id=[1, 2], account_id=[1], symbol_id=[1, 1], side=[1, 1],
                              order_type=[1, 1], tif=[1, 1], price=[1, 1], quantity=[1, 1])


@pytest.mark.parametrize("field, value", [("order_id", -1), ("account_id", 2**64),
                                          ("symbol_id", 2**32)])
def test_impossible_ids_raise(field, value):
    args = dict(order_id=1, account_id=7, symbol_id=SYM, side=BUY, order_type=OrderType.LIMIT,
                tif=GTC, price=100, quantity=1)
    args[field] = value
    with pytest.raises(ValueError):
        Engine().submit(**args)


def test_the_wrappers_limits_are_the_engines():
    import _bourse_engine

    import bourse_engine.events as events

    for name in ("MAX_PRICE", "MAX_QUANTITY", "EVENT_HASH_SEED", "MAX_BAND_PERCENT", "DEFAULT_ID_WINDOW"):
        assert getattr(events, name) == getattr(_bourse_engine, name), name


# ---- trading status (halt / resume) and mass cancel ----------------------------------

HALTED, TRADING = TradingStatus.HALTED, TradingStatus.TRADING


def test_halted_submit_is_rejected_and_the_book_stays(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    assert eng.set_trading_status(symbol_id=SYM, status=HALTED) is None
    assert eng.trading_status(symbol_id=SYM) is HALTED
    assert limit(eng, 2, 8, BUY, 100, 5) == [
        rej(2, RejectReason.INSTRUMENT_HALTED), done(2, OrderStatus.REJECTED)]
    assert market(eng, 3, 8, BUY, 5) == [
        rej(3, RejectReason.INSTRUMENT_HALTED), done(3, OrderStatus.REJECTED)]
    # A malformed order keeps its own reason.
    assert limit(eng, 4, 8, BUY, 100, 0) == [
        rej(4, RejectReason.INVALID_QUANTITY), done(4, OrderStatus.REJECTED)]
    assert book(eng) == ([], [Level(100, 5, 1)])


def test_halted_modify_is_rejected_cancel_works_resume_trades(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    limit(eng, 2, 8, SELL, 100, 5)
    eng.set_trading_status(symbol_id=SYM, status=HALTED)
    assert eng.modify(order_id=1, account_id=7, symbol_id=SYM, price=100, quantity=1) == [
        rej(1, RejectReason.INSTRUMENT_HALTED)]
    # Someone else's order: the lookup answers first.
    assert eng.modify(order_id=1, account_id=9, symbol_id=SYM, price=100, quantity=1) == [
        rej(1, RejectReason.UNKNOWN_ORDER)]
    assert eng.cancel(order_id=2, account_id=8, symbol_id=SYM) == [
        cxl(2, 5, CancelReason.USER), done(2, OrderStatus.CANCELLED)]
    # The halted submit did not take id 3; after resume it trades with order 1, untouched.
    assert limit(eng, 3, 9, BUY, 100, 2) == [
        rej(3, RejectReason.INSTRUMENT_HALTED), done(3, OrderStatus.REJECTED)]
    eng.set_trading_status(symbol_id=SYM, status=TRADING)
    assert book(eng) == ([], [Level(100, 5, 1)])
    assert limit(eng, 3, 9, BUY, 100, 2) == [
        acc(3), trade(1, 3, 7, 9, 100, 2, BUY, 3, 0), done(3, OrderStatus.FILLED, 2)]


def test_halting_one_symbol_leaves_others_trading(eng):
    eng.set_trading_status(symbol_id=1, status=HALTED)
    assert limit(eng, 1, 7, BUY, 100, 5, sym=2) == [acc(1, 2), done(1, OrderStatus.NEW, 0, 5, 2)]
    assert eng.trading_status(symbol_id=2) is TRADING
    assert eng.trading_status(symbol_id=99) is TRADING  # never seen


@pytest.mark.parametrize("status", [0, 3, 255, 2**70, -1])
def test_invalid_trading_status_raises(eng, status):
    with pytest.raises(ValueError):
        eng.set_trading_status(symbol_id=SYM, status=status)
    assert eng.trading_status(symbol_id=SYM) is TRADING


def test_trading_status_survives_snapshot(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    eng.set_trading_status(symbol_id=SYM, status=HALTED)
    other = type(eng).restore(eng.snapshot())
    assert other.trading_status(symbol_id=SYM) is HALTED
    assert limit(other, 2, 8, BUY, 100, 5) == [
        rej(2, RejectReason.INSTRUMENT_HALTED), done(2, OrderStatus.REJECTED)]


def test_cancel_all_in_ascending_id_on_every_symbol(eng):
    limit(eng, 5, 7, BUY, 100, 1)
    limit(eng, 2, 7, SELL, 200, 3, sym=4)
    limit(eng, 4, 8, BUY, 100, 6)
    limit(eng, 3, 7, SELL, 105, 4)
    limit(eng, 6, 9, SELL, 105, 1)
    limit(eng, 7, 8, BUY, 105, 1)  # fills 1 of order 3, first at 105
    assert eng.cancel_all(account_id=7) == [
        cxl(2, 3, CancelReason.MASS_CANCEL, 4), done(2, OrderStatus.CANCELLED, sym=4),
        cxl(3, 3, CancelReason.MASS_CANCEL), done(3, OrderStatus.CANCELLED, 1),
        cxl(5, 1, CancelReason.MASS_CANCEL), done(5, OrderStatus.CANCELLED),
    ]
    assert book(eng) == ([Level(100, 6, 1)], [Level(105, 1, 1)])
    assert eng.cancel_all(account_id=7) == []
    assert eng.cancel(order_id=3, account_id=7, symbol_id=SYM) == [rej(3, RejectReason.UNKNOWN_ORDER)]


def test_cancel_all_with_a_symbol_and_while_halted(eng):
    limit(eng, 1, 7, BUY, 100, 1)
    limit(eng, 2, 7, BUY, 100, 1, sym=4)
    eng.set_trading_status(symbol_id=SYM, status=HALTED)
    assert eng.cancel_all(account_id=7, symbol_id=SYM) == [
        cxl(1, 1, CancelReason.MASS_CANCEL), done(1, OrderStatus.CANCELLED)]
    assert book(eng, 4) == ([Level(100, 1, 1)], [])
    assert eng.cancel_all(account_id=7, symbol_id=99) == []


def test_cancel_all_raw_gives_the_events_as_raw_tuples():
    from bourse_engine.events import event_to_raw

    typed, raw = Engine(), Engine()
    for e in (typed, raw):
        limit(e, 1, 7, BUY, 100, 1)
        limit(e, 2, 7, SELL, 101, 1, sym=4)
    events = typed.cancel_all(account_id=7)
    assert raw.cancel_all_raw(7) == [event_to_raw(e) for e in events]
    assert raw.cancel_all_raw(7, SYM) == []
    assert typed.event_hash() == raw.event_hash()


# ---- icebergs (display_quantity) -------------------------------------------------------

def iceberg(eng, oid, acct, side, price, qty, display, tif=GTC, sym=SYM):
    return eng.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side,
                      order_type=OrderType.LIMIT, tif=tif, price=price, quantity=qty,
                      display_quantity=display)


def shown(eng, side, sym=SYM):
    """(order_id, shown quantity, display quantity) in priority order."""
    bids, asks = eng.l3(symbol_id=sym)
    return [(o.order_id, o.remaining, o.display_quantity) for o in (bids if side == BUY else asks)]


@pytest.mark.parametrize("qty, display, tif, order_type", [
    (10, 10, GTC, OrderType.LIMIT), (10, 11, GTC, OrderType.LIMIT), (10, -1, GTC, OrderType.LIMIT),
    (10, 2, IOC, OrderType.LIMIT), (10, 2, FOK, OrderType.LIMIT), (10, 2, IOC, OrderType.MARKET)])
def test_iceberg_display_must_be_below_the_quantity_on_a_resting_limit(eng, qty, display, tif, order_type):
    assert eng.submit(order_id=1, account_id=7, symbol_id=SYM, side=SELL, order_type=order_type, tif=tif,
                      price=0 if order_type == OrderType.MARKET else 100, quantity=qty,
                      display_quantity=display) == [
        rej(1, RejectReason.INVALID_DISPLAY_QUANTITY), done(1, OrderStatus.REJECTED)]
    assert RejectReason.INVALID_DISPLAY_QUANTITY == 18


def test_iceberg_display_must_be_on_the_lot(eng):
    eng.set_instrument(symbol_id=SYM, lot_size=5)
    assert iceberg(eng, 1, 7, SELL, 100, 20, 3) == [
        rej(1, RejectReason.INVALID_DISPLAY_QUANTITY), done(1, OrderStatus.REJECTED)]
    assert iceberg(eng, 1, 7, SELL, 100, 20, 5) == [acc(1), done(1, OrderStatus.NEW, 0, 20)]
    assert book(eng) == ([], [Level(100, 5, 1)])


def test_iceberg_shows_a_slice_and_refreshes_at_the_back(eng):
    assert iceberg(eng, 1, 7, SELL, 100, 10, 4) == [acc(1), done(1, OrderStatus.NEW, 0, 10)]
    limit(eng, 2, 8, SELL, 100, 3)
    assert book(eng) == ([], [Level(100, 7, 2)])
    assert eng.top(symbol_id=SYM) == (None, Level(100, 7, 2))
    assert shown(eng, SELL) == [(1, 4, 4), (2, 3, 0)]
    assert eng.order(1) == OrderInfo(SYM, SELL, 100, 10)  # leaves: hidden included
    # The slice is filled exactly: the next one shows behind order 2.
    assert limit(eng, 3, 9, BUY, 100, 4) == [
        acc(3), trade(1, 3, 7, 9, 100, 4, BUY, 6, 0), done(3, OrderStatus.FILLED, 4)]
    assert shown(eng, SELL) == [(2, 3, 0), (1, 4, 4)]
    assert eng.order(1) == OrderInfo(SYM, SELL, 100, 6)


def test_iceberg_a_large_taker_sweeps_the_level(eng):
    iceberg(eng, 1, 7, SELL, 100, 10, 4)
    limit(eng, 2, 8, SELL, 100, 3)
    limit(eng, 5, 8, SELL, 101, 5)
    assert limit(eng, 3, 9, BUY, 101, 16) == [
        acc(3),
        trade(1, 3, 7, 9, 100, 4, BUY, 6, 12),  # slice; refreshed behind order 2
        trade(2, 3, 8, 9, 100, 3, BUY, 0, 9),
        trade(1, 3, 7, 9, 100, 4, BUY, 2, 5),   # refreshed slice; 2 left, all shown
        trade(1, 3, 7, 9, 100, 2, BUY, 0, 3),   # the last, smaller slice
        trade(5, 3, 8, 9, 101, 3, BUY, 2, 0),
        done(3, OrderStatus.FILLED, 16),
    ]
    assert book(eng) == ([], [Level(101, 2, 1)])


def test_iceberg_fok_counts_hidden_quantity_and_stp_stops_where_matching_would(eng):
    iceberg(eng, 1, 7, SELL, 100, 10, 2)
    limit(eng, 2, 9, SELL, 100, 3)  # account 9's own, behind the first slice
    assert limit(eng, 3, 8, BUY, 100, 14, tif=FOK) == [
        acc(3), cxl(3, 14, CancelReason.FOK_UNFILLABLE), done(3, OrderStatus.CANCELLED)]
    # Account 9: the first slice (2), then its own order 2 stops it (refreshed slice behind).
    assert limit(eng, 4, 9, BUY, 100, 3, tif=FOK) == [
        acc(4), cxl(4, 3, CancelReason.FOK_UNFILLABLE), done(4, OrderStatus.CANCELLED)]
    assert limit(eng, 5, 8, BUY, 100, 13, tif=FOK) == [
        acc(5), trade(1, 5, 7, 8, 100, 2, BUY, 8, 11), trade(2, 5, 9, 8, 100, 3, BUY, 0, 8),
        trade(1, 5, 7, 8, 100, 2, BUY, 6, 6), trade(1, 5, 7, 8, 100, 2, BUY, 4, 4),
        trade(1, 5, 7, 8, 100, 2, BUY, 2, 2), trade(1, 5, 7, 8, 100, 2, BUY, 0, 0),
        done(5, OrderStatus.FILLED, 13)]
    assert book(eng) == ([], [])


def test_iceberg_cancel_modify_and_mass_cancel(eng):
    iceberg(eng, 1, 7, SELL, 100, 10, 4)
    limit(eng, 2, 8, SELL, 100, 3)
    # Reduce in place: hidden first, priority kept.
    assert eng.modify(order_id=1, account_id=7, symbol_id=SYM, price=100, quantity=5) == [
        Event(EventKind.MODIFIED, 1, SYM, price=100, quantity=5), done(1, OrderStatus.NEW, 0, 5)]
    assert shown(eng, SELL) == [(1, 4, 4), (2, 3, 0)]
    # A new price: cancel-replace, display kept, behind order 2... at 101, its own level.
    assert eng.modify(order_id=1, account_id=7, symbol_id=SYM, price=101, quantity=9) == [
        Event(EventKind.MODIFIED, 1, SYM, price=101, quantity=9), done(1, OrderStatus.NEW, 0, 9)]
    assert shown(eng, SELL) == [(2, 3, 0), (1, 4, 4)]
    assert book(eng) == ([], [Level(100, 3, 1), Level(101, 4, 1)])
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [
        cxl(1, 9, CancelReason.USER), done(1, OrderStatus.CANCELLED)]
    iceberg(eng, 3, 8, SELL, 100, 6, 2)
    assert eng.cancel_all(account_id=8) == [
        cxl(2, 3, CancelReason.MASS_CANCEL), done(2, OrderStatus.CANCELLED),
        cxl(3, 6, CancelReason.MASS_CANCEL), done(3, OrderStatus.CANCELLED)]
    assert book(eng) == ([], [])


def test_iceberg_survives_snapshot_mid_refresh(eng):
    iceberg(eng, 1, 7, SELL, 100, 10, 4)
    limit(eng, 2, 8, SELL, 100, 3)
    limit(eng, 3, 9, BUY, 100, 5)  # the slice, then 1 of order 2
    assert shown(eng, SELL) == [(2, 2, 0), (1, 4, 4)]
    other = type(eng).restore(eng.snapshot())
    assert shown(other, SELL) == [(2, 2, 0), (1, 4, 4)]
    assert limit(other, 4, 9, BUY, 100, 8) == limit(eng, 4, 9, BUY, 100, 8) == [
        acc(4), trade(2, 4, 8, 9, 100, 2, BUY, 0, 6), trade(1, 4, 7, 9, 100, 4, BUY, 2, 2),
        trade(1, 4, 7, 9, 100, 2, BUY, 0, 0), done(4, OrderStatus.FILLED, 8)]
    assert other.event_hash() == eng.event_hash()


def test_iceberg_through_the_raw_and_batch_calls():
    from bourse_engine import COMMAND_DTYPE, OP_SUBMIT
    from bourse_engine.events import event_to_raw
    from bourse_engine.packed import raw_events

    expected = Engine()
    typed = iceberg(expected, 1, 7, SELL, 100, 10, 4) + limit(expected, 2, 8, BUY, 100, 6)
    # The binding's submit takes display_quantity as an 11th positional argument (10 still work).
    raw = Engine()
    events = raw.raw.submit(1, 7, SYM, int(SELL), 1, 1, 100, 10, False, 1, 4)
    events += raw.raw.submit(2, 8, SYM, int(BUY), 1, 1, 100, 6, False, 1)
    assert events == [event_to_raw(e) for e in typed]
    assert Engine().submit_raw(1, 7, SYM, SELL, 1, 1, 100, 10, False, 1, 4) == events[:2]
    batch = Engine()
    assert batch.submit_batch(order_id=[1, 2], account_id=[7, 8], symbol_id=[SYM, SYM], side=[SELL, BUY],
                              order_type=[1, 1], tif=[1, 1], price=[100, 100], quantity=[10, 6],
                              display_quantity=[4, 0]) == typed
    assert ReferenceEngine().submit_batch(
        order_id=[1, 2], account_id=[7, 8], symbol_id=[SYM, SYM], side=[SELL, BUY], order_type=[1, 1],
        tif=[1, 1], price=[100, 100], quantity=[10, 6], display_quantity=[4, 0]) == typed
    np = pytest.importorskip("numpy")
    cmds = np.zeros(2, dtype=COMMAND_DTYPE)
    cmds[0] = (OP_SUBMIT, SELL, 1, 1, 0, 0, 0, SYM, 0, 1, 7, 100, 10, 4, 0)
    cmds[1] = (OP_SUBMIT, BUY, 1, 1, 0, 0, 0, SYM, 0, 2, 8, 100, 6, 0, 0)
    assert raw_events(Engine().execute_packed(cmds)) == events
    assert raw_events(ReferenceEngine().execute_packed(cmds)) == events
    assert expected.l3(symbol_id=SYM) == ([], [L3Order(1, 7, 100, 2, 4)])
    assert expected.l3(symbol_id=SYM)[1][0].quantity == 2
