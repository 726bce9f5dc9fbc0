"""The packed batch API's record layouts (numpy structured dtypes).

``Engine.execute_packed(commands)`` takes a C-contiguous array of COMMAND_DTYPE
(or any bytes-like buffer of 64-byte records) and returns a read-only numpy
array of EVENT_DTYPE: one C++ call for the whole batch, no Python object per
command or event. Both layouts are little-endian with explicit padding fields.
Arrays of the older layouts are still taken (the binding goes by the itemsize), the
fields they lack 0: COMMAND_DTYPE_V2 (56 bytes, from before stops: no stop_price) and
COMMAND_DTYPE_V1 (48 bytes, from before icebergs: no display_quantity either).

COMMAND_DTYPE (64 bytes)
    op          u1  OP_SUBMIT=1, OP_CANCEL=2, OP_MODIFY=3 (anything else: ValueError,
                    nothing executed)
    side        u1  Side (submit)
    order_type  u1  OrderType (submit)
    tif         u1  TimeInForce (submit)
    stp         u1  SelfTradePrevention (submit); 0 means CANCEL_INCOMING
    post_only   u1  0/1 (submit)
    reserved0   u2  ignored
    symbol_id   u4
    reserved1   u4  ignored
    order_id    u8
    account_id  u8
    price       i8  submit: limit price (0 for market); modify: new price
    quantity    i8  submit: quantity; modify: new open quantity
    display_quantity i8  submit: 0, or an iceberg's display quantity (LIMIT GTC,
                    0 < display_quantity < quantity); ignored by cancel and modify
    stop_price  i8  submit: 0, or a stop's (MARKET) or stop-limit's (LIMIT) stop price;
                    modify: a waiting stop's new stop price (0 keeps it); ignored by cancel

EVENT_DTYPE (96 bytes; the C++ Event struct, field meanings as in Event)
    kind u1, reason u1, status u1, aggressor_side u1, symbol_id u4, order_id u8,
    maker_order_id u8, taker_order_id u8, maker_account u8, taker_account u8,
    price i8, quantity i8, maker_remaining i8, taker_remaining i8, filled i8,
    remaining i8

Events come out in command order; every submit's events end with its DONE, a
cancel's with DONE or a lone REJECTED, a modify's with DONE or a lone REJECTED,
each followed by the stops it triggered (TRIGGERED, TRADE*, [CANCELLED], DONE each).
"""

from __future__ import annotations

import numpy as np

OP_SUBMIT, OP_CANCEL, OP_MODIFY = 1, 2, 3

COMMAND_DTYPE_V1 = np.dtype([
    ("op", "u1"), ("side", "u1"), ("order_type", "u1"), ("tif", "u1"),
    ("stp", "u1"), ("post_only", "u1"), ("reserved0", "<u2"),
    ("symbol_id", "<u4"), ("reserved1", "<u4"),
    ("order_id", "<u8"), ("account_id", "<u8"), ("price", "<i8"), ("quantity", "<i8"),
])
# Each layout is the one before it with a field appended, so old records keep their offsets.
COMMAND_DTYPE_V2 = np.dtype(COMMAND_DTYPE_V1.descr + [("display_quantity", "<i8")])
COMMAND_DTYPE = np.dtype(COMMAND_DTYPE_V2.descr + [("stop_price", "<i8")])

EVENT_DTYPE = np.dtype([
    ("kind", "u1"), ("reason", "u1"), ("status", "u1"), ("aggressor_side", "u1"),
    ("symbol_id", "<u4"), ("order_id", "<u8"),
    ("maker_order_id", "<u8"), ("taker_order_id", "<u8"),
    ("maker_account", "<u8"), ("taker_account", "<u8"),
    ("price", "<i8"), ("quantity", "<i8"), ("maker_remaining", "<i8"),
    ("taker_remaining", "<i8"), ("filled", "<i8"), ("remaining", "<i8"),
])

assert COMMAND_DTYPE_V1.itemsize == 48 and COMMAND_DTYPE_V2.itemsize == 56 and COMMAND_DTYPE.itemsize == 64
assert COMMAND_DTYPE.fields["stop_price"][1] == 56 and EVENT_DTYPE.itemsize == 96

# Column order of EVENT_DTYPE as the Event NamedTuple orders its fields.
_EVENT_TUPLE_ORDER = (
    "kind", "order_id", "symbol_id", "reason", "status", "aggressor_side", "maker_order_id",
    "taker_order_id", "maker_account", "taker_account", "price", "quantity",
    "maker_remaining", "taker_remaining", "filled", "remaining",
)


def commands(n: int) -> np.ndarray:
    """A zeroed command array of length n (stp 0 = default, reserved fields 0, display and stop 0)."""
    return np.zeros(n, dtype=COMMAND_DTYPE)


def raw_events(events: np.ndarray) -> list[tuple]:
    """Packed events as raw 16-int tuples in Event field order (for tests, tools)."""
    cols = [events[name].tolist() for name in _EVENT_TUPLE_ORDER]
    return list(zip(*cols))
