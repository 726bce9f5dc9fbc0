"""Checks of client input. Every refusal names the field that was wrong."""

from __future__ import annotations

import time

from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.type.v1 import types_pb2

from services.common.errors import invalid
from services.common.limits import MAX_CLIENT_ORDER_ID, MAX_NOTIONAL, MAX_PRICE, MAX_QUANTITY

__all__ = ["MAX_CLIENT_ORDER_ID", "MAX_NOTIONAL", "MAX_PRICE", "MAX_QUANTITY"]  # re-exported
MAX_PAGE_SIZE = 1000
# Orders that may rest: a market order may not ask for these, and post-only needs one.
RESTING = frozenset((types_pb2.TIME_IN_FORCE_GTC, types_pb2.TIME_IN_FORCE_GTD, types_pb2.TIME_IN_FORCE_DAY))
GTD, DAY = types_pb2.TIME_IN_FORCE_GTD, types_pb2.TIME_IN_FORCE_DAY
LIMIT, MARKET = types_pb2.ORDER_TYPE_LIMIT, types_pb2.ORDER_TYPE_MARKET
STOP, STOP_LIMIT = types_pb2.ORDER_TYPE_STOP, types_pb2.ORDER_TYPE_STOP_LIMIT
DAY_US = 86_400 * 1_000_000
MAX_GTD_US = 366 * DAY_US  # how far ahead a GTD order may expire


# Each enum's valid numbers (its UNSPECIFIED zero aside): EnumTypeWrapper.values() builds a
# new list on every call, which was a tenth of the order service's CPU under streams.
_VALID: dict[str, frozenset[int]] = {}


def _enum(field: str, enum, value: int) -> int:
    valid = _VALID.get(enum.DESCRIPTOR.full_name)
    if valid is None:
        valid = _VALID[enum.DESCRIPTOR.full_name] = frozenset(v for v in enum.values() if v)
    if value not in valid:
        names = ", ".join(n for n in enum.keys() if not n.endswith("UNSPECIFIED"))
        raise invalid(field, f"must be one of {names}, got {value}")
    return value


def check_symbol(symbol: str, listed) -> str:
    if not symbol:
        raise invalid("symbol", "is required")
    if symbol not in listed:
        raise invalid("symbol", f"unknown instrument {symbol[:32]!r}")
    return symbol


def new_order(request, account_id: int, order_id: int, listed) -> matching_pb2.NewOrder:
    """Validates a SubmitOrderRequest and turns it into the matching command."""
    return matching_pb2.NewOrder(**new_order_fields(request, account_id, order_id, listed))


def next_day_end_us(now_us: int, day_end_s: int) -> int:
    """The first end of a trading day after now: `day_end_s` seconds after midnight UTC."""
    end = now_us - now_us % DAY_US + day_end_s * 1_000_000
    return end if end > now_us else end + DAY_US


def expire_time_us(request, time_in_force: int, day_end_s: int, now_us: int | None = None) -> int:
    """When the order expires (microseconds since the epoch; 0: never)."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    given = request.HasField("expire_time")
    if time_in_force == GTD:
        if not given:
            raise invalid("expire_time", "is required for a GTD order")
        stamp = request.expire_time
        if not 0 <= stamp.nanos < 1_000_000_000:
            raise invalid("expire_time", f"nanos must be 0-999999999, got {stamp.nanos}")
        expires = stamp.seconds * 1_000_000 + stamp.nanos // 1000
        # Whether it is still ahead is the shard's to say, after the client_order_id: a retry
        # of an order placed in time is answered with that order, however late it comes.
        if expires <= 0:
            raise invalid("expire_time", "must be in the future")
        if expires > now_us + MAX_GTD_US:
            raise invalid("expire_time", "must be within a year")
        return expires
    if given:
        raise invalid("expire_time", "only a GTD order has one")
    return next_day_end_us(now_us, day_end_s) if time_in_force == DAY else 0


def new_order_fields(request, account_id: int, order_id: int, listed, day_end_s: int = 0) -> dict:
    """new_order's fields, for a Command to build its new_order from in place (a
    NewOrder built first is copied into the Command: about 0.5 us a submit).
    `day_end_s`: when a DAY order expires, in seconds after midnight UTC."""
    coid = request.client_order_id
    if not coid:
        raise invalid("client_order_id", "is required")
    if len(coid) > MAX_CLIENT_ORDER_ID or not coid.isprintable():
        raise invalid("client_order_id", f"must be 1-{MAX_CLIENT_ORDER_ID} printable characters")
    check_symbol(request.symbol, listed)
    _enum("side", types_pb2.Side, request.side)
    order_type = _enum("order_type", types_pb2.OrderType, request.order_type)
    time_in_force = _enum("time_in_force", types_pb2.TimeInForce, request.time_in_force)
    if not 0 < request.quantity <= MAX_QUANTITY:
        raise invalid("quantity", f"must be 1-{MAX_QUANTITY} lots, got {request.quantity}")
    stop_price = request.stop_price
    if order_type in (STOP, STOP_LIMIT):
        if not 0 < stop_price <= MAX_PRICE:
            raise invalid("stop_price", f"must be 1-{MAX_PRICE} ticks for a stop order, got {stop_price}")
    elif stop_price:
        raise invalid("stop_price", "only a STOP or STOP_LIMIT order has one")
    if order_type == MARKET:
        if request.price != 0:
            raise invalid("price", "must be 0 (unset) for a market order")
        if time_in_force in RESTING:
            raise invalid("time_in_force", "a market order cannot rest: use IOC or FOK")
    elif order_type == STOP:
        if request.price != 0:
            raise invalid("price", "must be 0 (unset) for a stop order: it enters as a market order")
        if time_in_force not in RESTING:
            raise invalid("time_in_force", "a stop order waits GTC, GTD or DAY (it enters as a market order)")
    else:
        if not 0 < request.price <= MAX_PRICE:
            raise invalid("price", f"must be 1-{MAX_PRICE} ticks for a limit order, got {request.price}")
        if request.price * request.quantity > MAX_NOTIONAL:
            raise invalid("quantity", "price x quantity overflows 64 bits")
    if request.self_trade_prevention:
        _enum("self_trade_prevention", types_pb2.SelfTradePrevention, request.self_trade_prevention)
    if request.post_only and (order_type != LIMIT or time_in_force not in RESTING):
        raise invalid("post_only", "only a limit GTC, GTD or DAY order can be post-only")
    display = request.display_quantity
    if display:
        if order_type not in (LIMIT, STOP_LIMIT) or time_in_force not in RESTING:
            raise invalid("display_quantity", "only a limit or stop-limit GTC, GTD or DAY order can be an iceberg")
        if not 0 < display < request.quantity:
            raise invalid("display_quantity", f"must be 1 to quantity - 1 ({request.quantity - 1}), got {display}")
        if display * 1000 < request.quantity:  # each shown slice trades as its own event
            raise invalid("display_quantity", "must be at least a thousandth of quantity")
    fields = {
        "order_id": order_id,
        "account_id": account_id,
        "client_order_id": coid,
        "symbol": request.symbol,
        "side": request.side,
        "order_type": order_type,
        "time_in_force": request.time_in_force,
        "price": request.price,
        "quantity": request.quantity,
        "post_only": request.post_only,
        "self_trade_prevention": request.self_trade_prevention,
        "display_quantity": display,
        "stop_price": stop_price,
    }
    if time_in_force in (GTD, DAY) or request.HasField("expire_time"):
        fields["expire_time_us"] = expire_time_us(request, time_in_force, day_end_s)
    return fields


def modify_order(request, account_id: int, listed) -> matching_pb2.ModifyOrder:
    """Validates a ModifyOrderRequest and turns it into the matching command."""
    return matching_pb2.ModifyOrder(**modify_order_fields(request, account_id, listed))


def modify_order_fields(request, account_id: int, listed) -> dict:
    """modify_order's fields (as new_order_fields is new_order's)."""
    order_id(request.order_id)
    check_symbol(request.symbol, listed)
    # 0 only for a waiting stop (it has no limit price); the shard refuses it for any other order.
    if not 0 <= request.price <= MAX_PRICE:
        raise invalid("price", f"must be 1-{MAX_PRICE} ticks (0 for a waiting stop), got {request.price}")
    if not 0 <= request.stop_price <= MAX_PRICE:
        raise invalid("stop_price", f"must be 0 (kept) or 1-{MAX_PRICE} ticks, got {request.stop_price}")
    if not 0 < request.quantity <= MAX_QUANTITY:
        raise invalid("quantity", f"must be 1-{MAX_QUANTITY} lots, got {request.quantity}")
    if request.price * request.quantity > MAX_NOTIONAL:
        raise invalid("quantity", "price x quantity overflows 64 bits")
    return {"order_id": request.order_id, "account_id": account_id, "symbol": request.symbol,
            "price": request.price, "quantity": request.quantity, "stop_price": request.stop_price}


def order_id(value: int) -> int:
    if value <= 0:
        raise invalid("order_id", f"must be a positive order id, got {value}")
    return value


def page_size(value: int) -> int:
    if value == 0:
        return 100
    if not 0 < value <= MAX_PAGE_SIZE:
        raise invalid("page_size", f"must be 1-{MAX_PAGE_SIZE}, got {value}")
    return value
