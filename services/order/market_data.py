"""Reads the market data the matching shards publish to Redis after each commit (and
turns its JSON into messages, for GetBook and SubscribeMarketData).

Keys (written by services/matching/market_data.py):
  md:book:{SYMBOL}    JSON {"bids": [[price, qty, count], ...], "asks": [...], "time": iso,
                            "trading_status": 1 TRADING or 2 HALTED}
  md:trades:{SYMBOL}  list of JSON trades, newest first

Reads go through one bounded pool (book_client): a burst (thousands of market-data
streams whose heartbeats come due together, or of GetBook calls) waits for a connection
instead of failing "Too many connections", and BookReader lets concurrent reads of one
book share a round trip.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import redis.asyncio as redis
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.type.v1 import types_pb2

from services.common.redis_keys import book_key, trades_key


# Connections for book reads per order-service process, and how long a read may wait for
# one before it fails (UNAVAILABLE), which only a Redis that stopped answering makes it do.
READ_POOL = 32
READ_POOL_WAIT_S = 2.0


def book_client(url: str) -> redis.Redis:
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url, max_connections=READ_POOL, timeout=READ_POOL_WAIT_S, socket_timeout=1.0, socket_connect_timeout=1.0))


def _levels(rows, depth: int):
    return [types_pb2.PriceLevel(price=p, quantity=q, order_count=c) for p, q, c in rows[:depth]]


def _time(iso: str | None, target) -> None:
    if iso:
        target.FromDatetime(datetime.fromisoformat(iso))


def fill_book(target, book: dict, depth: int) -> None:
    """Sets bids, asks, update_time and trading_status of a GetBookResponse or BookSnapshot
    from md:book JSON (a book published before statuses were: TRADING)."""
    target.bids.extend(_levels(book.get("bids", []), depth))
    target.asks.extend(_levels(book.get("asks", []), depth))
    _time(book.get("time"), target.update_time)
    target.trading_status = book.get("trading_status", types_pb2.TRADING_STATUS_TRADING)


def fill_trade(trade: types_pb2.Trade, symbol: str, t: dict) -> types_pb2.Trade:
    """A Trade from one md:trades JSON entry (account ids are not published)."""
    trade.trade_id, trade.symbol, trade.price, trade.quantity = t["trade_id"], symbol, t["price"], t["quantity"]
    trade.aggressor_side = t.get("aggressor_side", 0)
    trade.maker_order_id, trade.taker_order_id = t.get("maker_order_id", 0), t.get("taker_order_id", 0)
    _time(t.get("time"), trade.time)
    return trade


async def read_book(client: redis.Redis, symbol: str, depth: int, trades: int = 20) -> md_pb2.GetBookResponse:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(book_key(symbol))
        if trades:  # LRANGE 0 -1 would be all of them
            pipe.lrange(trades_key(symbol), 0, trades - 1)
        book_raw, *rest = await pipe.execute()
    trades_raw = rest[0] if rest else []
    response = md_pb2.GetBookResponse(symbol=symbol, trading_status=types_pb2.TRADING_STATUS_TRADING)
    if book_raw:
        fill_book(response, json.loads(book_raw), depth)
    for raw in trades_raw:
        fill_trade(response.recent_trades.add(), symbol, json.loads(raw))
    return response


class BookReader:
    """read_book, where concurrent reads of one (symbol, depth, trades) share one round trip
    (and one answer, which callers must not change). Nothing is kept once it is read."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._reading: dict[tuple, asyncio.Future] = {}

    async def read(self, symbol: str, depth: int, trades: int = 20) -> md_pb2.GetBookResponse:
        key = (symbol, depth, trades)
        if (reading := self._reading.get(key)) is None:
            reading = self._reading[key] = asyncio.ensure_future(read_book(self.client, symbol, depth, trades))
            reading.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(reading)  # a caller that gives up leaves it to the others

    def _done(self, key: tuple, reading: asyncio.Future) -> None:
        del self._reading[key]
        if not reading.cancelled():
            reading.exception()  # retrieved even when every caller gave up
