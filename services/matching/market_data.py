"""Publishes each committed batch's market data to Redis (read by the order service's GetBook).

Keys, per symbol (SYMBOL as listed, e.g. AAPL):
  md:book:{SYMBOL}    string, JSON object, replaced after every batch touching SYMBOL:
                        {"bids": [[price, quantity, order_count], ...],   best (highest) first
                         "asks": [[price, quantity, order_count], ...],   best (lowest) first
                         "time": "2026-01-02T03:04:05.123456+00:00"}      ISO 8601, UTC
                      up to BOOK_LEVELS (50) levels per side; prices in ticks, quantities in lots.
  md:trades:{SYMBOL}  list, newest first, capped at 100 entries (LPUSH + LTRIM 0 99); each entry
                        {"trade_id": int, "price": int, "quantity": int,
                         "aggressor_side": int (bourse.type.v1.Side: 1 BUY, 2 SELL),
                         "maker_order_id": int, "taker_order_id": int, "time": ISO 8601 UTC}
                      (account ids are deliberately not published).
  md:updates:{SYMBOL} pub/sub channel: after each send that touched SYMBOL, in the same
                      MULTI/EXEC, {"book": <the md:book object or null>, "trades": [<new
                      trades, oldest first>]} (the order service streams it to subscribers).
  orders:{ACCOUNT}    stream (XADD, about the last ORDER_UPDATES_KEPT entries), field "order":
                      a serialized bourse.type.v1.Order for each order of the account that
                      changed since the last send: its newest state and the fills it got
                      meanwhile. SubscribeOrders reads it and resumes from an entry id. An
                      update Redis refused is not added again: the entries carry on
                      without it (clients hold ListOrders as the record).

Only committed data is published: the group committer `record`s each batch's trades and
touched symbols right after its commit, and a background task sends them to Redis, many
batches in one pipeline, off the path of the acks. Sends are at least `interval_s` apart
(conflation: a book is replaced by its newest state, every trade is still sent): a pipeline
per group commit cost more CPU than the commit's own write when batches are small. The books are read once per send,
not once per batch, between batches (`books(symbols)` is the committer's, which waits
for any batch in flight), so they never show what is not committed. Redis trouble never fails trading: the newest book of each symbol
(and up to 100 trades each) are kept and sent once Redis answers again; after a failure
Redis is left alone for a second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from bourse.type.v1 import types_pb2

TRADES_KEPT = 100
# Trades waiting for the next send, per symbol: every one goes to md:updates (the stream
# promises every trade; a sweep can print hundreds at once), only the last TRADES_KEPT
# stay in md:trades. The bound only bites while Redis is down.
TRADES_PENDING_MAX = 10_000
# Order updates kept per account stream (about: trimmed by whole nodes): how far back
# a SubscribeOrders client can resume.
ORDER_UPDATES_KEPT = 10_000
ORDER_UPDATES_TTL_S = 7 * 24 * 3600
PUBLISH_TIMEOUT_S = 0.5
BACKOFF_S = 1.0


def book_key(symbol: str) -> str:
    return f"md:book:{symbol}"


def trades_key(symbol: str) -> str:
    return f"md:trades:{symbol}"


def _iso(ts) -> str:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC).isoformat()


def updates_channel(symbol: str) -> str:
    return f"md:updates:{symbol}"


def orders_stream(account_id: int) -> str:
    return f"orders:{account_id}"


def update_message(book: str | None, trades: list[str]) -> str:
    """What subscribers get on md:updates:{SYMBOL}: the new book (as stored under
    md:book, or null) and the new trades, oldest first (each as stored in md:trades)."""
    return '{"book": %s, "trades": [%s]}' % (book or "null", ", ".join(trades))


def trade_json(trade) -> str:
    return json.dumps({
        "trade_id": trade.trade_id, "price": trade.price, "quantity": trade.quantity,
        "aggressor_side": trade.aggressor_side, "maker_order_id": trade.maker_order_id,
        "taker_order_id": trade.taker_order_id, "time": _iso(trade.time),
    })


class MarketData:
    def __init__(self, client, log, clock=time.monotonic, interval_s: float = 0.0):
        """client: a redis.asyncio.Redis (or None to publish nothing); interval_s: least
        time between two sends."""
        self._client = client
        self._interval_s = interval_s
        self._log = log
        self._clock = clock
        self._dirty: set[str] = set()  # symbols whose book changed since the last send
        # symbol -> how to read its committed book (each shard of the process has its own).
        self._books_of: dict[str, Callable] = {}
        self._trades: dict[str, list[str]] = defaultdict(list)
        self._orders: dict[int, types_pb2.Order] = {}  # order_id -> update to publish
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    def record(self, symbols, trades, books_of: Callable, orders=()) -> None:
        """A committed batch: symbols it touched, its trades (in order), the new state of
        each order it changed, and `await books_of(symbols) -> {symbol: (bids, asks)}`
        for committed books."""
        if self._client is None:
            return
        for symbol in symbols:
            self._books_of[symbol] = books_of
        self._dirty.update(symbols)
        for order in orders:  # the newest state, with the fills since the last send
            update = types_pb2.Order()
            update.CopyFrom(order)
            if (earlier := self._orders.get(order.order_id)) is not None:
                update.fills.extend(earlier.fills)
            self._orders[order.order_id] = update
        for trade in trades:
            pending = self._trades[trade.symbol]
            pending.append(trade_json(trade))
            if len(pending) > TRADES_PENDING_MAX:
                del pending[: len(pending) - TRADES_PENDING_MAX]
            for order_id, maker in ((trade.maker_order_id, True), (trade.taker_order_id, False)):
                if (update := self._orders.get(order_id)) is not None:
                    update.fills.add(trade_id=trade.trade_id, price=trade.price, quantity=trade.quantity,
                                     maker=maker, time=trade.time)
        if self._dirty or self._trades or self._orders:
            self._wakeup.set()
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="market-data")

    async def _take(self):
        """(symbols whose book changed, books read now, trades, orders) recorded since the
        last send."""
        dirty, self._dirty = self._dirty, set()
        trades, self._trades = self._trades, defaultdict(list)
        orders, self._orders = self._orders, {}
        now = datetime.now(UTC).isoformat()
        by_reader: dict[Callable, list[str]] = {}
        for symbol in sorted(dirty):
            by_reader.setdefault(self._books_of[symbol], []).append(symbol)
        books = {}
        for books_of, symbols in by_reader.items():
            books.update((symbol, json.dumps({"bids": bids, "asks": asks, "time": now}))
                         for symbol, (bids, asks) in (await books_of(symbols)).items())
        return dirty, books, trades, orders

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            started = self._clock()
            self._wakeup.clear()
            dirty, books, trades, orders = await self._take()
            if not await self._send(books, trades, orders):
                # Order updates are not kept (at most once: a client catches up with
                # ListOrders); books and trades are, newest first.
                self._keep(dirty, trades)
                await asyncio.sleep(BACKOFF_S)
                self._wakeup.set()
            elif self._interval_s > 0:
                await asyncio.sleep(max(0.0, started + self._interval_s - self._clock()))

    async def _send(self, books, trades, orders) -> bool:
        # MULTI/EXEC: a send applies whole or not at all, so trades put back after a
        # failure are not pushed twice (only a timeout with EXEC already sent is ambiguous).
        pipe = self._client.pipeline(transaction=True)
        for symbol, book in books.items():
            pipe.set(book_key(symbol), book)
        for symbol, pending in trades.items():
            pipe.lpush(trades_key(symbol), *pending[-TRADES_KEPT:])  # oldest first in: newest at the head
            pipe.ltrim(trades_key(symbol), 0, TRADES_KEPT - 1)
        for symbol in books.keys() | trades.keys():
            pipe.publish(updates_channel(symbol), update_message(books.get(symbol), trades.get(symbol, [])))
        for order in orders.values():
            pipe.xadd(orders_stream(order.account_id), {"order": order.SerializeToString()},
                      maxlen=ORDER_UPDATES_KEPT, approximate=True)
        for account_id in {order.account_id for order in orders.values()}:
            pipe.expire(orders_stream(account_id), ORDER_UPDATES_TTL_S)  # an idle account's go eventually
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):  # the whole send (the client has no read timeout)
                await pipe.execute()
            return True
        except Exception as error:  # noqa: BLE001 - any Redis trouble: keep trading, publish later
            self._log.warning("market data not published", error=repr(error), symbols=len(books))
            return False
        finally:
            await pipe.reset()

    def _keep(self, dirty, trades) -> None:
        """Puts unsent data back under anything newer recorded meanwhile."""
        self._dirty |= dirty
        for symbol, pending in trades.items():
            merged = pending + self._trades.get(symbol, [])
            self._trades[symbol] = merged[-TRADES_PENDING_MAX:]

    async def close(self) -> None:
        """Stops publishing; what was recorded but not yet sent (at most one interval
        of it, the committer being stopped first) gets one last send. The client stays
        open: it is the caller's (one process's shards share one)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            if self._dirty or self._trades or self._orders:
                await self._send(*(await self._take())[1:])
