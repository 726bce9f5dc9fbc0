"""Journal, snapshots, shard state and idempotency keys on a private 3-database
PostgreSQL (the array fast paths), plus the Alembic schema."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from infra.local.servers import postgres_from_env
from services.common.config import ShardMap
from services.persistence import schema
from services.persistence.store import InvalidArgument, SequenceTaken, ShardedStore

pytestmark = pytest.mark.timeout(120)
DATABASES = ["rec_p0", "rec_p1", "rec_p2"]
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T0_US = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)  # journal times read back


def run(coro):
    return asyncio.run(coro)


async def collect(aiter):
    return [x async for x in aiter]


def order(order_id, symbol="AAPL", **kw):
    row = {"order_id": order_id, "account_id": 1, "client_order_id": f"c{order_id}", "symbol": symbol,
           "side": 1, "order_type": 1, "time_in_force": 1, "status": 1, "price": 100, "quantity": 10,
           "filled_quantity": 0, "leaves_quantity": 10, "reason": "", "create_time": T0, "update_time": T0}
    return row | kw


def entries(first, last, tag=b"cmd"):
    return [{"sequence": s, "command": tag + str(s).encode(), "time": T0} for s in range(first, last + 1)]


@pytest.fixture(scope="module")
def pg():
    server = postgres_from_env()
    try:
        server.start(DATABASES)
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(pg):
    s = ShardedStore([pg.url(db) for db in DATABASES], ShardMap.parse("A-G,H-O,P-Z"))
    s.create_schema()
    try:
        yield s
    finally:
        for shard in s._shards:
            with shard.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE orders, trades, journal, snapshots, snapshot_heads, client_order_ids")
        s.close()


def count(pg, db, table):
    with psycopg.connect(pg.url(DATABASES[db], driver="postgresql")) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_schema_matches_the_models_and_adopts_a_pre_alembic_database(pg, store):
    for shard in store._shards:
        assert schema.current(shard.engine) == schema.head()
        assert schema.differences(shard.engine) == []
    # A database made by the old create_all (orders and trades, no version) is upgraded in place.
    from sqlmodel import SQLModel

    from services.persistence.models import ORDERS, TRADES
    pg._create_databases(["rec_old"])
    engine = sa.create_engine(pg.url("rec_old"))
    try:
        SQLModel.metadata.create_all(engine, tables=[ORDERS, TRADES])
        assert schema.current(engine) is None
        schema.upgrade(engine)
        schema.upgrade(engine)
        assert schema.current(engine) == schema.head() and schema.differences(engine) == []
    finally:
        engine.dispose()


def test_journal_commits_with_the_orders_or_not_at_all(pg, store):
    with pytest.raises(InvalidArgument):  # VARCHAR(64) overflow: the orders insert fails
        run(store.write_batch([order(1, reason="R" * 100)], matching_shard=0, journal=entries(1, 2)))
    assert count(pg, 0, "journal") == 0 and count(pg, 0, "orders") == 0
    # Spanning databases: db 2's failure stops the home database (with the journal).
    with pytest.raises(InvalidArgument):
        run(store.write_batch([order(1), order(2, "ZM", reason="R" * 100)], matching_shard=0,
                              journal=entries(1, 2)))
    assert count(pg, 0, "journal") == 0 and count(pg, 0, "orders") == 0
    batch = {"new_orders": [order(1), order(2, "ZM")], "matching_shard": 0, "journal": entries(1, 2)}
    assert run(store.write_batch(**batch)).orders_inserted == 2
    assert run(store.write_batch(**batch)).orders_inserted == 0  # retried: idempotent
    assert count(pg, 0, "journal") == 2
    with pytest.raises(SequenceTaken):
        run(store.write_batch([order(3)], matching_shard=0, journal=entries(2, 3, tag=b"zombie")))
    assert count(pg, 0, "journal") == 2 and count(pg, 0, "orders") == 1
    assert run(store.shard_state(0))[0] == 2 and run(store.shard_state(3))[0] == 0


def test_read_journal_streams_many_entries_in_pages(store):
    n = 50_000
    for first in range(1, n + 1, 5000):
        run(store.write_batch(matching_shard=1, journal=entries(first, first + 4999)))
    started = time.perf_counter()
    pages = run(collect(store.read_journal(1, 0, 10_000)))
    elapsed = time.perf_counter() - started
    assert [seq for p in pages for seq, _, _ in p] == list(range(1, n + 1))
    assert pages[0][0] == (1, b"cmd1", T0_US)
    assert elapsed < 10, f"{n} entries took {elapsed:.1f} s"
    tail = run(collect(store.read_journal(1, n - 3, 2)))
    assert [[s for s, _, _ in p] for p in tail] == [[n - 2, n - 1], [n]]


def test_snapshots_of_megabytes_round_trip_and_two_are_kept(pg, store):
    chunk = bytes(range(256)) * 4096  # 1 MiB

    async def save(sequence, chunks):
        writer = store.snapshot_writer()
        for i in range(chunks):
            await writer.add({"matching_shard": 2, "sequence": sequence, "index": i, "data": chunk,
                              "last": i == chunks - 1})
        return await writer.finish()

    assert run(save(100, 5)) == 5 * len(chunk)
    got = run(collect(store.read_snapshot(2)))
    assert [(c["index"], c["last"]) for c in got] == [(i, i == 4) for i in range(5)]
    assert all(c["data"] == chunk for c in got)
    for sequence in (200, 300):
        run(save(sequence, 2))
    assert count(pg, 2, "snapshot_heads") == 2 and count(pg, 2, "snapshots") == 4
    assert run(store.shard_state(2))[1] == 300


def test_claims_across_databases_and_concurrent(store):
    claims = [(a, f"k{a % 4}", 1000 + i) for i, a in enumerate(range(1, 13))]
    assert run(store.claim_client_order_ids(claims)) == [(o, 0) for _, _, o in claims]
    again = [(a, k, o + 5000, 1) for a, k, o in claims] + [(1, "new", 7, 70), (1, "new", 8, 80)]
    assert run(store.claim_client_order_ids(again)) == [(o, 0) for _, _, o in claims] + [(7, 70), (7, 70)]

    async def race():
        return await asyncio.gather(*(store.claim_client_order_ids([(99, "race", o)]) for o in range(1, 9)))

    owners = {tuple(r) for r in run(race())}
    assert len(owners) == 1  # every racer sees the one winner
