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

Only committed data is published (after the WriteBatch returns). Redis trouble never
fails trading: the symbols (and up to 100 trades each) are kept and published with the
next batch; after a failure Redis is left alone for a second so a dead Redis costs no
latency per batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

TRADES_KEPT = 100
PUBLISH_TIMEOUT_S = 0.5
BACKOFF_S = 1.0


def book_key(symbol: str) -> str:
    return f"md:book:{symbol}"


def trades_key(symbol: str) -> str:
    return f"md:trades:{symbol}"


def _iso(ts) -> str:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC).isoformat()


def trade_json(trade) -> str:
    return json.dumps({
        "trade_id": trade.trade_id, "price": trade.price, "quantity": trade.quantity,
        "aggressor_side": trade.aggressor_side, "maker_order_id": trade.maker_order_id,
        "taker_order_id": trade.taker_order_id, "time": _iso(trade.time),
    })


class MarketData:
    def __init__(self, client, log, clock=time.monotonic):
        """client: a redis.asyncio.Redis (or None to publish nothing)."""
        self._client = client
        self._log = log
        self._clock = clock
        self._dirty: set[str] = set()
        self._trades: dict[str, list[str]] = defaultdict(list)
        self._quiet_until = 0.0

    async def publish(self, symbols, trades, depth: Callable[[str], tuple[list, list]]) -> None:
        """symbols touched by a committed batch, its trades (in order), depth(symbol) -> (bids, asks)."""
        if self._client is None:
            return
        self._dirty.update(symbols)
        for trade in trades:
            pending = self._trades[trade.symbol]
            pending.append(trade_json(trade))
            if len(pending) > TRADES_KEPT:
                del pending[: len(pending) - TRADES_KEPT]
        if not self._dirty or self._clock() < self._quiet_until:
            return
        now = datetime.now(UTC).isoformat()
        pipe = self._client.pipeline(transaction=False)
        for symbol in sorted(self._dirty):
            bids, asks = depth(symbol)
            pipe.set(book_key(symbol), json.dumps({"bids": bids, "asks": asks, "time": now}))
            pending = self._trades.get(symbol)
            if pending:
                pipe.lpush(trades_key(symbol), *pending)  # oldest first in, so newest ends at the head
                pipe.ltrim(trades_key(symbol), 0, TRADES_KEPT - 1)
        try:
            await asyncio.wait_for(pipe.execute(), PUBLISH_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - any Redis trouble: keep trading, publish later
            self._quiet_until = self._clock() + BACKOFF_S
            self._log.warning("market data not published", error=repr(error), symbols=len(self._dirty))
            return
        finally:
            await pipe.reset()
        self._dirty.clear()
        self._trades.clear()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
