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

Recovery data of matching shard k (journal, snapshots) lives on its home database,
k % len(db_urls); idempotency keys on account_id % len(db_urls). Pruning the journal
(entries older than the kept snapshots) is not done here yet: it grows until then.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from services.common.config import ShardMap
from services.persistence import schema
from services.persistence.models import (
    CLIENT_ORDER_IDS,
    JOURNAL,
    OPEN_STATUSES,
    ORDER_COLUMNS,
    ORDERS,
    SNAPSHOT_HEADS,
    SNAPSHOTS,
    TRADE_COLUMNS,
    TRADES,
    UPDATABLE_COLUMNS,
)

Row = dict[str, Any]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_JOURNAL_PAGE = 1000
MAX_JOURNAL_PAGE = 10_000
# Complete snapshots kept per matching shard: the newest, and one to fall back on.
SNAPSHOTS_KEPT = 2
_MAX_CLIENT_ID = 64
# SMALLINT column.
_MAX_MATCHING_SHARD = 32767


class StoreUnavailable(Exception):
    """A database could not be reached or failed mid-transaction (that shard committed nothing)."""


class SequenceTaken(Exception):
    """A journal sequence is already stored with a different command: another process
    is writing as this matching shard (or it reused a sequence). Nothing was committed
    on the home database."""


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
        # No pre-ping (a round trip per transaction): a broken connection raises a
        # disconnect error, which fails that one call (UNAVAILABLE, retried by the
        # caller) and makes SQLAlchemy recycle every pooled connection.
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
        # A retried batch brings the same entries again: they are skipped (see write_batch).
        self.insert_journal = insert(JOURNAL).on_conflict_do_nothing()
        self.insert_claims = insert(CLIENT_ORDER_IDS).on_conflict_do_nothing()

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

    def home_of(self, matching_shard: int) -> int:
        """Index of the database holding a matching shard's journal and snapshots."""
        return matching_shard % len(self._shards)

    async def write_batch(
        self,
        new_orders: Sequence[Row] = (),
        updated_orders: Sequence[Row] = (),
        trades: Sequence[Row] = (),
        matching_shard: int = 0,
        journal: Sequence[Row] = (),
    ) -> WriteResult:
        """Commits the batch: one transaction per database.

        `journal` rows (sequence, command, time) of `matching_shard` go to its home
        database in the same transaction as the batch's rows there. With one database
        per symbol range (the default) all of a matching shard's symbols live on its home
        database, so the whole batch is one atomic transaction. When a batch spans
        databases, the others commit first (in parallel) and the home database, with the
        journal, last and only if they all committed: a journal entry never exists
        without its orders (the reverse can happen after a failure, until the retry).

        Any failure may leave some databases committed; the caller retries the whole
        batch, which is idempotent: rows and journal entries already stored are skipped.
        """
        if journal:
            _check_journal(matching_shard, journal)
        groups: dict[int, tuple[list, list, list]] = {}
        for rows, slot, what in ((new_orders, 0, "new_orders"), (updated_orders, 1, "updated_orders"),
                                 (trades, 2, "trades")):
            for row in rows:
                shard = self._db_for(row, what)
                groups.setdefault(shard.index, ([], [], []))[slot].append(row)
        home = self.home_of(matching_shard) if journal else None
        if home is not None:
            groups.setdefault(home, ([], [], []))
        if not groups:
            return WriteResult()
        first = [i for i in groups if i != home]
        results = await asyncio.gather(
            *(self._call(self._shards[i], _write_shard, self._shards[i].write_started(), *groups[i], 0, ())
              for i in first),
            return_exceptions=True,
        )
        total = WriteResult()
        for r in results:
            if isinstance(r, BaseException):
                raise r
            total += r
        if home is not None:
            shard = self._shards[home]
            total += await self._call(shard, _write_shard, shard.write_started(), *groups[home], matching_shard,
                                      journal)
        return total

    # -- reads -------------------------------------------------------------------------

    async def get_order(self, order_id: int, account_id: int | None = None, symbol: str = "") -> Row | None:
        """The order with its fills (list of dicts under "fills"), None if absent or
        when account_id is given and the order belongs to another account. With its
        symbol known only that symbol's database is searched, else every one."""
        home = self.db_of(symbol) if symbol else None
        shards = self._shards if home is None else [self._shards[home]]
        found = await self._each(shards, _get_order, ORDERS.c.order_id == order_id)
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

    # -- journal, snapshots, shard state ---------------------------------------------

    async def read_journal(
        self, matching_shard: int, after_sequence: int = 0, page_size: int = 0
    ) -> AsyncIterator[list[tuple[int, bytes, int]]]:
        """Pages of (sequence, command, time in microseconds since the epoch, UTC) with
        sequence > after_sequence, in order.

        Keyset pagination on the primary key: each page is one short indexed query, so
        no connection or transaction stays open while the caller consumes; the next page
        is fetched while the caller handles the current one. Writes of this store still
        running on the home database finish first (as for list_open_orders).
        """
        _check_shard(matching_shard)
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", f"must not be negative, got {after_sequence}")
        if not 0 <= page_size <= MAX_JOURNAL_PAGE:
            raise InvalidArgument("page_size", f"must be 0-{MAX_JOURNAL_PAGE}, got {page_size}")
        page_size = page_size or DEFAULT_JOURNAL_PAGE
        shard = self._shards[self.home_of(matching_shard)]
        await self._call(shard, _wait_for_writes)
        fetch = lambda after: self._call(shard, _journal_page, matching_shard, after, page_size)
        pending = asyncio.ensure_future(fetch(after_sequence))
        try:
            while True:
                page = await pending
                if len(page) < page_size:
                    if page:
                        yield page
                    return
                pending = asyncio.ensure_future(fetch(page[-1][0]))
                yield page
        finally:
            pending.cancel()

    async def shard_state(self, matching_shard: int) -> tuple[int, int, datetime | None]:
        """(last journal sequence or 0, newest complete snapshot's sequence or 0, its time or None),
        after writes of this store still running on the home database have finished."""
        _check_shard(matching_shard)
        shard = self._shards[self.home_of(matching_shard)]
        return await self._call(shard, _shard_state, matching_shard)

    def snapshot_writer(self) -> SnapshotWriter:
        return SnapshotWriter(self)

    async def read_snapshot(self, matching_shard: int) -> AsyncIterator[Row]:
        """The newest complete snapshot's chunks in order (nothing if there is none), as
        dicts like SnapshotWriter.add takes; one chunk in memory, the next one in flight."""
        _check_shard(matching_shard)
        shard = self._shards[self.home_of(matching_shard)]
        head = await self._call(shard, _newest_head, matching_shard)
        if head is None:
            return
        sequence, chunks = head
        fetch = lambda i: self._call(shard, _snapshot_chunk, matching_shard, sequence, i)
        pending = asyncio.ensure_future(fetch(0))
        try:
            for index in range(chunks):
                data = await pending
                if data is None:
                    raise StoreUnavailable(f"snapshot {sequence} of matching shard {matching_shard} was pruned "
                                           "while being read; read again")
                if index + 1 < chunks:
                    pending = asyncio.ensure_future(fetch(index + 1))
                yield {"matching_shard": matching_shard, "sequence": sequence, "index": index, "data": data,
                       "last": index + 1 == chunks}
        finally:
            pending.cancel()

    # -- idempotency keys -------------------------------------------------------------

    def db_of_account(self, account_id: int) -> int:
        return account_id % len(self._shards)

    async def claim_client_order_ids(
        self, claims: Sequence[tuple[int, str, int] | tuple[int, str, int, int]]
    ) -> list[tuple[int, int]]:
        """Binds each (account_id, client_order_id) to the first (order_id, request_hash)
        claiming it.

        Returns, per claim in order, the owning (order_id, request_hash): the claimed one
        when the key was new, else the stored owner; within one request the first claim
        of a key wins. One transaction per database, all databases concurrently.
        """
        by_db: dict[int, dict[tuple[int, str], tuple[int, int]]] = {}
        for i, (account_id, client_order_id, order_id, *rest) in enumerate(claims):
            if account_id <= 0:
                raise InvalidArgument(f"claims[{i}].account_id", "must be positive")
            if not 0 < len(client_order_id) <= _MAX_CLIENT_ID:
                raise InvalidArgument(f"claims[{i}].client_order_id", f"must be 1-{_MAX_CLIENT_ID} characters")
            if order_id <= 0:
                raise InvalidArgument(f"claims[{i}].order_id", "must be positive")
            request_hash = rest[0] if rest else 0
            by_db.setdefault(self.db_of_account(account_id), {}).setdefault(
                (account_id, client_order_id), (order_id, request_hash))
        if not by_db:
            return []
        now = datetime.now(timezone.utc)
        owners: dict[tuple[int, str], tuple[int, int]] = {}
        for found in await self._each_call([(self._shards[i], keys) for i, keys in by_db.items()], _claim, now):
            owners.update(found)
        return [owners[(a, c)] for a, c, *_ in claims]

    async def _each_call(self, calls: Iterable[tuple[_Shard, Any]], fn: Callable, *args) -> list:
        results = await asyncio.gather(*(self._call(s, fn, arg, *args) for s, arg in calls), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    # -- lifecycle ---------------------------------------------------------------------

    def create_schema(self) -> None:
        """Upgrades every database to the newest schema revision (idempotent; see schema.py)."""
        for shard in self._shards:
            try:
                schema.upgrade(shard.engine)
            except _UNAVAILABLE as e:
                raise StoreUnavailable(f"database shard {shard.index} unavailable: {_short(e)}") from e

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for shard in self._shards:
            shard.engine.dispose()


class SnapshotWriter:
    """Stores one snapshot chunk by chunk, each chunk in its own transaction (so a
    100 MB snapshot never sits in memory); the last chunk's transaction also writes the
    head that makes it visible and prunes all but the newest SNAPSHOTS_KEPT complete
    snapshots of the shard. A snapshot already complete at that sequence is left as it
    is (a retried upload): its chunks are checked for order and dropped."""

    def __init__(self, store: ShardedStore):
        self._store = store
        self._first: Row | None = None
        self._next_index = 0
        self._done = False
        self._duplicate = False
        self._bytes = 0

    async def add(self, chunk: Row) -> None:
        """chunk: matching_shard, sequence, index, data, last."""
        index = chunk["index"]
        if self._done:
            raise InvalidArgument("chunk.index", f"chunk {index} after the one marked last")
        if self._first is None:
            _check_shard(chunk["matching_shard"])
            if chunk["sequence"] < 0:
                raise InvalidArgument("chunk.sequence", f"must not be negative, got {chunk['sequence']}")
            self._first = chunk
        elif (chunk["matching_shard"], chunk["sequence"]) != (self._first["matching_shard"], self._first["sequence"]):
            raise InvalidArgument("chunk.sequence", "every chunk of a snapshot must have the first one's "
                                  "matching_shard and sequence")
        if index != self._next_index:
            raise InvalidArgument("chunk.index", f"expected {self._next_index}, got {index}")
        self._next_index += 1
        self._done = chunk["last"]
        matching_shard = self._first["matching_shard"]
        shard = self._store._shards[self._store.home_of(matching_shard)]
        if index == 0:
            stored = await self._store._call(shard, _snapshot_start, matching_shard, chunk["sequence"])
            self._duplicate = stored is not None
            self._bytes = stored or 0
        if self._duplicate:
            return
        self._bytes += len(chunk["data"])
        await self._store._call(shard, _snapshot_put, matching_shard, chunk["sequence"], index, chunk["data"],
                                self._bytes if chunk["last"] else None)

    async def finish(self) -> int:
        """Bytes stored (of the snapshot already there, for a repeated one); refuses a
        stream that ended before its last chunk."""
        if self._first is None:
            raise InvalidArgument("chunk", "no chunks")
        if not self._done:
            raise InvalidArgument("chunk.last", f"the stream ended after chunk {self._next_index - 1} without "
                                  "a chunk marked last: the snapshot stays invisible")
        return self._bytes


def _check_shard(matching_shard: int) -> None:
    if not 0 <= matching_shard <= _MAX_MATCHING_SHARD:
        raise InvalidArgument("matching_shard", f"must be 0-{_MAX_MATCHING_SHARD}, got {matching_shard}")


# -- per-database work (runs on a worker thread) -----------------------------------------


def _order_params(row: Row) -> Row:
    # An empty client id is stored as NULL so that it never collides in the unique key.
    if not row.get("client_order_id") and "client_order_id" in row:
        row = {**row, "client_order_id": None}
    return row


def _check_journal(matching_shard: int, journal: Sequence[Row]) -> None:
    _check_shard(matching_shard)
    previous = 0
    for i, entry in enumerate(journal):
        sequence = entry["sequence"]
        if sequence <= previous:
            raise InvalidArgument(f"journal[{i}].sequence",
                                  f"must be positive and above the previous entry's ({previous}), got {sequence}")
        previous = sequence


def _write_shard(shard: _Shard, ticket: int, new_orders: list[Row], updated: list[Row],
                 trades: list[Row], matching_shard: int, journal: Sequence[Row]) -> WriteResult:
    try:
        new_orders = [_order_params(r) for r in new_orders]
        # The last state of an order in the batch wins (one UPDATE may not hit a row twice).
        updated = list({r["order_id"]: r for r in updated}.values())
        with shard.engine.begin() as conn:
            if shard.arrays:
                result = _write_arrays(conn, new_orders, updated, trades)
                if journal:
                    written = conn.exec_driver_sql(
                        _PG_INSERT_JOURNAL, (matching_shard, *_columns(journal, _JOURNAL_KEYS))).rowcount
            else:
                result = _write_core(shard, conn, new_orders, updated, trades)
                if journal:
                    written = conn.execute(
                        shard.insert_journal, [{"matching_shard": matching_shard, **e} for e in journal]).rowcount
            if journal and written != len(journal):
                _check_retried_journal(conn, matching_shard, journal)
            return result
    finally:
        shard.write_done(ticket)


def _check_retried_journal(conn: Connection, matching_shard: int, journal: Sequence[Row]) -> None:
    """Some entries were there already: fine if it is a retry (same commands), else refused."""
    sequences = [e["sequence"] for e in journal]
    stored = dict(conn.execute(
        sa.select(JOURNAL.c.sequence, JOURNAL.c.command)
        .where(JOURNAL.c.matching_shard == matching_shard, JOURNAL.c.sequence.in_(sequences))).all())
    for entry in journal:
        old = stored.get(entry["sequence"])
        if old is not None and bytes(old) != bytes(entry["command"]):
            raise SequenceTaken(f"matching shard {matching_shard}: sequence {entry['sequence']} is already "
                                "journaled with another command")


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


_JOURNAL_KEYS = ("sequence", "command", "time")
_PG_INSERT_JOURNAL = (
    "INSERT INTO journal (matching_shard, sequence, command, time) SELECT %s, * FROM "
    "unnest(%s::bigint[], %s::bytea[], %s::timestamptz[]) ON CONFLICT DO NOTHING"
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


def _wait_for_writes(shard: _Shard) -> None:
    shard.wait_for_writes(_WRITE_WAIT_S)


_JOURNAL_PAGE = (
    sa.select(JOURNAL.c.sequence, JOURNAL.c.command, JOURNAL.c.time)
    .where(JOURNAL.c.matching_shard == sa.bindparam("shard"), JOURNAL.c.sequence > sa.bindparam("after"))
    .order_by(JOURNAL.c.sequence)
    .limit(sa.bindparam("limit"))
)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# Binary results and times as integers: a page of 10000 entries decodes in a few ms
# (SQLAlchemy rows with datetime objects cost about 5 us per entry).
_PG_JOURNAL_PAGE = (
    "SELECT sequence, command, (extract(epoch FROM time) * 1000000)::bigint FROM journal "
    "WHERE matching_shard = %s AND sequence > %s ORDER BY sequence LIMIT %s"
)


def _journal_page(shard: _Shard, matching_shard: int, after: int, limit: int) -> list[tuple[int, bytes, int]]:
    with shard.engine.connect() as conn:
        if shard.arrays:
            with conn.connection.driver_connection.cursor(binary=True) as cur:
                # Walk the primary key in order and stop at the limit. Without statistics
                # (a journal that just grew) the planner would rather sort every entry
                # after `after` (bitmap scan + sort): 10x slower per page, and O(n^2) overall.
                cur.execute("SET LOCAL enable_sort = off")
                return cur.execute(_PG_JOURNAL_PAGE, (matching_shard, after, limit)).fetchall()
        rows = conn.execute(_JOURNAL_PAGE, {"shard": matching_shard, "after": after, "limit": limit}).all()
    return [(seq, bytes(command), (_utc(when) - _EPOCH) // _MICROSECOND) for seq, command, when in rows]


_NEWEST_HEAD = (
    sa.select(SNAPSHOT_HEADS.c.sequence, SNAPSHOT_HEADS.c.chunks, SNAPSHOT_HEADS.c.time)
    .where(SNAPSHOT_HEADS.c.matching_shard == sa.bindparam("shard"))
    .order_by(SNAPSHOT_HEADS.c.sequence.desc())
    .limit(1)
)


def _shard_state(shard: _Shard, matching_shard: int) -> tuple[int, int, datetime | None]:
    shard.wait_for_writes(_WRITE_WAIT_S)
    with shard.engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(JOURNAL.c.sequence))
                            .where(JOURNAL.c.matching_shard == matching_shard)).scalar()
        head = conn.execute(_NEWEST_HEAD, {"shard": matching_shard}).first()
    if head is None:
        return last or 0, 0, None
    return last or 0, head.sequence, _utc(head.time)


def _newest_head(shard: _Shard, matching_shard: int) -> tuple[int, int] | None:
    with shard.engine.connect() as conn:
        head = conn.execute(_NEWEST_HEAD, {"shard": matching_shard}).first()
    return None if head is None else (head.sequence, head.chunks)


def _snapshot_chunk(shard: _Shard, matching_shard: int, sequence: int, index: int) -> bytes | None:
    with shard.engine.connect() as conn:
        data = conn.execute(sa.select(SNAPSHOTS.c.data).where(
            SNAPSHOTS.c.matching_shard == matching_shard, SNAPSHOTS.c.sequence == sequence,
            SNAPSHOTS.c.chunk_index == index)).scalar()
    return None if data is None else bytes(data)


def _snapshot_start(shard: _Shard, matching_shard: int, sequence: int) -> int | None:
    """The size of that snapshot when it is complete already; else None, having cleared
    leftovers of an earlier attempt at it (chunks without a head)."""
    with shard.engine.begin() as conn:
        stored = conn.execute(sa.select(SNAPSHOT_HEADS.c.bytes).where(
            SNAPSHOT_HEADS.c.matching_shard == matching_shard, SNAPSHOT_HEADS.c.sequence == sequence)).scalar()
        if stored is None:
            conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.matching_shard == matching_shard,
                                                    SNAPSHOTS.c.sequence == sequence))
        return stored


def _snapshot_put(shard: _Shard, matching_shard: int, sequence: int, index: int, data: bytes,
                  total_bytes: int | None) -> None:
    """Stores a chunk; with total_bytes (the last chunk) also the head, and prunes."""
    with shard.engine.begin() as conn:
        conn.execute(sa.insert(SNAPSHOTS), {"matching_shard": matching_shard, "sequence": sequence,
                                            "chunk_index": index, "data": data})
        if total_bytes is None:
            return
        conn.execute(sa.insert(SNAPSHOT_HEADS), {"matching_shard": matching_shard, "sequence": sequence,
                                                 "chunks": index + 1, "bytes": total_bytes,
                                                 "time": datetime.now(timezone.utc)})
        kept = [r[0] for r in conn.execute(
            sa.select(SNAPSHOT_HEADS.c.sequence).where(SNAPSHOT_HEADS.c.matching_shard == matching_shard)
            .order_by(SNAPSHOT_HEADS.c.sequence.desc()).limit(SNAPSHOTS_KEPT))]
        conn.execute(sa.delete(SNAPSHOT_HEADS).where(SNAPSHOT_HEADS.c.matching_shard == matching_shard,
                                                     SNAPSHOT_HEADS.c.sequence.not_in(kept)))
        # Chunks of pruned snapshots, and of uploads abandoned below the newest kept one.
        conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.matching_shard == matching_shard,
                                                SNAPSHOTS.c.sequence.not_in(kept),
                                                SNAPSHOTS.c.sequence < max(kept)))


# Claims and reads the owners in one statement: the inserted rows plus those that were
# there before (the SELECT sees the statement's snapshot, so never both).
_PG_CLAIM_OWNERS = (
    "WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[], %s::bigint[]) AS v(a, c, o, h)), "
    "ins AS (INSERT INTO client_order_ids (account_id, client_order_id, order_id, request_hash, time) "
    "SELECT a, c, o, h, %s FROM v ON CONFLICT DO NOTHING "
    "RETURNING account_id, client_order_id, order_id, request_hash) "
    "SELECT account_id, client_order_id, order_id, request_hash FROM ins "
    "UNION ALL SELECT k.account_id, k.client_order_id, k.order_id, k.request_hash FROM client_order_ids AS k "
    "JOIN v ON k.account_id = v.a AND k.client_order_id = v.c"
)
_PG_OWNERS = (
    "SELECT k.account_id, k.client_order_id, k.order_id, k.request_hash FROM client_order_ids AS k "
    "JOIN unnest(%s::bigint[], %s::varchar[]) AS v(a, c) ON k.account_id = v.a AND k.client_order_id = v.c"
)


def _claim(shard: _Shard, keys: dict[tuple[int, str], tuple[int, int]],
           now: datetime) -> dict[tuple[int, str], tuple[int, int]]:
    accounts = [a for a, _ in keys]
    client_ids = [c for _, c in keys]
    with shard.engine.begin() as conn:
        if shard.arrays:
            order_ids = [o for o, _ in keys.values()]
            hashes = [h for _, h in keys.values()]
            rows = conn.exec_driver_sql(_PG_CLAIM_OWNERS, (accounts, client_ids, order_ids, hashes, now)).all()
            if len(rows) < len(keys):
                # A concurrent claim committed a key after this statement began: a
                # second statement sees it.
                rows = conn.exec_driver_sql(_PG_OWNERS, (accounts, client_ids)).all()
        else:
            conn.execute(shard.insert_claims, [
                {"account_id": a, "client_order_id": c, "order_id": o, "request_hash": h, "time": now}
                for (a, c), (o, h) in keys.items()])
            key = sa.tuple_(CLIENT_ORDER_IDS.c.account_id, CLIENT_ORDER_IDS.c.client_order_id)
            rows = conn.execute(sa.select(CLIENT_ORDER_IDS.c.account_id, CLIENT_ORDER_IDS.c.client_order_id,
                                          CLIENT_ORDER_IDS.c.order_id, CLIENT_ORDER_IDS.c.request_hash)
                                .where(key.in_(list(keys)))).all()
    owners = {(a, c): (o, h) for a, c, o, h in rows}
    if len(owners) != len(keys):
        raise StoreUnavailable(f"database shard {shard.index}: claimed keys not found after commit")
    return owners


def _owned(found: list[Row | None], account_id: int | None) -> Row | None:
    for row in found:
        if row is not None and (not account_id or row["account_id"] == account_id):
            return row
    return None


def _short(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__

