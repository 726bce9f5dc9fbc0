"""state_rows (live_orders.rows_of) against numpy a column at a time (bench_pack.column_rows):
the same rows, texts and client_order_id bytes; and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from _matching_native import state_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.bench_pack import column_rows
from services.matching.live_orders import ROW_COLUMNS, ROW_DTYPE, rows_of
from services.matching.order_state import OrderState

INT64 = st.integers(-(2**63), 2**63 - 1)
SMALL = st.integers(0, 255)
TEXT = st.text(max_size=20)
STATES = st.lists(st.builds(
    OrderState, order_id=INT64, account_id=INT64, client_order_id=TEXT, symbol=st.sampled_from(["AAPL", "MSFT", "é"]),
    side=SMALL, order_type=SMALL, time_in_force=SMALL, price=INT64, quantity=INT64, create_ns=INT64, filled=INT64,
    leaves=INT64, status=SMALL, reason=st.sampled_from(["", "cancelled by the client", "expired"]), update_ns=INT64,
    stop_price=INT64, triggered=st.integers(0, 1), display_quantity=INT64, expire_us=INT64), max_size=10)


@settings(deadline=None, max_examples=60)
@given(states=STATES, blob_at=st.integers(0, 2**20))
def test_rows_match_numpy_a_column_at_a_time(states, blob_at):
    texts, reference_texts = ["AAPL", ""], ["AAPL", ""]
    rows, coids = rows_of(states, {text: i for i, text in enumerate(texts)}, texts, blob_at)
    reference, reference_coids = column_rows(states, {t: i for i, t in enumerate(reference_texts)}, reference_texts,
                                             blob_at)
    # The two number new texts in another order (a row at a time against a column at a
    # time): _pack renumbers them canonically afterwards.
    others = [name for name in ROW_DTYPE.names if name not in ("symbol", "reason")]
    for name in others:
        assert rows[name].tolist() == reference[name].tolist(), name
    for name in ("symbol", "reason"):
        assert [texts[i] for i in rows[name]] == [reference_texts[i] for i in reference[name]]
    assert (coids, sorted(texts)) == (reference_coids, sorted(reference_texts))


def test_a_worked_example():
    """Two orders, one text new: its number is the next, the client_order_ids follow blob_at."""
    states = [OrderState(7, 40, "a-1", "MSFT", 1, 2, 1, 10_000, 5, 1_000, filled=2, leaves=3, status=2,
                         update_ns=2_000, triggered=1),
              OrderState(9, 41, "bé", "AAPL", 2, 2, 1, 10_100, 4, 1_500, leaves=4, reason="", expire_us=77)]
    texts = ["", "AAPL"]
    index = {text: i for i, text in enumerate(texts)}
    rows, coids = rows_of(states, index, texts, 1_000)
    assert texts == ["", "AAPL", "MSFT"] and index["MSFT"] == 2
    assert coids == "a-1bé".encode()
    assert rows[["order_id", "symbol", "reason", "coid_offset", "coid_length"]].tolist() == [
        (7, 2, 0, 1_000, 3), (9, 1, 0, 1_003, 3)]
    assert rows[["filled", "leaves", "status", "triggered", "update_ns", "expire_us"]].tolist() == [
        (2, 3, 2, 1, 2_000, 0), (0, 4, 1, 0, 0, 77)]


def _rows(states):
    return np.zeros(len(states), ROW_DTYPE)


def _order(**changes) -> OrderState:
    fields = {"order_id": 1, "account_id": 2, "client_order_id": "c", "symbol": "AAPL", "side": 1, "order_type": 2,
              "time_in_force": 1, "price": 100, "quantity": 1, "create_ns": 5}
    return OrderState(**(fields | changes))


@pytest.mark.parametrize(("state", "error"), [
    (_order(side=256), OverflowError),  # a one-byte column
    (_order(status=-1), OverflowError),
    (_order(price=2**63), OverflowError),
    (_order(symbol=3), TypeError),
    (_order(client_order_id=None), TypeError),
    (_order(price="100"), TypeError),
])
def test_a_value_that_does_not_fit_is_an_error(state, error):
    with pytest.raises(error):
        rows_of([state], {}, [])


def test_states_of_another_type_or_a_wrong_buffer_are_errors():
    class Other:
        __slots__ = ("order_id",)

    with pytest.raises(TypeError, match="not all of one type"):
        rows_of([_order(), Other()], {}, [])
    with pytest.raises(ValueError, match="one row per state"):
        state_rows([_order(), _order()], np.zeros(3, ROW_DTYPE), ROW_COLUMNS, {}, [], ("client_order_id", 64, 68, 0))
    with pytest.raises(TypeError, match="not a slot"):
        state_rows([_order()], _rows([1]), (("row", 0, "q"),), {}, [], ("client_order_id", 64, 68, 0))
    with pytest.raises(ValueError, match="bad offset or kind"):
        state_rows([_order()], _rows([1]), (("price", 100, "q"),), {}, [], ("client_order_id", 64, 68, 0))
    with pytest.raises(BufferError):  # read-only
        state_rows([_order()], bytes(ROW_DTYPE.itemsize), ROW_COLUMNS, {}, [], ("client_order_id", 64, 68, 0))


def test_no_states_no_rows():
    rows, coids = rows_of([], {}, [])
    assert len(rows) == 0 and coids == b""
