"""The order mix of the load test: what each simulated client sends next. No I/O.

Mix (per call, by default):
- 80% limit GTC orders, side random, price uniform in mid-5..mid+5 ticks, 1-10 lots.
  Buys and sells overlap around the mid, so a good share of them cross and trade and
  the rest rest on the book (and give the cancels something to cancel).
- 10% market IOC orders, 1-5 lots (fill against what rests, cancel the rest).
- 10% cancels of one of the client's own resting orders (CancelOrder with order_id and
  symbol); with nothing resting, a limit order is sent instead. A cancel may lose the
  race against a fill: FAILED_PRECONDITION is then the right answer, not an error.
- Optionally (`modify_share`, 0 by default, which is the original test's mix), modifies
  of a resting order taken from the limit orders' share: a new price in the band around
  the current mid (it may cross and trade) and 1-3 more lots than the client last set.
Each symbol's mid price is shared by all clients and takes a +-1 tick random walk at
every order, never going below band+1, so every price is > 0.
client_order_id = f"{run_id}-{client}-{n}": unique per order across clients and runs.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

from bourse.type.v1 import types_pb2 as t

from services.common.limits import MAX_CLIENT_ORDER_ID

# Enum numbers of bourse.type.v1, from the generated code (the protos are their one source).
BUY, SELL = t.SIDE_BUY, t.SIDE_SELL
LIMIT, MARKET = t.ORDER_TYPE_LIMIT, t.ORDER_TYPE_MARKET
GTC, IOC = t.TIME_IN_FORCE_GTC, t.TIME_IN_FORCE_IOC
NEW, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED = (
    t.ORDER_STATUS_NEW, t.ORDER_STATUS_PARTIALLY_FILLED, t.ORDER_STATUS_FILLED, t.ORDER_STATUS_CANCELLED,
    t.ORDER_STATUS_REJECTED)
OPEN = (NEW, PARTIALLY_FILLED)


@dataclass(frozen=True)
class Mix:
    market_share: float = 0.10
    cancel_share: float = 0.10
    modify_share: float = 0.0
    band_ticks: int = 5
    max_limit_lots: int = 10
    max_market_lots: int = 5
    # Cap on remembered resting orders per client (oldest forgotten first).
    max_resting: int = 1000

    def __post_init__(self):
        shares = (self.market_share, self.cancel_share, self.modify_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError("market_share + cancel_share + modify_share must be within 0..1")
        if self.band_ticks < 0 or self.max_limit_lots < 1 or self.max_market_lots < 1:
            raise ValueError("band_ticks >= 0 and lot limits >= 1 required")


@dataclass(frozen=True)
class Submit:
    client_order_id: str
    symbol: str
    side: int
    order_type: int
    time_in_force: int
    price: int
    quantity: int


@dataclass(frozen=True)
class Cancel:
    order_id: int
    symbol: str


@dataclass(frozen=True)
class Modify:
    order_id: int
    symbol: str
    price: int
    quantity: int  # new total quantity


def initial_mid(symbol: str) -> int:
    """A stable starting mid per symbol between 1,000 and 20,999 ticks."""
    return 1000 + zlib.crc32(symbol.encode()) % 20000


@dataclass
class Market:
    """Mid prices shared by every client, so their orders meet at the same levels."""

    symbols: tuple[str, ...]
    mix: Mix = field(default_factory=Mix)
    mids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.symbols:
            raise ValueError("at least one symbol is required")
        self.symbols = tuple(self.symbols)
        for symbol in self.symbols:
            self.mids.setdefault(symbol, initial_mid(symbol))

    def step(self, symbol: str, rng: random.Random) -> int:
        mid = max(self.mids[symbol] + rng.choice((-1, 0, 1)), self.mix.band_ticks + 1)
        self.mids[symbol] = mid
        return mid


class ClientWorkload:
    """One client's stream of calls; feed it the answers so it knows what rests."""

    def __init__(self, client: int, run_id: str, market: Market, rng: random.Random):
        self.client = client
        self.run_id = run_id
        self.market = market
        self.mix = market.mix
        self.rng = rng
        self.sent = 0
        self.resting: dict[int, str] = {}  # order_id -> symbol, insertion ordered
        self.quantities: dict[int, int] = {}  # order_id -> total quantity last set, for modifies

    def next(self) -> Submit | Cancel | Modify:
        roll = self.rng.random()
        if roll < self.mix.cancel_share and self.resting:
            order_id = self._pick_resting()
            self.quantities.pop(order_id, None)
            return Cancel(order_id=order_id, symbol=self.resting.pop(order_id))
        if roll < self.mix.cancel_share + self.mix.modify_share and self.resting:
            order_id = self._pick_resting()
            symbol = self.resting[order_id]
            mid = self.market.step(symbol, self.rng)
            price = self.rng.randint(mid - self.mix.band_ticks, mid + self.mix.band_ticks)
            quantity = self.quantities.get(order_id, 1) + self.rng.randint(1, 3)
            self.quantities[order_id] = quantity
            return Modify(order_id, symbol, price, quantity)
        symbol = self.rng.choice(self.market.symbols)
        mid = self.market.step(symbol, self.rng)
        side = self.rng.choice((BUY, SELL))
        self.sent += 1
        coid = f"{self.run_id}-{self.client}-{self.sent}"
        if roll >= 1 - self.mix.market_share:
            return Submit(coid, symbol, side, MARKET, IOC, 0, self.rng.randint(1, self.mix.max_market_lots))
        band = self.mix.band_ticks
        price = self.rng.randint(mid - band, mid + band)
        return Submit(coid, symbol, side, LIMIT, GTC, price, self.rng.randint(1, self.mix.max_limit_lots))

    def _pick_resting(self) -> int:
        # One of the 64 oldest: cheap on a big dict, and old orders are those a trader
        # would give up on (they may also have been filled meanwhile: a lost race).
        skip = self.rng.randrange(min(len(self.resting), 64))
        for index, order_id in enumerate(self.resting):
            if index == skip:
                return order_id
        raise AssertionError("unreachable")

    def on_submitted(self, order_id: int, symbol: str, status: int, leaves_quantity: int,
                     quantity: int = 0) -> None:
        """Remembers acknowledged orders that still rest, as cancel and modify candidates
        (an answered modify counts as a submit: the order may have filled)."""
        if status in OPEN and leaves_quantity > 0:
            self.resting[order_id] = symbol
            if quantity:
                self.quantities[order_id] = quantity
            if len(self.resting) > self.mix.max_resting:
                forgotten = next(iter(self.resting))
                del self.resting[forgotten]
                self.quantities.pop(forgotten, None)
        else:
            self.resting.pop(order_id, None)
            self.quantities.pop(order_id, None)


def problems(call: Submit | Cancel | Modify, symbols) -> list[str]:
    """What the order service would refuse in this call (empty when valid)."""
    found = []
    if isinstance(call, (Cancel, Modify)):
        if call.order_id <= 0:
            found.append("order_id must be > 0")
        if call.symbol not in symbols:
            found.append("unknown symbol")
        if isinstance(call, Modify) and (call.price <= 0 or call.quantity <= 0):
            found.append("a modify needs price > 0 and quantity > 0")
        return found
    if not 1 <= len(call.client_order_id) <= MAX_CLIENT_ORDER_ID or not call.client_order_id.isprintable():
        found.append(f"client_order_id must be 1-{MAX_CLIENT_ORDER_ID} printable characters")
    if call.symbol not in symbols:
        found.append("unknown symbol")
    if call.side not in (BUY, SELL):
        found.append("bad side")
    if call.quantity <= 0:
        found.append("quantity must be > 0")
    if call.order_type == MARKET:
        if call.price != 0 or call.time_in_force == GTC:
            found.append("market orders have price 0 and are IOC/FOK")
    elif call.order_type == LIMIT:
        if call.price <= 0 or call.time_in_force not in (GTC, IOC):
            found.append("limit orders need price > 0")
    else:
        found.append("bad order_type")
    return found
