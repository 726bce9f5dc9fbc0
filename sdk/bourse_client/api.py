"""The calls of the exchange's API, written once for the sync and the asyncio client.

Each method builds its request and hands it to the client's `_call`, which sends it
(again, if the call is safe to repeat and the error says to) and returns the answer's
interesting part: the sync client's `_call` returns it, the asyncio client's returns an
awaitable of it. The streams live in each client, as iterators of their own kind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import grpc

from bourse_sdk.bourse.marketdata.v1 import GetBookRequest, GetBookResponse
from bourse_sdk.bourse.order.v1 import (
    CancelOrderRequest,
    CancelOrderResponse,
    GetOrderRequest,
    GetOrderResponse,
    ListOrdersRequest,
    ListOrdersResponse,
    MassCancelOrdersRequest,
    MassCancelOrdersResponse,
    ModifyOrderRequest,
    ModifyOrderResponse,
    SubmitOrderRequest,
    SubmitOrderResponse,
)
from bourse_sdk.bourse.type.v1 import Order, OrderType, SelfTradePrevention, Side, TimeInForce

from .retry import RetryPolicy

ORDERS = "/bourse.order.v1.OrderService/"
MARKET_DATA = "/bourse.marketdata.v1.MarketDataService/"


@dataclass(frozen=True)
class Rpc:
    path: str
    response: type
    repeatable: bool  # sending it twice does no more than once (see retry.py)


SUBMIT = Rpc(ORDERS + "SubmitOrder", SubmitOrderResponse, True)
CANCEL = Rpc(ORDERS + "CancelOrder", CancelOrderResponse, True)
MODIFY = Rpc(ORDERS + "ModifyOrder", ModifyOrderResponse, False)
# Repeatable: a repeat cancels what works then (so also orders placed in between).
MASS_CANCEL = Rpc(ORDERS + "MassCancelOrders", MassCancelOrdersResponse, True)
GET_ORDER = Rpc(ORDERS + "GetOrder", GetOrderResponse, True)
LIST_ORDERS = Rpc(ORDERS + "ListOrders", ListOrdersResponse, True)
GET_BOOK = Rpc(MARKET_DATA + "GetBook", GetBookResponse, True)
SUBSCRIBE_ORDERS = ORDERS + "SubscribeOrders"
SUBSCRIBE_MARKET_DATA = MARKET_DATA + "SubscribeMarketData"


def new_client_order_id() -> str:
    """A fresh client_order_id (32 hex characters): unique without coordination."""
    return uuid.uuid4().hex


def submit_request(symbol: str, side: Side, quantity: int, price: int = 0, *,
                   order_type: OrderType = OrderType.LIMIT, time_in_force: TimeInForce | None = None,
                   client_order_id: str | None = None, post_only: bool = False,
                   self_trade_prevention: SelfTradePrevention = SelfTradePrevention.UNSPECIFIED,
                   expire_time: datetime | None = None, display_quantity: int = 0,
                   stop_price: int = 0) -> SubmitOrderRequest:
    """A SubmitOrderRequest: a limit order good till cancelled unless told otherwise (a
    market order is IOC unless told FOK), under a fresh client_order_id unless given one.
    `expire_time` (timezone-aware) goes with time_in_force GTD, and only with it;
    `display_quantity` makes a resting limit order an iceberg showing that many lots;
    `stop_price` goes with order_type STOP or STOP_LIMIT (both wait GTC unless told)."""
    if time_in_force is None:
        time_in_force = TimeInForce.IOC if order_type == OrderType.MARKET else TimeInForce.GTC
    return SubmitOrderRequest(
        client_order_id=client_order_id or new_client_order_id(), symbol=symbol, side=side,
        order_type=order_type, time_in_force=time_in_force, price=price, quantity=quantity,
        post_only=post_only, self_trade_prevention=self_trade_prevention, expire_time=expire_time,
        display_quantity=display_quantity, stop_price=stop_price)


def _order(response) -> Order:
    return response.order


def _cancelled_count(response: MassCancelOrdersResponse) -> int:
    return response.cancelled_count


def channel_credentials(credentials: grpc.ChannelCredentials | None, ca_file: str | None):
    """TLS trusting the PEM CA in `ca_file`, or `credentials`, or None (plaintext)."""
    if ca_file is None:
        return credentials
    with open(ca_file, "rb") as ca:
        return grpc.ssl_channel_credentials(ca.read())


class Api:
    """The unary calls. Prices are integer ticks and quantities integer lots. `timeout`
    (seconds) bounds the call, retries included; None means the client's default."""

    channels = grpc  # where the channel comes from: grpc (blocking) or grpc.aio

    def __init__(self, target: str, api_key: str, *, ca_file: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None, timeout_s: float = 30.0,
                 retry: RetryPolicy = RetryPolicy()):
        credentials = channel_credentials(credentials, ca_file)
        self.channel = (self.channels.secure_channel(target, credentials) if credentials
                        else self.channels.insecure_channel(target))
        self.metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout_s, self.retry = timeout_s, retry

    def _call(self, rpc: Rpc, request, timeout: float | None, answer):
        raise NotImplementedError

    def submit_order(self, symbol: str, side: Side, quantity: int, price: int = 0, *,
                     order_type: OrderType = OrderType.LIMIT, time_in_force: TimeInForce | None = None,
                     client_order_id: str | None = None, post_only: bool = False,
                     self_trade_prevention: SelfTradePrevention = SelfTradePrevention.UNSPECIFIED,
                     expire_time: datetime | None = None, display_quantity: int = 0, stop_price: int = 0,
                     timeout: float | None = None) -> Order:
        """Submits an order and returns it once matched and committed (status NEW,
        PARTIALLY_FILLED, FILLED, or CANCELLED with a reason such as an IOC's remainder).

        A limit order is GTC unless `time_in_force` says otherwise; a market order
        (`order_type=OrderType.MARKET`, no price) is IOC. A GTD order needs `expire_time`;
        a DAY order expires at the exchange's end of the trading day; `display_quantity`
        makes it an iceberg. A STOP (no price) or STOP_LIMIT order waits off the book
        until a trade prints at or beyond `stop_price`, then enters as a market or limit
        order; it is REJECTED (reason STOP_WOULD_TRIGGER) if the last trade has reached
        that price already. The client_order_id is a fresh one unless given: give your
        own to be able to ask again after a crash. When the exchange is unavailable the
        SDK sends the same request again, same client_order_id, so the order is placed
        once (`submit` also says whether the answer was a repeat's)."""
        request = submit_request(
            symbol, side, quantity, price, order_type=order_type, time_in_force=time_in_force,
            client_order_id=client_order_id, post_only=post_only, self_trade_prevention=self_trade_prevention,
            expire_time=expire_time, display_quantity=display_quantity, stop_price=stop_price)
        return self._call(SUBMIT, request, timeout, _order)

    def submit(self, request: SubmitOrderRequest, timeout: float | None = None) -> SubmitOrderResponse:
        """Submits a request built by hand; the response says whether the exchange
        answered it as a repeat of an earlier submit (`replayed`)."""
        return self._call(SUBMIT, request, timeout, None)

    def cancel_order(self, order_id: int, symbol: str, timeout: float | None = None) -> Order:
        """Cancels what is left of a working order and returns it (CANCELLED).
        Raises OrderDone when it had already filled or been cancelled, OrderNotFound when
        the account has no such order on `symbol`."""
        return self._call(CANCEL, CancelOrderRequest(order_id=order_id, symbol=symbol), timeout, _order)

    def mass_cancel_orders(self, symbol: str = "", timeout: float | None = None) -> int:
        """Cancels every working order of the account on `symbol`, or on every instrument
        when it is empty; returns how many it cancelled."""
        return self._call(MASS_CANCEL, MassCancelOrdersRequest(symbol=symbol), timeout, _cancelled_count)

    def modify_order(self, order_id: int, symbol: str, price: int, quantity: int, *, stop_price: int = 0,
                     timeout: float | None = None) -> Order:
        """Sets a working limit order's price and total quantity (cancel/replace, atomic)
        and returns it with any fills the change brought. Only a smaller quantity at the
        same price keeps its place in the queue. A waiting stop also takes a new
        `stop_price` (0 keeps it; a STOP's price is 0). Not retried by the SDK: on
        Unavailable, read the order (get_order) before deciding to send it again."""
        return self._call(MODIFY, ModifyOrderRequest(order_id=order_id, symbol=symbol, price=price,
                                                     quantity=quantity, stop_price=stop_price), timeout, _order)

    def get_order(self, order_id: int, timeout: float | None = None) -> Order:
        """One of the account's orders, with its fills."""
        return self._call(GET_ORDER, GetOrderRequest(order_id=order_id), timeout, _order)

    def list_orders_page(self, page_size: int = 100, page_token: str = "", symbol: str = "",
                         timeout: float | None = None) -> ListOrdersResponse:
        """One page of the account's orders, newest first (optionally of one symbol);
        pass its next_page_token for the next page ("" when there is none)."""
        return self._call(LIST_ORDERS, ListOrdersRequest(page_size=page_size, page_token=page_token,
                                                         symbol=symbol), timeout, None)

    def get_book(self, symbol: str, depth: int = 10, timeout: float | None = None) -> GetBookResponse:
        """The symbol's book, `depth` price levels a side, with its recent trades."""
        return self._call(GET_BOOK, GetBookRequest(symbol=symbol, depth=depth), timeout, None)
