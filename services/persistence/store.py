"""Orders and trades on sharded SQL databases (PostgreSQL; SQLite for tests): ShardedStore,
the async API of service.py, the tests and the bench programs.

A row's database is chosen by its symbol: shard = ShardMap.shard_of(symbol), database =
shard % len(db_urls), so one URL per shard range in production and fewer in small setups.
Rows are plain dicts keyed by column name (see models.py); no gRPC here.

The write path is the hot one: a batch becomes one transaction per database, the
databases written concurrently (worker threads), no ORM objects per row. What runs on
those threads lives in writes.py (transactions; retrying a batch is harmless), reads.py
(queries) and snapshots.py (snapshot chunks, with SnapshotWriter); shards.py holds one
database's engine and statements, errors.py what the store raises.

Recovery data of matching shard k (journal, snapshots) lives on its home database,
k % len(db_urls); idempotency keys on account_id % len(db_urls). With journal_prune, a
new snapshot deletes the journal up to the oldest kept snapshot (snapshots.py), and a
read from further back raises JournalPruned (reads.py).
"""

from __future__ import annotations

import asyncio
import base64
import heapq
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from services.common.config import ShardMap
from services.persistence import api_keys, reads, schema, snapshots, writes
from services.persistence.errors import (
    UNAVAILABLE,
    InvalidArgument,
    SequenceTaken,
    StoreUnavailable,
    check_shard,
    short,
)
from services.persistence.models import ORDERS, Row
from services.persistence.shards import Shard, make_engine
from services.persistence.snapshots import SNAPSHOTS_KEPT, SnapshotWriter
from services.persistence.writes import WriteResult

# Callers import these from here; they live in the modules named above.
__all__ = [
    "DEFAULT_JOURNAL_PAGE",
    "DEFAULT_PAGE_SIZE",
    "MAX_JOURNAL_PAGE",
    "MAX_PAGE_SIZE",
    "SNAPSHOTS_KEPT",
    "InvalidArgument",
    "Row",
    "SequenceTaken",
    "ShardedStore",
    "SnapshotWriter",
    "StoreUnavailable",
    "WriteResult",
    "decode_page_token",
    "encode_page_token",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_JOURNAL_PAGE = 1000
MAX_JOURNAL_PAGE = 10_000


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


class ShardedStore:
    def __init__(
        self,
        db_urls: Sequence[str],
        shard_map: ShardMap,
        pool_size: int = 8,
        connect_timeout: float = 2.0,
        pg_arrays: bool = True,
        journal_prune: bool = False,
    ):
        if not db_urls:
            raise ValueError("at least one database URL is needed")
        self.shard_map = shard_map
        # Read by SnapshotWriter: off here (tests replay whole journals); the service
        # turns it on unless BOURSE_JOURNAL_PRUNE says otherwise (config.py).
        self.journal_prune = journal_prune
        self._shards = [
            Shard(i, make_engine(u, pool_size, connect_timeout), pg_arrays) for i, u in enumerate(db_urls)
        ]
        # A few workers per database: one writer plus concurrent readers.
        self._executor = ThreadPoolExecutor(max_workers=4 * len(self._shards), thread_name_prefix="store")

    # -- routing -----------------------------------------------------------------------

    def db_of(self, symbol: str) -> int | None:
        """Index of the database holding `symbol`'s rows, None when no range covers it."""
        shard = self.shard_map.shard_of(symbol)
        return None if shard is None else shard % len(self._shards)

    def _db_for(self, row: Row, what: str) -> Shard:
        index = self.db_of(row["symbol"])
        if index is None:
            raise InvalidArgument(f"{what}.symbol", f"{row['symbol']!r} belongs to no shard")
        return self._shards[index]

    async def _call(self, shard: Shard, fn: Callable, *args):
        # Shielded: a cancelled caller (deadline) must not cancel a queued job, or a
        # write's ticket would never be released (see Shard.write_started).
        future = asyncio.wrap_future(self._executor.submit(fn, shard, *args))
        try:
            return await asyncio.shield(future)
        except UNAVAILABLE as e:
            raise StoreUnavailable(f"database shard {shard.index} unavailable: {short(e)}") from e
        except (exc.DataError, exc.IntegrityError) as e:
            # Values the database refuses (out of range, too long): the caller's input.
            raise InvalidArgument("request", f"refused by database shard {shard.index}: {short(e)}") from e
        except exc.DBAPIError as e:
            if e.connection_invalidated:
                raise StoreUnavailable(f"database shard {shard.index} unavailable: {short(e)}") from e
            raise

    async def _each(self, shards: Iterable[Shard], fn: Callable, *args) -> list:
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
            *(self._write_shard(self._shards[i], *groups[i], 0, ()) for i in first),
            return_exceptions=True,
        )
        total = WriteResult()
        for r in results:
            if isinstance(r, BaseException):
                raise r
            total += r
        if home is not None:
            total += await self._write_shard(self._shards[home], *groups[home], matching_shard, journal)
        return total

    async def _write_shard(self, shard: Shard, *args) -> WriteResult:
        # The ticket is taken in the same step that queues the job (no await between):
        # a task cancelled before it ran takes none, so none is left unreleased.
        return await self._call(shard, writes.write_shard, shard.write_started(), *args)

    # -- reads -------------------------------------------------------------------------

    async def get_order(self, order_id: int, account_id: int | None = None, symbol: str = "",
                        fills: bool = True) -> Row | None:
        """The order with its fills (list of dicts under "fills"; none read unless `fills`),
        None if absent or when account_id is given and the order belongs to another account.
        With its symbol known only that symbol's database is searched, else every one."""
        home = self.db_of(symbol) if symbol else None
        shards = self._shards if home is None else [self._shards[home]]
        found = await self._each(shards, reads.get_order, ORDERS.c.order_id == order_id, fills)
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
        pages = await self._each(shards, reads.select_orders, query)
        merged = list(heapq.merge(*pages, key=lambda r: r["order_id"], reverse=True))
        page = merged[:page_size]
        token = encode_page_token(page[-1]["order_id"]) if len(merged) > page_size else ""
        return page, token

    # -- journal, snapshots, shard state ---------------------------------------------

    async def read_journal(
        self, matching_shard: int, after_sequence: int = 0, page_size: int = 0
    ) -> AsyncIterator[list[tuple[int, bytes, int]]]:
        """Pages of (sequence, command, time in microseconds since the epoch, UTC) with
        sequence > after_sequence, in order.

        Keyset pagination on the primary key: each page is one short indexed query, so
        no connection or transaction stays open while the caller consumes; the next page
        is fetched while the caller handles the current one. Writes of this store still
        running on the home database finish first: a shard that recovers after a write
        of its own timed out must not miss that write's commands.
        """
        check_shard(matching_shard)
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", f"must not be negative, got {after_sequence}")
        if not 0 <= page_size <= MAX_JOURNAL_PAGE:
            raise InvalidArgument("page_size", f"must be 0-{MAX_JOURNAL_PAGE}, got {page_size}")
        page_size = page_size or DEFAULT_JOURNAL_PAGE
        shard = self._shards[self.home_of(matching_shard)]
        await self._call(shard, reads.wait_for_writes)
        fetch = lambda after: self._call(shard, reads.journal_page, matching_shard, after, page_size)
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
        check_shard(matching_shard)
        shard = self._shards[self.home_of(matching_shard)]
        return await self._call(shard, reads.shard_state, matching_shard)

    def snapshot_writer(self) -> SnapshotWriter:
        return SnapshotWriter(self)

    async def read_snapshot(self, matching_shard: int) -> AsyncIterator[Row]:
        """The newest complete snapshot's chunks in order (nothing if there is none), as
        dicts like SnapshotWriter.add takes; one chunk in memory, the next one in flight."""
        check_shard(matching_shard)
        shard = self._shards[self.home_of(matching_shard)]
        head = await self._call(shard, snapshots.newest_head, matching_shard)
        if head is None:
            return
        sequence, chunks = head
        fetch = lambda i: self._call(shard, snapshots.snapshot_chunk, matching_shard, sequence, i)
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

    async def _each_call(self, calls: Iterable[tuple[Shard, Any]], fn: Callable, *args) -> list:
        results = await asyncio.gather(*(self._call(s, fn, arg, *args) for s, arg in calls), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    # -- API keys (database 0; api_keys.py) ----------------------------------------

    async def create_api_key(self, key_hash: bytes, account_id: int, label: str) -> Row:
        return await self._call(self._shards[0], api_keys.insert_key, key_hash, account_id, label,
                                datetime.now(timezone.utc))

    async def revoke_api_key(self, key_id: str) -> Row | None:
        return await self._call(self._shards[0], api_keys.revoke_key, key_id, datetime.now(timezone.utc))

    async def api_keys_after(self, after_revision: int, limit: int) -> list[Row]:
        return await self._call(self._shards[0], api_keys.keys_after, after_revision, limit)

    # -- lifecycle ---------------------------------------------------------------------

    def create_schema(self) -> None:
        """Upgrades every database to the newest schema revision (idempotent; see schema.py)."""
        for shard in self._shards:
            try:
                schema.upgrade(shard.engine)
            except UNAVAILABLE as e:
                raise StoreUnavailable(f"database shard {shard.index} unavailable: {short(e)}") from e

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for shard in self._shards:
            shard.engine.dispose()


def _check_journal(matching_shard: int, journal: Sequence[Row]) -> None:
    check_shard(matching_shard)
    previous = 0
    for i, entry in enumerate(journal):
        sequence = entry["sequence"]
        if sequence <= previous:
            raise InvalidArgument(f"journal[{i}].sequence",
                                  f"must be positive and above the previous entry's ({previous}), got {sequence}")
        previous = sequence


def _owned(found: list[Row | None], account_id: int | None) -> Row | None:
    for row in found:
        if row is not None and (not account_id or row["account_id"] == account_id):
            return row
    return None
