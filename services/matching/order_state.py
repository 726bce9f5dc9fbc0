"""One order's full description as the shard keeps it, and its Order message form.

The engine only knows id, account, side, price and remaining; the shard keeps the rest
here so it can send complete order states to persistence and to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from _matching_native import order_bytes
from bourse.type.v1 import types_pb2

NEW = types_pb2.ORDER_STATUS_NEW
PARTIALLY_FILLED = types_pb2.ORDER_STATUS_PARTIALLY_FILLED
FILLED = types_pb2.ORDER_STATUS_FILLED
CANCELLED = types_pb2.ORDER_STATUS_CANCELLED
REJECTED = types_pb2.ORDER_STATUS_REJECTED
FINISHED = frozenset((FILLED, CANCELLED, REJECTED))


def timestamp(ns: int) -> dict:
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}


@dataclass(slots=True)
class OrderState:
    order_id: int
    account_id: int
    client_order_id: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    price: int
    quantity: int
    create_ns: int
    filled: int = 0
    leaves: int = 0
    status: int = NEW
    reason: str = ""
    update_ns: int = 0
    stop_price: int = 0  # a stop's or stop-limit's trigger price
    triggered: int = 0  # 1 once its trigger was reached (the orders table's SMALLINT)
    display_quantity: int = 0  # an iceberg's
    expire_us: int = 0  # a GTD or DAY order's expiry, microseconds since the epoch

    def row(self) -> tuple:
        """The order as a row of the orders table (shard_write.py): models.py's
        ORDER_COLUMNS, times in microseconds."""
        return (self.order_id, self.account_id, self.client_order_id or None, self.symbol, self.side,
                self.order_type, self.time_in_force, self.status, self.price, self.quantity, self.filled,
                self.leaves, self.reason, self.create_ns // 1000, (self.update_ns or self.create_ns) // 1000,
                self.stop_price, self.triggered, self.display_quantity, self.expire_us)

    def encoded(self, fills=()) -> bytes:
        """The order as Order message bytes, with `fills`: (trade_id, price, quantity,
        maker, time_us) each. Written natively (native/order_wire.cc): building the
        message through the protobuf runtime was the process's largest cost per answer.
        Times are whole microseconds (the shard's clock steps by them)."""
        return order_bytes(self.row(), fills)


def state_of(order: types_pb2.Order) -> OrderState:
    """The inverse of `OrderState.encoded` (fills aside): how older snapshots carry descriptions."""
    create_ns = order.create_time.seconds * 1_000_000_000 + order.create_time.nanos
    return OrderState(
        order.order_id, order.account_id, order.client_order_id, order.symbol, order.side, order.order_type,
        order.time_in_force, order.price, order.quantity, create_ns=create_ns, filled=order.filled_quantity,
        leaves=order.leaves_quantity, status=order.status, reason=order.reason,
        update_ns=order.update_time.seconds * 1_000_000_000 + order.update_time.nanos,
        stop_price=order.stop_price, triggered=int(order.triggered), display_quantity=order.display_quantity,
        expire_us=order.expire_time.seconds * 1_000_000 + order.expire_time.nanos // 1000,
    )
