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

A re-sent order (the order service re-sends an order under its original id when a
client retries and the original is not stored yet) must be a duplicate whether or not
the original ran before a restore. The engine remembers every id it accepted, but its
snapshot keeps only resting ones, so the shard also remembers the ids it accepted in
the last DUPLICATE_WINDOW_MS (by the id's own Snowflake time), keeps them in its
snapshot, and refuses those ids itself: live and in replays alike. The order service
re-sends only ids younger than its RESEND_WINDOW, well inside this window.
If a batch is not committed, the engine has already applied it: the caller must
recover from what persistence holds before executing anything else.

Snapshot encoding (private to this module; the proto is unchanged). `snapshot()` puts
everything into `ShardSnapshot.engine` and leaves `orders` empty:

    "BSHD", u32 version 1, u64 E, u64 N, u64 T, u64 B       (little-endian)
    E bytes   Engine.snapshot()
    N rows    ROW_DTYPE, one per resting order, ascending order_id
    T bytes   JSON list of strings (the symbols and reasons rows refer to by index)
    B bytes   UTF-8 client_order_ids; a row's (coid_offset, coid_length) locate its own

`restore()` also takes the older form (plain engine bytes, descriptions in `orders`).
A restore makes no Python object per order: the rows stay packed in `live` and an
order's OrderState is built when a command first touches it. Measured with 1M resting
orders (bench_recovery.py): restore 0.8 s instead of 7.1 s; the shard process needs
~200 B RSS per resting order, engine included, instead of ~635.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import numpy as np
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.type.v1 import types_pb2
from bourse_engine import CancelReason, Engine, EventKind, RejectReason

from services.common.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS

BOOK_LEVELS = 50

NEW = types_pb2.ORDER_STATUS_NEW
PARTIALLY_FILLED = types_pb2.ORDER_STATUS_PARTIALLY_FILLED
FILLED = types_pb2.ORDER_STATUS_FILLED
CANCELLED = types_pb2.ORDER_STATUS_CANCELLED
REJECTED = types_pb2.ORDER_STATUS_REJECTED

# Engine reason codes, named as the engine names them: the Order.reason strings.
REJECT_REASONS = {int(reason): reason.name for reason in RejectReason}
CANCEL_REASONS = {int(reason): reason.name for reason in CancelReason}


# Compared as ints: the binding's enums need not be IntEnums.
TRADE_EVENT, REJECTED_EVENT, CANCELLED_EVENT, DONE_EVENT = (
    int(getattr(k, "value", k)) for k in (EventKind.TRADE, EventKind.REJECTED, EventKind.CANCELLED, EventKind.DONE)
)


# Order ids accepted this recently (by their Snowflake time) are remembered across
# snapshots; the order service never re-sends an id older than a fraction of this.
DUPLICATE_WINDOW_MS = 10 * 60 * 1000


def _id_ms(order_id: int) -> int:
    return order_id >> (NODE_BITS + SEQUENCE_BITS)


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


# One resting order's description, packed (see the module docstring).
ROW_DTYPE = np.dtype([
    ("order_id", "<i8"), ("account_id", "<i8"), ("price", "<i8"), ("quantity", "<i8"), ("filled", "<i8"),
    ("leaves", "<i8"), ("create_ns", "<i8"), ("update_ns", "<i8"), ("coid_offset", "<u4"), ("coid_length", "<u4"),
    ("symbol", "<u2"), ("reason", "<u2"), ("side", "u1"), ("order_type", "u1"), ("time_in_force", "u1"),
    ("status", "u1"),
])
_MAGIC, _VERSION = b"BSHD", 1
_HEADER = struct.Struct("<4sIQQQQ")
# Engine.snapshot() v1 (engine/README.md "Snapshot format"): header, per book a symbol and
# six instrument numbers, then per side a count and the orders in priority order.
_ENGINE_HEADER = struct.Struct("<4sIQI")
_ENGINE_BOOK = struct.Struct("<I48x")
_ENGINE_ORDER = np.dtype([("order_id", "<u8"), ("account_id", "<u8"), ("price", "<i8"), ("remaining", "<i8"),
                          ("filled", "<i8"), ("stp", "u1"), ("post_only", "u1")])


class _Live(MutableMapping):
    """order_id -> OrderState of every resting order (the dict calls the shard uses).

    After a restore most orders are packed rows (ROW_DTYPE, ascending id, found by
    binary search); a row becomes an OrderState in `_states` when first touched, and
    is marked taken in the packed part."""

    __slots__ = ("_blob", "_ids", "_packed", "_rows", "_states", "_taken", "_texts")

    def __init__(self, states: dict[int, OrderState] | None = None, rows=None, texts=(), blob=b""):
        self._states = states if states is not None else {}
        self._rows = rows if rows is not None else np.zeros(0, ROW_DTYPE)
        self._ids = np.ascontiguousarray(self._rows["order_id"])
        self._taken = np.zeros(len(self._rows), dtype=bool)
        self._packed = len(self._rows)
        self._texts = list(texts)
        self._blob = blob

    def _index(self, order_id) -> int:
        if not self._packed:
            return -1
        i = int(np.searchsorted(self._ids, order_id))
        if i < len(self._ids) and self._ids[i] == order_id and not self._taken[i]:
            return i
        return -1

    def _take(self, i: int) -> OrderState:
        (order_id, account_id, price, quantity, filled, leaves, create_ns, update_ns, offset, length, symbol,
         reason, side, order_type, tif, status) = self._rows[i].tolist()
        self._taken[i] = True
        self._packed -= 1
        return OrderState(order_id, account_id, self._blob[offset : offset + length].decode(), self._texts[symbol],
                          side, order_type, tif, price, quantity, create_ns, filled, leaves, status,
                          self._texts[reason], update_ns)

    def get(self, order_id, default=None):
        state = self._states.get(order_id)
        if state is None:
            i = self._index(order_id)
            if i < 0:
                return default
            state = self._states[order_id] = self._take(i)
        return state

    def __getitem__(self, order_id) -> OrderState:
        state = self.get(order_id)
        if state is None:
            raise KeyError(order_id)
        return state

    def pop(self, order_id, *default):
        state = self._states.pop(order_id, None)
        if state is None:
            i = self._index(order_id)
            if i >= 0:
                return self._take(i)
            if default:
                return default[0]
            raise KeyError(order_id)
        return state

    def __delitem__(self, order_id) -> None:
        self.pop(order_id)

    def __setitem__(self, order_id, state: OrderState) -> None:
        # Only for an order that just came to rest: the engine refuses an id that is live.
        self._states[order_id] = state

    def __contains__(self, order_id) -> bool:
        return order_id in self._states or self._index(order_id) >= 0

    def __len__(self) -> int:
        return len(self._states) + self._packed

    def __iter__(self):
        yield from list(self._states)
        if self._packed:
            yield from self._ids[~self._taken].tolist()

    def __repr__(self) -> str:
        return f"<resting orders: {len(self._states)} as OrderState, {self._packed} packed>"

    def pack(self) -> tuple[np.ndarray, list[str], bytes]:
        """(rows in ascending order_id, texts, client_order_id blob) of every resting order."""
        texts = list(self._texts)
        index = {text: i for i, text in enumerate(texts)}

        def text(value: str) -> int:
            i = index.get(value)
            if i is None:
                i = index[value] = len(texts)
                texts.append(value)
            return i

        if not self._states and self._packed == len(self._rows):
            return self._rows, texts, self._blob  # as restored: sorted already (restore checks it)
        kept = self._rows[~self._taken] if self._packed < len(self._rows) else self._rows
        if self._packed == len(self._rows):
            blob = self._blob  # nothing taken: the blob is exactly what the rows refer to
        else:
            blob, kept["coid_offset"] = _gather(self._blob, kept["coid_offset"], kept["coid_length"])
        states = list(self._states.values())
        coids = [state.client_order_id.encode() for state in states]
        new = np.array([
            (s.order_id, s.account_id, s.price, s.quantity, s.filled, s.leaves, s.create_ns, s.update_ns, 0, 0,
             text(s.symbol), text(s.reason), s.side, s.order_type, s.time_in_force, s.status) for s in states
        ], dtype=ROW_DTYPE) if states else np.zeros(0, ROW_DTYPE)
        if len(texts) > 0xFFFF:
            raise RuntimeError("too many distinct symbols and reasons for a packed snapshot")
        lengths = np.fromiter(map(len, coids), dtype=np.uint32, count=len(coids))
        new["coid_length"] = lengths
        new["coid_offset"] = len(blob) + np.cumsum(lengths, dtype=np.uint64) - lengths
        if len(blob) + int(lengths.sum()) > 0xFFFFFFFF:
            raise RuntimeError("client_order_ids too large for a packed snapshot")
        rows = np.concatenate([kept, new])
        rows = rows[np.argsort(rows["order_id"], kind="stable")]
        return rows, texts, bytes(blob) + b"".join(coids)


def _gather(blob: bytes, offsets: np.ndarray, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The byte ranges (offsets[i], lengths[i]) of blob, concatenated, and their new offsets."""
    lengths = lengths.astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    if not total:
        return b"", starts
    index = np.arange(total, dtype=np.int64) + np.repeat(offsets.astype(np.int64) - starts, lengths)
    return np.frombuffer(blob, dtype=np.uint8)[index].tobytes(), starts


def _engine_orders(data: bytes):
    """(symbol_ids, sides, orders as _ENGINE_ORDER) of every resting order in an engine
    snapshot, or None if it is not the v1 layout this reads."""
    magic, version, _hash, books = _ENGINE_HEADER.unpack_from(data, 0)
    if magic != b"BRSE" or version != 1:
        return None
    pos, symbols, sides, parts = _ENGINE_HEADER.size, [], [], []
    for _ in range(books):
        (symbol,) = _ENGINE_BOOK.unpack_from(data, pos)
        pos += _ENGINE_BOOK.size
        for side in (1, 2):
            (count,) = struct.unpack_from("<I", data, pos)
            parts.append(np.frombuffer(data, dtype=_ENGINE_ORDER, count=count, offset=pos + 4))
            symbols.append(np.full(count, symbol, dtype=np.int64))
            sides.append(np.full(count, side, dtype=np.int64))
            pos += 4 + count * _ENGINE_ORDER.itemsize
    if pos != len(data):
        return None
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, _ENGINE_ORDER)
    return np.concatenate(symbols), np.concatenate(sides), np.concatenate(parts)


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
        self.live = _Live()
        self.sequence = 0  # of the last command applied to the books
        self.recent_ids: dict[int, int] = {}  # order id accepted -> its Snowflake ms
        self.restore_phases: dict[str, float] = {}  # seconds per step of the last restore

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
        batch = _Batch(replaying)
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
        if cmd.order_id in self.recent_ids:  # accepted before, maybe before a restore
            state.status, state.reason = REJECTED, "DUPLICATE_ORDER_ID"
            return None if batch.replaying else matching_pb2.CommandResult(
                order=state.to_proto(), error_reason=state.reason)
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
        if state.status != REJECTED:
            self._remember(cmd.order_id, now)
        # A duplicate id names an order that is already stored (or in this batch).
        if state.reason != "DUPLICATE_ORDER_ID":
            batch.new[state.order_id] = state
        if batch.replaying:
            return None
        error = state.reason if state.status == REJECTED else ""
        return matching_pb2.CommandResult(order=state.to_proto(fills), error_reason=error)

    def _remember(self, order_id: int, now_ns: int) -> None:
        self.recent_ids[order_id] = _id_ms(order_id)
        if len(self.recent_ids) % 4096 == 0:  # now and then, forget ids past the window
            horizon = now_ns // 1_000_000 - EPOCH_MS - DUPLICATE_WINDOW_MS
            self.recent_ids = {i: ms for i, ms in self.recent_ids.items() if ms >= horizon}

    def _trade(self, event, taker: OrderState, batch: _Batch, now: int) -> types_pb2.Fill | None:
        maker = self.live.get(event.maker_order_id)
        if maker is not None:
            maker.filled += event.quantity
            maker.leaves = event.maker_remaining
            maker.status = FILLED if maker.leaves == 0 else PARTIALLY_FILLED
            if maker.leaves == 0:
                del self.live[maker.order_id]
            batch.touch(maker)
        taker.filled += event.quantity
        if batch.replaying:  # the trade is stored already: only the order states matter
            return None
        trade_id = self._ids.next()
        ts = _timestamp(now)
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
                if batch.replaying:
                    return None
                reason = REJECT_REASONS.get(_int(event.reason), f"REJECTED_{_int(event.reason)}")
                unknown = types_pb2.Order(order_id=cmd.order_id, account_id=cmd.account_id, symbol=cmd.symbol)
                return matching_pb2.CommandResult(order=unknown, error_reason=reason)
        state = self.live.pop(cmd.order_id)
        state.status, state.leaves, state.reason = CANCELLED, 0, CANCEL_REASONS[1]
        state.update_ns = now
        batch.symbols.add(cmd.symbol)
        batch.touch(state)
        return None if batch.replaying else matching_pb2.CommandResult(order=state.to_proto())

    def reset(self) -> None:
        """Forget everything in memory; `restore` and/or `replay` must follow."""
        self.engine = self._engine_factory()
        self.live = _Live()
        self.sequence = 0
        self.recent_ids = {}
        self._last_ns = 0

    def snapshot(self) -> bytes:
        """The books at `self.sequence`: engine state plus each resting order's description,
        packed (module docstring)."""
        rows, texts, blob = self.live.pack()
        engine = self.engine.snapshot()
        text = json.dumps(texts).encode()
        packed = b"".join((_HEADER.pack(_MAGIC, _VERSION, len(engine), len(rows), len(text), len(blob)),
                           engine, rows.tobytes(), text, blob))
        return matching_pb2.ShardSnapshot(
            shard_index=self.shard_index, sequence=self.sequence, engine=packed, symbol_ids=self.symbols,
            recent_order_ids=self._recent_at(self._last_ns),
        ).SerializeToString()

    def _recent_at(self, now_ns: int) -> list[int]:
        horizon = now_ns // 1_000_000 - EPOCH_MS - DUPLICATE_WINDOW_MS
        return sorted(i for i, ms in self.recent_ids.items() if ms >= horizon)

    def restore(self, data: bytes) -> None:
        phases = self.restore_phases = {}
        started = time.perf_counter()
        snap = matching_pb2.ShardSnapshot.FromString(data)
        if snap.shard_index != self.shard_index:
            raise RuntimeError(f"snapshot of shard {snap.shard_index} offered to shard {self.shard_index}")
        self.reset()
        if snap.engine[:4] == _MAGIC:
            engine, live = _unpack(snap.engine)
        else:  # the older form: descriptions as Order messages
            engine, live = snap.engine, _Live({order.order_id: _state_of(order) for order in snap.orders})
        phases["decode"] = _lap(started)
        started = time.perf_counter()
        self.engine = self._engine_factory.restore(engine)
        self.recent_ids = {i: _id_ms(i) for i in snap.recent_order_ids}
        phases["engine restore"] = _lap(started)
        started = time.perf_counter()
        self.sequence = snap.sequence
        # Books are keyed by the ids they had; symbols listed since get fresh ids.
        kept = {symbol: book for symbol, book in snap.symbol_ids.items() if symbol in self.symbols}
        fresh = iter(range(max(snap.symbol_ids.values(), default=0) + 1, 2**32))
        self.symbols = {symbol: kept.get(symbol) or next(fresh) for symbol in self.symbols}
        rows, texts, _ = live.pack()
        self._check(engine, rows, texts, dict(snap.symbol_ids))
        self.live = live
        if len(rows):
            self._last_ns = max(self._last_ns, int(rows["create_ns"].max()))
        phases["check descriptions vs books"] = _lap(started)

    def _check(self, engine: bytes, rows: np.ndarray, texts: list[str], book_ids: dict[str, int]) -> None:
        """The descriptions must name exactly the orders resting in the books (ids strictly
        ascending, each once) and agree with the engine on symbol, side, account, price,
        leaves and filled."""
        ids = rows["order_id"]
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise RuntimeError("snapshot's order descriptions are not in ascending order_id")
        found = _engine_orders(engine)
        if found is None:  # an engine snapshot layout this does not read: ids only, via l3
            if sorted(self._resting_ids()) != ids.tolist():
                raise RuntimeError("snapshot's order descriptions do not match its books")
            return
        symbol_ids, sides, orders = found
        order = np.argsort(orders["order_id"], kind="stable")
        book_of_text = np.array([book_ids.get(text, -1) if text in self.symbols else -1 for text in texts] or [0],
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
        if not same:
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


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def _state_of(order: types_pb2.Order) -> OrderState:
    create_ns = order.create_time.seconds * 1_000_000_000 + order.create_time.nanos
    return OrderState(
        order.order_id, order.account_id, order.client_order_id, order.symbol, order.side, order.order_type,
        order.time_in_force, order.price, order.quantity, create_ns=create_ns, filled=order.filled_quantity,
        leaves=order.leaves_quantity, status=order.status, reason=order.reason,
        update_ns=order.update_time.seconds * 1_000_000_000 + order.update_time.nanos,
    )


def _unpack(data: bytes) -> tuple[bytes, _Live]:
    """(engine snapshot, packed descriptions) of the packed form (module docstring)."""
    if len(data) < _HEADER.size:
        raise RuntimeError("packed shard snapshot: truncated header")
    _magic, version, engine_len, count, text_len, blob_len = _HEADER.unpack_from(data, 0)
    if version != _VERSION:
        raise RuntimeError(f"packed shard snapshot: version {version}, this code reads {_VERSION}")
    pos = _HEADER.size
    rows_at = pos + engine_len
    text_at = rows_at + count * ROW_DTYPE.itemsize
    blob_at = text_at + text_len
    if blob_at + blob_len != len(data):
        raise RuntimeError("packed shard snapshot: sections do not add up to its size")
    engine = data[pos:rows_at]
    rows = np.frombuffer(data, dtype=ROW_DTYPE, count=count, offset=rows_at).copy()
    texts = json.loads(data[text_at:blob_at])
    if len(rows) and (int(rows["symbol"].max()) >= len(texts) or int(rows["reason"].max()) >= len(texts)
                      or int((rows["coid_offset"].astype(np.int64) + rows["coid_length"]).max()) > blob_len):
        raise RuntimeError("packed shard snapshot: a row points outside its texts or client_order_ids")
    return engine, _Live(rows=rows, texts=texts, blob=data[blob_at:])


class _Batch:
    """What one batch changed: orders first seen, pre-existing orders touched, trades."""

    def __init__(self, replaying: bool = False):
        self.replaying = replaying  # a journal replay: no results, trades or ids to produce
        self.new: dict[int, OrderState] = {}
        self.updated: dict[int, OrderState] = {}
        self.trades: list[types_pb2.Trade] = []
        self.symbols: set[str] = set()

    def touch(self, state: OrderState) -> None:
        if state.order_id not in self.new:
            self.updated[state.order_id] = state

