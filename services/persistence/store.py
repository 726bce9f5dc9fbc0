"""Orders and trades on sharded SQL databases (PostgreSQL; SQLite for tests).

A row's database is chosen by its symbol: shard = ShardMap.shard_of(symbol), database =
shard % len(db_urls), so one URL per shard range in production and fewer in small setups.
Rows are plain dicts keyed by column name (see models.py); no gRPC here.

The write path is the hot one: a batch becomes one transaction per database, the
databases written concurrently (worker threads), no ORM objects per row. On PostgreSQL
each table gets one statement whose columns travel as arrays (INSERT ... SELECT FROM
unnest); elsewhere SQLAlchemy Core multi-row statements on the same table metadata.
Retrying a batch is harmless: inserts skip rows already stored (ON CONFLICT DO NOTHING)
and updates set the same final state.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from services.common.config import ShardMap
from services.persistence.models import (
    OPEN_STATUSES,
    ORDER_COLUMNS,
    ORDERS,
    TRADE_COLUMNS,
    TRADES,
    UPDATABLE_COLUMNS,
)

Row = dict[str, Any]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class StoreUnavailable(Exception):
    """A database could not be reached or failed mid-transaction (that shard committed nothing)."""


class InvalidArgument(ValueError):
    """Input the store refuses; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class WriteResult:
    orders_inserted: int = 0
    orders_updated: int = 0
    trades_inserted: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.orders_inserted + other.orders_inserted,
            self.orders_updated + other.orders_updated,
            self.trades_inserted + other.trades_inserted,
        )


def encode_page_token(last_order_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_order_id).encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        if raw.isdigit() and 0 < int(raw) < 2**63:
            return int(raw)
    except (ValueError, UnicodeError):
        pass
    raise InvalidArgument("page_token", "not a token from a previous ListOrders response")


# Errors meaning "the database is not there or the connection broke", as opposed to
# errors in what we sent it (IntegrityError, DataError, ProgrammingError).
_UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)


def _make_engine(url: str, pool_size: int, connect_timeout: float) -> Engine:
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):
            # Readers do not block the writer; the journal survives a crash like PostgreSQL's WAL.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        pool_pre_ping=True,  # a restarted database costs one failed call, not a broken pool
        # libpq's minimum is 2 s; a dead database must answer UNAVAILABLE quickly.
        connect_args={"connect_timeout": max(2, math.ceil(connect_timeout))},
    )


class _Shard:
    """One database: its engine and the statements compiled for its dialect."""

    def __init__(self, index: int, engine: Engine, arrays: bool = True):
        self.index = index
        self.engine = engine
        # PostgreSQL: whole columns as array parameters (see _PG_*); else Core executemany.
        self.arrays = arrays and engine.dialect.name == "postgresql"
        # Writes still running on a worker thread, including those whose caller gave up
        # (deadline): a thread cannot be stopped, and its transaction may yet commit.
        self._writes = threading.Condition()
        self._active: set[int] = set()
        self._tickets = itertools.count()
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        # Without a conflict target DO NOTHING covers the primary key and the
        # (account_id, client_order_id) key alike. RETURNING counts what went in, and
        # lets SQLAlchemy batch the rows into multi-row VALUES ("insertmanyvalues").
        self.insert_orders = insert(ORDERS).on_conflict_do_nothing().returning(ORDERS.c.order_id)
        self.insert_trades = (
            insert(TRADES).on_conflict_do_nothing(index_elements=["trade_id"]).returning(TRADES.c.trade_id)
        )
        self.update_orders = (
            sa.update(ORDERS)
            .where(ORDERS.c.order_id == sa.bindparam("b_order_id"))
            .values({c: sa.bindparam(c) for c in UPDATABLE_COLUMNS})
        )

    def write_started(self) -> int:
        with self._writes:
            ticket = next(self._tickets)
            self._active.add(ticket)
            return ticket

    def write_done(self, ticket: int) -> None:
        with self._writes:
            self._active.discard(ticket)
            self._writes.notify_all()

    def wait_for_writes(self, timeout: float) -> bool:
        """Waits until the writes running now have finished (later ones do not count)."""
        with self._writes:
            pending = set(self._active)
            return self._writes.wait_for(lambda: not pending & self._active, timeout)


class ShardedStore:
    def __init__(
        self,
        db_urls: Sequence[str],
        shard_map: ShardMap,
        pool_size: int = 8,
        connect_timeout: float = 2.0,
        pg_arrays: bool = True,
    ):
        if not db_urls:
            raise ValueError("at least one database URL is needed")
        self.shard_map = shard_map
        self._shards = [
            _Shard(i, _make_engine(u, pool_size, connect_timeout), pg_arrays) for i, u in enumerate(db_urls)
        ]
        # A few workers per database: one writer plus concurrent readers.
        self._executor = ThreadPoolExecutor(max_workers=4 * len(self._shards), thread_name_prefix="store")

    # -- routing -----------------------------------------------------------------------

    def db_of(self, symbol: str) -> int | None:
        """Index of the database holding `symbol`'s rows, None when no range covers it."""
        shard = self.shard_map.shard_of(symbol)
        return None if shard is None else shard % len(self._shards)

    def _db_for(self, row: Row, what: str) -> _Shard:
        index = self.db_of(row["symbol"])
        if index is None:
            raise InvalidArgument(f"{what}.symbol", f"{row['symbol']!r} belongs to no shard")
        return self._shards[index]

    async def _call(self, shard: _Shard, fn: Callable, *args):
        # Shielded: a cancelled caller (deadline) must not cancel a queued job, or a
        # write's ticket would never be released (see _Shard.write_started).
        future = asyncio.wrap_future(self._executor.submit(fn, shard, *args))
        try:
            return await asyncio.shield(future)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"database shard {shard.index} unavailable: {_short(e)}") from e
        except (exc.DataError, exc.IntegrityError) as e:
            # Values the database refuses (out of range, too long): the caller's input.
            raise InvalidArgument("request", f"refused by database shard {shard.index}: {_short(e)}") from e
        except exc.DBAPIError as e:
            if e.connection_invalidated:
                raise StoreUnavailable(f"database shard {shard.index} unavailable: {_short(e)}") from e
            raise

    async def _each(self, shards: Iterable[_Shard], fn: Callable, *args) -> list:
        """Runs fn on every shard concurrently; raises the first failure after all finish."""
        results = await asyncio.gather(*(self._call(s, fn, *args) for s in shards), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    # -- writes ------------------------------------------------------------------------

    async def write_batch(
        self, new_orders: Sequence[Row] = (), updated_orders: Sequence[Row] = (), trades: Sequence[Row] = ()
    ) -> WriteResult:
        """Commits the batch: one transaction per database, databases in parallel.

        If one database fails the others may still have committed; the caller retries
        the whole batch, which is idempotent.
        """
        groups: dict[int, tuple[list, list, list]] = {}
        for rows, slot, what in ((new_orders, 0, "new_orders"), (updated_orders, 1, "updated_orders"),
                                 (trades, 2, "trades")):
            for row in rows:
                shard = self._db_for(row, what)
                groups.setdefault(shard.index, ([], [], []))[slot].append(row)
        if not groups:
            return WriteResult()
        results = await asyncio.gather(
            *(self._call(self._shards[i], _write_shard, self._shards[i].write_started(), *g)
              for i, g in groups.items()),
            return_exceptions=True,
        )
        total = WriteResult()
        for r in results:
            if isinstance(r, BaseException):
                raise r
            total += r
        return total

    # -- reads -------------------------------------------------------------------------

    async def get_order(self, order_id: int, account_id: int | None = None) -> Row | None:
        """The order with its fills (list of dicts under "fills"), None if absent or
        when account_id is given and the order belongs to another account."""
        found = await self._each(self._shards, _get_order, ORDERS.c.order_id == order_id)
        return _owned(found, account_id)

    async def get_order_by_client_id(self, account_id: int, client_order_id: str) -> Row | None:
        where = sa.and_(ORDERS.c.account_id == account_id, ORDERS.c.client_order_id == client_order_id)
        found = await self._each(self._shards, _get_order, where)
        return _owned(found, account_id)

    async def list_orders(
        self, account_id: int, page_size: int = 0, page_token: str = "", symbol: str = ""
    ) -> tuple[list[Row], str]:
        """An account's orders newest first (by order_id), and the next page's token ("" at the end)."""
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"must be 0-{MAX_PAGE_SIZE}, got {page_size}")
        page_size = page_size or DEFAULT_PAGE_SIZE
        before = decode_page_token(page_token) if page_token else None
        where = [ORDERS.c.account_id == account_id]
        if before is not None:
            where.append(ORDERS.c.order_id < before)
        if symbol:
            index = self.db_of(symbol)
            if index is None:
                return [], ""
            shards = [self._shards[index]]
            where.append(ORDERS.c.symbol == symbol)
        else:
            shards = self._shards
        query = sa.select(*ORDERS.columns).where(*where).order_by(ORDERS.c.order_id.desc()).limit(page_size + 1)
        pages = await self._each(shards, _select_orders, query)
        merged = list(heapq.merge(*pages, key=lambda r: r["order_id"], reverse=True))
        page = merged[:page_size]
        token = encode_page_token(page[-1]["order_id"]) if len(merged) > page_size else ""
        return page, token

    async def list_open_orders(self, symbols: Iterable[str] = ()) -> list[Row]:
        """Orders still working (NEW, PARTIALLY_FILLED) on `symbols` (all when empty), oldest first.

        A matching shard calls this to rebuild its books, typically right after a write
        of its own timed out; so writes still running on a database finish (commit or
        fail) before its open orders are read, or the books could miss their orders.
        """
        base = sa.select(*ORDERS.columns).where(ORDERS.c.status.in_(OPEN_STATUSES)).order_by(ORDERS.c.order_id)
        symbols = sorted(set(symbols))
        if not symbols:
            calls = [(s, base) for s in self._shards]
        else:
            by_db: dict[int, list[str]] = {}
            for symbol in symbols:
                index = self.db_of(symbol)
                if index is not None:
                    by_db.setdefault(index, []).append(symbol)
            calls = [(self._shards[i], base.where(ORDERS.c.symbol.in_(s))) for i, s in by_db.items()]
        results = await asyncio.gather(*(self._call(s, _select_open_orders, q) for s, q in calls),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return list(heapq.merge(*results, key=lambda r: r["order_id"]))

    # -- lifecycle ---------------------------------------------------------------------

    def create_schema(self) -> None:
        """Creates missing tables and indexes on every database (idempotent)."""
        for shard in self._shards:
            try:
                SQLModel.metadata.create_all(shard.engine, tables=[ORDERS, TRADES])
            except _UNAVAILABLE as e:
                raise StoreUnavailable(f"database shard {shard.index} unavailable: {_short(e)}") from e

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for shard in self._shards:
            shard.engine.dispose()


# -- per-database work (runs on a worker thread) -----------------------------------------


def _order_params(row: Row) -> Row:
    # An empty client id is stored as NULL so that it never collides in the unique key.
    if not row.get("client_order_id") and "client_order_id" in row:
        row = {**row, "client_order_id": None}
    return row


def _write_shard(shard: _Shard, ticket: int, new_orders: list[Row], updated: list[Row],
                 trades: list[Row]) -> WriteResult:
    try:
        new_orders = [_order_params(r) for r in new_orders]
        # The last state of an order in the batch wins (one UPDATE may not hit a row twice).
        updated = list({r["order_id"]: r for r in updated}.values())
        with shard.engine.begin() as conn:
            if shard.arrays:
                return _write_arrays(conn, new_orders, updated, trades)
            return _write_core(shard, conn, new_orders, updated, trades)
    finally:
        shard.write_done(ticket)


def _write_core(shard: _Shard, conn: Connection, new_orders, updated, trades) -> WriteResult:
    inserted = updated_count = trades_inserted = 0
    if new_orders:
        inserted = len(conn.execute(shard.insert_orders, new_orders).all())
    if updated:
        params = [{"b_order_id": r["order_id"], **{c: r[c] for c in UPDATABLE_COLUMNS}} for r in updated]
        updated_count = conn.execute(shard.update_orders, params).rowcount
    if trades:
        trades_inserted = len(conn.execute(shard.insert_trades, list(trades)).all())
    return WriteResult(inserted, updated_count, trades_inserted)


# PostgreSQL fast path: one short statement per table whatever the batch size, each
# column sent as one binary array and unnested server-side. Measured against Core's
# multi-row VALUES (bench_write.py --compare): psycopg re-parses a long VALUES text on
# every batch, while this text is constant (prepared once per connection).
_ORDER_TYPES = {"order_id": "bigint", "account_id": "bigint", "client_order_id": "varchar", "symbol": "varchar",
                "side": "smallint", "order_type": "smallint", "time_in_force": "smallint", "status": "smallint",
                "price": "bigint", "quantity": "bigint", "filled_quantity": "bigint", "leaves_quantity": "bigint",
                "reason": "varchar", "create_time": "timestamptz", "update_time": "timestamptz"}
_TRADE_TYPES = {"trade_id": "bigint", "symbol": "varchar", "price": "bigint", "quantity": "bigint",
                "maker_order_id": "bigint", "taker_order_id": "bigint", "maker_account_id": "bigint",
                "taker_account_id": "bigint", "aggressor_side": "smallint", "time": "timestamptz"}
assert tuple(_ORDER_TYPES) == ORDER_COLUMNS and tuple(_TRADE_TYPES) == TRADE_COLUMNS


def _unnest(types: dict[str, str], columns) -> str:
    return "unnest({}) AS v({})".format(
        ", ".join(f"%s::{types[c]}[]" for c in columns), ", ".join(columns))


_PG_INSERT_ORDERS = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) SELECT * FROM {_unnest(_ORDER_TYPES, ORDER_COLUMNS)} "
    "ON CONFLICT DO NOTHING"
)
_PG_INSERT_TRADES = (
    f"INSERT INTO trades ({', '.join(TRADE_COLUMNS)}) SELECT * FROM {_unnest(_TRADE_TYPES, TRADE_COLUMNS)} "
    "ON CONFLICT (trade_id) DO NOTHING"
)
_UPDATE_KEYS = ("order_id", *UPDATABLE_COLUMNS)
_PG_UPDATE_ORDERS = (
    "UPDATE orders AS o SET {} FROM {} WHERE o.order_id = v.order_id".format(
        ", ".join(f"{c} = v.{c}" for c in UPDATABLE_COLUMNS), _unnest(_ORDER_TYPES, _UPDATE_KEYS))
)


def _columns(rows: list[Row], names) -> tuple[list, ...]:
    return tuple([row[name] for row in rows] for name in names)


def _write_arrays(conn: Connection, new_orders, updated, trades) -> WriteResult:
    inserted = updated_count = trades_inserted = 0
    if new_orders:
        inserted = conn.exec_driver_sql(_PG_INSERT_ORDERS, _columns(new_orders, ORDER_COLUMNS)).rowcount
    if updated:
        updated_count = conn.exec_driver_sql(_PG_UPDATE_ORDERS, _columns(updated, _UPDATE_KEYS)).rowcount
    if trades:
        trades_inserted = conn.exec_driver_sql(_PG_INSERT_TRADES, _columns(trades, TRADE_COLUMNS)).rowcount
    return WriteResult(inserted, updated_count, trades_inserted)


def _utc(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _order_row(values) -> Row:
    row = dict(zip(ORDER_COLUMNS, values))
    if row["client_order_id"] is None:
        row["client_order_id"] = ""
    row["create_time"] = _utc(row["create_time"])
    row["update_time"] = _utc(row["update_time"])
    return row


def _select_orders(shard: _Shard, query) -> list[Row]:
    with shard.engine.connect() as conn:
        return [_order_row(v) for v in conn.execute(query)]


# Bounded, so that a hung database cannot hang readers forever.
_WRITE_WAIT_S = 30.0


def _select_open_orders(shard: _Shard, query) -> list[Row]:
    shard.wait_for_writes(_WRITE_WAIT_S)
    return _select_orders(shard, query)


_FILL_QUERY = (
    sa.select(TRADES.c.trade_id, TRADES.c.price, TRADES.c.quantity, TRADES.c.maker_order_id, TRADES.c.time)
    .where(sa.or_(TRADES.c.maker_order_id == sa.bindparam("oid"), TRADES.c.taker_order_id == sa.bindparam("oid")))
    .order_by(TRADES.c.trade_id)
)


def _get_order(shard: _Shard, where) -> Row | None:
    with shard.engine.connect() as conn:
        values = conn.execute(sa.select(*ORDERS.columns).where(where)).first()
        if values is None:
            return None
        row = _order_row(values)
        oid = row["order_id"]
        row["fills"] = [
            {"trade_id": t, "price": p, "quantity": q, "maker": maker == oid, "time": _utc(when)}
            for t, p, q, maker, when in conn.execute(_FILL_QUERY, {"oid": oid})
        ]
        return row


def _owned(found: list[Row | None], account_id: int | None) -> Row | None:
    for row in found:
        if row is not None and (not account_id or row["account_id"] == account_id):
            return row
    return None


def _short(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__

