"""order_bytes against the protobuf runtime: the same Order, byte for byte."""

from __future__ import annotations

import pytest
from _matching_native import order_bytes
from bourse.type.v1 import types_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

INT64 = st.integers(-(2**63), 2**63 - 1)
ENUM = st.integers(0, 2**31 - 1)
TEXT = st.text(max_size=40)
ROWS = st.tuples(INT64, INT64, st.none() | TEXT, TEXT, ENUM, ENUM, ENUM, ENUM, INT64, INT64, INT64, INT64, TEXT,
                 INT64, INT64, INT64, st.integers(0, 1), INT64, INT64)
FILLS = st.lists(st.tuples(INT64, INT64, INT64, st.booleans(), INT64), max_size=4)


def timestamp(us: int) -> dict:
    return {"seconds": us // 1_000_000, "nanos": us % 1_000_000 * 1000}


def by_the_runtime(row, fills) -> bytes:
    (order_id, account_id, client_order_id, symbol, side, order_type, time_in_force, status, price, quantity,
     filled, leaves, reason, create_us, update_us, stop_price, triggered, display, expire_us) = row
    order = types_pb2.Order(
        order_id=order_id, client_order_id=client_order_id or "", account_id=account_id, symbol=symbol,
        side=side, order_type=order_type, time_in_force=time_in_force, price=price, quantity=quantity,
        filled_quantity=filled, leaves_quantity=leaves, status=status, reason=reason,
        create_time=timestamp(create_us), update_time=timestamp(update_us), stop_price=stop_price,
        triggered=bool(triggered), display_quantity=display)
    if expire_us:  # unset when 0
        order.expire_time.CopyFrom(Timestamp(**timestamp(expire_us)))
    for trade_id, price, quantity, maker, time_us in fills:
        order.fills.add(trade_id=trade_id, price=price, quantity=quantity, maker=maker, time=timestamp(time_us))
    return order.SerializeToString()


# No deadline: on a shared 2-core CI machine under a parallel test run, one example can
# take longer than hypothesis's default 200 ms for reasons that are not the code's.
@settings(deadline=None)
@given(ROWS, FILLS)
def test_an_order_is_written_as_the_protobuf_runtime_writes_it(row, fills):
    assert order_bytes(row, fills) == by_the_runtime(row, fills)


def test_a_worked_example_decodes_to_its_fields():
    row = (7, 42, "c-1", "AAPL", 1, 4, 1, 2, 10_050, 10, 4, 6, "", 1_733_234_234_123_456, 1_733_234_234_123_457,
           10_000, 1, 2, 1_733_300_000_000_001)
    order = types_pb2.Order.FromString(order_bytes(row, [(99, 10_050, 4, False, 1_733_234_234_123_457)]))
    assert (order.order_id, order.client_order_id, order.account_id, order.symbol) == (7, "c-1", 42, "AAPL")
    assert (order.filled_quantity, order.leaves_quantity, order.status) == (4, 6, types_pb2.ORDER_STATUS_PARTIALLY_FILLED)
    assert (order.create_time.seconds, order.create_time.nanos) == (1_733_234_234, 123_456_000)
    assert (order.order_type, order.stop_price, order.triggered) == (types_pb2.ORDER_TYPE_STOP_LIMIT, 10_000, True)
    assert (order.display_quantity, order.expire_time.seconds, order.expire_time.nanos) == (2, 1_733_300_000, 1000)
    assert [(f.trade_id, f.price, f.quantity, f.maker, f.time.nanos) for f in order.fills] == [
        (99, 10_050, 4, False, 123_457_000)]
    assert order_bytes(row) == order_bytes(row, ())


@pytest.mark.parametrize("row, fills, error", [
    ((1, 2), (), TypeError),  # not the 19 columns
    ((1, 2, None, "S", 1, 1, 1, 1, 1, 1, 0, 1, "", 0, 0.5, 0, 0, 0, 0), (), TypeError),  # a float time
    ((1, 2, None, b"S", 1, 1, 1, 1, 1, 1, 0, 1, "", 0, 0, 0, 0, 0, 0), (), TypeError),  # a bytes symbol
    ((2**63, 2, None, "S", 1, 1, 1, 1, 1, 1, 0, 1, "", 0, 0, 0, 0, 0, 0), (), OverflowError),
    ((1, 2, None, "S", 1, 1, 1, 1, 1, 1, 0, 1, "", 0, 0, 0, 0, 0, 0), [(1, 2, 3)], TypeError),  # a short fill
    ((1, 2, None, "S", 1, 1, 1, 1, 1, 1, 0, 1, "", 0, 0, 0, 0, 0, 0), 5, TypeError),  # fills not a sequence
])
def test_a_malformed_row_or_fill_is_a_python_error_not_a_crash(row, fills, error):
    with pytest.raises(error):
        order_bytes(row, fills)
