"""Publishes each committed batch's market data to Redis (read by the order service's GetBook).

Keys, per symbol (SYMBOL as listed, e.g. AAPL):
  md:book:{SYMBOL}    string, JSON object, replaced after every batch touching SYMBOL:
                        {"bids": [[price, quantity, order_count], ...],   best (highest) first
                         "asks": [[price, quantity, order_count], ...],   best (lowest) first
                         "time": "2026-01-02T03:04:05.123456+00:00",      ISO 8601, UTC
                         "trading_status": 1}     bourse.type.v1.TradingStatus: 1 TRADING, 2 HALTED
                      up to BOOK_LEVELS (50) levels per side; prices in ticks, quantities in lots.
  md:trades:{SYMBOL}  list, newest first, capped at 100 entries (LPUSH + LTRIM 0 99); each entry
                        {"trade_id": int, "price": int, "quantity": int,
                         "aggressor_side": int (bourse.type.v1.Side: 1 BUY, 2 SELL),
                         "maker_order_id": int, "taker_order_id": int, "time": ISO 8601 UTC}
                      (account ids are deliberately not published).
  md:updates:{SYMBOL} pub/sub channel: after each send that touched SYMBOL, in the same
                      script, {"book": <the md:book object or null>, "trades": [<new
                      trades, oldest first>]} (the order service streams it to subscribers).
  orders:{ACCOUNT}    stream (XADD, about the last ORDER_UPDATES_KEPT entries), field "order":
                      a serialized bourse.type.v1.Order for each order of the account that
                      changed since the last send: its newest state and the fills it got
                      meanwhile. SubscribeOrders reads it and resumes from an entry id.
  md:sent:{SENDER}    the number of the last send of one publishing process that Redis applied.

Only committed data is published: the group committer `record`s each batch's trades and
touched symbols right after its commit, and a background task sends them to Redis, many
batches in one send, off the path of the acks. Sends are at least `interval_s` apart
(conflation: a book is replaced by its newest state, every trade is still sent): a send
per group commit cost more CPU than the commit's own write when batches are small. The
books are read once per send, not once per batch, between batches (`books(symbols)` is
the committer's, which waits for any batch in flight), so they never show what is not
committed.

Each send is one Lua script call (one command to pack and parse, applied whole), and it
is applied exactly once: it carries this process's sender id and a send number, and the
script skips a send whose number Redis has already seen. A send that failed or timed out
may still be applied later (a stalled Redis runs what it had queued when it resumes), so
it is retried unchanged, same number, until Redis confirms it, and nothing newer goes
first: a trade is never pushed twice and an order update is never dropped while Redis
comes back. Redis trouble never fails trading: meanwhile the newest book of each symbol,
up to TRADES_PENDING_MAX trades per symbol and up to ORDER_UPDATES_PENDING_MAX order
updates wait for the next send. Past that bound the pending updates are dropped, and the
streams of their accounts are trimmed to nothing in the next send, so that their readers
see the gap (OUT_OF_RANGE, catch up with ListOrders) instead of missing an update
silently. After a failure Redis is left alone for a second.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from _matching_native import iso_us, order_bytes

from services.common import metrics, redis_keys
from services.matching.shard_write import account_of, order_id_of

_dumps = json.JSONEncoder().encode

TRADES_KEPT = 100
# Trades waiting for the next send, per symbol: every one goes to md:updates (the stream
# promises every trade; a sweep can print hundreds at once), only the last TRADES_KEPT
# stay in md:trades. The bound only bites while Redis is down.
TRADES_PENDING_MAX = 10_000
# Changed orders waiting for the next send: only reached while Redis is down.
ORDER_UPDATES_PENDING_MAX = 200_000
# Order updates kept per account stream (about: trimmed by whole nodes): how far back
# a SubscribeOrders client can resume.
ORDER_UPDATES_KEPT = 10_000
ORDER_UPDATES_TTL_S = 7 * 24 * 3600
SENT_TTL_S = 24 * 3600
PUBLISH_TIMEOUT_S = 0.5
BACKOFF_S = 1.0

# ARGV: sender, send number, trades kept, updates kept, stream ttl, sent ttl; then the
# symbols (count, then per symbol: symbol, book JSON or "", trade count, its trades
# oldest first, one per line); the accounts whose updates were lost (count, ids); the
# order updates (count, then, when there are any, three arguments: their account ids
# and their lengths, each comma-separated, and the serialized Orders back to back). A
# few arguments rather than some per update and trade: the client packs every argument
# in Python, and at two per order that was most of a send's cost. Keys are built here
# from the prefixes of services/common/redis_keys.py: bourse runs a single Redis, not a
# cluster.
PUBLISH_SCRIPT = """
local sent_key = '{SENT}' .. ARGV[1]
local number = tonumber(ARGV[2])
if tonumber(redis.call('GET', sent_key) or '0') >= number then return 0 end
local kept, updates_kept, stream_ttl, sent_ttl = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local i = 7
local function take() i = i + 1; return ARGV[i - 1] end
for _ = 1, tonumber(take()) do
  local symbol, book, n, joined = take(), take(), tonumber(take()), take()
  if book ~= '' then redis.call('SET', '{BOOK}' .. symbol, book) end
  local trades, j = {}, 0
  for trade in joined:gmatch('[^\\n]+') do j = j + 1; trades[j] = trade end
  if n > 0 then
    redis.call('LPUSH', '{TRADES}' .. symbol, unpack(trades, math.max(1, n - kept + 1), n))
    redis.call('LTRIM', '{TRADES}' .. symbol, 0, kept - 1)
  end
  if book == '' then book = 'null' end
  redis.call('PUBLISH', '{UPDATES}' .. symbol,
             '{"book": ' .. book .. ', "trades": [' .. table.concat(trades, ', ') .. ']}')
end
for _ = 1, tonumber(take()) do redis.call('XTRIM', '{ORDERS}' .. take(), 'MAXLEN', 0) end
local accounts = {}
local updates = tonumber(take())
if updates > 0 then
  local ids, lengths, orders = take():gmatch('[^,]+'), take():gmatch('[^,]+'), take()
  local at = 1
  for _ = 1, updates do
    local stream, length = '{ORDERS}' .. ids(), tonumber(lengths())
    redis.call('XADD', stream, 'MAXLEN', '~', updates_kept, '*', 'order', orders:sub(at, at + length - 1))
    at = at + length
    accounts[stream] = true
  end
end
for stream in pairs(accounts) do redis.call('EXPIRE', stream, stream_ttl) end
redis.call('SET', sent_key, number, 'EX', sent_ttl)
return 1
""".replace("{SENT}", redis_keys.SENT_PREFIX).replace("{BOOK}", redis_keys.BOOK_PREFIX).replace(
    "{TRADES}", redis_keys.TRADES_PREFIX).replace("{UPDATES}", redis_keys.UPDATES_PREFIX).replace(
    "{ORDERS}", redis_keys.ORDERS_PREFIX)


def trade_json(trade) -> str:
    # What json.dumps writes for this dict, without its encoder (every value is an int or
    # an ISO time, which needs no escaping).
    return ('{"trade_id": %d, "price": %d, "quantity": %d, "aggressor_side": %d, "maker_order_id": %d, '
            '"taker_order_id": %d, "time": "%s"}') % (
        trade.trade_id, trade.price, trade.quantity, trade.aggressor_side, trade.maker_order_id,
        trade.taker_order_id, iso_us(trade.time_us))  # exact (no float); natively: a datetime per trade cost most


def book_json(bids, asks, now: str, trading_status: int = 1) -> str:
    # Levels are sequences of ints (the engine's tuples): the C encoder writes them as
    # arrays, about four times faster than Python formatting the lists they used to be.
    return '{"bids": %s, "asks": %s, "time": "%s", "trading_status": %d}' % (
        _dumps(bids), _dumps(asks), now, trading_status)


def update_bytes(row, fills, answer: bytes | None = None) -> bytes:
    """An order update as its stream entry carries it (Order message bytes): the answer's
    when the batch gave one (it already carries exactly the fills recorded with it), else
    the order's row with the fills since the last send, each (trade_id, price, quantity,
    maker, time_us)."""
    return order_bytes(row, fills) if answer is None else answer


class MarketData:
    def __init__(self, client, log, clock=time.monotonic, interval_s: float = 0.0):
        """client: a redis.asyncio.Redis (or None to publish nothing); interval_s: least
        time between two sends."""
        self._client = client
        self._script = client.register_script(PUBLISH_SCRIPT) if client is not None else None
        self._interval_s = interval_s
        self._log = log
        self._clock = clock
        self._sender = secrets.token_hex(8)
        self._sends = 0  # number of the last send built
        self._unconfirmed: list | None = None  # a send Redis may or may not have applied
        self._dirty: set[str] = set()  # symbols whose book changed since the last send
        # symbol -> how to read its committed book (each shard of the process has its own).
        self._books_of: dict[str, Callable] = {}
        self._trades: dict[str, list[str]] = defaultdict(list)
        # order_id -> (its newest row, the fills it got since the last send, or instead the
        # Order bytes its answer carried, when that is still the whole update): to publish
        self._orders: dict[int, tuple[tuple, list, object]] = {}
        self._gaps: set[int] = set()  # accounts whose updates were dropped
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    def record(self, symbols, trades, books_of: Callable, orders=(), answered=None) -> None:
        """A committed batch: symbols it touched, its trades (in order), the new state of
        each order it changed (rows, shard_write.py), and `await books_of(symbols) ->
        {symbol: (bids, asks)}` for committed books. `answered`: order_id -> the Order
        bytes (with its fills) the batch answered for an order it created and did not
        touch again, sent as it is unless a later batch changes the order first."""
        if self._client is None:
            return
        for symbol in symbols:
            self._books_of[symbol] = books_of
        self._dirty.update(symbols)
        pending_orders = self._orders
        answered = answered or {}
        for row in orders:  # the newest state, with the fills since the last send
            order_id = order_id_of(row)
            earlier = pending_orders.get(order_id)
            if earlier is None:
                pending_orders[order_id] = (row, [], answered.get(order_id))
            else:
                pending_orders[order_id] = (row, earlier[1], None)
        for trade in trades:
            pending = self._trades[trade.symbol]
            pending.append(trade_json(trade))
            if len(pending) > TRADES_PENDING_MAX:
                del pending[: len(pending) - TRADES_PENDING_MAX]
            for order_id, maker in ((trade.maker_order_id, True), (trade.taker_order_id, False)):
                if (update := pending_orders.get(order_id)) is not None:
                    update[1].append((trade.trade_id, trade.price, trade.quantity, maker, trade.time_us))
        if len(pending_orders) > ORDER_UPDATES_PENDING_MAX:
            self._gaps.update(account_of(row) for row, _, _ in pending_orders.values())
            pending_orders.clear()
            self._log.warning("order updates dropped while Redis is away", accounts=len(self._gaps))
        if self._pending():
            self._wakeup.set()
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="market-data")

    def _pending(self) -> bool:
        return bool(self._dirty or self._trades or self._orders or self._gaps)

    async def _take(self) -> list:
        """The script's arguments for a new send of everything recorded since the last one."""
        dirty, self._dirty = self._dirty, set()
        trades, self._trades = self._trades, defaultdict(list)
        orders, self._orders = self._orders, {}
        gaps, self._gaps = self._gaps, set()
        now = datetime.now(UTC).isoformat()
        by_reader: dict[Callable, list[str]] = {}
        for symbol in sorted(dirty):
            by_reader.setdefault(self._books_of[symbol], []).append(symbol)
        books = {}
        for books_of, symbols in by_reader.items():
            books.update((symbol, book_json(bids, asks, now, status))
                         for symbol, (bids, asks, status) in (await books_of(symbols)).items())
        self._sends += 1
        args = [self._sender, self._sends, TRADES_KEPT, ORDER_UPDATES_KEPT, ORDER_UPDATES_TTL_S, SENT_TTL_S]
        symbols = sorted(books.keys() | trades.keys())
        args.append(len(symbols))
        for symbol in symbols:
            pending = trades.get(symbol, ())
            args += (symbol, books.get(symbol, ""), len(pending), "\n".join(pending))
        args.append(len(gaps))
        args += sorted(gaps)
        args.append(len(orders))
        if orders:
            updates = [update_bytes(row, fills, answer) for row, fills, answer in orders.values()]
            args += (",".join([str(account_of(row)) for row, _, _ in orders.values()]),
                     ",".join(map(str, map(len, updates))), b"".join(updates))
        return args

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            started = self._clock()
            self._wakeup.clear()
            if self._unconfirmed is None:
                self._unconfirmed = await self._take()
            if not await self._send(self._unconfirmed):
                await asyncio.sleep(BACKOFF_S)
                self._wakeup.set()
                continue
            self._unconfirmed = None
            if self._pending():  # recorded while a retried send went: it goes next
                self._wakeup.set()
            if self._interval_s > 0:
                await asyncio.sleep(max(0.0, started + self._interval_s - self._clock()))

    async def _send(self, args: list) -> bool:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):  # the whole send (the client has no read timeout)
                await self._script(args=args)
            return True
        except Exception as error:  # noqa: BLE001 - any Redis trouble: keep trading, publish later
            metrics.REDIS_ERRORS.labels("publish").inc()
            self._log.warning("market data not published", error=repr(error), send=args[1])
            return False

    async def close(self) -> None:
        """Stops publishing; what was recorded but not yet sent (at most one interval
        of it, the committer being stopped first) gets one last try. The client stays
        open: it is the caller's (one process's shards share one)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is None:
            return
        if self._unconfirmed is not None and not await self._send(self._unconfirmed):
            return  # nothing newer may overtake it
        if self._pending():
            await self._send(await self._take())
