"""What one batch must store, as rows: its journal entries, the orders it created or
changed, and its trades.

A batch goes to the database as columns (direct_writes.py), so the shard hands over
rows as plain tuples and no order becomes a protobuf message on the way: measured with
bench_batch, building each changed order's message only to read its fields back cost
the matching process more than the statement itself. The WriteBatchRequest form, which
the persistence service takes, is built only when asked for (`request`).

An order row has models.py's ORDER_COLUMNS, in that order, with times in microseconds
since the epoch and a missing client_order_id as None; the order-update streams
(market_data.py) take the same rows. A trade is a TradeRow (TRADE_COLUMNS, its time in
microseconds) for the same reason: its Trade message was built only for the statement
and the market data to read its fields back, a twelfth of the shard's CPU per order.
"""

from __future__ import annotations

from functools import cached_property
from typing import NamedTuple

from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.type.v1 import types_pb2

from services.persistence.models import ORDER_COLUMNS, TRADE_COLUMNS, UPDATE_COLUMNS

OrderRow = tuple
_UPDATE_INDEXES = tuple(ORDER_COLUMNS.index(column) for column in UPDATE_COLUMNS)
_ORDER_ID, _ACCOUNT_ID, _CLIENT_ORDER_ID, _CREATE, _UPDATE = (
    ORDER_COLUMNS.index(c) for c in ("order_id", "account_id", "client_order_id", "create_time", "update_time"))


class TradeRow(NamedTuple):
    """A trade as a row of the trades table (models.py's TRADE_COLUMNS)."""

    trade_id: int
    symbol: str
    price: int
    quantity: int
    maker_order_id: int
    taker_order_id: int
    maker_account_id: int
    taker_account_id: int
    aggressor_side: int
    time_us: int


assert TradeRow._fields[:-1] == TRADE_COLUMNS[:-1] and TRADE_COLUMNS[-1] == "time", "trade rows follow models.py"


def timestamp_us(us: int) -> dict:
    return {"seconds": us // 1_000_000, "nanos": us % 1_000_000 * 1000}


def order_proto(row: OrderRow) -> types_pb2.Order:
    """The Order message of a row (no fills)."""
    (order_id, account_id, client_order_id, symbol, side, order_type, time_in_force, status, price, quantity,
     filled, leaves, reason, create_us, update_us, stop_price, triggered, display, expire_us) = row
    return types_pb2.Order(
        order_id=order_id, client_order_id=client_order_id or "", account_id=account_id, symbol=symbol, side=side,
        order_type=order_type, time_in_force=time_in_force, price=price, quantity=quantity, filled_quantity=filled,
        leaves_quantity=leaves, status=status, reason=reason, create_time=timestamp_us(create_us),
        update_time=timestamp_us(update_us), stop_price=stop_price, triggered=bool(triggered),
        display_quantity=display, expire_time=timestamp_us(expire_us) if expire_us else None)


def _us(ts) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def order_row(order: types_pb2.Order) -> OrderRow:
    """The row of an Order message (its fills aside)."""
    return (order.order_id, order.account_id, order.client_order_id or None, order.symbol, order.side,
            order.order_type, order.time_in_force, order.status, order.price, order.quantity, order.filled_quantity,
            order.leaves_quantity, order.reason, _us(order.create_time), _us(order.update_time), order.stop_price,
            int(order.triggered), order.display_quantity, _us(order.expire_time) if order.HasField("expire_time") else 0)


def trade_proto(row: TradeRow) -> types_pb2.Trade:
    (trade_id, symbol, price, quantity, maker_order_id, taker_order_id, maker_account_id, taker_account_id,
     aggressor_side, time_us) = row
    return types_pb2.Trade(
        trade_id=trade_id, symbol=symbol, price=price, quantity=quantity, maker_order_id=maker_order_id,
        taker_order_id=taker_order_id, maker_account_id=maker_account_id, taker_account_id=taker_account_id,
        aggressor_side=aggressor_side, time=timestamp_us(time_us))


def trade_row(trade: types_pb2.Trade) -> TradeRow:
    return TradeRow(trade.trade_id, trade.symbol, trade.price, trade.quantity, trade.maker_order_id,
                    trade.taker_order_id, trade.maker_account_id, trade.taker_account_id, trade.aggressor_side,
                    _us(trade.time))


def account_of(row: OrderRow) -> int:
    return row[_ACCOUNT_ID]


def order_id_of(row: OrderRow) -> int:
    return row[_ORDER_ID]


class ShardWrite:
    """One batch's rows. `journal`: (sequence, serialized Command, time in us) per command;
    `new_orders`/`updated_orders`: order rows (an order a batch created is among the new
    ones only, in its final state); `trades`: TradeRows."""

    def __init__(self, matching_shard: int, journal: list[tuple], new_orders: list[OrderRow],
                 updated_orders: list[OrderRow], trades: list[TradeRow]):
        self.matching_shard = matching_shard
        self.journal_rows = journal
        self.new_rows = new_orders
        self.updated_rows = updated_orders
        self.trade_rows = trades

    @classmethod
    def from_request(cls, request: persistence_pb2.WriteBatchRequest) -> ShardWrite:
        """The rows of a batch given as its WriteBatchRequest (a caller that built the message)."""
        write = cls(request.matching_shard, [(e.sequence, e.command, _us(e.time)) for e in request.journal],
                    [order_row(o) for o in request.new_orders], [order_row(o) for o in request.updated_orders],
                    [trade_row(t) for t in request.trades])
        write.request = request  # the cached form is the message itself
        return write

    def order_columns(self) -> tuple[list[list], list[list]]:
        """(the new orders' ORDER_COLUMNS, the updated orders' UPDATE_COLUMNS), as columns."""
        new = [list(column) for column in zip(*self.new_rows)]
        updated = [[row[i] for row in self.updated_rows] for i in _UPDATE_INDEXES] if self.updated_rows else []
        return new, updated

    @cached_property
    def request(self) -> persistence_pb2.WriteBatchRequest:
        """The batch as the persistence service's WriteBatch takes it."""
        return persistence_pb2.WriteBatchRequest(
            new_orders=[order_proto(row) for row in self.new_rows],
            updated_orders=[order_proto(row) for row in self.updated_rows],
            trades=[trade_proto(row) for row in self.trade_rows], matching_shard=self.matching_shard,
            journal=[persistence_pb2.JournalEntry(sequence=sequence, command=command, time=timestamp_us(us))
                     for sequence, command, us in self.journal_rows])

    # The request's fields, for readers that take either form (tests, the in-process store).
    @property
    def new_orders(self):
        return self.request.new_orders

    @property
    def updated_orders(self):
        return self.request.updated_orders

    @property
    def journal(self):
        return self.request.journal

    @property
    def trades(self):
        return self.request.trades
