"""Journal, snapshots, shard state and idempotency keys on a private 3-database
PostgreSQL (the array fast paths), plus the Alembic schema; journal pruning on
PostgreSQL and on SQLite alike."""

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from infra.local.servers import postgres_from_env
from services.common.config import ShardMap
from services.persistence import schema
from services.persistence.errors import JournalPruned
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
                conn.exec_driver_sql("TRUNCATE orders, trades, journal, snapshots, snapshot_heads")
        s.close()


def count(pg, db, table):
    with psycopg.connect(pg.url(DATABASES[db], driver="postgresql")) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_schema_matches_the_models_and_adopts_a_pre_alembic_database(pg, store):
    for shard in store._shards:
        assert schema.current(shard.engine) == schema.head()
        assert schema.differences(shard.engine) == []
        with shard.engine.connect() as conn:  # revision 0009: snapshot chunks stored as they are
            assert conn.exec_driver_sql("SELECT attstorage FROM pg_attribute WHERE attrelid = 'snapshots'::regclass "
                                        "AND attname = 'data'").scalar() == "e"
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


# -- journal pruning (PostgreSQL and SQLite) -------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def stores(request, tmp_path):
    """Makes stores over one set of databases: stores(journal_prune=...)."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path}/prune{i}.sqlite" for i in range(3)]
    else:
        urls = [request.getfixturevalue("pg").url(db) for db in DATABASES]
    made = []

    def make(journal_prune: bool) -> ShardedStore:
        s = ShardedStore(urls, ShardMap.parse("A-G,H-O,P-Z"), journal_prune=journal_prune)
        s.create_schema()
        made.append(s)
        return s

    try:
        yield make
    finally:
        if made:
            for shard in made[0]._shards:
                with shard.engine.begin() as conn:
                    for table in ("orders", "trades", "journal", "snapshots", "snapshot_heads"):
                        conn.exec_driver_sql(f"DELETE FROM {table}")
        for s in made:
            s.close()


def save(store, shard, sequence, data=b"snapshot", chunks=2, last=True):
    async def go():
        writer = store.snapshot_writer()
        for i in range(chunks):
            await writer.add({"matching_shard": shard, "sequence": sequence, "index": i, "data": data,
                              "last": last and i == chunks - 1})
        return await writer.finish()

    return run(go())


def sequences(store, shard, after=0, page_size=0):
    return [seq for page in run(collect(store.read_journal(shard, after, page_size))) for seq, _, _ in page]


def stored(store, shard, table, column="sequence"):
    """Distinct values of `column` of the matching shard's rows in `table` (home database)."""
    with store._shards[store.home_of(shard)].engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT DISTINCT {column} FROM {table} WHERE matching_shard = {shard} "
                                    f"ORDER BY 1").scalars().all()


def test_pruning_drops_exactly_the_journal_up_to_the_oldest_kept_snapshot(stores):
    store = stores(journal_prune=True)
    run(store.write_batch(matching_shard=1, journal=entries(1, 50)))
    run(store.write_batch(matching_shard=4, journal=entries(1, 50)))  # same database, another shard
    save(store, 1, 10)
    assert sequences(store, 1) == list(range(1, 51)), "one snapshot: no fallback yet, nothing pruned"
    save(store, 1, 20)
    assert stored(store, 1, "snapshot_heads") == [10, 20]
    assert stored(store, 1, "journal") == list(range(11, 51))
    save(store, 1, 35)
    assert stored(store, 1, "snapshot_heads") == [20, 35]
    assert stored(store, 1, "journal") == list(range(21, 51))
    assert stored(store, 4, "journal") == list(range(1, 51))  # other shards untouched
    # The fallback (20) and the newest (35) still have the journal after them.
    assert sequences(store, 1, after=20) == list(range(21, 51))
    assert sequences(store, 1, after=35, page_size=4) == list(range(36, 51))
    assert run(store.shard_state(1))[:2] == (50, 35)


def test_reading_from_a_pruned_point_names_the_first_retained_sequence(stores):
    store = stores(journal_prune=True)
    run(store.write_batch(matching_shard=2, journal=entries(1, 30)))
    save(store, 2, 10)
    save(store, 2, 20)
    for after in (0, 5, 9):
        with pytest.raises(JournalPruned) as e:
            sequences(store, 2, after=after, page_size=3)
        assert (e.value.matching_shard, e.value.after, e.value.first_retained) == (2, after, 11)
        assert "11" in str(e.value) and "newer snapshot" in str(e.value)
    assert sequences(store, 2, after=10) == list(range(11, 31))
    assert sequences(store, 2, after=30) == [] and sequences(store, 2, after=99) == []


def test_with_pruning_off_the_whole_journal_stays(stores):
    store = stores(journal_prune=False)
    run(store.write_batch(matching_shard=0, journal=entries(1, 50)))
    for sequence in (10, 20, 35):
        save(store, 0, sequence)
    assert stored(store, 0, "snapshot_heads") == [20, 35]  # snapshots are still pruned
    assert sequences(store, 0) == list(range(1, 51))
    # Turned on later, the next snapshot prunes everything up to the (new) oldest kept one.
    save(stores(journal_prune=True), 0, 45)
    assert sequences(store, 0, after=35) == list(range(36, 51))
    assert stored(store, 0, "journal") == list(range(36, 51))


def test_a_repeated_or_late_upload_prunes_nothing_it_should_not(stores):
    store = stores(journal_prune=True)
    run(store.write_batch(matching_shard=1, journal=entries(1, 50)))
    save(store, 1, 10)
    save(store, 1, 20)
    assert stored(store, 1, "journal") == list(range(11, 51))
    for sequence in (20, 10):  # already stored: left as they are, nothing more pruned
        assert save(store, 1, sequence, data=b"other") == 2 * len(b"snapshot")
        assert stored(store, 1, "snapshot_heads") == [10, 20] and stored(store, 1, "journal") == list(range(11, 51))
    save(store, 1, 5)  # older than both kept ones: dropped at once, and the fallback stays 10
    assert stored(store, 1, "snapshot_heads") == [10, 20] and stored(store, 1, "snapshots") == [10, 20]
    assert stored(store, 1, "journal") == list(range(11, 51))
    with pytest.raises(InvalidArgument):  # an upload that never completes makes nothing visible
        save(store, 1, 40, last=False)
    assert stored(store, 1, "snapshot_heads") == [10, 20] and stored(store, 1, "journal") == list(range(11, 51))
    # Now complete: 20 becomes the fallback and the journal after it stays.
    save(store, 1, 40)
    assert stored(store, 1, "snapshot_heads") == [20, 40] and stored(store, 1, "journal") == list(range(21, 51))


async def _save_chunked(store, shard, sequence, data, size=10):
    writer = store.snapshot_writer()
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    for i, piece in enumerate(pieces):
        await writer.add({"matching_shard": shard, "sequence": sequence, "index": i, "data": piece,
                          "last": i == len(pieces) - 1})
    return await writer.finish()


class Ledger:
    """A stand-in for a matching shard: its state is a hash chain over the commands, so
    any lost, repeated or reordered entry changes it."""

    def __init__(self, snapshot: bytes = b"0:"):
        sequence, digest = snapshot.split(b":")
        self.sequence, self.digest = int(sequence), digest

    def apply(self, sequence: int, command: bytes) -> None:
        assert sequence == self.sequence + 1, f"journal gap: {sequence} after {self.sequence}"
        self.sequence = sequence
        self.digest = hashlib.sha256(self.digest + command).hexdigest().encode()

    def snapshot(self) -> bytes:
        return b"%d:%s" % (self.sequence, self.digest)


def recover(store, shard, snapshot: bytes | None) -> Ledger:
    ledger = Ledger(snapshot) if snapshot else Ledger()
    for page in run(collect(store.read_journal(shard, ledger.sequence, 7))):
        for sequence, command, _ in page:
            ledger.apply(sequence, command)
    return ledger


def test_recovery_after_pruning_restores_the_same_state_from_either_kept_snapshot(stores):
    store = stores(journal_prune=True)
    live = Ledger()
    for first in range(1, 141, 7):  # batches of 7, a snapshot every 25 commands or so
        batch = [{"sequence": s, "command": b"cmd-%d" % (s * 7919 % 1000), "time": T0} for s in range(first, first + 7)]
        run(store.write_batch(matching_shard=2, journal=batch))
        for entry in batch:
            live.apply(entry["sequence"], entry["command"])
        if live.sequence // 25 != (live.sequence - 7) // 25:
            run(_save_chunked(store, 2, live.sequence, live.snapshot()))
    heads = stored(store, 2, "snapshot_heads")
    assert len(heads) == 2 and heads[0] >= 100
    assert stored(store, 2, "journal")[0] == heads[0] + 1
    newest = b"".join(c["data"] for c in run(collect(store.read_snapshot(2))))
    recovered = recover(store, 2, newest)
    assert live.sequence == 140 and (recovered.sequence, recovered.digest) == (live.sequence, live.digest)
    with store._shards[store.home_of(2)].engine.connect() as conn:
        fallback = b"".join(bytes(d) for d in conn.exec_driver_sql(
            f"SELECT data FROM snapshots WHERE matching_shard = 2 AND sequence = {heads[0]} ORDER BY chunk_index"
        ).scalars())
    from_fallback = recover(store, 2, fallback)
    assert (from_fallback.sequence, from_fallback.digest) == (live.sequence, live.digest)
    with pytest.raises(JournalPruned):
        recover(store, 2, None)  # the journal no longer goes back to the start
