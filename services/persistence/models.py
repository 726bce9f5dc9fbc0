"""Tables of the persistence service (SQLModel), identical on every database shard.

Integers are BIGINT everywhere: ids are 63-bit Snowflakes, prices ticks, quantities lots.
Enums are SMALLINT with the proto's numbers, so rows convert to messages without lookups.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
)
from sqlmodel import Field, SQLModel

from services.common.limits import MAX_CLIENT_ORDER_ID

# A row as the store passes it around (no ORM objects on the hot path): column name -> value.
Row = dict[str, Any]


def _big(**kwargs) -> Column:
    return Column(BigInteger, nullable=False, **kwargs)


def _small() -> Column:
    return Column(SmallInteger, nullable=False)


def _time() -> Column:
    return Column(DateTime(timezone=True), nullable=False)


class OrderRecord(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # ListOrders: an account's orders, newest (highest id) first. The only index
        # beside the key: each costs every batch's inserts and updates (revision 0006).
        Index("ix_orders_account_order", "account_id", "order_id"),
    )

    order_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    account_id: int = Field(sa_column=_big())
    client_order_id: str | None = Field(default=None, sa_column=Column(String(MAX_CLIENT_ORDER_ID), nullable=True))
    symbol: str = Field(sa_column=Column(String(12), nullable=False))
    side: int = Field(sa_column=_small())
    order_type: int = Field(sa_column=_small())
    time_in_force: int = Field(sa_column=_small())
    status: int = Field(sa_column=_small())
    price: int = Field(sa_column=_big())
    quantity: int = Field(sa_column=_big())
    filled_quantity: int = Field(sa_column=_big())
    leaves_quantity: int = Field(sa_column=_big())
    reason: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    create_time: datetime = Field(sa_column=_time())
    update_time: datetime = Field(sa_column=_time())
    # Stop and stop-limit orders: the trigger price (0 for other orders), and 1 once the
    # trigger was reached (a flag as SMALLINT: rows travel as integer arrays, revision 0008).
    stop_price: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    triggered: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, server_default="0"))
    # An iceberg's display quantity (0: not one); a GTD or DAY order's expiry in microseconds
    # since the epoch (0: none; an integer, so rows stay integer arrays without NULLs).
    display_quantity: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    expire_time_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class TradeRecord(SQLModel, table=True):
    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_maker_order", "maker_order_id"),
        Index("ix_trades_taker_order", "taker_order_id"),
    )

    trade_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    symbol: str = Field(sa_column=Column(String(12), nullable=False))
    price: int = Field(sa_column=_big())
    quantity: int = Field(sa_column=_big())
    maker_order_id: int = Field(sa_column=_big())
    taker_order_id: int = Field(sa_column=_big())
    maker_account_id: int = Field(sa_column=_big())
    taker_account_id: int = Field(sa_column=_big())
    aggressor_side: int = Field(sa_column=_small())
    time: datetime = Field(sa_column=_time())


class JournalRecord(SQLModel, table=True):
    """A matching shard's sequenced commands; lives on the shard's home database
    (matching_shard % number of databases), written with the batch's orders."""

    __tablename__ = "journal"

    matching_shard: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    command: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    time: datetime = Field(sa_column=_time())


class SnapshotChunkRecord(SQLModel, table=True):
    """Chunks of a matching shard's snapshots; only those with a head are complete."""

    __tablename__ = "snapshots"

    matching_shard: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chunk_index: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SnapshotHeadRecord(SQLModel, table=True):
    """One row per complete snapshot, written in the transaction of its last chunk."""

    __tablename__ = "snapshot_heads"

    matching_shard: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chunks: int = Field(sa_column=Column(Integer, nullable=False))
    bytes: int = Field(sa_column=_big())
    time: datetime = Field(sa_column=_time())


class ApiKeyRecord(SQLModel, table=True):
    """API keys by their SHA-256 (services/common/api_keys.py), on database 0 only.

    `revision` orders every change (creation, revocation): a change takes the table's
    next revision under a table lock (api_keys.py), so revisions commit in order and a
    replica that read up to revision R has missed nothing below it."""

    __tablename__ = "api_keys"

    key_id: str = Field(sa_column=Column(String(16), primary_key=True))
    key_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    account_id: int = Field(sa_column=_big())
    label: str = Field(sa_column=Column(String(200), nullable=False, server_default=""))
    create_time: datetime = Field(sa_column=_time())
    revoke_time: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    revision: int = Field(sa_column=_big(unique=True))


ORDERS = OrderRecord.__table__
TRADES = TradeRecord.__table__
ORDER_COLUMNS = tuple(c.name for c in ORDERS.columns)
JOURNAL = JournalRecord.__table__
SNAPSHOTS = SnapshotChunkRecord.__table__
SNAPSHOT_HEADS = SnapshotHeadRecord.__table__
API_KEYS = ApiKeyRecord.__table__
ALL_TABLES = (ORDERS, TRADES, JOURNAL, SNAPSHOTS, SNAPSHOT_HEADS, API_KEYS)
TRADE_COLUMNS = tuple(c.name for c in TRADES.columns)


def pg_types(table) -> dict[str, str]:
    """Each column of `table` -> its PostgreSQL type, without a length (for casts of
    array parameters: a cast to VARCHAR(64) would cut a longer value silently, where the
    column itself refuses it)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    return {column.name: re.sub(r"\(\d+\)", "", column.type.compile(dialect=dialect)) for column in table.columns}


# What an update may change; the rest of an order is fixed when it is accepted.
# price and quantity change on a modify (cancel/replace), a waiting stop's stop_price on its
# modify, triggered when it triggers.
UPDATABLE_COLUMNS = ("price", "quantity", "filled_quantity", "leaves_quantity", "status", "reason", "update_time",
                     "stop_price", "triggered")
# What a row written without them holds: the columns that came with stops, icebergs and
# expiries (revision 0008).
ORDER_DEFAULTS = {"stop_price": 0, "triggered": 0, "display_quantity": 0, "expire_time_us": 0}
# An update's row: the order it updates, then what changes.
UPDATE_COLUMNS = ("order_id", *UPDATABLE_COLUMNS)
# A journal entry's row (the matching shard comes apart, once per batch).
JOURNAL_COLUMNS = ("sequence", "command", "time")
