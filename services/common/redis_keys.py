"""The Redis names matching writes and the order service reads, in one place.

  md:book:{SYMBOL}     the book, replaced after each send that touched SYMBOL
  md:trades:{SYMBOL}   recent trades, newest first
  md:updates:{SYMBOL}  pub/sub channel of book and trades together
  md:sent:{SENDER}     the number of a publishing process's last applied send
  orders:{ACCOUNT}     stream of the account's order updates
  orders:epoch         names this Redis's order-update streams (a Redis that lost its
                       data gets a new one, so resume tokens from before are refused)

services/matching/market_data.py documents what each holds; its publishing script builds
the same names from these prefixes.
"""

BOOK_PREFIX = "md:book:"
TRADES_PREFIX = "md:trades:"
UPDATES_PREFIX = "md:updates:"
SENT_PREFIX = "md:sent:"
ORDERS_PREFIX = "orders:"
ORDERS_EPOCH_KEY = "orders:epoch"


def book_key(symbol: str) -> str:
    return BOOK_PREFIX + symbol


def trades_key(symbol: str) -> str:
    return TRADES_PREFIX + symbol


def updates_channel(symbol: str) -> str:
    return UPDATES_PREFIX + symbol


def orders_stream(account_id: int) -> str:
    return f"{ORDERS_PREFIX}{account_id}"
