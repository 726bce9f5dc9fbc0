"""A deliberately naive pure-Python model of the engine's semantics.

It exists to check the C++ engine: property tests feed both the same random
command stream and require identical events. Clarity over speed everywhere:
the book is a flat dict of live orders, re-sorted into priority order whenever
it is needed, so there is no data structure to get wrong. Waiting stops are another
flat dict, searched in full after every order that traded.
"""

from __future__ import annotations

import itertools
import pickle
from collections import deque
from dataclasses import dataclass, replace
from typing import Optional

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
    OrderType,
    RejectReason,
    Side,
    StopOrder,
    TimeInForce,
    TradingStatus,
    event_from_raw,
    event_to_raw,
    hash_event,
)


def replace_ref(inst: Instrument, price: int) -> Instrument:
    return inst._replace(reference_price=price)


@dataclass
class _Resting:
    order_id: int
    account_id: int
    symbol_id: int
    side: int
    price: int
    remaining: int
    filled: int
    seq: int  # arrival order (or an iceberg's last refresh): the time in price-time priority
    stp: int = SelfTradePrevention.CANCEL_INCOMING
    post_only: bool = False
    display: int = 0  # an iceberg's slice size; 0: an ordinary order
    visible: int = 0  # what the book shows (== remaining for an ordinary order)


@dataclass
class _Stop:
    """A waiting stop (order_type MARKET) or stop-limit (LIMIT): all it needs to enter."""

    order_id: int
    account_id: int
    symbol_id: int
    side: int
    order_type: int
    tif: int
    stop_price: int
    price: int
    quantity: int
    display: int
    stp: int
    seq: int  # arrival (or a modify that lost its place): the order among stops at one stop price


def _raw(kind, order_id, symbol_id, reason=0, status=0, aggressor_side=0,
         maker_order_id=0, taker_order_id=0, maker_account=0, taker_account=0,
         price=0, quantity=0, maker_remaining=0, taker_remaining=0, filled=0, remaining=0):
    return (int(kind), order_id, symbol_id, int(reason), int(status), int(aggressor_side),
            maker_order_id, taker_order_id, maker_account, taker_account, price, quantity,
            maker_remaining, taker_remaining, filled, remaining)


def _validate(side, order_type, tif, price, quantity, post_only=False,
              stp=SelfTradePrevention.CANCEL_INCOMING) -> Optional[RejectReason]:
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


def _validate_full(side, order_type, tif, price, quantity, post_only, stp, display=0, stop_price=0):
    why = _validate(side, order_type, tif, price, quantity)
    if why is not None:
        return why
    if stp not in (1, 2, 3):
        return RejectReason.INVALID_SELF_TRADE_PREVENTION
    if post_only and (order_type != OrderType.LIMIT or tif != TimeInForce.GTC):
        return RejectReason.INVALID_POST_ONLY
    if display != 0 and not (0 < display < quantity and order_type == OrderType.LIMIT
                             and tif == TimeInForce.GTC):
        return RejectReason.INVALID_DISPLAY_QUANTITY
    if not 0 <= stop_price <= MAX_PRICE:
        return RejectReason.INVALID_STOP_PRICE
    # A stop enters when the price runs at it: it cannot promise to add liquidity.
    if post_only and stop_price != 0:
        return RejectReason.INVALID_POST_ONLY
    return None


def _fires(side: int, stop_price: int, trade_price: int) -> bool:
    """Whether a trade at trade_price triggers a stop of this side and stop price."""
    return trade_price >= stop_price if side == Side.BUY else trade_price <= stop_price


def _check_rules(inst: Instrument, price: int, quantity: int, check_min: bool):
    """Instrument rules; price 0 (market, or a modify keeping its price) skips
    the price rules."""
    if price != 0 and price % inst.tick_size != 0:
        return RejectReason.PRICE_NOT_ON_TICK
    if quantity % inst.lot_size != 0:
        return RejectReason.QUANTITY_NOT_ON_LOT
    if check_min and quantity < inst.min_quantity:
        return RejectReason.QUANTITY_BELOW_MIN
    if quantity > inst.max_quantity:
        return RejectReason.QUANTITY_ABOVE_MAX
    ref = inst.reference_price
    if price != 0 and inst.band_percent > 0 and ref > 0:
        if abs(price - ref) * 100 > ref * inst.band_percent:
            return RejectReason.PRICE_OUTSIDE_BAND
    return None


def _valid_instrument(i: Instrument) -> bool:
    return (1 <= i.tick_size <= MAX_PRICE and 1 <= i.lot_size <= MAX_QUANTITY
            and 1 <= i.min_quantity <= i.max_quantity <= MAX_QUANTITY
            and 0 <= i.band_percent <= MAX_BAND_PERCENT and 0 <= i.reference_price <= MAX_PRICE)


class ReferenceEngine:
    """Same API as bourse_engine.Engine."""

    def __init__(self, id_window: int = DEFAULT_ID_WINDOW) -> None:
        self._live: dict[int, _Resting] = {}
        self.refreshes = 0  # iceberg slices refreshed so far (tests count them)
        # Ids refused as duplicates: the working orders' and the last id_window done ones.
        self._known: set[int] = set()
        self._done_ids: deque[int] = deque()
        self._id_window = max(1, id_window)
        self._seq = itertools.count()
        self._hash = EVENT_HASH_SEED
        self._instruments: dict[int, Instrument] = {}
        self._status: dict[int, TradingStatus] = {}  # absent: TRADING
        self._stops: dict[int, _Stop] = {}  # waiting stops, off every book
        self._last: dict[int, int] = {}  # last trade price per symbol; absent: 0 (never traded)
        self.triggers = 0  # stops triggered so far (tests count them)
        self.cascades = 0  # of which triggered by a triggered stop's trades

    # -- helpers -----------------------------------------------------------

    def _finished(self, oid: int) -> None:
        """An order is done: its id joins the window; the oldest done id leaves it
        (and is forgotten, unless a modify made it work again)."""
        if len(self._done_ids) == self._id_window:
            oldest = self._done_ids.popleft()
            if oldest not in self._live and oldest not in self._stops:
                self._known.discard(oldest)
        self._done_ids.append(oid)

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

    def _rules(self, symbol_id: int) -> Instrument:
        return self._instruments.get(symbol_id, Instrument())

    def _halted(self, symbol_id: int) -> bool:
        return self._status.get(symbol_id) == TradingStatus.HALTED

    @staticmethod
    def _crosses(side: int, limit: Optional[int], resting_price: int) -> bool:
        if limit is None:  # market
            return True
        return resting_price <= limit if side == Side.BUY else resting_price >= limit

    def _would_trade(self, sym, side, price) -> bool:
        opposite = Side.SELL if side == Side.BUY else Side.BUY
        return any(self._crosses(side, price, o.price) for o in self._queue(sym, opposite))

    def _match(self, live, *, oid, account_id, sym, side, limit, remaining, stp):
        """Matches a taker against the resting orders in `live` (this engine's own, or a
        copy of them for a dry run), always the head of the priority order next.
        Returns (remaining, stopped, raw events, ids of the makers that finished)."""
        opposite = Side.SELL if side == Side.BUY else Side.BUY
        out, finished = [], []
        stopped = False
        while remaining > 0:
            queue = [o for o in live.values() if o.symbol_id == sym and o.side == opposite]
            if not queue:
                break
            maker = min(queue, key=lambda o: (o.price if opposite == Side.SELL else -o.price, o.seq))
            if not self._crosses(side, limit, maker.price):
                break
            if maker.account_id == account_id:  # no trade between an account and itself
                if stp in (SelfTradePrevention.CANCEL_RESTING, SelfTradePrevention.CANCEL_BOTH):
                    out.append(_raw(EventKind.CANCELLED, maker.order_id, sym,
                                    reason=CancelReason.SELF_TRADE_PREVENTED,
                                    remaining=maker.remaining))
                    out.append(_raw(EventKind.DONE, maker.order_id, sym,
                                    status=OrderStatus.CANCELLED, filled=maker.filled))
                    del live[maker.order_id]
                    finished.append(maker.order_id)
                if stp in (SelfTradePrevention.CANCEL_INCOMING, SelfTradePrevention.CANCEL_BOTH):
                    stopped = True
                    break
                continue
            q = min(remaining, maker.visible)  # only what the book shows trades
            maker.visible -= q
            maker.remaining -= q
            maker.filled += q
            remaining -= q
            out.append(_raw(EventKind.TRADE, oid, sym, aggressor_side=side,
                            maker_order_id=maker.order_id, taker_order_id=oid,
                            maker_account=maker.account_id, taker_account=account_id,
                            price=maker.price, quantity=q,
                            maker_remaining=maker.remaining, taker_remaining=remaining))
            if maker.remaining == 0:
                del live[maker.order_id]
                finished.append(maker.order_id)
            elif maker.visible == 0:  # an iceberg: next slice, at the back of its level
                maker.visible = min(maker.display, maker.remaining)
                maker.seq = next(self._seq)
                if live is self._live:
                    self.refreshes += 1
        return remaining, stopped, out, finished

    def _take(self, out, *, oid, account_id, sym, side, limit, quantity, filled, stp, is_market,
              tif, post_only, display=0) -> list[int]:
        """Matches an accepted order against the book, then rests or finishes it.
        Returns the prices its trades printed, in order (what stops are checked against)."""
        remaining, stopped, events, finished = self._match(
            self._live, oid=oid, account_id=account_id, sym=sym, side=side, limit=limit,
            remaining=quantity, stp=stp)
        out += events
        for maker_id in finished:
            self._finished(maker_id)
        filled += quantity - remaining
        prices = [r[10] for r in events if r[0] == EventKind.TRADE]
        if prices:
            self._last[sym] = prices[-1]

        if remaining == 0:
            self._finished(oid)
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.FILLED, filled=filled))
        elif stopped or is_market or tif != TimeInForce.GTC:
            self._finished(oid)
            why = (CancelReason.SELF_TRADE_PREVENTED if stopped
                   else CancelReason.MARKET_REMAINDER if is_market else CancelReason.IOC_REMAINDER)
            out.append(_raw(EventKind.CANCELLED, oid, sym, reason=why, remaining=remaining))
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.CANCELLED,
                            filled=filled))
        else:
            visible = min(display, remaining) if display else remaining
            self._live[oid] = _Resting(oid, account_id, sym, side, limit, remaining, filled,
                                       next(self._seq), stp, post_only, display, visible)
            status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.NEW
            out.append(_raw(EventKind.DONE, oid, sym, status=status, filled=filled,
                            remaining=remaining))
        return prices

    def _enter(self, out, *, oid, account_id, sym, side, order_type, tif, price, quantity, stp,
               post_only, display) -> list[int]:
        """An accepted order (a submit's, or a triggered stop's) after its ACCEPTED or
        TRIGGERED: the FOK test, then matching. Returns the prices its trades printed."""
        is_market = order_type == OrderType.MARKET
        limit = None if is_market else price
        if tif == TimeInForce.FOK:
            # What matching would actually fill (self-trade prevention and iceberg
            # refreshes included): match on a copy of the book and see.
            dry = {o.order_id: replace(o) for o in self._live.values() if o.symbol_id == sym}
            left, _, _, _ = self._match(dry, oid=oid, account_id=account_id, sym=sym, side=side,
                                        limit=limit, remaining=quantity, stp=stp)
            if left > 0:
                out.append(_raw(EventKind.CANCELLED, oid, sym,
                                reason=CancelReason.FOK_UNFILLABLE, remaining=quantity))
                out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.CANCELLED))
                self._finished(oid)
                return []
        return self._take(out, oid=oid, account_id=account_id, sym=sym, side=side, limit=limit,
                          quantity=quantity, filled=0, stp=stp, is_market=is_market, tif=tif,
                          post_only=post_only, display=display)

    def _would_trigger(self, sym, side, stop_price) -> bool:
        last = self._last.get(sym, 0)
        return last > 0 and _fires(side, stop_price, last)

    def _triggered(self, sym, aggressor, prices) -> list[_Stop]:
        """Takes off the waiting stops that these trade prices (one order's, in the order
        they printed) trigger, in the order the price path reached them: trade by trade,
        the aggressor's side first, then the other; within a side, the stop price reached
        first (a buy stop's lowest, a sell stop's highest), then arrival."""
        fired: list[_Stop] = []
        other = Side.SELL if aggressor == Side.BUY else Side.BUY
        for p in prices:
            for side in (aggressor, other):
                hits = [st for st in self._stops.values()
                        if st.symbol_id == sym and st.side == side and _fires(side, st.stop_price, p)]
                hits.sort(key=lambda st: (st.stop_price if side == Side.BUY else -st.stop_price, st.seq))
                for st in hits:
                    del self._stops[st.order_id]
                fired += hits
        return fired

    def _cascade(self, out, sym, aggressor, prices) -> None:
        """Enters the stops an order's trades triggered, one at a time, and those their
        own trades trigger after them (a FIFO queue), until none is left."""
        queue = deque(self._triggered(sym, aggressor, prices))
        while queue:
            st = queue.popleft()
            self.triggers += 1
            out.append(_raw(EventKind.TRIGGERED, st.order_id, sym, price=st.stop_price,
                            quantity=st.quantity))
            # Not validated again: the rules in force at its submit stand.
            printed = self._enter(out, oid=st.order_id, account_id=st.account_id, sym=sym, side=st.side,
                                  order_type=st.order_type, tif=st.tif, price=st.price,
                                  quantity=st.quantity, stp=st.stp, post_only=False, display=st.display)
            more = self._triggered(sym, st.side, printed)
            self.cascades += len(more)
            queue.extend(more)

    # -- commands ----------------------------------------------------------

    def submit(self, *, order_id, account_id, symbol_id, side, order_type, tif, price,
               quantity, post_only=False, stp=SelfTradePrevention.CANCEL_INCOMING,
               display_quantity=0, stop_price=0) -> list[Event]:
        oid, sym, display = order_id, symbol_id, display_quantity
        out: list[tuple] = []

        reason = _validate_full(side, order_type, tif, price, quantity, post_only, stp, display,
                                stop_price)
        if reason is None and self._halted(sym):
            reason = RejectReason.INSTRUMENT_HALTED
        if reason is None:
            reason = _check_rules(self._rules(sym), price, quantity, check_min=True)
        if reason is None and display % self._rules(sym).lot_size != 0:
            reason = RejectReason.INVALID_DISPLAY_QUANTITY  # a slice must be on the lot too
        if reason is None and stop_price % self._rules(sym).tick_size != 0:
            reason = RejectReason.PRICE_NOT_ON_TICK
        if reason is None and oid in self._known:
            reason = RejectReason.DUPLICATE_ORDER_ID
        if reason is None and stop_price and self._would_trigger(sym, side, stop_price):
            # It would enter at once: the caller meant a plain order, or the price moved.
            reason = RejectReason.STOP_WOULD_TRIGGER
        if reason is None and post_only and self._would_trade(sym, side, price):
            reason = RejectReason.WOULD_TAKE_LIQUIDITY
        if reason is not None:
            out.append(_raw(EventKind.REJECTED, oid, sym, reason=reason))
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.REJECTED))
            return self._emit(out)

        self._known.add(oid)
        out.append(_raw(EventKind.ACCEPTED, oid, sym))
        if stop_price:
            self._stops[oid] = _Stop(oid, account_id, sym, side, order_type, tif, stop_price, price,
                                     quantity, display, stp, next(self._seq))
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.NEW, remaining=quantity))
            return self._emit(out)

        prices = self._enter(out, oid=oid, account_id=account_id, sym=sym, side=side,
                             order_type=order_type, tif=tif, price=price, quantity=quantity, stp=stp,
                             post_only=post_only, display=display)
        self._cascade(out, sym, side, prices)
        return self._emit(out)

    def modify(self, *, order_id, account_id, symbol_id, price, quantity, stop_price=0) -> list[Event]:
        st = self._stops.get(order_id)
        if st is not None and st.account_id == account_id and st.symbol_id == symbol_id:
            return self._modify_stop(st, price, quantity, stop_price)
        o = self._live.get(order_id)
        reason = None
        if o is None or o.account_id != account_id or o.symbol_id != symbol_id:
            reason = RejectReason.UNKNOWN_ORDER
        elif self._halted(symbol_id):  # after the lookup: a halt must not reveal live ids
            reason = RejectReason.INSTRUMENT_HALTED
        elif stop_price != 0:  # a resting order is no stop, and cannot become one
            reason = RejectReason.INVALID_STOP_PRICE
        elif not 0 < quantity <= MAX_QUANTITY:
            reason = RejectReason.INVALID_QUANTITY
        elif not 0 < price <= MAX_PRICE:
            reason = RejectReason.INVALID_PRICE
        elif price * quantity > MAX_NOTIONAL:
            reason = RejectReason.NOTIONAL_OVERFLOW
        else:
            reason = _check_rules(self._rules(symbol_id), 0 if price == o.price else price,
                                  quantity, check_min=False)
            if reason is None and o.post_only and self._would_trade(symbol_id, o.side, price):
                reason = RejectReason.WOULD_TAKE_LIQUIDITY
        if reason is not None:
            return self._emit([_raw(EventKind.REJECTED, order_id, symbol_id, reason=reason)])

        out = [_raw(EventKind.MODIFIED, order_id, symbol_id, price=price, quantity=quantity)]
        if price == o.price and quantity <= o.remaining:
            # In place: keeps its seq, hence its priority. Hidden quantity goes first,
            # then shown: the slice never grows in place.
            hidden = o.remaining - o.visible
            o.visible -= max(0, (o.remaining - quantity) - hidden)
            o.remaining = quantity
            status = OrderStatus.PARTIALLY_FILLED if o.filled else OrderStatus.NEW
            out.append(_raw(EventKind.DONE, order_id, symbol_id, status=status, filled=o.filled,
                            remaining=quantity))
            return self._emit(out)
        del self._live[order_id]
        prices = self._take(out, oid=order_id, account_id=account_id, sym=symbol_id, side=o.side,
                            limit=price, quantity=quantity, filled=o.filled, stp=o.stp, is_market=False,
                            tif=TimeInForce.GTC, post_only=o.post_only, display=o.display)
        self._cascade(out, symbol_id, o.side, prices)
        return self._emit(out)

    def _modify_stop(self, st: _Stop, price, quantity, stop_price) -> list[Event]:
        sym = st.symbol_id
        new_stop = stop_price or st.stop_price  # 0 keeps it
        is_limit = st.order_type == OrderType.LIMIT
        reason = None
        if self._halted(sym):
            reason = RejectReason.INSTRUMENT_HALTED
        elif not 0 < quantity <= MAX_QUANTITY:
            reason = RejectReason.INVALID_QUANTITY
        elif (not 0 < price <= MAX_PRICE) if is_limit else price != 0:
            reason = RejectReason.INVALID_PRICE
        elif not 0 <= stop_price <= MAX_PRICE:
            reason = RejectReason.INVALID_STOP_PRICE
        elif price * quantity > MAX_NOTIONAL:
            reason = RejectReason.NOTIONAL_OVERFLOW
        else:
            # Like a resting order's modify, a price binds the tick (and a limit price the
            # band) only if it changes; a stop's price is 0, which skips them.
            reason = _check_rules(self._rules(sym), 0 if price == st.price else price, quantity,
                                  check_min=False)
            if reason is None and new_stop != st.stop_price and new_stop % self._rules(sym).tick_size:
                reason = RejectReason.PRICE_NOT_ON_TICK
            if reason is None and self._would_trigger(sym, st.side, new_stop):
                reason = RejectReason.STOP_WOULD_TRIGGER
        if reason is not None:
            return self._emit([_raw(EventKind.REJECTED, st.order_id, sym, reason=reason)])
        keeps_place = new_stop == st.stop_price and price == st.price and quantity <= st.quantity
        st.stop_price, st.price, st.quantity = new_stop, price, quantity
        if not keeps_place:
            st.seq = next(self._seq)
        return self._emit([
            _raw(EventKind.MODIFIED, st.order_id, sym, price=price, quantity=quantity),
            _raw(EventKind.DONE, st.order_id, sym, status=OrderStatus.NEW, remaining=quantity),
        ])

    def set_instrument(self, *, symbol_id, tick_size=1, lot_size=1, min_quantity=1,
                       max_quantity=MAX_QUANTITY, band_percent=0, reference_price=0) -> None:
        inst = Instrument(tick_size, lot_size, min_quantity, max_quantity, band_percent,
                          reference_price)
        if not _valid_instrument(inst):
            raise ValueError(f"invalid instrument {inst}")
        self._instruments[symbol_id] = inst

    def set_reference_price(self, *, symbol_id, price) -> None:
        if not 0 <= price <= MAX_PRICE:
            raise ValueError("price out of range")
        self._instruments[symbol_id] = replace_ref(self._rules(symbol_id), price)

    def instrument(self, *, symbol_id) -> Instrument:
        return self._rules(symbol_id)

    def set_trading_status(self, *, symbol_id, status) -> None:
        if status not in (TradingStatus.TRADING, TradingStatus.HALTED):
            raise ValueError(f"invalid trading status {status!r}")
        self._status[symbol_id] = TradingStatus(status)

    def trading_status(self, *, symbol_id) -> TradingStatus:
        return self._status.get(symbol_id, TradingStatus.TRADING)

    def cancel_all(self, *, account_id, symbol_id=None) -> list[Event]:
        # Resting orders as (id, symbol, remaining, filled), waiting stops alike (none filled).
        mine = [(o.order_id, o.symbol_id, o.remaining, o.filled) for o in self._live.values()
                if o.account_id == account_id and (symbol_id is None or o.symbol_id == symbol_id)]
        mine += [(st.order_id, st.symbol_id, st.quantity, 0) for st in self._stops.values()
                 if st.account_id == account_id and (symbol_id is None or st.symbol_id == symbol_id)]
        out = []
        for oid, sym, remaining, filled in sorted(mine):
            self._live.pop(oid, None)
            self._stops.pop(oid, None)
            self._finished(oid)
            out.append(_raw(EventKind.CANCELLED, oid, sym, reason=CancelReason.MASS_CANCEL,
                            remaining=remaining))
            out.append(_raw(EventKind.DONE, oid, sym, status=OrderStatus.CANCELLED, filled=filled))
        return self._emit(out)

    def cancel(self, *, order_id, account_id, symbol_id) -> list[Event]:
        st = self._stops.get(order_id)
        if st is not None and st.account_id == account_id and st.symbol_id == symbol_id:
            del self._stops[order_id]
            self._finished(order_id)
            return self._emit([
                _raw(EventKind.CANCELLED, order_id, symbol_id, reason=CancelReason.USER,
                     remaining=st.quantity),
                _raw(EventKind.DONE, order_id, symbol_id, status=OrderStatus.CANCELLED),
            ])
        o = self._live.get(order_id)
        if o is None or o.account_id != account_id or o.symbol_id != symbol_id:
            return self._emit([_raw(EventKind.REJECTED, order_id, symbol_id,
                                    reason=RejectReason.UNKNOWN_ORDER)])
        del self._live[order_id]
        self._finished(order_id)
        return self._emit([
            _raw(EventKind.CANCELLED, order_id, symbol_id, reason=CancelReason.USER,
                 remaining=o.remaining),
            _raw(EventKind.DONE, order_id, symbol_id, status=OrderStatus.CANCELLED,
                 filled=o.filled),
        ])

    def submit_batch(self, *, order_id, account_id, symbol_id, side, order_type, tif, price,
                     quantity, display_quantity=None) -> list[Event]:
        events: list[Event] = []
        if display_quantity is None:
            display_quantity = [0] * len(order_id)
        for row in zip(order_id, account_id, symbol_id, side, order_type, tif, price, quantity,
                       display_quantity):
            events += self.submit(**dict(zip(
                ("order_id", "account_id", "symbol_id", "side", "order_type", "tif", "price",
                 "quantity", "display_quantity"), (int(v) for v in row))))
        return events

    # -- queries -----------------------------------------------------------

    def depth(self, *, symbol_id: int, levels: int = 5) -> tuple[list[Level], list[Level]]:
        def side_levels(side: int) -> list[Level]:
            out: list[Level] = []
            for o in self._queue(symbol_id, side):
                if out and out[-1].price == o.price:
                    last = out[-1]
                    out[-1] = Level(last.price, last.quantity + o.visible, last.order_count + 1)
                else:
                    out.append(Level(o.price, o.visible, 1))
            return out[:max(levels, 0)]

        return side_levels(Side.BUY), side_levels(Side.SELL)

    def top(self, *, symbol_id: int) -> tuple[Optional[Level], Optional[Level]]:
        bids, asks = self.depth(symbol_id=symbol_id, levels=1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def l3(self, *, symbol_id: int) -> tuple[list[L3Order], list[L3Order]]:
        def side_orders(side):
            return [L3Order(o.order_id, o.account_id, o.price, o.visible, o.display)
                    for o in self._queue(symbol_id, side)]
        return side_orders(Side.BUY), side_orders(Side.SELL)

    def stops(self, *, symbol_id: int) -> tuple[list[StopOrder], list[StopOrder]]:
        def side_stops(side):
            mine = [st for st in self._stops.values() if st.symbol_id == symbol_id and st.side == side]
            # The order a move of the price through them would trigger them in.
            mine.sort(key=lambda st: (st.stop_price if side == Side.BUY else -st.stop_price, st.seq))
            return [StopOrder(st.order_id, st.account_id, Side(st.side), OrderType(st.order_type),
                              TimeInForce(st.tif), st.stop_price, st.price, st.quantity, st.display)
                    for st in mine]
        return side_stops(Side.BUY), side_stops(Side.SELL)

    def last_trade_price(self, *, symbol_id: int) -> int:
        return self._last.get(symbol_id, 0)

    def snapshot(self) -> bytes:
        """Not the C++ format: just this object's state, with the same rule that
        only live ids (resting orders' and waiting stops') survive a snapshot."""
        return pickle.dumps((self._live, self._stops, self._last, self._hash, self._instruments, self._status,
                             self.refreshes, self.triggers, self.cascades))

    @classmethod
    def restore(cls, data: bytes, id_window: int = DEFAULT_ID_WINDOW) -> "ReferenceEngine":
        eng = cls(id_window)
        (live, stops, eng._last, eng._hash, eng._instruments, eng._status, eng.refreshes,
         eng.triggers, eng.cascades) = pickle.loads(data)
        # Re-number seqs in priority order: only their relative order matters.
        eng._live, eng._stops = {}, {}
        for o in sorted([*live.values(), *stops.values()], key=lambda o: o.seq):
            (eng._stops if isinstance(o, _Stop) else eng._live)[o.order_id] = replace(o, seq=next(eng._seq))
        eng._known = set(eng._live) | set(eng._stops)
        return eng

    def execute_packed(self, commands):
        """Same contract as Engine.execute_packed (numpy in, numpy out)."""
        import numpy as np

        from .packed import EVENT_DTYPE, OP_CANCEL, OP_MODIFY, OP_SUBMIT
        raws = []
        for c in commands.tolist():
            # COMMAND_DTYPE; COMMAND_DTYPE_V2 lacks the stop price, COMMAND_DTYPE_V1 the display too.
            op, side, otype, tif, stp, post_only, _, sym, _, oid, acct, price, qty = c[:13]
            display = c[13] if len(c) > 13 else 0
            stop_price = c[14] if len(c) > 14 else 0
            if op == OP_SUBMIT:
                evs = self.submit(order_id=oid, account_id=acct, symbol_id=sym, side=side,
                                  order_type=otype, tif=tif, price=price, quantity=qty,
                                  post_only=bool(post_only), stp=stp or 1,
                                  display_quantity=display, stop_price=stop_price)
            elif op == OP_CANCEL:
                evs = self.cancel(order_id=oid, account_id=acct, symbol_id=sym)
            elif op == OP_MODIFY:
                evs = self.modify(order_id=oid, account_id=acct, symbol_id=sym, price=price,
                                  quantity=qty, stop_price=stop_price)
            else:
                raise ValueError("bad op")
            raws += [event_to_raw(e) for e in evs]
        order = ("kind", "order_id", "symbol_id", "reason", "status", "aggressor_side",
                 "maker_order_id", "taker_order_id", "maker_account", "taker_account", "price",
                 "quantity", "maker_remaining", "taker_remaining", "filled", "remaining")
        out = np.zeros(len(raws), dtype=EVENT_DTYPE)
        for i, name in enumerate(order):
            out[name] = [r[i] for r in raws]
        return out

    def order(self, order_id: int) -> Optional[OrderInfo]:
        o = self._live.get(order_id)
        return None if o is None else OrderInfo(o.symbol_id, Side(o.side), o.price, o.remaining)

    def event_hash(self) -> int:
        return self._hash

    def live_orders(self) -> int:
        return len(self._live)

    def known_ids(self) -> int:
        return len(self._known)
