"""Journal, snapshots, shard state and idempotency keys on SQLite stores (same code but the
PostgreSQL fast paths; test_recovery_pg.py runs these on PostgreSQL)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.common.config import ShardMap
from services.persistence import schema
from services.persistence.store import InvalidArgument, SequenceTaken, ShardedStore, StoreUnavailable

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T0_US = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)  # journal times read back


def run(coro):
    return asyncio.run(coro)


def order(order_id, symbol="AAPL", account=1, **kw):
    row = {"order_id": order_id, "account_id": account, "client_order_id": f"c{order_id}", "symbol": symbol,
           "side": 1, "order_type": 1, "time_in_force": 1, "status": 1, "price": 100, "quantity": 10,
           "filled_quantity": 0, "leaves_quantity": 10, "reason": "", "create_time": T0, "update_time": T0}
    return row | kw


def entries(first, last, tag=b"cmd"):
    return [{"sequence": s, "command": tag + str(s).encode(), "time": T0} for s in range(first, last + 1)]


async def collect(aiter):
    return [x async for x in aiter]


def journal_of(store, shard, after=0, page_size=0):
    pages = run(collect(store.read_journal(shard, after, page_size)))
    return pages, [seq for page in pages for seq, _, _ in page]


def count(store, db, table):
    with store._shards[db].engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()


@pytest.fixture
def store(tmp_path):
    s = ShardedStore([f"sqlite:///{tmp_path}/shard{i}.sqlite" for i in range(3)], ShardMap.parse("A-G,H-O,P-Z"))
    s.create_schema()
    try:
        yield s
    finally:
        s.close()


def test_schema_is_at_head_and_matches_the_models(store):
    for shard in store._shards:
        assert schema.current(shard.engine) == schema.head()
        assert schema.differences(shard.engine) == []


def test_journal_lands_on_the_home_database_with_the_orders(store):
    run(store.write_batch([order(1, "MSFT")], matching_shard=1, journal=entries(1, 3)))
    assert [count(store, db, "journal") for db in range(3)] == [0, 3, 0]
    pages, seqs = journal_of(store, 1)
    assert seqs == [1, 2, 3]
    assert pages[0][0] == (1, b"cmd1", T0_US)
    assert journal_of(store, 0)[1] == [] and journal_of(store, 4)[1] == []  # shard 4 lives on db 1 too


def test_a_batch_whose_orders_fail_leaves_no_journal_entry(store):
    bad = order(1, "MSFT", price=None)  # NOT NULL: the database refuses the insert
    with pytest.raises(InvalidArgument):
        run(store.write_batch([bad], matching_shard=1, journal=entries(1, 1)))
    assert count(store, 1, "journal") == 0 and count(store, 1, "orders") == 0


def test_orders_on_another_database_commit_first_and_their_failure_stops_the_journal(store):
    # Matching shard 0 (home db 0) with an order on db 2 that fails: nothing journaled.
    with pytest.raises(InvalidArgument):
        run(store.write_batch([order(1, "AAPL"), order(2, "ZM", price=None)], matching_shard=0,
                              journal=entries(1, 2)))
    assert count(store, 0, "journal") == 0 and count(store, 0, "orders") == 0
    run(store.write_batch([order(1, "AAPL"), order(2, "ZM")], matching_shard=0, journal=entries(1, 2)))
    assert [count(store, db, "orders") for db in range(3)] == [1, 0, 1]
    assert count(store, 0, "journal") == 2


def test_a_retried_batch_is_idempotent_but_a_reused_sequence_is_refused(store):
    batch = {"new_orders": [order(1)], "matching_shard": 0, "journal": entries(1, 2)}
    run(store.write_batch(**batch))
    again = run(store.write_batch(**batch))
    assert again.orders_inserted == 0
    assert journal_of(store, 0)[1] == [1, 2]
    # Same sequence, another command: another writer owns this shard; nothing of the batch commits.
    with pytest.raises(SequenceTaken):
        run(store.write_batch([order(5)], matching_shard=0, journal=entries(2, 3, tag=b"other")))
    assert journal_of(store, 0)[1] == [1, 2] and run(store.get_order(5)) is None


@pytest.mark.parametrize("shard, seqs, field", [
    (0, [2, 2], "journal[1].sequence"), (0, [3, 1], "journal[1].sequence"), (0, [0], "journal[0].sequence"),
    (-1, [1], "matching_shard"), (40000, [1], "matching_shard"),
])
def test_journal_input_is_checked_before_anything_is_written(store, shard, seqs, field):
    journal = [{"sequence": s, "command": b"x", "time": T0} for s in seqs]
    with pytest.raises(InvalidArgument) as e:
        run(store.write_batch([order(1)], matching_shard=shard, journal=journal))
    assert e.value.field == field
    assert count(store, 0, "orders") == 0


def test_journal_pages_in_order_after_a_sequence(store):
    run(store.write_batch(matching_shard=2, journal=entries(1, 25)))
    pages, seqs = journal_of(store, 2, after=0, page_size=10)
    assert [len(p) for p in pages] == [10, 10, 5] and seqs == list(range(1, 26))
    pages, seqs = journal_of(store, 2, after=20, page_size=5)
    assert [len(p) for p in pages] == [5] and seqs == list(range(21, 26))
    assert journal_of(store, 2, after=25)[0] == []
    pages, _ = journal_of(store, 2, after=0, page_size=25)
    assert [len(p) for p in pages] == [25]


@pytest.mark.parametrize("args, field", [((-1, 0, 0), "matching_shard"), ((0, -1, 0), "after_sequence"),
                                         ((0, 0, -1), "page_size"), ((0, 0, 10001), "page_size")])
def test_read_journal_checks_its_input(store, args, field):
    with pytest.raises(InvalidArgument) as e:
        run(collect(store.read_journal(*args)))
    assert e.value.field == field


def save(store, shard, sequence, chunks, last=True):
    async def go():
        writer = store.snapshot_writer()
        for i, data in enumerate(chunks):
            await writer.add({"matching_shard": shard, "sequence": sequence, "index": i, "data": data,
                              "last": last and i == len(chunks) - 1})
        return await writer.finish()

    return run(go())


def read(store, shard):
    return run(collect(store.read_snapshot(shard)))


def test_snapshot_round_trip_in_chunks_and_state(store):
    assert read(store, 1) == []
    assert run(store.shard_state(1)) == (0, 0, None)
    assert save(store, 1, 40, [b"a" * 10, b"b" * 20, b"c"]) == 31
    chunks = read(store, 1)
    assert [(c["sequence"], c["index"], c["data"], c["last"]) for c in chunks] == [
        (40, 0, b"a" * 10, False), (40, 1, b"b" * 20, False), (40, 2, b"c", True)]
    run(store.write_batch(matching_shard=1, journal=entries(1, 45)))
    last, snap, when = run(store.shard_state(1))
    assert (last, snap) == (45, 40) and when.tzinfo is not None
    assert count(store, 1, "snapshots") == 3 and read(store, 4) == []  # shard 4: same db, no snapshot


def test_an_incomplete_snapshot_is_invisible_and_refused(store):
    save(store, 0, 10, [b"old"])
    with pytest.raises(InvalidArgument) as e:
        save(store, 0, 20, [b"x", b"y"], last=False)
    assert e.value.field == "chunk.last"
    assert [c["data"] for c in read(store, 0)] == [b"old"]
    assert run(store.shard_state(0))[1] == 10
    # Retrying that snapshot replaces the leftovers.
    save(store, 0, 20, [b"new"])
    assert [c["data"] for c in read(store, 0)] == [b"new"]


def test_chunks_out_of_order_or_mixed_are_refused(store):
    async def send(*chunks):
        writer = store.snapshot_writer()
        for c in chunks:
            await writer.add(c)
        return await writer.finish()

    def chunk(index, sequence=5, shard=0, last=False):
        return {"matching_shard": shard, "sequence": sequence, "index": index, "data": b"d", "last": last}

    for chunks, field in (([chunk(1)], "chunk.index"), ([chunk(0), chunk(2)], "chunk.index"),
                          ([chunk(0), chunk(1, sequence=6)], "chunk.sequence"),
                          ([chunk(0, shard=-1)], "matching_shard"), ([], "chunk")):
        with pytest.raises(InvalidArgument) as e:
            run(send(*chunks))
        assert e.value.field == field
    assert read(store, 0) == []
    # A chunk after the last one is refused; the snapshot was complete (committed) before it came.
    with pytest.raises(InvalidArgument) as e:
        run(send(chunk(0, last=True), chunk(1)))
    assert e.value.field == "chunk.index"
    assert [c["index"] for c in read(store, 0)] == [0]


def test_only_the_newest_two_snapshots_are_kept(store):
    for sequence in (10, 20, 30, 40):
        save(store, 2, sequence, [str(sequence).encode()] * 2)
    with store._shards[2].engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sequence FROM snapshot_heads ORDER BY 1").scalars().all() == [30, 40]
        assert conn.exec_driver_sql("SELECT DISTINCT sequence FROM snapshots ORDER BY 1").scalars().all() == [30, 40]
    assert [c["data"] for c in read(store, 2)] == [b"40", b"40"]


def test_saving_a_complete_snapshot_again_changes_nothing(store):
    save(store, 0, 10, [b"a", b"b"])
    assert save(store, 0, 10, [b"x", b"y"]) == 2
    assert [c["data"] for c in read(store, 0)] == [b"a", b"b"]


def test_an_unreachable_database_raises_store_unavailable_for_the_new_calls(tmp_path):
    s = ShardedStore([f"sqlite:///{tmp_path}/missing-dir/x.sqlite"], ShardMap.parse("A-Z"))
    try:
        for call in (lambda: collect(s.read_journal(0)), lambda: s.shard_state(0), lambda: collect(s.read_snapshot(0))):
            with pytest.raises(StoreUnavailable):
                run(call())
    finally:
        s.close()
