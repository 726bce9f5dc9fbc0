"""The order mix: deterministic per seed, always valid, prices > 0, shares as documented."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.workload import (
    BUY, GTC, IOC, LIMIT, MARKET, NEW, PARTIALLY_FILLED, FILLED, SELL, Cancel, ClientWorkload, Market, Mix,
    Modify, Submit, initial_mid, problems,
)

SYMBOLS = ("AAPL", "IBM", "TSLA", "ZM")


def drive(seed: int, calls: int, mix: Mix = Mix(), rest_every: int = 2, symbols=SYMBOLS):
    market = Market(symbols, mix)
    work = ClientWorkload(3, "run1", market, random.Random(seed))
    out = []
    for n in range(calls):
        call = work.next()
        out.append(call)
        if isinstance(call, Submit) and n % rest_every == 0:
            status = NEW if call.order_type == LIMIT else FILLED
            work.on_submitted(10_000 + n, call.symbol, status, call.quantity if status == NEW else 0)
    return out, market


def test_same_seed_same_stream_other_seed_other_stream():
    assert drive(7, 500)[0] == drive(7, 500)[0]
    assert drive(7, 500)[0] != drive(8, 500)[0]


def test_every_call_is_valid_and_priced_above_zero():
    calls, _ = drive(1, 5000)
    for call in calls:
        assert problems(call, SYMBOLS) == [], call
        if isinstance(call, Submit) and call.order_type == LIMIT:
            assert call.price > 0


def test_mix_shares_and_crossing_prices():
    calls, market = drive(2, 20000)
    kinds = Counter("cancel" if isinstance(c, Cancel) else ("market" if c.order_type == MARKET else "limit")
                    for c in calls)
    assert 0.07 < kinds["market"] / len(calls) < 0.13
    assert 0.07 < kinds["cancel"] / len(calls) < 0.13
    limits = [c for c in calls if isinstance(c, Submit) and c.order_type == LIMIT]
    assert all(c.time_in_force == GTC and 1 <= c.quantity <= 10 for c in limits)
    assert {c.side for c in limits} == {BUY, SELL}
    markets = [c for c in calls if isinstance(c, Submit) and c.order_type == MARKET]
    assert all(c.time_in_force == IOC and c.price == 0 and 1 <= c.quantity <= 5 for c in markets)
    # Buys and sells overlap in price around the mid, so they can trade.
    aapl = [c for c in limits if c.symbol == "AAPL"]
    assert max(c.price for c in aapl if c.side == BUY) > min(c.price for c in aapl if c.side == SELL)
    assert {c.symbol for c in limits} == set(SYMBOLS)


def test_client_order_ids_unique_and_cancels_only_own_resting_orders():
    calls, _ = drive(3, 3000)
    ids = [c.client_order_id for c in calls if isinstance(c, Submit)]
    assert len(ids) == len(set(ids))
    assert ids[0] == "run1-3-1"
    cancelled = [c.order_id for c in calls if isinstance(c, Cancel)]
    assert cancelled and len(cancelled) == len(set(cancelled))  # each resting order cancelled once
    assert all(order_id >= 10_000 for order_id in cancelled)


def test_no_resting_orders_means_no_cancels():
    market = Market(SYMBOLS)
    work = ClientWorkload(0, "r", market, random.Random(0))
    assert not any(isinstance(work.next(), Cancel) for _ in range(500))


def test_only_open_orders_with_leaves_become_cancel_candidates():
    work = ClientWorkload(0, "r", Market(SYMBOLS), random.Random(0))
    work.on_submitted(1, "AAPL", FILLED, 0)
    work.on_submitted(2, "AAPL", NEW, 5)
    work.on_submitted(3, "IBM", PARTIALLY_FILLED, 2)
    assert work.resting == {2: "AAPL", 3: "IBM"}
    small = ClientWorkload(0, "r", Market(SYMBOLS, Mix(max_resting=2)), random.Random(0))
    for order_id in range(5):
        small.on_submitted(order_id, "ZM", NEW, 1)
    assert list(small.resting) == [3, 4]


def test_mid_never_drops_below_band():
    mix = Mix(band_ticks=5)
    market = Market(("A",), mix, mids={"A": 7})
    work = ClientWorkload(0, "r", market, random.Random(5))
    for _ in range(3000):
        call = work.next()
        assert not (isinstance(call, Submit) and call.order_type == LIMIT and call.price <= 0)
    assert market.mids["A"] >= 6


def test_initial_mid_is_stable_and_positive():
    assert initial_mid("AAPL") == initial_mid("AAPL")
    assert all(1000 <= initial_mid(s) < 21000 for s in SYMBOLS)


def test_bad_mix_refused():
    with pytest.raises(ValueError):
        Mix(market_share=0.7, cancel_share=0.5)
    with pytest.raises(ValueError):
        Market(())


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), band=st.integers(0, 50), market_share=st.floats(0, 0.5),
       cancel_share=st.floats(0, 0.5), symbols=st.lists(st.sampled_from(["A", "B1", "KO", "V"]), min_size=1,
                                                        unique=True))
def test_any_mix_produces_valid_calls(seed, band, market_share, cancel_share, symbols):
    mix = Mix(market_share=market_share, cancel_share=cancel_share, band_ticks=band)
    calls, _ = drive(seed, 300, mix, symbols=tuple(symbols))
    assert all(problems(c, symbols) == [] for c in calls)


def test_problems_catches_invalid_calls():
    assert problems(Submit("", "AAPL", BUY, LIMIT, GTC, 1, 1), SYMBOLS)
    assert problems(Submit("x", "NOPE", BUY, LIMIT, GTC, 1, 1), SYMBOLS)
    assert problems(Submit("x", "AAPL", BUY, LIMIT, GTC, 0, 1), SYMBOLS)
    assert problems(Submit("x", "AAPL", BUY, MARKET, GTC, 0, 1), SYMBOLS)
    assert problems(Submit("x", "AAPL", BUY, MARKET, IOC, 5, 1), SYMBOLS)
    assert problems(Submit("x", "AAPL", BUY, LIMIT, GTC, 5, 0), SYMBOLS)
    assert problems(Cancel(0, "AAPL"), SYMBOLS)


def test_the_default_mix_has_no_modifies():
    calls, _ = drive(4, 3000)
    assert not any(isinstance(c, Modify) for c in calls)


def test_modifies_take_their_share_from_limits_and_raise_the_quantity_each_time():
    mix = Mix(modify_share=0.2)
    calls, _ = drive(5, 20000, mix=mix)
    kinds = Counter(type(c).__name__ for c in calls)
    assert 0.16 < kinds["Modify"] / len(calls) < 0.24
    assert 0.07 < kinds["Cancel"] / len(calls) < 0.13
    assert all(problems(c, SYMBOLS) == [] for c in calls)
    modifies = [c for c in calls if isinstance(c, Modify)]
    assert all(c.order_id >= 10_000 and c.price > 0 for c in modifies)
    # Each modify of an order asks for more lots than the one before it.
    last: dict[int, int] = {}
    for c in modifies:
        assert c.quantity > last.get(c.order_id, 0)
        last[c.order_id] = c.quantity


def test_an_order_that_stopped_resting_is_no_longer_modified_or_cancelled():
    work = ClientWorkload(0, "r", Market(SYMBOLS, Mix(modify_share=1.0, cancel_share=0.0, market_share=0.0)),
                          random.Random(0))
    work.on_submitted(7, "AAPL", NEW, 5, quantity=5)
    call = work.next()
    assert isinstance(call, Modify) and call.order_id == 7 and call.quantity in (6, 7, 8)
    work.on_submitted(7, "AAPL", FILLED, 0)  # the modify's answer: it traded away
    assert isinstance(work.next(), Submit)


def test_a_mix_beyond_one_is_refused():
    with pytest.raises(ValueError):
        Mix(market_share=0.5, cancel_share=0.3, modify_share=0.3)
