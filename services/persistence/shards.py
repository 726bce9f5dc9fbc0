"""One database of the store: its engine, the statements compiled for its dialect, and
the writes still running on it (so that readers can wait for them)."""

from __future__ import annotations

import itertools
import math
import threading

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from services.persistence.models import JOURNAL, ORDERS, TRADES, UPDATABLE_COLUMNS


def make_engine(url: str, pool_size: int, connect_timeout: float) -> Engine:
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


class Shard:
    """One database: its engine and the statements compiled for its dialect."""

    def __init__(self, index: int, engine: Engine, arrays: bool = True):
        self.index = index
        self.engine = engine
        # PostgreSQL: whole columns as array parameters (see writes.py); else Core executemany.
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
