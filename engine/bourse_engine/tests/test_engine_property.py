"""The C++ engine must agree with the pure-Python reference on every event, the
book and the event hash, for random streams of orders and cancels."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bourse_engine import MAX_PRICE, MAX_QUANTITY, Engine, OrderType, Side, TimeInForce
from bourse_engine.reference import ReferenceEngine

SYMBOLS = (1, 2)
ACCOUNTS = (1, 2, 3)
MAX_ID = 60  # small, so ids collide (duplicates) and cancels hit real orders

# Mostly valid values in a narrow price band (so orders cross), sometimes junk.
sides = st.one_of(st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from([0, 3, 255]))
prices = st.one_of(st.integers(95, 105), st.sampled_from([0, -1, MAX_PRICE, MAX_PRICE + 1]))
quantities = st.one_of(st.integers(1, 12), st.sampled_from([0, -3, MAX_QUANTITY, 2**63]))

limit_orders = st.fixed_dictionaries(dict(
    order_id=st.integers(0, MAX_ID), account_id=st.sampled_from(ACCOUNTS),
    symbol_id=st.sampled_from(SYMBOLS), side=sides, order_type=st.just(OrderType.LIMIT),
    tif=st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK, 0]),
    price=prices, quantity=quantities))
market_orders = st.fixed_dictionaries(dict(
    order_id=st.integers(0, MAX_ID), account_id=st.sampled_from(ACCOUNTS),
    symbol_id=st.sampled_from(SYMBOLS), side=sides, order_type=st.just(OrderType.MARKET),
    tif=st.sampled_from(list(TimeInForce)), price=st.sampled_from([0, 0, 0, 100]),
    quantity=quantities))
cancels = st.fixed_dictionaries(dict(
    order_id=st.integers(0, MAX_ID), account_id=st.sampled_from(ACCOUNTS),
    symbol_id=st.sampled_from(SYMBOLS)))

commands = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), limit_orders),
        st.tuples(st.just("submit"), market_orders),
        st.tuples(st.just("cancel"), cancels),
    ),
    max_size=80,
)


def assert_same_state(cpp, ref):
    for sym in SYMBOLS:
        assert cpp.depth(symbol_id=sym, levels=1000) == ref.depth(symbol_id=sym, levels=1000)
    for oid in range(MAX_ID + 1):
        assert cpp.order(oid) == ref.order(oid)
    assert cpp.live_orders() == ref.live_orders()
    assert cpp.event_hash() == ref.event_hash()


# database=None: no .hypothesis/ directory in the work tree or runfiles.
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_engine_matches_reference(stream):
    cpp, ref = Engine(), ReferenceEngine()
    for op, args in stream:
        assert getattr(cpp, op)(**args) == getattr(ref, op)(**args), (op, args)
    assert_same_state(cpp, ref)


def random_stream(rng: random.Random, n: int):
    """Longer, deeper books than hypothesis builds: many levels and long FIFOs."""
    next_id = 0
    live = []
    for _ in range(n):
        r = rng.random()
        if r < 0.25 and live:
            oid, acct, sym = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.1:
                acct = rng.choice(ACCOUNTS)  # sometimes someone else's order
            yield "cancel", dict(order_id=oid, account_id=acct, symbol_id=sym)
            continue
        next_id += 1
        oid = next_id if rng.random() > 0.02 else rng.randrange(1, next_id + 1)
        acct, sym = rng.choice(ACCOUNTS), rng.choice(SYMBOLS)
        market = r > 0.93
        yield "submit", dict(
            order_id=oid, account_id=acct, symbol_id=sym, side=rng.choice([1, 2]),
            order_type=OrderType.MARKET if market else OrderType.LIMIT,
            tif=rng.choice([1, 1, 1, 1, 2, 3]), price=0 if market else rng.randint(90, 110),
            quantity=rng.randint(1, 30))
        live.append((oid, acct, sym))


def test_long_random_streams_match_reference():
    for seed in range(3):
        rng = random.Random(seed)
        cpp, ref = Engine(), ReferenceEngine()
        for i, (op, args) in enumerate(random_stream(rng, 3000)):
            assert getattr(cpp, op)(**args) == getattr(ref, op)(**args), (seed, i, op, args)
        for sym in SYMBOLS:
            assert cpp.depth(symbol_id=sym, levels=1000) == ref.depth(symbol_id=sym, levels=1000)
        assert cpp.live_orders() == ref.live_orders()
        assert cpp.event_hash() == ref.event_hash()
