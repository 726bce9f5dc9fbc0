"""Reads the market data the matching shards publish to Redis after each commit.

Keys (written by services/matching/market_data.py):
  md:book:{SYMBOL}    JSON {"bids": [[price, qty, count], ...], "asks": [...], "time": iso}
  md:trades:{SYMBOL}  list of JSON trades, newest first
"""

from __future__ import annotations

import json
from datetime import datetime

import redis.asyncio as redis
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.type.v1 import types_pb2


def _levels(rows, depth: int):
    return [types_pb2.PriceLevel(price=p, quantity=q, order_count=c) for p, q, c in rows[:depth]]


def _time(iso: str | None, target) -> None:
    if iso:
        target.FromDatetime(datetime.fromisoformat(iso))


async def read_book(client: redis.Redis, symbol: str, depth: int, trades: int = 20) -> md_pb2.GetBookResponse:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(f"md:book:{symbol}")
        pipe.lrange(f"md:trades:{symbol}", 0, trades - 1)
        book_raw, trades_raw = await pipe.execute()
    response = md_pb2.GetBookResponse(symbol=symbol)
    if book_raw:
        book = json.loads(book_raw)
        response.bids.extend(_levels(book.get("bids", []), depth))
        response.asks.extend(_levels(book.get("asks", []), depth))
        _time(book.get("time"), response.update_time)
    for raw in trades_raw:
        t = json.loads(raw)
        trade = response.recent_trades.add(
            trade_id=t["trade_id"], symbol=symbol, price=t["price"], quantity=t["quantity"],
            aggressor_side=t.get("aggressor_side", 0),
            maker_order_id=t.get("maker_order_id", 0), taker_order_id=t.get("taker_order_id", 0),
        )
        _time(t.get("time"), trade.time)
    return response
