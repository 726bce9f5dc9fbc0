"""Group commits written by the shard itself, straight to its home PostgreSQL database.

The shard's batch (journal entries, new and changed orders, trades) becomes one
statement (four data-modifying parts, so one transaction) over one async psycopg
connection: one round trip, no thread, no ORM, no second process on the ack's path.
Each column travels as one array literal unnested by the server; times travel as
microseconds since the epoch (the database keeps microseconds). Measured per batch of
4 orders against a pipeline of BEGIN, four statements with binary array parameters and
COMMIT: the client's CPU 245-340 us instead of 1,050-1,220 us. The schema is the
persistence service's (models.py, migrated by it); so are every read and recovery,
and the statements that store a snapshot (snapshots.save), which the shard runs itself
(save_snapshot), on a thread: through the service a 5 MB snapshot cost the service
20-30 ms of CPU and the shard's event loop 12 ms.

Journal entries are inserted without ON CONFLICT: a sequence already journaled (by a
second process running this shard, or a commit whose answer was lost) fails the
batch, and the shard recovers from what the database holds before going on.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import sqlalchemy as sa
from _matching_native import int_array_literal
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2

from services.persistence import snapshots
from services.persistence.models import (
    JOURNAL,
    JOURNAL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_DEFAULTS,
    ORDERS,
    TRADE_COLUMNS,
    TRADES,
    UPDATABLE_COLUMNS,
    UPDATE_COLUMNS,
    pg_types,
)
from services.persistence.shards import Shard, make_engine
from services.matching.shard_write import ShardWrite

# Each column's PostgreSQL type, from the tables themselves; times travel as microseconds.
_TYPES = {**pg_types(JOURNAL), **pg_types(TRADES), **pg_types(ORDERS)}
_TIMES = {name for name, sql_type in _TYPES.items() if sql_type.startswith("TIMESTAMP")}


def _value(column: str) -> str:
    if column in _TIMES:
        return f"timestamptz 'epoch' + v.{column} * interval '1 microsecond'"
    return f"v.{column}"


def _unnest(columns) -> str:
    arrays = ", ".join(f"%s::{'BIGINT' if c in _TIMES else _TYPES[c]}[]" for c in columns)
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def _insert(table: str, columns, prefix: tuple[str, ...] = ()) -> str:
    names = ", ".join((*prefix, *columns))
    values = ", ".join([*("%s" for _ in prefix), *map(_value, columns)])
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM {_unnest(columns)}"


INSERT_JOURNAL = _insert("journal", JOURNAL_COLUMNS, prefix=("matching_shard",))
INSERT_TRADES = _insert("trades", TRADE_COLUMNS)


def _update(columns) -> str:
    return "UPDATE orders AS o SET {} FROM {} WHERE o.order_id = v.order_id".format(
        ", ".join(f"{c} = {_value(c)}" for c in columns[1:]), _unnest(columns))


def _write_batch(order_columns, update_columns) -> str:
    # The whole batch is one statement, so one transaction in autocommit mode. Its parts
    # see the same snapshot: the UPDATE never needs an order inserted beside it (a batch
    # lists an order it created among new_orders only, in its final state).
    return (f"WITH j AS ({INSERT_JOURNAL}), o AS ({_insert('orders', order_columns)}), "
            f"u AS ({_update(update_columns)}) {INSERT_TRADES}")


WRITE_BATCH = _write_batch(ORDER_COLUMNS, UPDATE_COLUMNS)
# A batch whose orders are all plain (no stop, iceberg or expiry: the columns ORDER_DEFAULTS
# names all 0, as mostly) leaves those columns out: their defaults, and for an update
# their stored values, are those 0s already (a stop price or a trigger is never undone).
PLAIN_ORDER_COLUMNS = tuple(c for c in ORDER_COLUMNS if c not in ORDER_DEFAULTS)
PLAIN_UPDATE_COLUMNS = tuple(c for c in UPDATE_COLUMNS if c not in ORDER_DEFAULTS)
WRITE_PLAIN_BATCH = _write_batch(PLAIN_ORDER_COLUMNS, PLAIN_UPDATE_COLUMNS)
assert ORDER_COLUMNS[len(PLAIN_ORDER_COLUMNS):] == tuple(ORDER_DEFAULTS) and \
    UPDATE_COLUMNS[len(PLAIN_UPDATE_COLUMNS):] == tuple(c for c in ORDER_DEFAULTS if c in UPDATE_COLUMNS), \
    "the columns a plain batch leaves out are the last ones"


def _element(value) -> str:
    """One element of a PostgreSQL array literal (text form)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return '"\\\\x' + value.hex() + '"'
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_literal(column: list) -> str:
    """A column as a PostgreSQL array literal. Measured against psycopg's own list
    dumping (binary): a batch costs the client about a third of the CPU."""
    if column and None not in column:
        # Whole columns at C speed where every element is alike (_element's forms): a
        # Python call per element was most of the statement's cost.
        first = type(column[0])
        if first is int and (literal := int_array_literal(column)) is not None:
            return literal  # written natively: str() per int was most of the statement's cost
        try:
            if first is str:
                text = '","'.join(column)
                # Quotes are only the separators' and no backslash: nothing to escape.
                if text.count('"') == 2 * (len(column) - 1) and "\\" not in text:
                    return '{"' + text + '"}'
            elif first is bytes:
                return '{"\\\\x' + '","\\\\x'.join(map(bytes.hex, column)) + '"}'
        except TypeError:  # not all alike after all
            pass
    return "{" + ",".join(map(_element, column)) + "}"


def trade_columns(rows) -> list[list]:
    """TradeRows (shard_write.py) as TRADE_COLUMNS."""
    return [list(column) for column in zip(*rows)]


assert ORDER_COLUMNS == ("order_id", "account_id", "client_order_id", "symbol", "side", "order_type",
                         "time_in_force", "status", "price", "quantity", "filled_quantity", "leaves_quantity",
                         "reason", "create_time", "update_time", "stop_price", "triggered", "display_quantity",
                         "expire_time_us"), \
    "order rows (shard_write.py) follow models.py"
assert TRADE_COLUMNS == ("trade_id", "symbol", "price", "quantity", "maker_order_id", "taker_order_id",
                         "maker_account_id", "taker_account_id", "aggressor_side", "time")
assert UPDATE_COLUMNS == ("order_id", "price", "quantity", "filled_quantity", "leaves_quantity", "status",
                          "reason", "update_time", "stop_price", "triggered")


def _filled(columns: list[list], width: int) -> list[list]:
    return columns or [[] for _ in range(width)]


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return sa.make_url(url).get_backend_name() == "postgresql"


def statement_parameters(matching_shard: int, batch: ShardWrite | persistence_pb2.WriteBatchRequest) -> tuple:
    """(WRITE_BATCH or WRITE_PLAIN_BATCH, its parameters for a batch: the shard, then each column)."""
    if not isinstance(batch, ShardWrite):
        batch = ShardWrite.from_request(batch)
    journal = [list(column) for column in zip(*batch.journal_rows)]
    new, updated = batch.order_columns()
    new = _filled(new, len(ORDER_COLUMNS))
    updated = _filled(updated, len(UPDATE_COLUMNS))
    statement = WRITE_BATCH
    plain_new, plain_updated = len(PLAIN_ORDER_COLUMNS), len(PLAIN_UPDATE_COLUMNS)
    if not any(map(any, new[plain_new:])) and not any(map(any, updated[plain_updated:])):
        statement = WRITE_PLAIN_BATCH
        new, updated = new[:plain_new], updated[:plain_updated]
    columns = [*_filled(journal, len(JOURNAL_COLUMNS)), *new, *updated,
               *_filled(trade_columns(batch.trade_rows), len(TRADE_COLUMNS))]
    return statement, [matching_shard, *map(array_literal, columns)]


class WriteFailed(Exception):
    """The batch did not commit, or its outcome is unknown."""


SNAPSHOT_TIMEOUT_S = 120.0


class DirectWrites:
    """write_batch(ShardWrite or WriteBatchRequest) as one transaction on one connection, kept
    open; save_snapshot(...) on a connection of its own, as the persistence service stores one."""

    def __init__(self, url: str, matching_shard: int, timeout_s: float = 3.0, connect_timeout_s: float = 2.0,
                 journal_prune: bool = True):
        self._url = libpq_url(url)
        self._shard = matching_shard
        self._timeout = timeout_s
        self._connect_timeout = max(2, round(connect_timeout_s))  # libpq's least
        self._conn: psycopg.AsyncConnection | None = None
        # Snapshots: the persistence service's own statements (snapshots.py) on a thread,
        # over a connection of their own (a batch never waits behind a snapshot's chunks).
        self._sa_url = url
        self._journal_prune = journal_prune  # as the persistence service's BOURSE_JOURNAL_PRUNE
        self._snapshots: Shard | None = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            # The batch's UPDATE must find its orders by primary key: a plan made while
            # the table was small (a new database, a shard's first batches) scans the
            # whole table instead, and stays cached as the table grows. Measured in the
            # stack: 1,500 sequential scans of orders in 20 s, and throughput falling from
            # 1,300 to 750 orders/s within a minute. No sequential scans for this session
            # (nothing else it runs scans a table), and one generic plan, planned once.
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout,
                options="-c enable_seqscan=off -c plan_cache_mode=force_generic_plan")
        return self._conn

    async def write_batch(self, request) -> None:
        statement, parameters = statement_parameters(self._shard, request)
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._connection()
                await conn.execute(statement, parameters)
        except (psycopg.Error, OSError, TimeoutError) as error:
            # The connection's state is unknown (the commit's answer may be lost): a new
            # one for the next batch, after the shard's recovery.
            await self.close()
            raise WriteFailed(f"batch not committed: {error!r}") from error

    async def save_snapshot(self, matching_shard: int, sequence: int, data: bytes, chunk: int) -> None:
        """Stores a snapshot in `chunk`-byte chunks, as the persistence service's SaveSnapshot does."""
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT_S):  # as the persistence service's call
                await asyncio.to_thread(self._save_snapshot, matching_shard, sequence, data, chunk)
        except (sa.exc.SQLAlchemyError, TimeoutError) as error:
            raise WriteFailed(f"snapshot not stored: {error!r}") from error

    def _save_snapshot(self, matching_shard: int, sequence: int, data: bytes, chunk: int) -> None:
        if self._snapshots is None:
            self._snapshots = Shard(matching_shard, make_engine(self._sa_url, 1, self._connect_timeout))
        chunks = [data[start : start + chunk] for start in range(0, max(len(data), 1), chunk)]
        snapshots.save(self._snapshots, matching_shard, sequence, chunks, self._journal_prune)

    async def close(self) -> None:
        if self._snapshots is not None:
            await asyncio.to_thread(self._snapshots.engine.dispose)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                await conn.close()
