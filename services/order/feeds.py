"""Live feeds for streaming RPCs: Redis pub/sub channels the matching shards publish to
(services/matching/market_data.py), fanned out to this process's client streams: the
market data feed, md:updates:{SYMBOL}, for SubscribeMarketData. (Order updates are a
Redis stream per account instead, read from a resume point: order_updates.py.)

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

from services.common import metrics
from services.common.redis_keys import UPDATES_PREFIX

QUEUE_MAX = 1000
SUBSCRIBE_TIMEOUT_S = 2.0
PING_EVERY_S = 5.0
DEAD_AFTER_S = 15.0


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
            metrics.SUBSCRIBERS_ENDED.labels("market_data", "too_slow").inc()
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
    def __init__(self, client, log, prefix: str, decode, ping_every_s: float = PING_EVERY_S,
                 dead_after_s: float = DEAD_AFTER_S):
        """client: a redis.asyncio.Redis; channels `prefix` + key carry messages that
        `decode(bytes)` turns into what subscribers of that key get."""
        self._ping_every_s, self._dead_after_s = ping_every_s, dead_after_s
        self._client = client
        self._log = log
        self._prefix = prefix
        self._decode = decode
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._listener: asyncio.Task | None = None
        self._starting = asyncio.Lock()
        self._failed_at = float("-inf")  # when starting the listener last failed
        self._closed = False
        # Read when /metrics is scraped (one feed per process: the last one made is counted).
        metrics.SUBSCRIBERS.labels("market_data").set_function(
            lambda: sum(len(subscribers) for subscribers in self._subscriptions.values()))

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str):
        """Yields a Subscription that receives every update for `key` published from now on."""
        subscription = Subscription(key)
        self._subscriptions[key].add(subscription)
        try:
            await self._listening()
            yield subscription
        finally:
            subscribers = self._subscriptions[key]
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[key]

    async def _listening(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._starting:
            if self._closed:
                raise FeedError(grpc.StatusCode.UNAVAILABLE, "this server is shutting down: subscribe again")
            if self._listener is not None:
                return
            if loop.time() - self._failed_at < SUBSCRIBE_TIMEOUT_S:
                # Those who queued behind a failed start fail at once, not one by one.
                raise FeedError(grpc.StatusCode.UNAVAILABLE, "market data store unavailable: subscribe again")
            pubsub = self._client.pubsub()
            try:
                # Only once Redis confirms is every later publish sure to reach us.
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                    await pubsub.psubscribe(self._prefix + "*")
                    while (message := await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)) is None \
                            or message["type"] != "psubscribe":
                        pass
            except BaseException as error:
                self._failed_at = loop.time()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                if not isinstance(error, Exception):
                    raise  # cancelled: the caller is gone
                raise FeedError(grpc.StatusCode.UNAVAILABLE, f"market data store unavailable: {error!r}") from error
            self._listener = asyncio.create_task(self._listen(pubsub), name=f"feed {self._prefix}")

    async def _listen(self, pubsub) -> None:
        error = FeedError(grpc.StatusCode.UNAVAILABLE, "the feed stopped: subscribe again")
        try:
            await self._relay(pubsub)
        except asyncio.CancelledError:
            raise
        except Exception as failure:  # noqa: BLE001 - Redis went away: every stream ends, retried by clients
            metrics.REDIS_ERRORS.labels("feed").inc()
            self._log.warning("feed lost", feed=self._prefix, error=repr(failure))
            error = FeedError(grpc.StatusCode.UNAVAILABLE, f"market data store unavailable: {failure!r}")
        finally:
            # Gone before the first await: a subscriber arriving from now on starts a
            # new listener instead of waiting on this one.
            self._listener = None
            self._end_all(error)
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _end_all(self, error: FeedError) -> None:
        for subscribers in list(self._subscriptions.values()):
            for subscription in list(subscribers):
                subscription._put(error)

    async def _relay(self, pubsub) -> None:
        """Hands each message to its key's subscribers; raises when Redis stops answering:
        a ping every ping_every_s, and nothing at all heard for dead_after_s is fatal
        (a stopped or unreachable Redis never closes the connection by itself)."""
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while True:
            message = await pubsub.get_message(timeout=min(1.0, self._ping_every_s))
            now = loop.time()
            if message is not None:
                heard = now
                if message["type"] == "pmessage":
                    self._deliver(message)
            if now - heard > self._dead_after_s:
                raise ConnectionError(f"no answer from Redis for {self._dead_after_s:.0f} s")
            if now - pinged >= self._ping_every_s:
                await pubsub.ping()
                pinged = now

    def _deliver(self, message) -> None:
        key = message["channel"].decode().removeprefix(self._prefix)
        subscribers = self._subscriptions.get(key)
        if not subscribers:
            return
        try:
            update = self._decode(message["data"])
        except Exception as error:  # noqa: BLE001 - one bad message must not end every stream
            self._log.error("feed message undecodable", feed=self._prefix, key=key, error=repr(error))
            return
        for subscription in list(subscribers):
            subscription._put(update)

    async def close(self) -> None:
        """Ends every subscription (UNAVAILABLE) and refuses new ones."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()  # a listener cancelled before its first step ends no stream itself
            await asyncio.gather(listener, return_exceptions=True)
        self._end_all(FeedError(grpc.StatusCode.UNAVAILABLE, "this server is shutting down: subscribe again"))


def market_data_feed(client, log, **timing) -> Feed:
    """Updates {"book": {...} | None, "trades": [{...}, ...]} by symbol."""
    return Feed(client, log, UPDATES_PREFIX, json.loads, **timing)
