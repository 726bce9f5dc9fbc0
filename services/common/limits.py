"""The bounds of an order that every process holds to, in one place.

Prices are ticks and quantities lots, bounded as the engine bounds them (kMaxPrice and
kMaxQuantity in engine/include/bourse/engine/types.hpp, which the binding exports as
bourse_engine.MAX_PRICE and MAX_QUANTITY; a test holds these equal to them), so that an
order the order service lets through is never refused by the engine for its size, and
the reverse. A notional (price x quantity) must fit in a signed 64-bit integer, as the
engine and the database keep it. A client_order_id is 1-64 printable characters: the
order service checks it, the database stores it in a column of this width, the load
generator draws within it.
"""

MAX_PRICE = 10**15  # ticks
MAX_QUANTITY = 10**12  # lots
MAX_NOTIONAL = 2**63 - 1  # price x quantity
MAX_CLIENT_ORDER_ID = 64  # characters
