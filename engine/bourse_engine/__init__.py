"""Typed Python API of the bourse matching engine (C++, via _bourse_engine).

    from bourse_engine import Engine, Side, OrderType, TimeInForce
    eng = Engine()
    events = eng.submit(order_id=1, account_id=7, symbol_id=3, side=Side.BUY,
                        order_type=OrderType.LIMIT, tif=TimeInForce.GTC,
                        price=100, quantity=5)

Not thread-safe by itself: calls hold the GIL for their whole duration, so an
Engine can be shared between Python threads, but each call is serialised.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

import _bourse_engine

from .events import (
    DEFAULT_ID_WINDOW,
    EVENT_HASH_SEED,
    MAX_BAND_PERCENT,
    Instrument,
    L3Order,
    SelfTradePrevention,
    MAX_NOTIONAL,
    MAX_PRICE,
    MAX_QUANTITY,
    CancelReason,
    Event,
    EventKind,
    Level,
    OrderInfo,
    OrderStatus,
    RawEvent,
    OrderType,
    RejectReason,
    Side,
    StopOrder,
    TimeInForce,
    TradingStatus,
    event_from_raw,
    hash_event,
    stop_from_raw,
)
from .packed import (
    COMMAND_DTYPE,
    COMMAND_DTYPE_V1,
    COMMAND_DTYPE_V2,
    EVENT_DTYPE,
    OP_CANCEL,
    OP_MODIFY,
    OP_SUBMIT,
)

__all__ = [
    "DEFAULT_ID_WINDOW",
    "Engine",
    "Event",
    "EventKind",
    "Side",
    "OrderType",
    "TimeInForce",
    "OrderStatus",
    "RejectReason",
    "CancelReason",
    "TradingStatus",
    "Level",
    "OrderInfo",
    "L3Order",
    "StopOrder",
    "Instrument",
    "SelfTradePrevention",
    "COMMAND_DTYPE",
    "COMMAND_DTYPE_V1",
    "COMMAND_DTYPE_V2",
    "EVENT_DTYPE",
    "OP_SUBMIT",
    "OP_CANCEL",
    "OP_MODIFY",
    "MAX_BAND_PERCENT",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_NOTIONAL",
    "EVENT_HASH_SEED",
    "hash_event",
]

_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _id(name: str, value: int, top: int) -> int:
    # Ids are identities, not business values: an impossible one is a caller bug.
    value = int(value)
    if not 0 <= value <= top:
        raise ValueError(f"{name} must be in [0, {top}], got {value}")
    return value


def _clamp(value: int) -> int:
    # Out-of-range prices/quantities must come back as REJECTED events rather
    # than conversion errors; clamping keeps them out of range for the engine.
    return min(max(int(value), _I64_MIN), _I64_MAX)


def _code(value: int) -> int:
    # Anything that is not a small non-negative int is an invalid enum code (0).
    value = int(value)
    return value if 0 <= value <= 255 else 0


def _events(raw: list) -> list[Event]:
    return [event_from_raw(r) for r in raw]


class Engine:
    """Many order books (one per symbol_id, created by the first accepted order)."""

    def __init__(self, id_window: int = DEFAULT_ID_WINDOW, expected_orders: int = 1024) -> None:
        """id_window: an accepted order_id is refused (DUPLICATE_ORDER_ID) while its
        order works and until id_window more orders are done after it; then it is
        forgotten, so memory follows the book rather than every order ever seen.
        expected_orders: the orders (working, and done within the window) the engine
        is sized for from the start; past it, its pool and id index grow by doubling,
        each growth a pause of the call that crosses it."""
        self._raw = _bourse_engine.Engine(id_window, expected_orders)

    def submit(
        self,
        *,
        order_id: int,
        account_id: int,
        symbol_id: int,
        side: Side | int,
        order_type: OrderType | int,
        tif: TimeInForce | int,
        price: int,
        quantity: int,
        post_only: bool = False,
        stp: SelfTradePrevention | int = SelfTradePrevention.CANCEL_INCOMING,
        display_quantity: int = 0,
        stop_price: int = 0,
    ) -> list[Event]:
        """Events: REJECTED, DONE(REJECTED) -- or ACCEPTED, TRADE*, [CANCELLED], DONE.

        With stp CANCEL_RESTING/CANCEL_BOTH, CANCELLED(SELF_TRADE_PREVENTED) +
        DONE(CANCELLED) of *resting* orders (their own order_id) may appear among
        the TRADEs; this order's DONE is the last of its own events, followed by those
        of the stops its trades triggered (TRIGGERED, TRADE*, [CANCELLED], DONE each).

        display_quantity > 0 makes a LIMIT GTC order an iceberg (0 < display_quantity <
        quantity, a multiple of the lot size; else INVALID_DISPLAY_QUANTITY): it trades
        on arrival with all of its quantity, then the book shows a slice of at most
        display_quantity; each slice filled is followed by the next one at the back of
        its price level (engine/README.md, "Icebergs").

        stop_price > 0 makes a MARKET order a stop and a LIMIT order a stop-limit: accepted
        (ACCEPTED, DONE(NEW)) it waits off the book until a trade prints at or beyond its stop
        price (a buy at or above, a sell at or below), then enters as that order; it is
        rejected STOP_WOULD_TRIGGER if the last trade price already satisfies that
        (engine/README.md, "Stop and stop-limit orders")."""
        return _events(
            self._raw.submit(
                _id("order_id", order_id, _U64),
                _id("account_id", account_id, _U64),
                _id("symbol_id", symbol_id, _U32),
                _code(side),
                _code(order_type),
                _code(tif),
                _clamp(price),
                _clamp(quantity),
                bool(post_only),
                _code(stp),
                _clamp(display_quantity),
                _clamp(stop_price),
            )
        )

    def submit_raw(self, order_id: int, account_id: int, symbol_id: int, side: int, order_type: int, tif: int,
                   price: int, quantity: int, post_only: bool, stp: int, display_quantity: int = 0,
                   stop_price: int = 0) -> list[RawEvent]:
        """`submit`, with the events as raw tuples (Event's fields in order, enums as
        their ints, 0 for none): for a caller's hot loop, which then builds no Event."""
        return self._raw.submit(
            _id("order_id", order_id, _U64), _id("account_id", account_id, _U64), _id("symbol_id", symbol_id, _U32),
            _code(side), _code(order_type), _code(tif), _clamp(price), _clamp(quantity), bool(post_only), _code(stp),
            _clamp(display_quantity), _clamp(stop_price))

    @property
    def raw(self):
        """The binding's own engine: submit, cancel and modify as submit_raw, cancel_raw
        and modify_raw take them, with no Python frame in between, for a caller's hot loop
        whose ids are checked already. Ids out of range (order and account ids outside
        [0, 2^64), symbol ids outside [0, 2^32)) and prices or quantities outside int64
        raise TypeError here, where the *_raw methods raise ValueError or clamp; enum codes
        are taken as any int, out-of-range ones as invalid, alike."""
        return self._raw

    def cancel_raw(self, order_id: int, account_id: int, symbol_id: int) -> list[RawEvent]:
        """`cancel`, with the events as raw tuples (see submit_raw)."""
        return self._raw.cancel(_id("order_id", order_id, _U64), _id("account_id", account_id, _U64),
                                _id("symbol_id", symbol_id, _U32))

    def modify_raw(self, order_id: int, account_id: int, symbol_id: int, price: int, quantity: int,
                   stop_price: int = 0) -> list[RawEvent]:
        """`modify`, with the events as raw tuples (see submit_raw)."""
        return self._raw.modify(_id("order_id", order_id, _U64), _id("account_id", account_id, _U64),
                                _id("symbol_id", symbol_id, _U32), _clamp(price), _clamp(quantity),
                                _clamp(stop_price))

    def modify(
        self, *, order_id: int, account_id: int, symbol_id: int, price: int, quantity: int, stop_price: int = 0
    ) -> list[Event]:
        """Changes a resting order's price and/or open quantity (`quantity` is the
        new leaves). Same price and quantity <= leaves: reduced in place, keeps
        its priority (an iceberg loses hidden quantity first, then shown). Otherwise
        cancel-replace (atomic): it goes to the back of the queue at `price` and may
        trade at once (an iceberg keeps its display quantity).

        A waiting stop: `price` is its new limit price (0 for a stop), `quantity` its new
        quantity, `stop_price` its new stop price (0 keeps it); it keeps its place among
        the stops if neither price changes and the quantity does not grow. stop_price
        must be 0 for a resting order (else INVALID_STOP_PRICE).

        Events: MODIFIED, TRADE*, [CANCELLED(SELF_TRADE_PREVENTED)], DONE, then the
        stops its trades triggered -- or REJECTED(reason) alone, the order untouched
        (UNKNOWN_ORDER for a missing, done, foreign-account or other-symbol order)."""
        return _events(
            self._raw.modify(
                _id("order_id", order_id, _U64),
                _id("account_id", account_id, _U64),
                _id("symbol_id", symbol_id, _U32),
                _clamp(price),
                _clamp(quantity),
                _clamp(stop_price),
            )
        )

    def execute_packed(self, commands: Union[np.ndarray, bytes, bytearray, memoryview]) -> np.ndarray:
        """Runs a batch of commands in one call; returns the events as a numpy
        array of EVENT_DTYPE. `commands` is an array of COMMAND_DTYPE (or of the older
        COMMAND_DTYPE_V2, without stop prices, or COMMAND_DTYPE_V1, without display
        quantities either) or a buffer of COMMAND_DTYPE records (see bourse_engine.packed
        for the layouts)."""
        if isinstance(commands, np.ndarray):
            if commands.dtype not in (COMMAND_DTYPE, COMMAND_DTYPE_V2, COMMAND_DTYPE_V1):
                raise ValueError(f"commands must have dtype COMMAND_DTYPE, got {commands.dtype}")
            commands = np.ascontiguousarray(commands)
        return np.frombuffer(self._raw.execute_packed(commands), dtype=EVENT_DTYPE)

    def set_instrument(
        self,
        *,
        symbol_id: int,
        tick_size: int = 1,
        lot_size: int = 1,
        min_quantity: int = 1,
        max_quantity: int = MAX_QUANTITY,
        band_percent: int = 0,
        reference_price: int = 0,
    ) -> None:
        """Sets a symbol's rules for later commands (resting orders are not
        re-checked). Limit prices: multiple of tick_size, and when band_percent
        and reference_price are both > 0, |price - reference| * 100 <=
        reference * band_percent. Quantities: multiple of lot_size, at most
        max_quantity, and (new orders only) at least min_quantity.
        Raises ValueError for values out of range."""
        values = [_clamp(v) for v in (tick_size, lot_size, min_quantity, max_quantity,
                                      band_percent, reference_price)]
        self._raw.set_instrument(_id("symbol_id", symbol_id, _U32), *values)

    def set_reference_price(self, *, symbol_id: int, price: int) -> None:
        """Moves the centre of the price band (0 disables the band)."""
        self._raw.set_reference_price(_id("symbol_id", symbol_id, _U32), _clamp(price))

    def instrument(self, *, symbol_id: int) -> Instrument:
        return Instrument(*self._raw.instrument(_id("symbol_id", symbol_id, _U32)))

    def set_trading_status(self, *, symbol_id: int, status: TradingStatus | int) -> None:
        """Halts or resumes a symbol (creating its book). While HALTED, submits and
        modifies on it are rejected INSTRUMENT_HALTED; cancels work; resting orders
        stay, and nothing trades at resume by itself. Emits no event.
        Raises ValueError for a status that is not a TradingStatus."""
        self._raw.set_trading_status(_id("symbol_id", symbol_id, _U32), _code(status))

    def trading_status(self, *, symbol_id: int) -> TradingStatus:
        """TRADING for a symbol never seen."""
        return TradingStatus(self._raw.trading_status(_id("symbol_id", symbol_id, _U32)))

    def cancel_all(self, *, account_id: int, symbol_id: int | None = None) -> list[Event]:
        """Mass cancel: every resting order and waiting stop of the account (on symbol_id
        only, if given), together in ascending order_id, each CANCELLED(MASS_CANCEL,
        remaining) + DONE(CANCELLED, filled). No events if it has none. Works while halted.
        O(resting orders of the book, or of every book without symbol_id)."""
        return _events(self.cancel_all_raw(account_id, symbol_id))

    def cancel_all_raw(self, account_id: int, symbol_id: int | None = None) -> list[RawEvent]:
        """`cancel_all`, with the events as raw tuples (see submit_raw)."""
        return self._raw.cancel_all(_id("account_id", account_id, _U64),
                                    None if symbol_id is None else _id("symbol_id", symbol_id, _U32))

    def l3(self, *, symbol_id: int) -> tuple[list[L3Order], list[L3Order]]:
        """(bids, asks): every resting order, best price first, FIFO within a price,
        as the book shows it (an iceberg: its current slice, and its display_quantity)."""
        bids, asks = self._raw.l3(_id("symbol_id", symbol_id, _U32))
        return [L3Order(*b) for b in bids], [L3Order(*a) for a in asks]

    def stops(self, *, symbol_id: int) -> tuple[list[StopOrder], list[StopOrder]]:
        """(buys, sells): the symbol's waiting stops, each side in the order a move of the
        price would trigger them (buys by rising stop price, sells by falling; at one stop
        price in arrival order). They are in no book: not in depth, top, l3 or order()."""
        buys, sells = self._raw.stops(_id("symbol_id", symbol_id, _U32))
        return [stop_from_raw(b) for b in buys], [stop_from_raw(s) for s in sells]

    def last_trade_price(self, *, symbol_id: int) -> int:
        """The price of the symbol's latest trade, which stops are checked against at
        submit (STOP_WOULD_TRIGGER); 0 before any trade."""
        return self._raw.last_trade_price(_id("symbol_id", symbol_id, _U32))

    def snapshot(self) -> bytes:
        """The whole state (books with priority, waiting stops, last trade prices,
        instrument rules, trading status, event hash) as bytes. Ids of done orders are
        not included (see restore)."""
        return self._raw.snapshot()

    @classmethod
    def restore(cls, data: bytes, id_window: int = DEFAULT_ID_WINDOW, expected_orders: int | None = None) -> "Engine":
        """A new Engine identical to the one that took the snapshot, except that
        only live order ids are known (a done order's id may be accepted again).
        Raises ValueError for malformed data. expected_orders: as for a new one
        (None: the class's own default)."""
        eng = cls(id_window) if expected_orders is None else cls(id_window, expected_orders)
        eng._raw.restore(data)
        return eng

    def symbol_count(self) -> int:
        return self._raw.symbol_count()

    def cancel(self, *, order_id: int, account_id: int, symbol_id: int) -> list[Event]:
        """Cancels a resting order or a waiting stop. Events: CANCELLED(USER),
        DONE(CANCELLED) -- or REJECTED(UNKNOWN_ORDER) alone, also when the order belongs
        to another account or symbol."""
        return _events(
            self._raw.cancel(
                _id("order_id", order_id, _U64),
                _id("account_id", account_id, _U64),
                _id("symbol_id", symbol_id, _U32),
            )
        )

    def submit_batch(
        self,
        *,
        order_id: Sequence[int],
        account_id: Sequence[int],
        symbol_id: Sequence[int],
        side: Sequence[int],
        order_type: Sequence[int],
        tif: Sequence[int],
        price: Sequence[int],
        quantity: Sequence[int],
        display_quantity: Optional[Sequence[int]] = None,
    ) -> list[Event]:
        """Submits the i-th element of every column in order; equivalent to
        calling submit() for each, concatenating the events (each order's events
        end with its DONE). Columns are lists or numpy integer arrays of equal
        length; unlike submit(), values must already fit their C++ types.
        display_quantity: None (all 0) or a column of display quantities."""
        return _events(
            self._raw.submit_batch(
                order_id, account_id, symbol_id, side, order_type, tif, price, quantity, display_quantity
            )
        )

    def depth(self, *, symbol_id: int, levels: int = 5) -> tuple[list[Level], list[Level]]:
        """(bids, asks): up to `levels` levels per side, best first."""
        levels = min(max(int(levels), 0), _U32)
        bids, asks = self._raw.depth(_id("symbol_id", symbol_id, _U32), levels)
        return [Level(*b) for b in bids], [Level(*a) for a in asks]

    def depth_raw(self, symbol_id: int, levels: int = 5) -> tuple[list[tuple], list[tuple]]:
        """`depth` as (price, quantity, order_count) tuples: for publishers that only
        serialize them, without a Level per level."""
        return self._raw.depth(_id("symbol_id", symbol_id, _U32), min(max(int(levels), 0), _U32))

    def top(self, *, symbol_id: int) -> tuple[Optional[Level], Optional[Level]]:
        """(best bid, best ask), None for an empty side."""
        bids, asks = self.depth(symbol_id=symbol_id, levels=1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def order(self, order_id: int) -> Optional[OrderInfo]:
        """The live (resting) order, or None once it is done, while it is a waiting stop,
        or if never seen;
        `remaining` is its leaves, an iceberg's hidden quantity included."""
        if not 0 <= int(order_id) <= _U64:
            return None
        found = self._raw.order(int(order_id))
        if found is None:
            return None
        symbol_id, side, price, remaining = found[:4]
        return OrderInfo(symbol_id, Side(side), price, remaining)

    def event_hash(self) -> int:
        """Running hash over every event emitted so far (see hash_event)."""
        return self._raw.event_hash()

    def live_orders(self) -> int:
        """Resting orders (waiting stops are not counted)."""
        return self._raw.live_orders()

    def known_ids(self) -> int:
        """Ids refused as duplicates now: the working orders' (waiting stops' included) and
        the window's."""
        return self._raw.known_ids()
