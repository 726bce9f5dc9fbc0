"""gRPC servicers of the client API: authenticate, call the desk, map errors."""

from __future__ import annotations

import functools

import grpc
import redis.asyncio as redis
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.order.v1 import order_service_pb2 as order_pb2
from bourse.order.v1 import order_service_pb2_grpc as order_grpc

from services.common.errors import BourseError, abort, invalid
from services.order import validation
from services.order.market_data import read_book
from services.order.orders import OrderDesk

MAX_DEPTH = 50


class Authenticator:
    def __init__(self, api_keys: dict[str, int]):
        self._accounts = api_keys

    def account_of(self, context: grpc.aio.ServicerContext) -> int:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = value.partition(" ")
                account = self._accounts.get(token) if scheme.lower() == "bearer" else None
                if account is None:
                    break
                return account
        else:
            raise BourseError(
                grpc.StatusCode.UNAUTHENTICATED, "MISSING_API_KEY", "missing `authorization: Bearer <api key>` metadata"
            )
        raise BourseError(grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY", "unknown API key")


def rpc(method):
    """Authenticates the caller and turns BourseError into a status with ErrorInfo."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            account_id = self.auth.account_of(context)
            return await method(self, request, account_id)
        except BourseError as error:
            await abort(context, error)

    return wrapper


class OrderServicer(order_grpc.OrderServiceServicer):
    def __init__(self, desk: OrderDesk, auth: Authenticator):
        self.desk = desk
        self.auth = auth

    @rpc
    async def SubmitOrder(self, request, account_id):
        order, replayed = await self.desk.submit(request, account_id)
        return order_pb2.SubmitOrderResponse(order=order, replayed=replayed)

    @rpc
    async def CancelOrder(self, request, account_id):
        return order_pb2.CancelOrderResponse(order=await self.desk.cancel(request, account_id))

    @rpc
    async def ModifyOrder(self, request, account_id):
        return order_pb2.ModifyOrderResponse(order=await self.desk.modify(request, account_id))

    @rpc
    async def GetOrder(self, request, account_id):
        return order_pb2.GetOrderResponse(order=await self.desk.get(request.order_id, account_id))

    @rpc
    async def ListOrders(self, request, account_id):
        page = await self.desk.list(request, account_id)
        return order_pb2.ListOrdersResponse(orders=page.orders, next_page_token=page.next_page_token)


class MarketDataServicer(md_grpc.MarketDataServiceServicer):
    def __init__(self, redis_client: redis.Redis, symbols, auth: Authenticator):
        self.redis = redis_client
        self.symbols = frozenset(symbols)
        self.auth = auth

    @rpc
    async def GetBook(self, request, account_id):
        validation.check_symbol(request.symbol, self.symbols)
        depth = request.depth or 10
        if not 0 < depth <= MAX_DEPTH:
            raise invalid("depth", f"must be 1-{MAX_DEPTH}, got {request.depth}")
        try:
            return await read_book(self.redis, request.symbol, depth)
        except redis.RedisError as error:
            raise BourseError(
                grpc.StatusCode.UNAVAILABLE, "MARKET_DATA_UNAVAILABLE", f"market data store unavailable: {error}"
            ) from error


ORDER_SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
MARKET_DATA_SERVICE = md_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name
