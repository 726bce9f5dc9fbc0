"""One matching shard's books: commands in, order states, trades and a write batch out.

No I/O here. `execute` gives every command the shard's next sequence number, runs it
through the engine and returns, per command, the order after it (with the fills it
got), plus everything persistence must store for the batch: order states, trades and
the journal entries (sequence, command, time) that make the books reproducible. The
shard keeps the full description of every order still resting (the engine only knows
id, account, side, price and remaining), so it can send complete order states; an
order's description is dropped once it is done.

Recovery is `restore(snapshot)` (if any) then `replay(journal entries after it)`: the
journal carries each command's time, so a replay takes the same path and ends in
identical books (same event hash) with the sequence continuing where it stopped.
If a batch is not committed, the engine has already applied it: the caller must
recover from what persistence holds before executing anything else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.type.v1 import types_pb2
from bourse_engine import Engine, EventKind, OrderType, TimeInForce

BOOK_LEVELS = 50

NEW = types_pb2.ORDER_STATUS_NEW
PARTIALLY_FILLED = types_pb2.ORDER_STATUS_PARTIALLY_FILLED
FILLED = types_pb2.ORDER_STATUS_FILLED
CANCELLED = types_pb2.ORDER_STATUS_CANCELLED
REJECTED = types_pb2.ORDER_STATUS_REJECTED

# Engine reason codes (engine/include/bourse/engine/types.hpp), named as the engine
# names them (RejectReason/CancelReason .name): the Order.reason strings.
REJECT_REASONS = {
    1: "UNKNOWN_ORDER", 2: "DUPLICATE_ORDER_ID", 3: "INVALID_SIDE", 4: "INVALID_ORDER_TYPE",
    5: "INVALID_TIME_IN_FORCE", 6: "INVALID_QUANTITY", 7: "INVALID_PRICE", 8: "NOTIONAL_OVERFLOW",
}
CANCEL_REASONS = {1: "USER", 2: "IOC_REMAINDER", 3: "MARKET_REMAINDER", 4: "FOK_UNFILLABLE"}


# Compared as ints: the binding's enums need not be IntEnums.
TRADE_EVENT, REJECTED_EVENT, CANCELLED_EVENT, DONE_EVENT = (
    int(getattr(k, "value", k)) for k in (EventKind.TRADE, EventKind.REJECTED, EventKind.CANCELLED, EventKind.DONE)
)


class InvalidCommand(ValueError):
    """A malformed call (not a per-order reject): the whole call is refused."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def _int(value) -> int:
    return int(getattr(value, "value", value))


def _timestamp(ns: int) -> dict:
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

    def to_proto(self, fills=()) -> types_pb2.Order:
        return types_pb2.Order(
            order_id=self.order_id, client_order_id=self.client_order_id, account_id=self.account_id,
            symbol=self.symbol, side=self.side, order_type=self.order_type,
            time_in_force=self.time_in_force, price=self.price, quantity=self.quantity,
            filled_quantity=self.filled, leaves_quantity=self.leaves, status=self.status,
            reason=self.reason, fills=fills, create_time=_timestamp(self.create_ns),
            update_time=_timestamp(self.update_ns or self.create_ns),
        )


@dataclass
class BatchOutcome:
    results: list[matching_pb2.CommandResult]
    write: persistence_pb2.WriteBatchRequest
    symbols: set[str] = field(default_factory=set)
    trades: list[types_pb2.Trade] = field(default_factory=list)


class MatchingShard:
    def __init__(self, symbols: dict[str, int], ids, engine_factory=Engine, clock_ns=time.time_ns, shard_index=0):
        """symbols: the symbols this shard owns -> engine symbol id."""
        self.symbols = dict(symbols)
        self.shard_index = shard_index
        self._ids = ids
        self._engine_factory = engine_factory
        self._clock_ns = clock_ns
        self._last_ns = 0
        self.engine = engine_factory()
        self.live: dict[int, OrderState] = {}
        self.sequence = 0  # of the last command applied to the books

    def _now_ns(self) -> int:
        # Strictly increasing at microsecond steps (what the database keeps), so
        # ordering open orders by create_time reproduces time priority on rebuild.
        now = max(self._clock_ns(), self._last_ns + 1000)
        self._last_ns = now - now % 1000
        return self._last_ns

    def validate(self, commands) -> None:
        """Raises InvalidCommand for a call this shard must refuse as a whole."""
        if not commands:
            raise InvalidCommand("commands", "empty batch")
        for index, command in enumerate(commands):
            kind = command.WhichOneof("command")
            if kind is None:
                raise InvalidCommand(f"commands[{index}]", "neither new_order nor cancel_order")
            body = getattr(command, kind)
            if body.symbol not in self.symbols:
                raise InvalidCommand(f"commands[{index}].{kind}.symbol", f"{body.symbol!r} is not owned by this shard")
            if body.order_id <= 0:
                raise InvalidCommand(f"commands[{index}].{kind}.order_id", "must be positive")
            if body.account_id <= 0:
                raise InvalidCommand(f"commands[{index}].{kind}.account_id", "must be positive")

    def execute(self, commands, times_ns=None) -> BatchOutcome | None:
        """Runs commands in order. A replay passes each command's journaled time in
        `times_ns` and gets nothing back (what it would store is stored already)."""
        replaying = times_ns is not None
        batch = _Batch()
        results = []
        journal = []
        for index, command in enumerate(commands):
            now = self._replay_time(times_ns[index]) if replaying else self._now_ns()
            self.sequence += 1
            if not replaying:
                journal.append(persistence_pb2.JournalEntry(
                    sequence=self.sequence, command=command.SerializeToString(), time=_timestamp(now)
                ))
            if command.WhichOneof("command") == "new_order":
                results.append(self._submit(command.new_order, batch, now))
            else:
                results.append(self._cancel(command.cancel_order, batch, now))
        if replaying:
            return None
        end = self._last_ns
        for state in (*batch.new.values(), *batch.updated.values()):
            state.update_ns = end
        write = persistence_pb2.WriteBatchRequest(
            new_orders=[s.to_proto() for s in batch.new.values()],
            updated_orders=[s.to_proto() for s in batch.updated.values()],
            trades=batch.trades,
            matching_shard=self.shard_index,
            journal=journal,
        )
        return BatchOutcome(results, write, batch.symbols, batch.trades)

    def _replay_time(self, ns: int) -> int:
        self._last_ns = max(self._last_ns, ns)
        return ns

    def replay(self, entries) -> None:
        """Applies journal entries (in order, continuing this shard's sequence)."""
        commands, times = [], []
        for entry in entries:
            if entry.sequence != self.sequence + len(commands) + 1:
                raise RuntimeError(
                    f"journal gap: entry {entry.sequence} after {self.sequence + len(commands)}"
                )
            commands.append(matching_pb2.Command.FromString(entry.command))
            times.append(entry.time.seconds * 1_000_000_000 + entry.time.nanos)
        if commands:
            self.execute(commands, times_ns=times)

    def _submit(self, cmd: matching_pb2.NewOrder, batch: _Batch, now: int) -> matching_pb2.CommandResult:
        state = OrderState(
            cmd.order_id, cmd.account_id, cmd.client_order_id, cmd.symbol, cmd.side, cmd.order_type,
            cmd.time_in_force, cmd.price, cmd.quantity, create_ns=now, update_ns=now,
        )
        batch.symbols.add(cmd.symbol)
        # Enum values go in as ints: the engine rejects unknown ones (INVALID_SIDE...).
        events = self.engine.submit(
            order_id=cmd.order_id, account_id=cmd.account_id, symbol_id=self.symbols[cmd.symbol],
            side=cmd.side, order_type=cmd.order_type, tif=cmd.time_in_force,
            price=cmd.price, quantity=cmd.quantity,
        )
        fills = []
        for event in events:
            kind = _int(event.kind)
            if kind == TRADE_EVENT:
                fills.append(self._trade(event, state, batch, now))
            elif kind == REJECTED_EVENT:
                state.reason = REJECT_REASONS.get(_int(event.reason), f"REJECTED_{_int(event.reason)}")
            elif kind == CANCELLED_EVENT:
                state.reason = CANCEL_REASONS.get(_int(event.reason), f"CANCELLED_{_int(event.reason)}")
            elif kind == DONE_EVENT:
                state.status, state.leaves = _int(event.status), event.remaining
        if state.leaves > 0:
            self.live[state.order_id] = state
        # A duplicate id names an order that is already stored (or in this batch).
        if state.reason != "DUPLICATE_ORDER_ID":
            batch.new[state.order_id] = state
        error = state.reason if state.status == REJECTED else ""
        return matching_pb2.CommandResult(order=state.to_proto(fills), error_reason=error)

    def _trade(self, event, taker: OrderState, batch: _Batch, now: int) -> types_pb2.Fill:
        trade_id = self._ids.next()
        ts = _timestamp(now)
        maker = self.live.get(event.maker_order_id)
        if maker is not None:
            maker.filled += event.quantity
            maker.leaves = event.maker_remaining
            maker.status = FILLED if maker.leaves == 0 else PARTIALLY_FILLED
            if maker.leaves == 0:
                del self.live[maker.order_id]
            batch.touch(maker)
        taker.filled += event.quantity
        batch.trades.append(types_pb2.Trade(
            trade_id=trade_id, symbol=taker.symbol, price=event.price, quantity=event.quantity,
            maker_order_id=event.maker_order_id, taker_order_id=taker.order_id,
            maker_account_id=event.maker_account, taker_account_id=taker.account_id,
            aggressor_side=taker.side, time=ts,
        ))
        return types_pb2.Fill(trade_id=trade_id, price=event.price, quantity=event.quantity, maker=False, time=ts)

    def _cancel(self, cmd: matching_pb2.CancelOrder, batch: _Batch, now: int) -> matching_pb2.CommandResult:
        events = self.engine.cancel(order_id=cmd.order_id, account_id=cmd.account_id, symbol_id=self.symbols[cmd.symbol])
        for event in events:
            if _int(event.kind) == REJECTED_EVENT:
                reason = REJECT_REASONS.get(_int(event.reason), f"REJECTED_{_int(event.reason)}")
                unknown = types_pb2.Order(order_id=cmd.order_id, account_id=cmd.account_id, symbol=cmd.symbol)
                return matching_pb2.CommandResult(order=unknown, error_reason=reason)
        state = self.live.pop(cmd.order_id)
        state.status, state.leaves, state.reason = CANCELLED, 0, CANCEL_REASONS[1]
        state.update_ns = now
        batch.symbols.add(cmd.symbol)
        batch.touch(state)
        return matching_pb2.CommandResult(order=state.to_proto())

    def reset(self) -> None:
        """Forget everything in memory; `restore` and/or `replay` must follow."""
        self.engine = self._engine_factory()
        self.live = {}
        self.sequence = 0
        self._last_ns = 0

    def snapshot(self) -> bytes:
        """The books at `self.sequence`: engine state plus each resting order's description."""
        return matching_pb2.ShardSnapshot(
            shard_index=self.shard_index,
            sequence=self.sequence,
            engine=self.engine.snapshot(),
            orders=[state.to_proto() for state in self.live.values()],
            symbol_ids=self.symbols,
        ).SerializeToString()

    def restore(self, data: bytes) -> None:
        snap = matching_pb2.ShardSnapshot.FromString(data)
        if snap.shard_index != self.shard_index:
            raise RuntimeError(f"snapshot of shard {snap.shard_index} offered to shard {self.shard_index}")
        self.reset()
        self.engine = self._engine_factory.restore(snap.engine)
        self.sequence = snap.sequence
        # Books are keyed by the ids they had; symbols listed since get fresh ids.
        kept = {symbol: book for symbol, book in snap.symbol_ids.items() if symbol in self.symbols}
        fresh = iter(range(max(snap.symbol_ids.values(), default=0) + 1, 2**32))
        self.symbols = {symbol: kept.get(symbol) or next(fresh) for symbol in self.symbols}
        for order in snap.orders:
            create_ns = order.create_time.seconds * 1_000_000_000 + order.create_time.nanos
            self._last_ns = max(self._last_ns, create_ns)
            self.live[order.order_id] = OrderState(
                order.order_id, order.account_id, order.client_order_id, order.symbol, order.side,
                order.order_type, order.time_in_force, order.price, order.quantity, create_ns=create_ns,
                filled=order.filled_quantity, leaves=order.leaves_quantity, status=order.status,
                reason=order.reason,
                update_ns=order.update_time.seconds * 1_000_000_000 + order.update_time.nanos,
            )
        if set(self.live) != set(self._resting_ids()):
            raise RuntimeError("snapshot's order descriptions do not match its books")

    def _resting_ids(self):
        for symbol_id in self.symbols.values():
            bids, asks = self.engine.l3(symbol_id=symbol_id)
            for order in (*bids, *asks):
                yield order.order_id

    def depth(self, symbol: str, levels: int = BOOK_LEVELS):
        """(bids, asks) as lists of [price, quantity, order_count], best first."""
        bids, asks = self.engine.depth(symbol_id=self.symbols[symbol], levels=levels)
        return [list(level) for level in bids], [list(level) for level in asks]


class _Batch:
    """What one batch changed: orders first seen, pre-existing orders touched, trades."""

    def __init__(self):
        self.new: dict[int, OrderState] = {}
        self.updated: dict[int, OrderState] = {}
        self.trades: list[types_pb2.Trade] = []
        self.symbols: set[str] = set()

    def touch(self, state: OrderState) -> None:
        if state.order_id not in self.new:
            self.updated[state.order_id] = state

