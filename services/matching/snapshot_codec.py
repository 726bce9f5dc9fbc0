"""How a shard snapshot carries the books and the resting orders' descriptions.

Private to the matching service; the proto is unchanged. `encode` puts everything into
`ShardSnapshot.engine` and the shard leaves `orders` empty:

    "BSHD", u32 version 2, u64 E, u64 N, u64 T, u64 B       (little-endian)
    E bytes   Engine.snapshot()
    N rows    ROW_DTYPE, one per working order (resting or a waiting stop), ascending order_id
    T bytes   JSON list of strings (the symbols and reasons rows refer to by index)
    B bytes   UTF-8 client_order_ids; a row's (coid_offset, coid_length) locate its own

`decode` also takes version 1 (rows without the stop fields: ROW_DTYPE_V1) and the older
form (plain engine bytes, descriptions in `orders`).
`check` refuses a snapshot whose descriptions disagree with its books, reading the
engine's own snapshot bytes so that no per-order Python object is made.
"""

from __future__ import annotations

import json
import struct

import numpy as np
from bourse.matching.v1 import matching_service_pb2 as matching_pb2

from services.matching.live_orders import ROW_DTYPE, ROW_DTYPE_V1, LiveOrders
from services.matching.order_state import state_of

_MAGIC, _VERSION = b"BSHD", 2
_ROWS = {1: ROW_DTYPE_V1, 2: ROW_DTYPE}
_HEADER = struct.Struct("<4sIQQQQ")
# Engine.snapshot() v1 (engine/README.md "Snapshot format"): header, per book a symbol and
# six instrument numbers, then per side a count and the orders in priority order.
_ENGINE_HEADER = struct.Struct("<4sIQI")
# Per book: the symbol, then what this does not read: six i64 instrument rules, from
# version 2 on the u8 trading status, from version 4 the i64 last trade price.
_ENGINE_BOOKS = {1: struct.Struct("<I48x"), 2: struct.Struct("<I49x"), 3: struct.Struct("<I49x"),
                 4: struct.Struct("<I57x")}
_ENGINE_ORDER = np.dtype([("order_id", "<u8"), ("account_id", "<u8"), ("price", "<i8"), ("remaining", "<i8"),
                          ("filled", "<i8"), ("stp", "u1"), ("post_only", "u1")])
# Version 3 appends each order's iceberg fields (display quantity, visible slice).
_ENGINE_ORDERS = {1: _ENGINE_ORDER, 2: _ENGINE_ORDER, 3: np.dtype(
    _ENGINE_ORDER.descr + [("display_quantity", "<i8"), ("visible", "<i8")])}
_ENGINE_ORDERS[4] = _ENGINE_ORDERS[3]
# Version 4 follows each book's orders with its waiting stops, per side: a count, then these.
_ENGINE_STOP = np.dtype([("order_id", "<u8"), ("account_id", "<u8"), ("stop_price", "<i8"), ("price", "<i8"),
                         ("quantity", "<i8"), ("display_quantity", "<i8"), ("type", "u1"), ("tif", "u1"),
                         ("stp", "u1")])

def encode(engine: bytes, live: LiveOrders) -> bytes:
    """The packed form (module docstring) of an engine snapshot and the resting orders'
    descriptions."""
    return b"".join(packed_parts(engine, *live.pack()))


def packed_parts(engine: bytes, rows: np.ndarray, texts: list[str], blob: bytes) -> list:
    """The packed form's bytes in parts, not joined (rows: the array's own buffer), of an
    engine snapshot and the orders' descriptions as LiveOrders.pack gives them."""
    text = json.dumps(texts).encode()
    return [_HEADER.pack(_MAGIC, _VERSION, len(engine), len(rows), len(text), len(blob)),
            engine, memoryview(np.ascontiguousarray(rows)).cast("B"), text, blob]


def descriptions(data: bytes) -> LiveOrders:
    """The working orders' descriptions of a packed form (the engine's part ignored)."""
    return _unpack(data)[1]


def decode(snap: matching_pb2.ShardSnapshot) -> tuple[bytes, LiveOrders]:
    """(engine snapshot, resting orders' descriptions) of either form."""
    if snap.engine[:4] == _MAGIC:
        return _unpack(snap.engine)
    # The older form: descriptions as Order messages.
    return snap.engine, LiveOrders({order.order_id: state_of(order) for order in snap.orders})


def _unpack(data: bytes) -> tuple[bytes, LiveOrders]:
    """(engine snapshot, packed descriptions) of the packed form (module docstring)."""
    if len(data) < _HEADER.size:
        raise RuntimeError("packed shard snapshot: truncated header")
    _magic, version, engine_len, count, text_len, blob_len = _HEADER.unpack_from(data, 0)
    row_dtype = _ROWS.get(version)
    if row_dtype is None:
        raise RuntimeError(f"packed shard snapshot: version {version}, this code reads 1 to {_VERSION}")
    pos = _HEADER.size
    rows_at = pos + engine_len
    text_at = rows_at + count * row_dtype.itemsize
    blob_at = text_at + text_len
    if blob_at + blob_len != len(data):
        raise RuntimeError("packed shard snapshot: sections do not add up to its size")
    engine = data[pos:rows_at]
    rows = np.frombuffer(data, dtype=row_dtype, count=count, offset=rows_at)
    if row_dtype is not ROW_DTYPE:  # no stops then: their fields 0
        widened = np.zeros(count, ROW_DTYPE)
        for name in row_dtype.names:
            widened[name] = rows[name]
        rows = widened
    else:
        rows = rows.copy()
    texts = json.loads(data[text_at:blob_at])
    if len(rows) and (int(rows["symbol"].max()) >= len(texts) or int(rows["reason"].max()) >= len(texts)
                      or int((rows["coid_offset"].astype(np.int64) + rows["coid_length"]).max()) > blob_len):
        raise RuntimeError("packed shard snapshot: a row points outside its texts or client_order_ids")
    return engine, LiveOrders(rows=rows, texts=texts, blob=data[blob_at:])


def _engine_orders(data: bytes):
    """(symbol_ids, sides, orders as _ENGINE_ORDER, stop prices) of every working order in an
    engine snapshot (a waiting stop as an order of its limit price, its quantity and nothing
    filled, and its stop price; 0 for a resting order), or None if it is not a layout this
    reads (versions 1 to 4)."""
    magic, version, _hash, books = _ENGINE_HEADER.unpack_from(data, 0)
    book_header, order_dtype = _ENGINE_BOOKS.get(version), _ENGINE_ORDERS.get(version)
    if magic != b"BRSE" or book_header is None:
        return None
    names = _ENGINE_ORDER.names
    pos, symbols, sides, parts, stop_prices = _ENGINE_HEADER.size, [], [], [], []
    for _ in range(books):
        (symbol,) = book_header.unpack_from(data, pos)
        pos += book_header.size
        for side in (1, 2):
            (count,) = struct.unpack_from("<I", data, pos)
            parts.append(np.frombuffer(data, dtype=order_dtype, count=count, offset=pos + 4)[list(names)])
            stop_prices.append(np.zeros(count, dtype=np.int64))
            symbols.append(np.full(count, symbol, dtype=np.int64))
            sides.append(np.full(count, side, dtype=np.int64))
            pos += 4 + count * order_dtype.itemsize
        for side in (1, 2) if version >= 4 else ():
            (count,) = struct.unpack_from("<I", data, pos)
            stops = np.frombuffer(data, dtype=_ENGINE_STOP, count=count, offset=pos + 4)
            as_orders = np.zeros(count, _ENGINE_ORDER)
            for name in ("order_id", "account_id", "price"):
                as_orders[name] = stops[name]
            as_orders["remaining"] = stops["quantity"]
            parts.append(as_orders)
            stop_prices.append(stops["stop_price"].astype(np.int64))
            symbols.append(np.full(count, symbol, dtype=np.int64))
            sides.append(np.full(count, side, dtype=np.int64))
            pos += 4 + count * _ENGINE_STOP.itemsize
    if pos != len(data):
        return None
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, _ENGINE_ORDER), np.zeros(0, np.int64)
    return np.concatenate(symbols), np.concatenate(sides), np.concatenate(parts), np.concatenate(stop_prices)


def check(engine: bytes, rows: np.ndarray, texts: list[str], book_ids: dict[str, int], owned,
          resting_ids) -> None:
    """The descriptions must name exactly the orders resting in the books (ids strictly
    ascending, each once) and agree with the engine on symbol, side, account, price,
    leaves and filled.

    rows, texts: as `LiveOrders.pack` gives them; book_ids: the snapshot's symbol -> book
    id; owned: the symbols the shard owns now (a description of any other symbol cannot
    match a book); resting_ids: () -> the ids resting in the restored engine, asked only
    if its snapshot bytes are a layout this does not read."""
    ids = rows["order_id"]
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise RuntimeError("snapshot's order descriptions are not in ascending order_id")
    found = _engine_orders(engine)
    if found is None:  # an engine snapshot layout this does not read: ids only, via l3
        if sorted(resting_ids()) != ids.tolist():
            raise RuntimeError("snapshot's order descriptions do not match its books")
        return
    symbol_ids, sides, orders, stop_prices = found
    order = np.argsort(orders["order_id"], kind="stable")
    book_of_text = np.array([book_ids.get(text, -1) if text in owned else -1 for text in texts] or [0],
                            dtype=np.int64)
    same = (
        len(orders) == len(rows)
        and np.array_equal(orders["order_id"][order].astype(np.int64), ids)
        and np.array_equal(symbol_ids[order], book_of_text[rows["symbol"]])
        and np.array_equal(sides[order], rows["side"])
        and np.array_equal(orders["account_id"][order].astype(np.int64), rows["account_id"])
        and np.array_equal(orders["price"][order], rows["price"])
        and np.array_equal(orders["remaining"][order], rows["leaves"])
        and np.array_equal(orders["filled"][order], rows["filled"])
    )
    if same:  # a waiting stop: the same stop price, and not triggered
        stops = stop_prices[order]
        waiting = stops > 0
        same = np.array_equal(rows["stop_price"][waiting], stops[waiting]) and not rows["triggered"][waiting].any()
    if not same:
        raise RuntimeError("snapshot's order descriptions do not match its books")
