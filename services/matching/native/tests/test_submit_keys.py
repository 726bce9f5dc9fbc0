"""submit_keys against client_ids.py's definitions: the same digests for any submit."""

from __future__ import annotations

import pytest
from _matching_native import submit_keys
from bourse.matching.v1 import matching_service_pb2 as m
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.client_ids import key_digest, request_hash

INT64 = st.integers(-(2**63), 2**63 - 1)
ENUM = st.integers(0, 2**31 - 1)


# No deadline: on a shared 2-core CI machine under a parallel test run, one example can
# take longer than hypothesis's default 200 ms for reasons that are not the code's.
@settings(deadline=None)
@given(account_id=INT64, symbol=st.text(max_size=12), client_order_id=st.text(max_size=40), side=ENUM,
       order_type=ENUM, time_in_force=ENUM, price=INT64, quantity=INT64, post_only=st.booleans(),
       stp=st.sampled_from([0, 1, 2, 3]) | ENUM, display=st.just(0) | INT64, stop_price=st.just(0) | INT64,
       expire_us=st.just(0) | INT64)
def test_the_digests_are_client_ids_digests(account_id, symbol, client_order_id, side, order_type, time_in_force,
                                             price, quantity, post_only, stp, display, stop_price, expire_us):
    order = m.NewOrder(order_id=1, account_id=account_id, symbol=symbol, client_order_id=client_order_id,
                       side=side, order_type=order_type, time_in_force=time_in_force, price=price,
                       quantity=quantity, post_only=post_only, self_trade_prevention=stp, display_quantity=display,
                       stop_price=stop_price, expire_time_us=expire_us)
    gtd_expire_us = expire_us if time_in_force == 4 else 0  # only a GTD's own time counts
    digest, fingerprint = submit_keys(order.account_id, order.symbol, order.client_order_id, order.side,
                                      order.order_type, order.time_in_force, order.price, order.quantity,
                                      order.post_only, order.self_trade_prevention, display, stop_price, gtd_expire_us)
    assert fingerprint == request_hash(order)
    if not (display or stop_price or gtd_expire_us):  # as before they existed
        assert fingerprint == submit_keys(order.account_id, order.symbol, order.client_order_id, order.side,
                                          order.order_type, order.time_in_force, order.price, order.quantity,
                                          order.post_only, order.self_trade_prevention)[1]
    assert digest == (key_digest((account_id, symbol, client_order_id)) if client_order_id else 0)


def test_a_worked_example():
    # Fixed values: snapshots and the journal keep these, so neither definition (Python's
    # or this one) may drift.
    expected = (56848865842028167213701229479949633370, 3441745046986689721)
    assert submit_keys(7, "AAPL", "c-1", 1, 1, 1, 10_050, 10, False, 0) == expected
    assert (key_digest((7, "AAPL", "c-1")), request_hash(m.NewOrder(
        symbol="AAPL", side=1, order_type=1, time_in_force=1, price=10_050, quantity=10))) == expected
    assert submit_keys(7, "AAPL", "", 1, 1, 1, 10_050, 10, False, 0)[0] == 0
    assert submit_keys(7, "AAPL", "c-1", 1, 1, 1, 10_050, 10, False, 0, 0, 0, 0) == expected
    # A stop price, a display quantity or a GTD's time makes it another request.
    assert len({submit_keys(7, "AAPL", "c-1", 4, 1, 4, 0, 10, False, 0, *extra)[1]
                for extra in ((0, 0, 0), (2, 0, 0), (0, 105, 0), (0, 0, 1_900_000_000_000_000))}) == 4


@pytest.mark.parametrize("args, error", [
    ((7, "AAPL", "c-1"), TypeError),
    ((7, b"AAPL", "c-1", 1, 1, 1, 1, 1, False, 0), TypeError),
    ((7, "AAPL", None, 1, 1, 1, 1, 1, False, 0), TypeError),
    ((7.0, "AAPL", "c", 1, 1, 1, 1, 1, False, 0), TypeError),
    ((2**64, "AAPL", "c", 1, 1, 1, 1, 1, False, 0), OverflowError),
])
def test_malformed_arguments_are_python_errors(args, error):
    with pytest.raises(error):
        submit_keys(*args)
