"""Live feeds for the streaming RPCs: Redis channels the matching shards publish to
(services/matching/market_data.py), fanned out to this process's client streams.
MARKET_DATA: md:updates:{SYMBOL} (SubscribeMarketData); ORDERS: orders:{ACCOUNT}
(SubscribeOrders).

One Redis pub/sub connection per feed and order-service process, pattern-subscribed to
every key, whatever the number of client streams; each stream reads its own bounded queue.
A stream that falls QUEUE_MAX updates behind is dropped (FeedError RESOURCE_EXHAUSTED)
rather than slow the others or grow without bound; when Redis goes away every stream
ends (UNAVAILABLE) and the next subscriber connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict

import grpc
from bourse.type.v1 import types_pb2

QUEUE_MAX = 1000
SUBSCRIBE_TIMEOUT_S = 2.0


class FeedError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class Subscription:
    def __init__(self, key: str):
        self.key = key
        self._queue: asyncio.Queue = asyncio.Queue(QUEUE_MAX)

    def _put(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Make room for the verdict: this stream is over.
            self._queue.get_nowait()
            self._queue.put_nowait(FeedError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                             f"more than {QUEUE_MAX} updates behind: subscribe again"))

    async def next(self):
        """The next update, decoded by the feed; raises FeedError."""
        item = await self._queue.get()
        if isinstance(item, FeedError):
            self._queue.put_nowait(item)  # every later call fails the same way
            raise item
        return item


class Feed:
    def __init__(self, client, log, prefix: str, decode):
        """client: a redis.asyncio.Redis; channels `prefix` + key carry messages that
        `decode(bytes)` turns into what subscribers of that key get."""
        self._client = client
        self._log = log
        self._prefix = prefix
        self._decode = decode
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._listener: asyncio.Task | None = None
        self._starting = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str):
        """Yields a Subscription that receives every update for `key` published from now on."""
        subscription = Subscription(key)
        self._subscriptions[key].add(subscription)
        try:
            await self._listening()
            yield subscription
        finally:
            self._subscriptions[key].discard(subscription)

    async def _listening(self) -> None:
        async with self._starting:
            if self._listener is not None and not self._listener.done():
                return
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(self._prefix + "*")
                # Only once Redis confirms is every later publish sure to reach us.
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                    while (message := await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)) is None \
                            or message["type"] != "psubscribe":
                        pass
            except Exception as error:  # noqa: BLE001 - Redis down or slow: this subscriber cannot start
                await pubsub.aclose()
                raise FeedError(grpc.StatusCode.UNAVAILABLE, f"market data store unavailable: {error!r}") from error
            self._listener = asyncio.create_task(self._listen(pubsub), name=f"feed {self._prefix}")

    async def _listen(self, pubsub) -> None:
        error = FeedError(grpc.StatusCode.UNAVAILABLE, "the market data feed stopped: subscribe again")
        try:
            async for message in pubsub.listen():
                if message["type"] != "pmessage":
                    continue
                key = message["channel"].decode().removeprefix(self._prefix)
                subscribers = self._subscriptions.get(key)
                if subscribers:
                    update = self._decode(message["data"])
                    for subscription in list(subscribers):
                        subscription._put(update)
        except Exception as failure:  # noqa: BLE001 - Redis went away: every stream ends, retried by clients
            self._log.warning("feed lost", feed=self._prefix, error=repr(failure))
            error = FeedError(grpc.StatusCode.UNAVAILABLE, f"market data store unavailable: {failure!r}")
        finally:
            for subscribers in self._subscriptions.values():
                for subscription in list(subscribers):
                    subscription._put(error)
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)


def market_data_feed(client, log) -> Feed:
    """Updates {"book": {...} | None, "trades": [{...}, ...]} by symbol."""
    return Feed(client, log, "md:updates:", json.loads)


def orders_feed(client, log) -> Feed:
    """bourse.type.v1.Order updates by account id (as a string)."""
    return Feed(client, log, "orders:", types_pb2.Order.FromString)
