"""Integration: the real service process on a private 3-database PostgreSQL, over gRPC."""

import contextlib
import os
import subprocess
import sys
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bourse.persistence.v1 import persistence_service_pb2 as pb
from bourse.persistence.v1 import persistence_service_pb2_grpc as pb_grpc
from bourse.type.v1 import types_pb2 as t
from infra.local.servers import free_port, postgres_from_env, wait_serving
from services.common.errors import reason_of

pytestmark = pytest.mark.timeout(120)
DATABASES = ["bourse_p0", "bourse_p1", "bourse_p2"]
SYMBOLS = ["AAPL", "MSFT", "ZM"]  # one per default range


def child_env(pg, **extra):
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
        BOURSE_DB_URLS=",".join(pg.url(db) for db in DATABASES),
        BOURSE_SHARD_RANGES="A-G,H-O,P-Z",
        **extra,
    )


@pytest.fixture(scope="module")
def pg():
    server = postgres_from_env()
    try:
        server.start(DATABASES)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running(pg, **env):
    """The service process (env added to child_env), as a stub."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.persistence.main"],
        env=child_env(pg, BOURSE_PERSISTENCE_ADDR=f"127.0.0.1:{port}", BOURSE_DRAIN_MS="0", **env),
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        wait_serving(f"127.0.0.1:{port}", proc, timeout=30)
        yield pb_grpc.PersistenceServiceStub(channel)
    finally:
        channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def service(pg):
    with running(pg) as stub:
        yield stub


def order(order_id, symbol, account=1, status=t.ORDER_STATUS_NEW, filled=0):
    return t.Order(
        order_id=order_id, client_order_id=f"c{order_id}", account_id=account, symbol=symbol,
        side=t.SIDE_BUY, order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC,
        price=100 + order_id, quantity=10, filled_quantity=filled, leaves_quantity=10 - filled, status=status,
        create_time=Timestamp(seconds=1_780_000_000 + order_id, nanos=5_000),
        update_time=Timestamp(seconds=1_780_000_000 + order_id, nanos=5_000),
    )


def rows_per_database(pg):
    import psycopg

    counts = []
    for db in DATABASES:
        with psycopg.connect(pg.url(db, driver="postgresql")) as conn:
            counts.append(conn.execute("SELECT count(*) FROM orders").fetchone()[0])
    return counts


def pg_rows(pg, sql, db=DATABASES[0]):
    import psycopg

    with psycopg.connect(pg.url(db, driver="postgresql")) as conn:
        return conn.execute(sql).fetchall()


def test_migrate_is_idempotent(pg):
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "services.persistence.migrate"], env=child_env(pg),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "schema up to date on 3" in done.stdout


def test_write_batch_then_read_back_over_grpc(service, pg):
    new = [order(i, SYMBOLS[i % 3], account=1 if i <= 30 else 2) for i in range(1, 41)]
    reply = service.WriteBatch(pb.WriteBatchRequest(new_orders=new), timeout=10)
    assert reply.orders_inserted == 40
    assert rows_per_database(pg) == [13, 14, 13]  # i % 3 == 0 -> AAPL shard 0, 1 -> MSFT, 2 -> ZM

    # A retried batch inserts nothing, a trade fills two orders.
    assert service.WriteBatch(pb.WriteBatchRequest(new_orders=new), timeout=10).orders_inserted == 0
    maker = order(3, "AAPL", status=t.ORDER_STATUS_FILLED, filled=10)
    maker.leaves_quantity = 0
    taker = order(6, "AAPL", status=t.ORDER_STATUS_PARTIALLY_FILLED, filled=10)
    trade = t.Trade(trade_id=1000, symbol="AAPL", price=103, quantity=10, maker_order_id=3, taker_order_id=6,
                    maker_account_id=1, taker_account_id=1, aggressor_side=t.SIDE_SELL,
                    time=Timestamp(seconds=1_780_000_100))
    reply = service.WriteBatch(pb.WriteBatchRequest(updated_orders=[maker, taker], trades=[trade]), timeout=10)
    assert (reply.orders_updated, reply.trades_inserted) == (2, 1)

    got = service.GetOrder(pb.GetOrderRequest(order_id=3, account_id=1), timeout=10).order
    assert got.status == t.ORDER_STATUS_FILLED and got.leaves_quantity == 0
    assert got.create_time == Timestamp(seconds=1_780_000_003, nanos=5_000)
    assert [(f.trade_id, f.maker) for f in got.fills] == [(1000, True)]
    assert [f.maker for f in service.GetOrder(pb.GetOrderRequest(order_id=6)).order.fills] == [False]
    bare = service.GetOrder(pb.GetOrderRequest(order_id=3, account_id=1, without_fills=True), timeout=10).order
    assert (bare.status, bare.filled_quantity, list(bare.fills)) == (t.ORDER_STATUS_FILLED, got.filled_quantity, [])
    with pytest.raises(grpc.RpcError) as e:
        service.GetOrder(pb.GetOrderRequest(order_id=3, account_id=2), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    seen, token = [], ""
    while True:
        page = service.ListOrders(pb.ListOrdersRequest(account_id=1, page_size=7, page_token=token), timeout=10)
        seen += [o.order_id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(30, 0, -1))


@pytest.mark.parametrize("arrays", [True, False], ids=["arrays", "core"])
def test_both_write_paths_agree_on_postgres(pg, arrays):
    import asyncio
    from datetime import datetime, timezone

    from services.common.config import ShardMap
    from services.persistence.store import InvalidArgument, ShardedStore

    db = "bourse_paths_" + ("arrays" if arrays else "core")
    pg._create_databases([db])
    store = ShardedStore([pg.url(db)], ShardMap.parse("A-Z"), pg_arrays=arrays)
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)

    def row(order_id, client, status=1, filled=0):
        return {"order_id": order_id, "account_id": 1, "client_order_id": client, "symbol": "AAPL", "side": 1,
                "order_type": 1, "time_in_force": 1, "status": status, "price": 5, "quantity": 10,
                "filled_quantity": filled, "leaves_quantity": 10 - filled, "reason": "", "create_time": now,
                "update_time": now}

    trade = {"trade_id": 1, "symbol": "AAPL", "price": 5, "quantity": 4, "maker_order_id": 1,
             "taker_order_id": 2, "maker_account_id": 1, "taker_account_id": 1, "aggressor_side": 1, "time": now}

    async def go():
        first = await store.write_batch([row(1, "a"), row(2, "b"), row(2, "b"), row(3, "a"), row(4, "")], [],
                                        [trade, trade])
        # Order 3 reuses order 1's client_order_id: stored (the shard decides uniqueness).
        assert (first.orders_inserted, first.trades_inserted) == (4, 1)
        again = await store.write_batch([row(1, "a"), row(5, "")], [row(1, "a", 2, 4), row(1, "a", 3, 10),
                                                                    row(9, "z", 3, 10)], [trade])
        assert (again.orders_inserted, again.orders_updated, again.trades_inserted) == (1, 1, 0)
        got = await store.get_order(1)
        assert (got["status"], got["filled_quantity"], got["create_time"]) == (3, 10, now)
        assert [f["maker"] for f in got["fills"]] == [True]
        assert (await store.get_order(5))["client_order_id"] == ""
        with pytest.raises(InvalidArgument):  # too long for VARCHAR(64): refused, not a crash
            await store.write_batch([row(7, "x") | {"reason": "R" * 100}])

    try:
        store.create_schema()
        asyncio.run(go())
    finally:
        store.close()


def test_recovery_rpcs_over_grpc_on_postgres(service):
    journal = [pb.JournalEntry(sequence=s, command=b"cmd", time=Timestamp(seconds=1_780_000_000)) for s in range(1, 6)]
    batch = pb.WriteBatchRequest(new_orders=[order(501, "MSFT")], matching_shard=1, journal=journal)
    assert service.WriteBatch(batch, timeout=10).orders_inserted == 1
    assert service.WriteBatch(batch, timeout=10).orders_inserted == 0
    pages = list(service.ReadJournal(pb.ReadJournalRequest(matching_shard=1, after_sequence=1, page_size=3), timeout=10))
    assert [[e.sequence for e in p.entries] for p in pages] == [[2, 3, 4], [5]]
    chunks = [pb.SnapshotChunk(matching_shard=1, sequence=5, index=i, data=b"s" * 2_000_000, last=i == 1)
              for i in range(2)]
    assert service.SaveSnapshot(iter(pb.SaveSnapshotRequest(chunk=c) for c in chunks), timeout=10).bytes_written \
        == 4_000_000
    assert [r.chunk for r in service.ReadSnapshot(pb.ReadSnapshotRequest(matching_shard=1), timeout=10)] == chunks
    state = service.GetShardState(pb.GetShardStateRequest(matching_shard=1), timeout=10)
    assert (state.last_sequence, state.snapshot_sequence) == (5, 5)
    with pytest.raises(grpc.RpcError) as e:
        service.WriteBatch(pb.WriteBatchRequest(matching_shard=1, journal=[pb.JournalEntry(sequence=5, command=b"no")]),
                           timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(e.value) == "JOURNAL_SEQUENCE_TAKEN"


def journal_with_two_snapshots(service, matching_shard, last=30, snapshots=(10, 20)):
    journal = [pb.JournalEntry(sequence=s, command=b"cmd%d" % s, time=Timestamp(seconds=1_780_000_000))
               for s in range(1, last + 1)]
    service.WriteBatch(pb.WriteBatchRequest(matching_shard=matching_shard, journal=journal), timeout=10)
    for sequence in snapshots:
        chunks = [pb.SnapshotChunk(matching_shard=matching_shard, sequence=sequence, index=i, data=b"s", last=i == 1)
                  for i in range(2)]
        service.SaveSnapshot(iter(pb.SaveSnapshotRequest(chunk=c) for c in chunks), timeout=10)


def read_journal(service, matching_shard, after):
    request = pb.ReadJournalRequest(matching_shard=matching_shard, after_sequence=after, page_size=7)
    return [e.sequence for page in service.ReadJournal(request, timeout=10) for e in page.entries]


def test_by_default_the_journal_is_pruned_and_reading_a_pruned_part_is_failed_precondition(service):
    journal_with_two_snapshots(service, matching_shard=2)
    for after in (0, 9):
        with pytest.raises(grpc.RpcError) as e:
            read_journal(service, 2, after)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value.details()
        assert reason_of(e.value) == "JOURNAL_PRUNED"
        assert "first retained sequence is 11" in e.value.details() and "newer snapshot" in e.value.details()
    # What recovery reads (after either kept snapshot) is all there.
    assert read_journal(service, 2, 10) == list(range(11, 31))
    assert read_journal(service, 2, 20) == list(range(21, 31))
    state = service.GetShardState(pb.GetShardStateRequest(matching_shard=2), timeout=10)
    assert (state.last_sequence, state.snapshot_sequence) == (30, 20)


def test_with_journal_pruning_off_the_whole_journal_stays(pg):
    with running(pg, BOURSE_JOURNAL_PRUNE="off") as service:
        journal_with_two_snapshots(service, matching_shard=5, snapshots=(10, 20, 25))
        assert read_journal(service, 5, 0) == list(range(1, 31))


# Last: it stops the database.
def test_api_keys_are_stored_hashed_and_every_change_takes_the_next_revision(service, pg):
    import concurrent.futures
    import hashlib

    hashes = [hashlib.sha256(f"pg-key-{i}".encode()).digest() for i in range(24)]

    def create(i):
        return service.CreateApiKey(pb.CreateApiKeyRequest(key_hash=hashes[i], account_id=100 + i,
                                                           label=f"key {i}"), timeout=10).key

    # Concurrent changes still commit in revision order: a poller that read up to R
    # never meets a change below R later.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        created = list(pool.map(create, range(24)))
    assert sorted(k.revision for k in created) == list(range(1, 25))
    assert all(k.key_id == hashes[i][:8].hex() and k.account_id == 100 + i for i, k in enumerate(created))
    with pytest.raises(grpc.RpcError) as caught:
        create(3)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.ALREADY_EXISTS, "API_KEY_EXISTS")

    revoked = service.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=created[5].key_id), timeout=10).key
    assert revoked.revision == 25 and revoked.HasField("revoke_time")
    again = service.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=created[5].key_id), timeout=10).key
    assert again.revision == 25 and again.revoke_time == revoked.revoke_time  # nothing changed
    page = service.ListApiKeys(pb.ListApiKeysRequest(after_revision=20, page_size=3), timeout=10).keys
    assert [k.revision for k in page] == [21, 22, 23]
    newest = service.ListApiKeys(pb.ListApiKeysRequest(after_revision=24), timeout=10).keys
    assert [(k.key_id, k.HasField("revoke_time")) for k in newest] == [(created[5].key_id, True)]

    stored = pg_rows(pg, "SELECT key_hash, account_id FROM api_keys ORDER BY revision")
    assert sorted(bytes(h) for h, _ in stored) == sorted(hashes)

    for request, code, reason in (
            (pb.CreateApiKeyRequest(key_hash=b"short", account_id=1), grpc.StatusCode.INVALID_ARGUMENT,
             "INVALID_KEY_HASH"),
            (pb.CreateApiKeyRequest(key_hash=bytes(32), account_id=0), grpc.StatusCode.INVALID_ARGUMENT,
             "INVALID_ACCOUNT_ID"),
            (pb.CreateApiKeyRequest(key_hash=bytes(32), account_id=1, label="x" * 201),
             grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LABEL")):
        with pytest.raises(grpc.RpcError) as caught:
            service.CreateApiKey(request, timeout=10)
        assert (caught.value.code(), reason_of(caught.value)) == (code, reason)
    with pytest.raises(grpc.RpcError) as caught:
        service.RevokeApiKey(pb.RevokeApiKeyRequest(key_id="0123456789abcdef"), timeout=10)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")


def test_a_private_cluster_is_reached_through_its_unix_socket_when_asked(pg):
    """url(socket=True), what bench_transport sets beside loopback TCP, names the
    cluster's socket directory: the connection has no server address."""
    if pg.external_url:
        pytest.skip("an external cluster is reached as its URL says")
    import psycopg
    import sqlalchemy as sa

    with sa.create_engine(pg.url(DATABASES[0], socket=True)).connect() as conn:  # the services' driver
        assert conn.execute(sa.text("SELECT inet_server_addr() IS NULL")).scalar() is True
    with psycopg.connect(pg.url(DATABASES[1], driver="postgresql", socket=True)) as conn:
        assert conn.execute("SELECT current_database(), inet_server_addr()").fetchone() == (DATABASES[1], None)
    with psycopg.connect(pg.url(DATABASES[1], driver="postgresql")) as conn:  # the default: TCP
        assert conn.execute("SELECT inet_server_addr() IS NOT NULL").fetchone() == (True,)


def test_a_stopped_database_answers_unavailable_quickly(service, pg):
    if pg.external_url:
        pytest.skip("cannot stop an external PostgreSQL")
    service.GetOrder(pb.GetOrderRequest(order_id=1), timeout=10)  # pool is warm
    pg.stop()
    for call in (
        lambda: service.WriteBatch(pb.WriteBatchRequest(new_orders=[order(99, "AAPL")]), timeout=15),
        lambda: service.GetOrder(pb.GetOrderRequest(order_id=1), timeout=15),
        lambda: service.ListOrders(pb.ListOrdersRequest(account_id=1), timeout=15),
        lambda: service.GetShardState(pb.GetShardStateRequest(matching_shard=0), timeout=15),
        lambda: list(service.ReadJournal(pb.ReadJournalRequest(matching_shard=0), timeout=15)),
    ):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
        assert reason_of(e.value) == "DATABASE_UNAVAILABLE"
        assert time.monotonic() - started < 5

