"""gRPC servicers of the client API: authenticate, call the desk, map errors."""

from __future__ import annotations

import asyncio
import functools

import grpc
import redis.asyncio as redis
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.order.v1 import order_service_pb2 as order_pb2
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2

from services.common import metrics
from services.common.errors import BourseError, abort, invalid
from services.order.api_keys import Authenticator
from services.order import validation
from services.order.market_data import BookReader, fill_book, fill_trade
from services.order.feeds import Feed, FeedError
from services.order.limits import KeyLimits
from services.order import order_entry
from services.order.order_updates import TOKEN, ResumeGap, read_updates
from services.order.orders import CALLER_DEADLINE, OrderDesk

MAX_DEPTH = 50
# A subscription with nothing new for this long gets the book again (and Envoy sees data
# well within its idle timeout).
HEARTBEAT_S = 15.0


def rpc(kind: str):
    """Authenticates the caller, admits the call within its key's limits (limits.py: the
    rate, and the allowance of `kind`, "orders" or "reads", in flight), bounds the desk's
    downstream calls by the caller's deadline, and turns BourseError into a status with
    ErrorInfo."""

    def decorate(method):
        @functools.wraps(method)
        async def wrapper(self, request, context):
            remaining = context.time_remaining()
            deadline = CALLER_DEADLINE.set(
                None if remaining is None else asyncio.get_running_loop().time() + remaining)
            try:
                account_id = self.auth.account_of(context)
                with self.limits.admit(kind, account_id):
                    return await method(self, request, account_id)
            except BourseError as error:
                await abort(context, error)
            finally:
                CALLER_DEADLINE.reset(deadline)

        return wrapper

    return decorate


def _updates_unavailable(why: str) -> BourseError:
    return BourseError(grpc.StatusCode.UNAVAILABLE, "ORDER_UPDATES_UNAVAILABLE",
                       f"{why}: subscribe again with the last resume_token")


class OrderServicer(order_grpc.OrderServiceServicer):
    def __init__(self, desk: OrderDesk, auth: Authenticator, updates_client=None, limits: KeyLimits | None = None,
                 log=None, entry_window: int = 1000, sessions_per_key: int = 16, entry_heartbeat_s: float = 15.0):
        """updates_client: a redis.asyncio.Redis whose read timeout outlasts HEARTBEAT_S;
        limits: the per-key limits (limits.py); entry_window: an order-entry session's
        commands in flight (order_entry.py)."""
        self.desk = desk
        self.auth = auth
        self.limits = limits or KeyLimits()
        self.updates_client = updates_client
        self.draining = asyncio.Event()  # set: subscriptions end, new ones are refused
        self.log = log
        self.entry_window = entry_window
        self.entry_heartbeat_s = entry_heartbeat_s
        self.sessions = order_entry.SessionCount(sessions_per_key)
        self._background: set[asyncio.Task] = set()  # cancels on disconnect, still running

    async def OrderEntry(self, request_iterator, context):
        try:
            if self.draining.is_set():
                raise BourseError(grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING",
                                  "this server is stopping: open the session again")
            account_id = self.auth.account_of(context)
            self.sessions.open(account_id)
        except BourseError as error:
            await abort(context, error)
        try:
            async for response in order_entry.serve(self.desk, account_id, request_iterator, context, self.draining,
                                                    self.entry_window, self.log, self._background,
                                                    self.entry_heartbeat_s):
                yield response
        except BourseError as error:  # a request that did not parse: after what came before
            await abort(context, error)
        finally:
            self.sessions.close(account_id)
        if self.draining.is_set():
            await abort(context, BourseError(
                grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING",
                "this server is stopping: open a new session and send again the commands not answered"))

    async def SubscribeOrders(self, request, context):
        subscribed = metrics.SUBSCRIBERS.labels("order_updates")
        subscribed.inc()
        try:
            account_id = self.auth.account_of(context)
            if request.symbol:
                validation.check_symbol(request.symbol, self.desk.symbols)
            if request.resume_after and not TOKEN.fullmatch(request.resume_after):
                raise invalid("resume_after", "not a resume_token from this service")
            loop = asyncio.get_running_loop()
            quiet_until = 0.0  # a heartbeat is due when nothing was sent until then
            async for token, order in read_updates(self.updates_client, account_id, request.resume_after,
                                                   lambda: quiet_until - loop.time()):
                if self.draining.is_set():
                    raise _updates_unavailable("this server is stopping")
                wanted = order is not None and (not request.symbol or order.symbol == request.symbol)
                if wanted or loop.time() >= quiet_until:
                    self.auth.account_of(context)  # a revoked key ends its streams too
                    yield order_pb2.SubscribeOrdersResponse(order=order if wanted else None, resume_token=token)
                    quiet_until = loop.time() + HEARTBEAT_S
        except ResumeGap as gap:
            metrics.SUBSCRIBERS_ENDED.labels("order_updates", "updates_trimmed").inc()
            await abort(context, BourseError(grpc.StatusCode.OUT_OF_RANGE, "UPDATES_TRIMMED",
                                             f"resume_after: {gap}; catch up with ListOrders, then subscribe "
                                             "without resume_after"))
        except redis.ConnectionError as error:
            metrics.REDIS_ERRORS.labels("order_updates").inc()
            if self.draining.is_set():
                await abort(context, _updates_unavailable("this server is stopping"))
            if "Too many connections" in str(error):
                await abort(context, BourseError(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_SUBSCRIPTIONS",
                                                 "this server holds as many order subscriptions as it can: "
                                                 "subscribe again later or elsewhere"))
            await abort(context, _updates_unavailable(f"order updates store unavailable ({error})"))
        except redis.RedisError as error:
            metrics.REDIS_ERRORS.labels("order_updates").inc()
            await abort(context, _updates_unavailable(f"order updates store unavailable ({error})"))
        except BourseError as error:
            await abort(context, error)
        finally:
            subscribed.dec()

    @rpc("orders")
    async def SubmitOrder(self, request, account_id):
        order, replayed = await self.desk.submit(request, account_id)
        return order_pb2.SubmitOrderResponse(order=order, replayed=replayed)

    @rpc("orders")
    async def CancelOrder(self, request, account_id):
        return order_pb2.CancelOrderResponse(order=await self.desk.cancel(request, account_id))

    @rpc("orders")
    async def MassCancelOrders(self, request, account_id):
        return order_pb2.MassCancelOrdersResponse(cancelled_count=await self.desk.mass_cancel(request.symbol,
                                                                                             account_id))

    @rpc("orders")
    async def ModifyOrder(self, request, account_id):
        return order_pb2.ModifyOrderResponse(order=await self.desk.modify(request, account_id))

    @rpc("reads")
    async def GetOrder(self, request, account_id):
        return order_pb2.GetOrderResponse(order=await self.desk.get(request.order_id, account_id))

    @rpc("reads")
    async def ListOrders(self, request, account_id):
        page = await self.desk.list(request, account_id)
        return order_pb2.ListOrdersResponse(orders=page.orders, next_page_token=page.next_page_token)


class MarketDataServicer(md_grpc.MarketDataServiceServicer):
    def __init__(self, redis_client: redis.Redis, symbols, auth: Authenticator, feed: Feed | None = None,
                 limits: KeyLimits | None = None):
        self.limits = limits or KeyLimits()
        self.books = BookReader(redis_client)
        self.symbols = frozenset(symbols)
        self.auth = auth
        self.feed = feed

    def _depth(self, request) -> int:
        validation.check_symbol(request.symbol, self.symbols)
        depth = request.depth or 10
        if not 0 < depth <= MAX_DEPTH:
            raise invalid("depth", f"must be 1-{MAX_DEPTH}, got {request.depth}")
        return depth

    async def _book(self, symbol: str, depth: int, trades: int = 0) -> md_pb2.GetBookResponse:
        try:
            return await self.books.read(symbol, depth, trades)
        except redis.RedisError as error:
            metrics.REDIS_ERRORS.labels("book_read").inc()
            raise BourseError(
                grpc.StatusCode.UNAVAILABLE, "MARKET_DATA_UNAVAILABLE", f"market data store unavailable: {error}"
            ) from error

    @rpc("reads")
    async def GetBook(self, request, account_id):
        return await self._book(request.symbol, self._depth(request), trades=20)

    async def SubscribeMarketData(self, request, context):
        try:
            self.auth.account_of(context)
            depth = self._depth(request)
            async for response in self._updates(request.symbol, depth):
                self.auth.account_of(context)  # a revoked key ends its streams too
                yield response
        except BourseError as error:
            await abort(context, error)

    async def _updates(self, symbol: str, depth: int):
        """The book now, then what the feed brings: newer books and every trade."""
        try:
            async with self.feed.subscribe(symbol) as subscription:
                # Subscribed first, read second: nothing published in between is missed.
                now = await self._book(symbol, depth)
                shown = now.update_time.ToNanoseconds()
                yield md_pb2.SubscribeMarketDataResponse(symbol=symbol, book=_snapshot(now))
                while True:
                    try:
                        async with asyncio.timeout(HEARTBEAT_S):
                            update = await subscription.next()
                    except TimeoutError:  # quiet: the book again, as a sign of life
                        yield md_pb2.SubscribeMarketDataResponse(
                            symbol=symbol, book=_snapshot(await self._book(symbol, depth)))
                        continue
                    for trade in update["trades"]:
                        yield md_pb2.SubscribeMarketDataResponse(symbol=symbol, trade=fill_trade(
                            types_pb2.Trade(), symbol, trade))
                    if update["book"] is not None:
                        book = md_pb2.BookSnapshot()
                        fill_book(book, update["book"], depth)
                        if book.update_time.ToNanoseconds() > shown:  # not older than what was shown
                            shown = book.update_time.ToNanoseconds()
                            yield md_pb2.SubscribeMarketDataResponse(symbol=symbol, book=book)
        except FeedError as error:
            reason = "MARKET_DATA_UNAVAILABLE" if error.code == grpc.StatusCode.UNAVAILABLE else "SUBSCRIBER_TOO_SLOW"
            raise BourseError(error.code, reason, str(error)) from error


def _snapshot(book: md_pb2.GetBookResponse) -> md_pb2.BookSnapshot:
    return md_pb2.BookSnapshot(bids=book.bids, asks=book.asks, update_time=book.update_time)


ORDER_SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
MARKET_DATA_SERVICE = md_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name
