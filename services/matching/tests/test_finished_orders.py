"""The shard's memory of finished orders (finished_orders.py): what it answers, against a
plain dict of the latest `capacity` orders, and that it forgets the oldest chunk."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.type.v1 import types_pb2 as t
from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.matching.finished_orders import FinishedOrders
from services.matching.shard import MatchingShard

FILLED, CANCELLED = t.ORDER_STATUS_FILLED, t.ORDER_STATUS_CANCELLED


def test_answers_from_the_open_chunk_and_from_frozen_ones():
    memory = FinishedOrders(capacity=8, chunk=4)
    memory.add(1_000, account_id=7, book=3, status=FILLED)
    assert memory.get(1_000) == (7, 3, FILLED)  # still in the chunk being filled
    for order_id in (1_003, 1_001, 1_002):  # finishing out of id order, as makers do
        memory.add(order_id, account_id=2**62, book=70_000, status=CANCELLED)
    assert len(memory) == 4
    assert memory.get(1_000) == (7, 3, FILLED)  # frozen: sorted arrays now
    assert memory.get(1_001) == (2**62, 70_000, CANCELLED)  # a 64-bit account and a big book id survive
    assert memory.get(1_004) is None and memory.get(999) is None and memory.get(1_0025) is None


def test_forgets_whole_chunks_oldest_first_once_over_capacity():
    memory = FinishedOrders(capacity=8, chunk=4)
    for order_id in range(1, 13):  # three chunks: the first is dropped
        memory.add(order_id, 1, 1, FILLED)
    assert len(memory) == 8
    assert [memory.get(i) is not None for i in range(1, 13)] == [False] * 4 + [True] * 8
    memory.add(13, 1, 1, FILLED)  # the open chunk counts too, until it freezes
    assert len(memory) == 9 and memory.get(5) is not None


def test_refuses_a_capacity_below_one_chunk():
    with pytest.raises(ValueError):
        FinishedOrders(capacity=3, chunk=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1), st.integers(0, 2**20),
                          st.sampled_from((FILLED, CANCELLED, t.ORDER_STATUS_REJECTED))),
                unique_by=lambda entry: entry[0], max_size=60),
       st.lists(st.integers(1, 2**63 - 1), max_size=20))
def test_answers_as_a_dict_of_the_orders_it_keeps(finished, strangers):
    memory = FinishedOrders(capacity=12, chunk=4)
    for entry in finished:
        memory.add(*entry)
    # Kept: every order of the last 3 full chunks, and those of the open one.
    open_count = len(finished) % 4
    kept = finished[max(0, len(finished) - open_count - 12):]
    expected = {order_id: rest for order_id, *rest in kept}
    assert len(memory) == len(kept)
    for order_id, *_ in finished:
        assert memory.get(order_id) == (tuple(expected[order_id]) if order_id in expected else None)
    for order_id in strangers:
        if all(order_id != entry[0] for entry in finished):
            assert memory.get(order_id) is None


def test_the_shard_answers_order_done_from_far_back_and_forgets_past_its_capacity():
    """A cancel of an order that filled 100,000s of orders ago is still ORDER_DONE without
    the store; past the shard's capacity it becomes UNKNOWN_ORDER (the store tells)."""
    shard = MatchingShard({"AAPL": 1}, SnowflakeIds(MATCHING_NODE_BASE), finished_kept=8)
    ids = SnowflakeIds(9)

    def new(side, account, tif=t.TIME_IN_FORCE_GTC):
        order_id = ids.next()
        return m.Command(new_order=m.NewOrder(
            order_id=order_id, account_id=account, client_order_id=f"c{order_id}", symbol="AAPL", side=side,
            order_type=t.ORDER_TYPE_LIMIT, time_in_force=tif, price=100, quantity=1))

    def cancel(order_id, account, symbol="AAPL"):
        result = shard.execute([m.Command(cancel_order=m.CancelOrder(
            order_id=order_id, account_id=account, symbol=symbol))]).results[0]
        return result.error_reason, result.order.status

    first = new(t.SIDE_SELL, 1)
    shard.execute([first, new(t.SIDE_BUY, 2)])  # both filled: two finished orders
    first_id = first.new_order.order_id
    assert cancel(first_id, 1) == ("ORDER_DONE", FILLED)
    assert cancel(first_id, 2) == ("UNKNOWN_ORDER", 0)  # another account's: nothing told
    # Buy IOCs that find nothing finish at once. With a capacity of 8 the shard keeps one
    # frozen chunk of 8 and the open one: 6 more fill the first chunk, 8 more push it out.
    shard.execute([new(t.SIDE_BUY, 3, tif=t.TIME_IN_FORCE_IOC) for _ in range(6)])
    assert cancel(first_id, 1) == ("ORDER_DONE", FILLED)
    shard.execute([new(t.SIDE_BUY, 3, tif=t.TIME_IN_FORCE_IOC) for _ in range(8)])
    assert cancel(first_id, 1) == ("UNKNOWN_ORDER", 0)
