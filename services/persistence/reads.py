"""The read queries, run on a worker thread per call: orders with their fills, pages of
orders, journal pages and a matching shard's recovery state.

Reads that a matching shard uses to recover (journal, shard state) first
wait for this store's writes still running on that database (see Shard.wait_for_writes).
A journal read from a point that was pruned raises JournalPruned (see journal_page).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from services.persistence.errors import JournalPruned
from services.persistence.models import JOURNAL, ORDER_COLUMNS, ORDERS, TRADES, Row
from services.persistence.shards import Shard
from services.persistence.snapshots import NEWEST_HEAD


def utc(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _order_row(values) -> Row:
    row = dict(zip(ORDER_COLUMNS, values))
    if row["client_order_id"] is None:
        row["client_order_id"] = ""
    row["create_time"] = utc(row["create_time"])
    row["update_time"] = utc(row["update_time"])
    return row


def select_orders(shard: Shard, query) -> list[Row]:
    with shard.engine.connect() as conn:
        return [_order_row(v) for v in conn.execute(query)]


# Bounded, so that a hung database cannot hang readers forever.
_WRITE_WAIT_S = 30.0


_FILL_QUERY = (
    sa.select(TRADES.c.trade_id, TRADES.c.price, TRADES.c.quantity, TRADES.c.maker_order_id, TRADES.c.time)
    .where(sa.or_(TRADES.c.maker_order_id == sa.bindparam("oid"), TRADES.c.taker_order_id == sa.bindparam("oid")))
    .order_by(TRADES.c.trade_id)
)


def get_order(shard: Shard, where, fills: bool = True) -> Row | None:
    with shard.engine.connect() as conn:
        # Newest first: a client_order_id may name a new order once its key window passed.
        values = conn.execute(sa.select(*ORDERS.columns).where(where).order_by(ORDERS.c.order_id.desc())).first()
        if values is None:
            return None
        row = _order_row(values)
        if not fills:
            return row
        oid = row["order_id"]
        row["fills"] = [
            {"trade_id": t, "price": p, "quantity": q, "maker": maker == oid, "time": utc(when)}
            for t, p, q, maker, when in conn.execute(_FILL_QUERY, {"oid": oid})
        ]
        return row


def wait_for_writes(shard: Shard) -> None:
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


def journal_page(shard: Shard, matching_shard: int, after: int, limit: int) -> list[tuple[int, bytes, int]]:
    with shard.engine.connect() as conn:
        if shard.arrays:
            with conn.connection.driver_connection.cursor(binary=True) as cur:
                # Walk the primary key in order and stop at the limit. Without statistics
                # (a journal that just grew) the planner would rather sort every entry
                # after `after` (bitmap scan + sort): 10x slower per page, and O(n^2) overall.
                cur.execute("SET LOCAL enable_sort = off")
                page = cur.execute(_PG_JOURNAL_PAGE, (matching_shard, after, limit)).fetchall()
        else:
            rows = conn.execute(_JOURNAL_PAGE, {"shard": matching_shard, "after": after, "limit": limit}).all()
            page = [(seq, bytes(command), (utc(when) - _EPOCH) // _MICROSECOND) for seq, command, when in rows]
        if page and page[0][0] != after + 1:
            _check_not_pruned(conn, matching_shard, after, page[0][0])
    return page


_FIRST_RETAINED = sa.select(sa.func.min(JOURNAL.c.sequence)).where(JOURNAL.c.matching_shard == sa.bindparam("shard"))


def _check_not_pruned(conn, matching_shard: int, after: int, found: int) -> None:
    """Raises JournalPruned when the gap after `after` is the pruned start of the journal.

    Pruning drops a prefix, so it left nothing at or below `after` exactly when the
    gap is pruning's. Only a gap (never the common path) pays for this query: the
    smallest sequence is one step down the primary key index.
    """
    first = conn.execute(_FIRST_RETAINED, {"shard": matching_shard}).scalar()
    if first is None or first > after:
        raise JournalPruned(matching_shard, after, found if first is None else first)


def shard_state(shard: Shard, matching_shard: int) -> tuple[int, int, datetime | None]:
    shard.wait_for_writes(_WRITE_WAIT_S)
    with shard.engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(JOURNAL.c.sequence))
                            .where(JOURNAL.c.matching_shard == matching_shard)).scalar()
        head = conn.execute(NEWEST_HEAD, {"shard": matching_shard}).first()
    if head is None:
        return last or 0, 0, None
    return last or 0, head.sequence, utc(head.time)

