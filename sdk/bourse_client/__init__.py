"""bourse's Python SDK: blocking and asyncio clients of the exchange's gRPC API.

    from bourse_client import Client, Side

    with Client("127.0.0.1:8080", api_key="demo-key-alice") as client:
        order = client.submit_order("AAPL", Side.BUY, quantity=5, price=100)

Prices are integer ticks and quantities integer lots. Refusals raise the exceptions of
`bourse_client.errors`, one class per reason. Calls that are safe to repeat are sent
again while the exchange is unavailable (`bourse_client.retry`). The messages are typed
dataclasses (betterproto2) in `bourse_sdk`; the common ones are re-exported here. The
guide, with examples, is the package's README.
"""

from bourse_sdk.bourse.marketdata.v1 import GetBookResponse, SubscribeMarketDataResponse
from bourse_sdk.bourse.order.v1 import SubmitOrderRequest, SubscribeOrdersResponse
from bourse_sdk.bourse.type.v1 import (
    Fill,
    Order,
    OrderStatus,
    OrderType,
    PriceLevel,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    TradingStatus,
)

from . import errors
from .aio import AsyncClient
from .api import new_client_order_id, submit_request
from .client import Client
from .order_entry import OrderEntrySession
from .retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "Client", "Fill", "GetBookResponse", "Order", "OrderEntrySession", "OrderStatus", "OrderType",
    "PriceLevel", "RetryPolicy", "SelfTradePrevention", "Side", "SubmitOrderRequest",
    "SubscribeMarketDataResponse", "SubscribeOrdersResponse", "TimeInForce", "Trade", "TradingStatus", "errors",
    "new_client_order_id", "submit_request",
]
