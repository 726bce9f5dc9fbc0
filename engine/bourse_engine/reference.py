"""A deliberately naive pure-Python model of the engine's semantics.

It exists to check the C++ engine: property tests feed both the same random
command stream and require identical events. Clarity over speed everywhere:
the book is a flat dict of live orders, re-sorted into priority order whenever
it is needed, so there is no data structure to get wrong.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

from .events import (
    EVENT_HASH_SEED,
    MAX_NOTIONAL,
    MAX_PRICE,
    MAX_QUANTITY,
    CancelReason,
    Event,
    EventKind,
    Level,
    OrderInfo,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    event_from_raw,
    hash_event,
)


@dataclass
class _Resting:
    order_id: int
    account_id: int
    symbol_id: int
    side: int
    price: int
    remaining: int
    filled: int
    seq: int  # arrival order: the time in price-time priority


def _raw(kind, order_id, symbol_id, reason=0, status=0, aggressor_side=0,
         maker_order_id=0, taker_order_id=0, maker_account=0, taker_account=0,
         price=0, quantity=0, maker_remaining=0, taker_remaining=0, filled=0, remaining=0):
    return (int(kind), order_id, symbol_id, int(reason), int(status), int(aggressor_side),
            maker_order_id, taker_order_id, maker_account, taker_account, price, quantity,
            maker_remaining, taker_remaining, filled, remaining)


def _validate(side, order_type, tif, price, quantity) -> Optional[RejectReason]:
    # Same checks, same order, as validate() in engine/src/types.cpp.
    if side not in (1, 2):
        return RejectReason.INVALID_SIDE
    if order_type not in (1, 2):
        return RejectReason.INVALID_ORDER_TYPE
    if tif not in (1, 2, 3):
        return RejectReason.INVALID_TIME_IN_FORCE
    if not 0 < quantity <= MAX_QUANTITY:
        return RejectReason.INVALID_QUANTITY
    if order_type == OrderType.MARKET:
        return None if price == 0 else RejectReason.INVALID_PRICE
    if not 0 < price <= MAX_PRICE:
        return RejectReason.INVALID_PRICE
    if price * quantity > MAX_NOTIONAL:
        return RejectReason.NOTIONAL_OVERFLOW
    return None


class ReferenceEngine:
    """Same API as bourse_engine.Engine."""

    def __init__(self) -> None:
        self._live: dict[int, _Resting] = {}
        self._known: set[int] = set()
        self._seq = itertools.count()
        self._hash = EVENT_HASH_SEED

    # -- helpers -----------------------------------------------------------

    def _queue(self, symbol_id: int, side: int) -> list[_Resting]:
        """Resting orders of one side, in the order they must be matched."""
        orders = [o for o in self._live.values() if o.symbol_id == symbol_id and o.side == side]
        if side == Side.BUY:
            return sorted(orders, key=lambda o: (-o.price, o.seq))
        return sorted(orders, key=lambda o: (o.price, o.seq))

    def _emit(self, raws: list[tuple]) -> list[Event]:
        for r in raws:
            self._hash = hash_event(self._hash, r)
        return [event_from_raw(r) for r in raws]

    # -- commands ----------------------------------------------------------

    def submit(self, *, order_id, account_id, symbol_id, side, order_type, tif, price,
               quantity) -> list[Event]:
        oid, sym = order_id, symbol_id
        out: list[tuple] = []

        reason = _validate(side, order_type, tif, price, quantity)
        if reason is None and oid in self._known:
            reason = RejectReason.DUPLICATE_ORDER_ID
        if reason is not None:
            out.append(_raw(EventKind.REJECTED, oid, sym, reason=reason))
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.REJECTED))
            return self._emit(out)

        self._known.add(oid)
        out.append(_raw(EventKind.ACCEPTED, oid, sym))

        is_market = order_type == OrderType.MARKET
        opposite = Side.SELL if side == Side.BUY else Side.BUY

        def crosses(resting_price: int) -> bool:
            if is_market:
                return True
            return resting_price <= price if side == Side.BUY else resting_price >= price

        if tif == TimeInForce.FOK:
            available = sum(o.remaining for o in self._queue(sym, opposite) if crosses(o.price))
            if available < quantity:
                out.append(_raw(EventKind.CANCELLED, oid, sym,
                                reason=CancelReason.FOK_UNFILLABLE, remaining=quantity))
                out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.CANCELLED))
                return self._emit(out)

        remaining, filled = quantity, 0
        for maker in self._queue(sym, opposite):
            if remaining == 0 or not crosses(maker.price):
                break
            q = min(remaining, maker.remaining)
            maker.remaining -= q
            maker.filled += q
            remaining -= q
            filled += q
            out.append(_raw(EventKind.TRADE, oid, sym, aggressor_side=side,
                            maker_order_id=maker.order_id, taker_order_id=oid,
                            maker_account=maker.account_id, taker_account=account_id,
                            price=maker.price, quantity=q,
                            maker_remaining=maker.remaining, taker_remaining=remaining))
            if maker.remaining == 0:
                del self._live[maker.order_id]

        if remaining == 0:
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.FILLED, filled=filled))
        elif is_market or tif != TimeInForce.GTC:
            why = CancelReason.MARKET_REMAINDER if is_market else CancelReason.IOC_REMAINDER
            out.append(_raw(EventKind.CANCELLED, oid, sym, reason=why, remaining=remaining))
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.CANCELLED,
                            filled=filled))
        else:
            self._live[oid] = _Resting(oid, account_id, sym, side, price, remaining, filled,
                                       next(self._seq))
            status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.NEW
            out.append(_raw(EventKind.DONE, oid, sym, status=status, filled=filled,
                            remaining=remaining))
        return self._emit(out)

    def cancel(self, *, order_id, account_id, symbol_id) -> list[Event]:
        o = self._live.get(order_id)
        if o is None or o.account_id != account_id or o.symbol_id != symbol_id:
            return self._emit([_raw(EventKind.REJECTED, order_id, symbol_id,
                                    reason=RejectReason.UNKNOWN_ORDER)])
        del self._live[order_id]
        return self._emit([
            _raw(EventKind.CANCELLED, order_id, symbol_id, reason=CancelReason.USER,
                 remaining=o.remaining),
            _raw(EventKind.DONE, order_id, symbol_id, status=OrderStatus.CANCELLED,
                 filled=o.filled),
        ])

    def submit_batch(self, *, order_id, account_id, symbol_id, side, order_type, tif, price,
                     quantity) -> list[Event]:
        events: list[Event] = []
        for row in zip(order_id, account_id, symbol_id, side, order_type, tif, price, quantity):
            events += self.submit(**dict(zip(
                ("order_id", "account_id", "symbol_id", "side", "order_type", "tif", "price",
                 "quantity"), (int(v) for v in row))))
        return events

    # -- queries -----------------------------------------------------------

    def depth(self, *, symbol_id: int, levels: int = 5) -> tuple[list[Level], list[Level]]:
        def side_levels(side: int) -> list[Level]:
            out: list[Level] = []
            for o in self._queue(symbol_id, side):
                if out and out[-1].price == o.price:
                    last = out[-1]
                    out[-1] = Level(last.price, last.quantity + o.remaining, last.order_count + 1)
                else:
                    out.append(Level(o.price, o.remaining, 1))
            return out[:max(levels, 0)]

        return side_levels(Side.BUY), side_levels(Side.SELL)

    def top(self, *, symbol_id: int) -> tuple[Optional[Level], Optional[Level]]:
        bids, asks = self.depth(symbol_id=symbol_id, levels=1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def order(self, order_id: int) -> Optional[OrderInfo]:
        o = self._live.get(order_id)
        return None if o is None else OrderInfo(o.symbol_id, Side(o.side), o.price, o.remaining)

    def event_hash(self) -> int:
        return self._hash

    def live_orders(self) -> int:
        return len(self._live)
