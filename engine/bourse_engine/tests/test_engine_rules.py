"""Worked examples for the newer rules: modify, self-trade prevention, post-only,
instrument rules, L3, snapshot/restore and the packed batch API. Each example:
book before, command, expected events, book after; run against the C++ engine
and the pure-Python reference."""

import numpy as np
import pytest

from bourse_engine import (
    COMMAND_DTYPE,
    COMMAND_DTYPE_V1,
    MAX_PRICE,
    OP_CANCEL,
    OP_MODIFY,
    OP_SUBMIT,
    CancelReason,
    Engine,
    Event,
    EventKind,
    Instrument,
    L3Order,
    Level,
    OrderStatus,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from bourse_engine.events import event_to_raw
from bourse_engine.packed import raw_events
from bourse_engine.reference import ReferenceEngine

SYM = 3
BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
INCOMING, RESTING, BOTH = (SelfTradePrevention.CANCEL_INCOMING,
                           SelfTradePrevention.CANCEL_RESTING, SelfTradePrevention.CANCEL_BOTH)
S = OrderStatus
R = RejectReason
STP_CXL = CancelReason.SELF_TRADE_PREVENTED


@pytest.fixture(params=["cpp", "reference"])
def eng(request):
    return Engine() if request.param == "cpp" else ReferenceEngine()


def acc(oid):
    return Event(EventKind.ACCEPTED, oid, SYM)


def rej(oid, reason):
    return Event(EventKind.REJECTED, oid, SYM, reason=reason)


def cxl(oid, remaining, reason):
    return Event(EventKind.CANCELLED, oid, SYM, reason=reason, remaining=remaining)


def done(oid, status, filled=0, remaining=0):
    return Event(EventKind.DONE, oid, SYM, status=status, filled=filled, remaining=remaining)


def mod(oid, price, qty):
    return Event(EventKind.MODIFIED, oid, SYM, price=price, quantity=qty)


def trade(maker, taker, maker_acct, taker_acct, price, qty, aggressor, maker_rem, taker_rem):
    return Event(EventKind.TRADE, taker, SYM, aggressor_side=aggressor, maker_order_id=maker,
                 taker_order_id=taker, maker_account=maker_acct, taker_account=taker_acct,
                 price=price, quantity=qty, maker_remaining=maker_rem, taker_remaining=taker_rem)


def limit(eng, oid, acct, side, price, qty, tif=GTC, stp=INCOMING, post_only=False):
    return eng.submit(order_id=oid, account_id=acct, symbol_id=SYM, side=side,
                      order_type=OrderType.LIMIT, tif=tif, price=price, quantity=qty,
                      stp=stp, post_only=post_only)


def market(eng, oid, acct, side, qty, tif=IOC, stp=INCOMING):
    return eng.submit(order_id=oid, account_id=acct, symbol_id=SYM, side=side,
                      order_type=OrderType.MARKET, tif=tif, price=0, quantity=qty, stp=stp)


def modify(eng, oid, acct, price, qty, sym=SYM):
    return eng.modify(order_id=oid, account_id=acct, symbol_id=sym, price=price, quantity=qty)


def book(eng):
    return eng.depth(symbol_id=SYM, levels=100)


def queue(eng, side):
    bids, asks = eng.l3(symbol_id=SYM)
    return [o.order_id for o in (bids if side == BUY else asks)]


# ---- modify -------------------------------------------------------------------

def test_modify_reduce_keeps_priority(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    limit(eng, 2, 8, SELL, 100, 5)
    assert modify(eng, 1, 7, 100, 2) == [mod(1, 100, 2), done(1, S.NEW, 0, 2)]
    assert queue(eng, SELL) == [1, 2]
    assert book(eng) == ([], [Level(100, 7, 2)])


def test_modify_same_values_is_acknowledged_and_keeps_priority(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    limit(eng, 2, 8, SELL, 100, 5)
    assert modify(eng, 1, 7, 100, 5) == [mod(1, 100, 5), done(1, S.NEW, 0, 5)]
    assert queue(eng, SELL) == [1, 2]


def test_modify_increase_loses_priority(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    limit(eng, 2, 8, SELL, 100, 5)
    assert modify(eng, 1, 7, 100, 8) == [mod(1, 100, 8), done(1, S.NEW, 0, 8)]
    assert queue(eng, SELL) == [2, 1]
    assert book(eng) == ([], [Level(100, 13, 2)])


def test_modify_price_change_loses_priority_even_when_reducing(eng):
    limit(eng, 1, 7, BUY, 99, 5)
    limit(eng, 2, 8, BUY, 100, 5)
    assert modify(eng, 2, 8, 99, 4) == [mod(2, 99, 4), done(2, S.NEW, 0, 4)]
    assert queue(eng, BUY) == [1, 2]
    assert book(eng) == ([Level(99, 9, 2)], [])


def test_modify_to_crossing_price_trades_at_maker_price(eng):
    limit(eng, 1, 7, SELL, 101, 3)
    limit(eng, 2, 7, SELL, 102, 3)
    limit(eng, 3, 8, BUY, 99, 5)
    assert modify(eng, 3, 8, 102, 5) == [
        mod(3, 102, 5),
        trade(1, 3, 7, 8, 101, 3, BUY, 0, 2),
        trade(2, 3, 7, 8, 102, 2, BUY, 1, 0),
        done(3, S.FILLED, 5, 0),
    ]
    assert book(eng) == ([], [Level(102, 1, 1)])
    assert eng.order(3) is None


def test_modify_after_partial_fill_keeps_cumulative_filled(eng):
    limit(eng, 1, 7, SELL, 100, 10)
    limit(eng, 2, 8, BUY, 100, 4)
    assert modify(eng, 1, 7, 101, 10) == [mod(1, 101, 10), done(1, S.PARTIALLY_FILLED, 4, 10)]
    assert book(eng) == ([], [Level(101, 10, 1)])
    assert eng.cancel(order_id=1, account_id=7, symbol_id=SYM) == [
        cxl(1, 10, CancelReason.USER), done(1, S.CANCELLED, 4)]


def test_modify_of_unknown_filled_cancelled_or_foreign_order_is_rejected(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    limit(eng, 2, 8, BUY, 100, 5)          # fills 1
    limit(eng, 3, 7, SELL, 101, 5)
    limit(eng, 4, 7, SELL, 102, 5)
    eng.cancel(order_id=4, account_id=7, symbol_id=SYM)
    assert modify(eng, 42, 7, 100, 1) == [rej(42, R.UNKNOWN_ORDER)]
    assert modify(eng, 1, 7, 100, 1) == [rej(1, R.UNKNOWN_ORDER)]
    assert modify(eng, 4, 7, 100, 1) == [rej(4, R.UNKNOWN_ORDER)]
    assert modify(eng, 3, 8, 101, 1) == [rej(3, R.UNKNOWN_ORDER)]
    assert book(eng) == ([], [Level(101, 5, 1)])


def test_modify_with_bad_values_is_rejected_and_order_untouched(eng):
    limit(eng, 1, 7, SELL, 100, 5)
    assert modify(eng, 1, 7, 100, 0) == [rej(1, R.INVALID_QUANTITY)]
    assert modify(eng, 1, 7, 100, -1) == [rej(1, R.INVALID_QUANTITY)]
    assert modify(eng, 1, 7, 0, 5) == [rej(1, R.INVALID_PRICE)]
    assert modify(eng, 1, 7, MAX_PRICE + 1, 5) == [rej(1, R.INVALID_PRICE)]
    assert modify(eng, 1, 7, MAX_PRICE, 10**6) == [rej(1, R.NOTIONAL_OVERFLOW)]
    assert modify(eng, 1, 7, 2**70, 5) == [rej(1, R.INVALID_PRICE)]
    assert book(eng) == ([], [Level(100, 5, 1)])


def test_modify_into_own_order_with_cancel_incoming_cancels_the_modified_order(eng):
    limit(eng, 1, 7, SELL, 101, 3)
    limit(eng, 2, 7, BUY, 99, 5)
    assert modify(eng, 2, 7, 101, 5) == [
        mod(2, 101, 5), cxl(2, 5, STP_CXL), done(2, S.CANCELLED, 0)]
    assert book(eng) == ([], [Level(101, 3, 1)])


def test_modify_keeps_the_orders_own_stp_mode(eng):
    limit(eng, 1, 7, SELL, 101, 3)
    limit(eng, 2, 7, BUY, 99, 5, stp=RESTING)
    assert modify(eng, 2, 7, 101, 5) == [
        mod(2, 101, 5), cxl(1, 3, STP_CXL), done(1, S.CANCELLED), done(2, S.NEW, 0, 5)]
    assert book(eng) == ([Level(101, 5, 1)], [])


# ---- self-trade prevention ----------------------------------------------------

def test_stp_cancel_incoming_is_the_default(eng):
    limit(eng, 1, 7, SELL, 100, 2)
    assert eng.submit(order_id=2, account_id=7, symbol_id=SYM, side=BUY,
                      order_type=OrderType.LIMIT, tif=GTC, price=100, quantity=2) == [
        acc(2), cxl(2, 2, STP_CXL), done(2, S.CANCELLED)]
    assert book(eng) == ([], [Level(100, 2, 1)])


def test_stp_cancel_incoming_after_trading_with_others_first(eng):
    limit(eng, 1, 8, SELL, 100, 2)
    limit(eng, 2, 7, SELL, 101, 2)
    limit(eng, 3, 8, SELL, 101, 2)
    assert limit(eng, 4, 7, BUY, 101, 6) == [
        acc(4), trade(1, 4, 8, 7, 100, 2, BUY, 0, 4), cxl(4, 4, STP_CXL),
        done(4, S.CANCELLED, 2)]
    assert book(eng) == ([], [Level(101, 4, 2)])


def test_stp_cancel_resting_removes_own_orders_and_keeps_matching(eng):
    limit(eng, 1, 7, SELL, 100, 2)
    limit(eng, 2, 8, SELL, 100, 2)
    limit(eng, 3, 7, SELL, 101, 2)
    assert limit(eng, 4, 7, BUY, 101, 3, stp=RESTING) == [
        acc(4), cxl(1, 2, STP_CXL), done(1, S.CANCELLED),
        trade(2, 4, 8, 7, 100, 2, BUY, 0, 1),
        cxl(3, 2, STP_CXL), done(3, S.CANCELLED),
        done(4, S.PARTIALLY_FILLED, 2, 1)]
    assert book(eng) == ([Level(101, 1, 1)], [])


def test_stp_cancel_both(eng):
    limit(eng, 1, 7, SELL, 100, 2)
    limit(eng, 2, 8, SELL, 100, 2)
    assert limit(eng, 3, 7, BUY, 100, 3, stp=BOTH) == [
        acc(3), cxl(1, 2, STP_CXL), done(1, S.CANCELLED), cxl(3, 3, STP_CXL),
        done(3, S.CANCELLED)]
    assert book(eng) == ([], [Level(100, 2, 1)])


def test_stp_with_market_order(eng):
    limit(eng, 1, 8, BUY, 100, 1)
    limit(eng, 2, 7, BUY, 99, 5)
    assert market(eng, 3, 7, SELL, 4) == [
        acc(3), trade(1, 3, 8, 7, 100, 1, SELL, 0, 3), cxl(3, 3, STP_CXL),
        done(3, S.CANCELLED, 1)]
    assert book(eng) == ([Level(99, 5, 1)], [])


def test_stp_ioc_cancel_resting_then_ioc_remainder(eng):
    limit(eng, 1, 7, BUY, 100, 5)
    assert limit(eng, 2, 7, SELL, 100, 3, tif=IOC, stp=RESTING) == [
        acc(2), cxl(1, 5, STP_CXL), done(1, S.CANCELLED), cxl(2, 3, CancelReason.IOC_REMAINDER),
        done(2, S.CANCELLED)]
    assert book(eng) == ([], [])


def test_stp_fok_counts_only_what_would_really_fill(eng):
    limit(eng, 1, 8, SELL, 100, 2)
    limit(eng, 2, 7, SELL, 100, 5)
    limit(eng, 3, 8, SELL, 100, 5)
    # Default: matching stops at order 2, only 2 reachable: killed, book untouched.
    assert limit(eng, 4, 7, BUY, 100, 3, tif=FOK) == [
        acc(4), cxl(4, 3, CancelReason.FOK_UNFILLABLE), done(4, S.CANCELLED)]
    assert book(eng) == ([], [Level(100, 12, 3)])
    # CANCEL_RESTING skips own order 2: 7 reachable, but 8 wanted: killed, 2 still rests.
    assert limit(eng, 5, 7, BUY, 100, 8, tif=FOK, stp=RESTING) == [
        acc(5), cxl(5, 8, CancelReason.FOK_UNFILLABLE), done(5, S.CANCELLED)]
    assert queue(eng, SELL) == [1, 2, 3]
    assert limit(eng, 6, 7, BUY, 100, 7, tif=FOK, stp=RESTING) == [
        acc(6), trade(1, 6, 8, 7, 100, 2, BUY, 0, 5), cxl(2, 5, STP_CXL), done(2, S.CANCELLED),
        trade(3, 6, 8, 7, 100, 5, BUY, 0, 0), done(6, S.FILLED, 7)]


def test_invalid_stp_mode_is_rejected(eng):
    assert limit(eng, 1, 7, BUY, 100, 1, stp=0) == [
        rej(1, R.INVALID_SELF_TRADE_PREVENTION), done(1, S.REJECTED)]
    assert limit(eng, 1, 7, BUY, 100, 1, stp=4) == [
        rej(1, R.INVALID_SELF_TRADE_PREVENTION), done(1, S.REJECTED)]


# ---- post-only ------------------------------------------------------------------

def test_post_only_rests_when_passive(eng):
    limit(eng, 1, 7, SELL, 101, 2)
    assert limit(eng, 2, 8, BUY, 100, 3, post_only=True) == [acc(2), done(2, S.NEW, 0, 3)]


def test_post_only_that_would_take_is_rejected_and_id_not_consumed(eng):
    limit(eng, 1, 7, SELL, 101, 2)
    assert limit(eng, 2, 8, BUY, 102, 3, post_only=True) == [
        rej(2, R.WOULD_TAKE_LIQUIDITY), done(2, S.REJECTED)]
    assert book(eng) == ([], [Level(101, 2, 1)])
    assert limit(eng, 2, 8, BUY, 100, 3) == [acc(2), done(2, S.NEW, 0, 3)]


def test_post_only_is_rejected_even_against_own_order(eng):
    limit(eng, 1, 7, SELL, 101, 2)
    assert limit(eng, 2, 7, BUY, 101, 3, post_only=True) == [
        rej(2, R.WOULD_TAKE_LIQUIDITY), done(2, S.REJECTED)]


def test_post_only_needs_limit_gtc(eng):
    assert limit(eng, 1, 7, BUY, 100, 3, tif=IOC, post_only=True) == [
        rej(1, R.INVALID_POST_ONLY), done(1, S.REJECTED)]
    assert eng.submit(order_id=2, account_id=7, symbol_id=SYM, side=BUY,
                      order_type=OrderType.MARKET, tif=IOC, price=0, quantity=1,
                      post_only=True) == [rej(2, R.INVALID_POST_ONLY), done(2, S.REJECTED)]


def test_post_only_modify_that_would_take_is_rejected(eng):
    limit(eng, 1, 7, SELL, 101, 2)
    limit(eng, 2, 8, BUY, 100, 3, post_only=True)
    assert modify(eng, 2, 8, 101, 3) == [rej(2, R.WOULD_TAKE_LIQUIDITY)]
    assert modify(eng, 2, 8, 100, 9) == [mod(2, 100, 9), done(2, S.NEW, 0, 9)]
    assert book(eng) == ([Level(100, 9, 1)], [Level(101, 2, 1)])


# ---- instrument rules -------------------------------------------------------------

@pytest.fixture
def ruled(eng):
    eng.set_instrument(symbol_id=SYM, tick_size=5, lot_size=10, min_quantity=20,
                       max_quantity=1000, band_percent=10, reference_price=1000)
    return eng


@pytest.mark.parametrize("price,qty,reason", [
    (1001, 20, R.PRICE_NOT_ON_TICK),
    (1000, 25, R.QUANTITY_NOT_ON_LOT),
    (1000, 10, R.QUANTITY_BELOW_MIN),
    (1000, 1010, R.QUANTITY_ABOVE_MAX),
    (1105, 20, R.PRICE_OUTSIDE_BAND),
    (895, 20, R.PRICE_OUTSIDE_BAND),
    (1003, 5, R.PRICE_NOT_ON_TICK),   # several problems: the first check wins
    (0, 20, R.INVALID_PRICE),          # global validation comes first
])
def test_instrument_rejects(ruled, price, qty, reason):
    assert limit(ruled, 1, 7, BUY, price, qty) == [rej(1, reason), done(1, S.REJECTED)]
    assert book(ruled) == ([], [])


def test_instrument_band_edges_are_inclusive(ruled):
    assert limit(ruled, 1, 7, BUY, 900, 20) == [acc(1), done(1, S.NEW, 0, 20)]
    assert limit(ruled, 2, 8, SELL, 1100, 1000) == [acc(2), done(2, S.NEW, 0, 1000)]


def test_instrument_market_orders_check_quantity_only(ruled):
    limit(ruled, 1, 7, SELL, 1100, 20)
    assert market(ruled, 2, 8, BUY, 15) == [rej(2, R.QUANTITY_NOT_ON_LOT), done(2, S.REJECTED)]
    assert market(ruled, 3, 8, BUY, 20) == [
        acc(3), trade(1, 3, 7, 8, 1100, 20, BUY, 0, 0), done(3, S.FILLED, 20)]


def test_instrument_rules_on_modify(ruled):
    limit(ruled, 1, 7, BUY, 900, 30)
    assert modify(ruled, 1, 7, 900, 10) == [mod(1, 900, 10), done(1, S.NEW, 0, 10)]  # below min ok
    assert modify(ruled, 1, 7, 900, 5) == [rej(1, R.QUANTITY_NOT_ON_LOT)]
    assert modify(ruled, 1, 7, 902, 10) == [rej(1, R.PRICE_NOT_ON_TICK)]
    assert modify(ruled, 1, 7, 900, 2000) == [rej(1, R.QUANTITY_ABOVE_MAX)]
    ruled.set_reference_price(symbol_id=SYM, price=2000)
    # A pure reduce ignores the (moved) band; a new price must be inside it.
    assert modify(ruled, 1, 7, 900, 10) == [mod(1, 900, 10), done(1, S.NEW, 0, 10)]
    assert modify(ruled, 1, 7, 905, 10) == [rej(1, R.PRICE_OUTSIDE_BAND)]
    assert modify(ruled, 1, 7, 1800, 10) == [mod(1, 1800, 10), done(1, S.NEW, 0, 10)]


def test_instrument_band_off_with_zero_reference(eng):
    eng.set_instrument(symbol_id=SYM, band_percent=5)
    assert limit(eng, 1, 7, BUY, MAX_PRICE, 1) == [acc(1), done(1, S.NEW, 0, 1)]
    assert eng.instrument(symbol_id=SYM) == Instrument(band_percent=5)


@pytest.mark.parametrize("kwargs", [
    dict(tick_size=0), dict(lot_size=-1), dict(min_quantity=0),
    dict(min_quantity=10, max_quantity=5), dict(max_quantity=10**13), dict(band_percent=-1),
    dict(band_percent=1001), dict(reference_price=-5), dict(reference_price=2**80),
])
def test_invalid_instrument_raises(eng, kwargs):
    with pytest.raises(ValueError):
        eng.set_instrument(symbol_id=SYM, **kwargs)
    assert eng.instrument(symbol_id=SYM) == Instrument()


# ---- L3, snapshot ------------------------------------------------------------------

def test_l3_lists_orders_in_priority_order(eng):
    limit(eng, 1, 7, BUY, 100, 1)
    limit(eng, 2, 8, BUY, 101, 2)
    limit(eng, 3, 9, BUY, 100, 3)
    limit(eng, 4, 9, SELL, 105, 4)
    assert eng.l3(symbol_id=SYM) == (
        [L3Order(2, 8, 101, 2), L3Order(1, 7, 100, 1), L3Order(3, 9, 100, 3)],
        [L3Order(4, 9, 105, 4)])
    assert eng.l3(symbol_id=99) == ([], [])


def test_snapshot_restore_roundtrip(eng):
    eng.set_instrument(symbol_id=SYM, tick_size=1, band_percent=50, reference_price=100)
    limit(eng, 1, 7, BUY, 100, 5)
    limit(eng, 2, 8, BUY, 100, 5, stp=BOTH)
    limit(eng, 3, 9, SELL, 110, 4, post_only=True)
    limit(eng, 4, 9, SELL, 100, 1)
    limit(eng, 5, 9, SELL, 111, 1)
    eng.cancel(order_id=5, account_id=9, symbol_id=SYM)
    other = type(eng).restore(eng.snapshot())
    assert other.l3(symbol_id=SYM) == eng.l3(symbol_id=SYM)
    assert other.event_hash() == eng.event_hash()
    assert other.instrument(symbol_id=SYM) == eng.instrument(symbol_id=SYM)
    if isinstance(eng, Engine):
        assert other.snapshot() == eng.snapshot()
    # Priority, fills so far, stp and post-only flags survive.
    assert limit(other, 6, 7, SELL, 100, 6) == limit(eng, 6, 7, SELL, 100, 6)
    assert modify(other, 3, 9, 100, 4) == modify(eng, 3, 9, 100, 4)
    # Only live ids survive: 5 (cancelled) may be used again after restore.
    assert limit(other, 5, 9, SELL, 120, 1) == [acc(5), done(5, S.NEW, 0, 1)]
    assert limit(other, 3, 9, SELL, 120, 1)[0] == rej(3, R.DUPLICATE_ORDER_ID)


def test_restore_rejects_garbage():
    data = Engine().snapshot()
    with pytest.raises(ValueError):
        Engine.restore(data[:-1])
    with pytest.raises(ValueError):
        Engine.restore(b"garbage")


# ---- packed batch API -------------------------------------------------------------

def test_execute_packed_matches_object_api():
    cmds = np.zeros(6, dtype=COMMAND_DTYPE)
    rows = [
        (OP_SUBMIT, SELL, 1, 1, 0, 0, 1, 7, 101, 5),
        (OP_SUBMIT, SELL, 1, 1, 0, 0, 2, 7, 102, 5),
        (OP_SUBMIT, BUY, 1, 1, 0, 0, 3, 8, 101, 3),
        (OP_MODIFY, 0, 0, 0, 0, 0, 2, 7, 101, 4),
        (OP_CANCEL, 0, 0, 0, 0, 0, 1, 7, 0, 0),
        (OP_SUBMIT, BUY, 2, 2, 2, 0, 4, 7, 0, 10),
    ]
    for i, (op, side, ot, tif, stp, po, oid, acct, px, qty) in enumerate(rows):
        cmds[i] = (op, side, ot, tif, stp, po, 0, SYM, 0, oid, acct, px, qty, 0, 0)
    packed = Engine()
    out = packed.execute_packed(cmds)
    objs = Engine()
    expected = []
    expected += limit(objs, 1, 7, SELL, 101, 5)
    expected += limit(objs, 2, 7, SELL, 102, 5)
    expected += limit(objs, 3, 8, BUY, 101, 3)
    expected += modify(objs, 2, 7, 101, 4)
    expected += objs.cancel(order_id=1, account_id=7, symbol_id=SYM)
    expected += market(objs, 4, 7, BUY, 10, stp=RESTING)
    assert raw_events(out) == [event_to_raw(e) for e in expected]
    assert packed.event_hash() == objs.event_hash()
    # bytes in work too, and the reference agrees.
    assert raw_events(Engine().execute_packed(cmds.tobytes())) == raw_events(out)
    assert raw_events(ReferenceEngine().execute_packed(cmds)) == raw_events(out)
    # The 48-byte layout from before icebergs (no display quantity) still runs alike.
    legacy = np.zeros(len(cmds), dtype=COMMAND_DTYPE_V1)
    for name in COMMAND_DTYPE_V1.names:
        legacy[name] = cmds[name]
    assert raw_events(Engine().execute_packed(legacy)) == raw_events(out)
    assert raw_events(ReferenceEngine().execute_packed(legacy)) == raw_events(out)


def test_execute_packed_refuses_bad_input_before_running_anything():
    eng = Engine()
    cmds = np.zeros(2, dtype=COMMAND_DTYPE)
    cmds[0] = (OP_SUBMIT, BUY, 1, 1, 0, 0, 0, SYM, 0, 1, 7, 100, 1, 0, 0)
    cmds[1]["op"] = 9
    with pytest.raises(ValueError):
        eng.execute_packed(cmds)
    assert eng.live_orders() == 0
    with pytest.raises(ValueError):
        eng.execute_packed(b"\x01" * 47)
    with pytest.raises(ValueError):
        eng.execute_packed(np.zeros(3, dtype="u8"))
    assert len(eng.execute_packed(np.zeros(0, dtype=COMMAND_DTYPE))) == 0


def test_an_engine_sized_ahead_acts_as_one_that_grows():
    """expected_orders only sizes the pool and the id index: past it they grow, and the
    events, duplicates refused within the id window, snapshot and restore are the same."""
    grown, sized = Engine(id_window=64), Engine(id_window=64, expected_orders=5_000)
    for order_id in range(1, 3_000):  # past both sizes: 1,024 and a window of 64 done
        order = {"order_id": order_id, "account_id": order_id % 7, "symbol_id": 1 + order_id % 3,
                 "side": Side.BUY if order_id % 2 else Side.SELL, "order_type": OrderType.LIMIT,
                 "tif": TimeInForce.GTC, "price": 100 + order_id % 5, "quantity": 1 + order_id % 4}
        assert grown.submit(**order) == sized.submit(**order)
    again = {"account_id": 1, "symbol_id": 1, "side": Side.BUY, "order_type": OrderType.LIMIT,
             "tif": TimeInForce.GTC, "price": 90, "quantity": 1}
    for order_id in (2_999, 2_990, 5):  # working, done within the window, done and forgotten
        assert grown.submit(order_id=order_id, **again) == sized.submit(order_id=order_id, **again)
    assert grown.snapshot() == sized.snapshot()
    restored = Engine.restore(sized.snapshot(), id_window=64, expected_orders=5_000)
    assert restored.snapshot() == sized.snapshot()
