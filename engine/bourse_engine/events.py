"""Enums, the Event record and the event hash, shared by the C++-backed Engine
and the pure-Python ReferenceEngine.

Integer values of Side, OrderType, TimeInForce, OrderStatus and TradingStatus equal
the bourse.type.v1 protobuf enums; ``.name`` of a RejectReason/CancelReason is the
UPPER_SNAKE string for ``Order.reason``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Optional, Union


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3


class OrderStatus(IntEnum):
    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5


class EventKind(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELLED = 4
    DONE = 5
    MODIFIED = 6
    TRIGGERED = 7  # a waiting stop enters: price = its stop price, quantity = its quantity


class SelfTradePrevention(IntEnum):
    """What happens when an incoming order meets a resting order of its own
    account (the incoming order's mode decides). No trade ever prints between
    an account and itself."""

    CANCEL_INCOMING = 1
    CANCEL_RESTING = 2
    CANCEL_BOTH = 3


class RejectReason(IntEnum):
    UNKNOWN_ORDER = 1
    DUPLICATE_ORDER_ID = 2
    INVALID_SIDE = 3
    INVALID_ORDER_TYPE = 4
    INVALID_TIME_IN_FORCE = 5
    INVALID_QUANTITY = 6
    INVALID_PRICE = 7
    NOTIONAL_OVERFLOW = 8
    WOULD_TAKE_LIQUIDITY = 9
    PRICE_NOT_ON_TICK = 10
    QUANTITY_NOT_ON_LOT = 11
    QUANTITY_BELOW_MIN = 12
    QUANTITY_ABOVE_MAX = 13
    PRICE_OUTSIDE_BAND = 14
    INVALID_SELF_TRADE_PREVENTION = 15
    INVALID_POST_ONLY = 16
    INSTRUMENT_HALTED = 17
    INVALID_DISPLAY_QUANTITY = 18  # iceberg display not in [1, quantity - 1], off the lot, or not LIMIT GTC
    INVALID_STOP_PRICE = 19  # stop price not in [0, MAX_PRICE], or non-zero on a modify of a resting order
    STOP_WOULD_TRIGGER = 20  # the symbol's last trade price already satisfies the stop's trigger


class CancelReason(IntEnum):
    USER = 1
    IOC_REMAINDER = 2
    MARKET_REMAINDER = 3
    FOK_UNFILLABLE = 4
    SELF_TRADE_PREVENTED = 5
    MASS_CANCEL = 6


class TradingStatus(IntEnum):
    """A symbol's status. HALTED: submits and modifies are rejected INSTRUMENT_HALTED;
    cancels (and cancel_all) still work; resting orders stay."""

    TRADING = 1
    HALTED = 2


# Same limits as engine/include/bourse/engine/types.hpp.
MAX_PRICE = 10**15
MAX_QUANTITY = 10**12
MAX_NOTIONAL = 2**63 - 1
MAX_BAND_PERCENT = 1000
# OrderStore::kDefaultIdWindow (order_store.hpp): done orders whose ids are still refused.
DEFAULT_ID_WINDOW = 1 << 17


class Event(NamedTuple):
    """One engine event. Fields a kind does not use are 0 (or None for enums).

    ACCEPTED  order_id, symbol_id
    REJECTED  reason: RejectReason
    TRADE     order_id (== taker_order_id), maker_order_id, taker_order_id,
              maker_account, taker_account, price (maker's), quantity,
              aggressor_side, maker_remaining, taker_remaining
    CANCELLED reason: CancelReason, remaining (quantity cancelled)
    DONE      status, filled (cumulative), remaining (leaves; > 0 only if resting)
    MODIFIED  price (new), quantity (new open quantity)
    TRIGGERED price (the stop price), quantity (the stop's quantity): a waiting stop
              enters; its TRADE*, [CANCELLED], DONE follow as a submit's would

    An iceberg maker's maker_remaining is its whole leaves (shown + hidden), like every
    remaining here; a refresh of its slice emits no event of its own.
    """

    kind: EventKind
    order_id: int = 0
    symbol_id: int = 0
    reason: Optional[Union[RejectReason, CancelReason]] = None
    status: Optional[OrderStatus] = None
    aggressor_side: Optional[Side] = None
    maker_order_id: int = 0
    taker_order_id: int = 0
    maker_account: int = 0
    taker_account: int = 0
    price: int = 0
    quantity: int = 0
    maker_remaining: int = 0
    taker_remaining: int = 0
    filled: int = 0
    remaining: int = 0


class Level(NamedTuple):
    price: int
    quantity: int
    order_count: int


class L3Order(NamedTuple):
    """One resting order as the book shows it: `remaining` is its shown quantity (all of
    an ordinary order's leaves, an iceberg's current slice only; `quantity` is the same
    number), `display_quantity` an iceberg's slice size (0: an ordinary order). An
    iceberg's hidden quantity is not here: `Engine.order(id).remaining` is its leaves."""

    order_id: int
    account_id: int
    price: int
    remaining: int
    display_quantity: int = 0

    @property
    def quantity(self) -> int:
        """The shown quantity (== remaining)."""
        return self.remaining


class Instrument(NamedTuple):
    """Per-symbol rules. band_percent 0 or reference_price 0: no price band."""

    tick_size: int = 1
    lot_size: int = 1
    min_quantity: int = 1
    max_quantity: int = MAX_QUANTITY
    band_percent: int = 0
    reference_price: int = 0


class StopOrder(NamedTuple):
    """A waiting stop (MARKET: enters as a market order) or stop-limit (LIMIT: enters as
    that limit order, `price`) order, off the book until a trade reaches `stop_price`."""

    order_id: int
    account_id: int
    side: Side
    order_type: OrderType
    tif: TimeInForce
    stop_price: int
    price: int
    quantity: int
    display_quantity: int = 0


class OrderInfo(NamedTuple):
    """A live order; `remaining` is its leaves (an iceberg's hidden quantity included)."""

    symbol_id: int
    side: Side
    price: int
    remaining: int


# A raw event is the 16-int tuple the binding returns, in Event's field order,
# with 0 for absent enums.
RawEvent = tuple

_KINDS = {k.value: k for k in EventKind}
_REJECTS = {r.value: r for r in RejectReason}
_CANCELS = {c.value: c for c in CancelReason}
_STATUSES = {s.value: s for s in OrderStatus}
_SIDES = {s.value: s for s in Side}


def stop_from_raw(raw: tuple) -> StopOrder:
    """A StopOrder from the binding's 9-int tuple (StopOrder's fields in order)."""
    order_id, account_id, side, order_type, tif, stop_price, price, quantity, display = raw
    return StopOrder(order_id, account_id, Side(side), OrderType(order_type), TimeInForce(tif), stop_price,
                     price, quantity, display)


def event_from_raw(raw: RawEvent) -> Event:
    kind = _KINDS[raw[0]]
    if kind is EventKind.REJECTED:
        reason = _REJECTS[raw[3]]
    elif kind is EventKind.CANCELLED:
        reason = _CANCELS[raw[3]]
    else:
        reason = None
    return Event(
        kind,
        raw[1],
        raw[2],
        reason,
        _STATUSES.get(raw[4]),
        _SIDES.get(raw[5]),
        *raw[6:],
    )


def event_to_raw(ev: Event) -> RawEvent:
    return (
        int(ev.kind),
        ev.order_id,
        ev.symbol_id,
        int(ev.reason or 0),
        int(ev.status or 0),
        int(ev.aggressor_side or 0),
        *ev[6:],
    )


EVENT_HASH_SEED = 0xCBF29CE484222325
_MASK = (1 << 64) - 1
EVENT_HASH_WEIGHTS = (
    0x162514BFDC076D73, 0xC82B4A212FDCCE5F, 0xB96F08A1B85CC939, 0xAC8CD4DE55C2FC8B,
    0x4A6B90A6EEB7FF95, 0x2A90F3FAD65CBAAF, 0x8C4FAA62A8682B59, 0x1EE85282D9F35647,
    0x6F6A36BDD8900C75, 0x9DCE50009F4FC00F, 0xC04FEE4DF5901E2F, 0xA4CA62C95583A44B,
)


def hash_event(h: int, raw: RawEvent) -> int:
    """Python twin of bourse::engine::hash_event (see event.hpp): the weighted sum of
    the event's 12 words (its five narrow fields packed into the first), xored into h,
    through MurmurHash3's fmix64."""
    (kind, order_id, symbol_id, reason, status, side, maker_order_id, taker_order_id, maker_account,
     taker_account, price, quantity, maker_remaining, taker_remaining, filled, remaining) = raw
    words = (kind | reason << 8 | status << 16 | side << 24 | symbol_id << 32, order_id, maker_order_id,
             taker_order_id, maker_account, taker_account, price, quantity, maker_remaining, taker_remaining,
             filled, remaining)
    k = h ^ (sum(w * weight for w, weight in zip(words, EVENT_HASH_WEIGHTS)) & _MASK)
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    return k ^ (k >> 33)
