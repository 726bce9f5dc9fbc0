"""The write transactions, run on a worker thread per call: a batch's orders, trades and
journal entries on one database (write_shard).

On PostgreSQL each table gets one statement whose columns travel as arrays (INSERT ...
SELECT FROM unnest); elsewhere SQLAlchemy Core multi-row statements on the same table
metadata. Inserts skip rows already stored (ON CONFLICT DO NOTHING) and updates set the
same final state, so a retried batch is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.persistence.errors import SequenceTaken
from services.persistence.models import (
    JOURNAL,
    JOURNAL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_DEFAULTS,
    ORDERS,
    TRADES,
    TRADE_COLUMNS,
    UPDATABLE_COLUMNS,
    UPDATE_COLUMNS,
    Row,
    pg_types,
)
from services.persistence.shards import Shard


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


def _order_params(row: Row) -> Row:
    # An empty client id is stored as NULL so that it never collides in the unique key.
    if not row.get("client_order_id") and "client_order_id" in row:
        row = {**row, "client_order_id": None}
    return row


def write_shard(shard: Shard, ticket: int, new_orders: list[Row], updated: list[Row],
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
                        _PG_INSERT_JOURNAL, (matching_shard, *_columns(journal, JOURNAL_COLUMNS))).rowcount
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


def _write_core(shard: Shard, conn: Connection, new_orders, updated, trades) -> WriteResult:
    inserted = updated_count = trades_inserted = 0
    if new_orders:
        inserted = len(conn.execute(shard.insert_orders, new_orders).all())
    if updated:
        params = [{"b_order_id": r["order_id"], **ORDER_DEFAULTS, **{c: r[c] for c in UPDATABLE_COLUMNS if c in r}}
                  for r in updated]
        updated_count = conn.execute(shard.update_orders, params).rowcount
    if trades:
        trades_inserted = len(conn.execute(shard.insert_trades, list(trades)).all())
    return WriteResult(inserted, updated_count, trades_inserted)


# PostgreSQL fast path: one short statement per table whatever the batch size, each
# column sent as one binary array and unnested server-side. Measured against Core's
# multi-row VALUES (bench_write.py --compare): psycopg re-parses a long VALUES text on
# every batch, while this text is constant (prepared once per connection).
_ORDER_TYPES = pg_types(ORDERS)
_TRADE_TYPES = pg_types(TRADES)


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
_PG_UPDATE_ORDERS = (
    "UPDATE orders AS o SET {} FROM {} WHERE o.order_id = v.order_id".format(
        ", ".join(f"{c} = v.{c}" for c in UPDATABLE_COLUMNS), _unnest(_ORDER_TYPES, UPDATE_COLUMNS))
)


_PG_INSERT_JOURNAL = (
    "INSERT INTO journal (matching_shard, sequence, command, time) SELECT %s, * FROM "
    "unnest(%s::bigint[], %s::bytea[], %s::timestamptz[]) ON CONFLICT DO NOTHING"
)


def _columns(rows: list[Row], names) -> tuple[list, ...]:
    return tuple([row[name] for row in rows] if name not in ORDER_DEFAULTS
                 else [row.get(name, ORDER_DEFAULTS[name]) for row in rows] for name in names)


def _write_arrays(conn: Connection, new_orders, updated, trades) -> WriteResult:
    inserted = updated_count = trades_inserted = 0
    if new_orders:
        inserted = conn.exec_driver_sql(_PG_INSERT_ORDERS, _columns(new_orders, ORDER_COLUMNS)).rowcount
    if updated:
        updated_count = conn.exec_driver_sql(_PG_UPDATE_ORDERS, _columns(updated, UPDATE_COLUMNS)).rowcount
    if trades:
        trades_inserted = conn.exec_driver_sql(_PG_INSERT_TRADES, _columns(trades, TRADE_COLUMNS)).rowcount
    return WriteResult(inserted, updated_count, trades_inserted)
