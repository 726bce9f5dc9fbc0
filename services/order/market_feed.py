"""Live market data for SubscribeMarketData: the matching shards' md:updates:{SYMBOL}
Redis channels (services/matching/market_data.py), fanned out to this process's streams.

One Redis pub/sub connection per order-service process, pattern-subscribed to every
symbol, whatever the number of client streams; each stream reads its own bounded queue.
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

CHANNEL_PREFIX = "md:updates:"
QUEUE_MAX = 1000
SUBSCRIBE_TIMEOUT_S = 2.0


class FeedError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class Subscription:
    def __init__(self, symbol: str):
        self.symbol = symbol
        self._queue: asyncio.Queue = asyncio.Queue(QUEUE_MAX)

    def _put(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Make room for the verdict: this stream is over.
            self._queue.get_nowait()
            self._queue.put_nowait(FeedError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                             f"more than {QUEUE_MAX} updates behind: subscribe again"))

    async def next(self) -> dict:
        """The next update, {"book": {...} | None, "trades": [{...}, ...]}; raises FeedError."""
        item = await self._queue.get()
        if isinstance(item, FeedError):
            self._queue.put_nowait(item)  # every later call fails the same way
            raise item
        return item


class MarketFeed:
    def __init__(self, client, log):
        """client: a redis.asyncio.Redis."""
        self._client = client
        self._log = log
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._listener: asyncio.Task | None = None
        self._starting = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def subscribe(self, symbol: str):
        """Yields a Subscription that receives every update published from now on."""
        subscription = Subscription(symbol)
        self._subscriptions[symbol].add(subscription)
        try:
            await self._listening()
            yield subscription
        finally:
            self._subscriptions[symbol].discard(subscription)

    async def _listening(self) -> None:
        async with self._starting:
            if self._listener is not None and not self._listener.done():
                return
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                # Only once Redis confirms is every later publish sure to reach us.
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                    while (message := await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)) is None \
                            or message["type"] != "psubscribe":
                        pass
            except Exception as error:  # noqa: BLE001 - Redis down or slow: this subscriber cannot start
                await pubsub.aclose()
                raise FeedError(grpc.StatusCode.UNAVAILABLE, f"market data store unavailable: {error!r}") from error
            self._listener = asyncio.create_task(self._listen(pubsub), name="market-feed")

    async def _listen(self, pubsub) -> None:
        error = FeedError(grpc.StatusCode.UNAVAILABLE, "the market data feed stopped: subscribe again")
        try:
            async for message in pubsub.listen():
                if message["type"] != "pmessage":
                    continue
                symbol = message["channel"].decode().removeprefix(CHANNEL_PREFIX)
                subscribers = self._subscriptions.get(symbol)
                if subscribers:
                    update = json.loads(message["data"])
                    for subscription in list(subscribers):
                        subscription._put(update)
        except Exception as failure:  # noqa: BLE001 - Redis went away: every stream ends, retried by clients
            self._log.warning("market feed lost", error=repr(failure))
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
