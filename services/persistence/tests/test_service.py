"""The servicer over a real gRPC socket, on a SQLite store: conversions and error codes."""

import asyncio
import contextlib

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from bourse.persistence.v1 import persistence_service_pb2 as pb
from bourse.persistence.v1 import persistence_service_pb2_grpc as pb_grpc
from bourse.type.v1 import types_pb2 as t
from services.common import logs
from services.common.config import ShardMap
from services.common.errors import reason_of, status_reason
from services.persistence.config import Settings
from services.persistence.service import PersistenceServicer
from services.persistence.store import ShardedStore

pytestmark = pytest.mark.timeout(60)
LOG = logs.configure("persistence-test")


def order(order_id, symbol="AAPL", account=1, client=None, status=t.ORDER_STATUS_NEW, filled=0):
    return t.Order(
        order_id=order_id, client_order_id=client if client is not None else f"c{order_id}",
        account_id=account, symbol=symbol, side=t.SIDE_BUY, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=t.TIME_IN_FORCE_GTC, price=101, quantity=10, filled_quantity=filled,
        leaves_quantity=10 - filled, status=status,
        create_time=Timestamp(seconds=1_780_000_000, nanos=123_456_000),
        update_time=Timestamp(seconds=1_780_000_001),
    )


@contextlib.asynccontextmanager
async def serving(tmp_path, journal_prune=False, servicers=None):
    store = ShardedStore([f"sqlite:///{tmp_path}/s{i}.sqlite" for i in range(3)], ShardMap.parse("A-G,H-O,P-Z"),
                         journal_prune=journal_prune)
    store.create_schema()
    server = grpc.aio.server()
    servicer = PersistenceServicer(store, LOG)
    if servicers is not None:
        servicers.append(servicer)
    pb_grpc.add_PersistenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.PersistenceServiceStub(channel)
    finally:
        await server.stop(None)
        store.close()


def test_write_then_read_round_trips_every_field(tmp_path):
    async def go():
        async with serving(tmp_path) as stub:
            written = order(1)
            reply = await stub.WriteBatch(pb.WriteBatchRequest(new_orders=[written, order(2, "MSFT", account=2)]))
            assert (reply.orders_inserted, reply.orders_updated, reply.trades_inserted) == (2, 0, 0)
            filled = order(1, status=t.ORDER_STATUS_PARTIALLY_FILLED, filled=4)
            trade = t.Trade(trade_id=9, symbol="AAPL", price=101, quantity=4, maker_order_id=1,
                            taker_order_id=3, maker_account_id=1, taker_account_id=2,
                            aggressor_side=t.SIDE_SELL, time=Timestamp(seconds=1_780_000_002))
            reply = await stub.WriteBatch(pb.WriteBatchRequest(updated_orders=[filled], trades=[trade]))
            assert (reply.orders_updated, reply.trades_inserted) == (1, 1)

            got = (await stub.GetOrder(pb.GetOrderRequest(order_id=1, account_id=1))).order
            expected = t.Order()
            expected.CopyFrom(filled)
            expected.fills.add(trade_id=9, price=101, quantity=4, maker=True, time=trade.time)
            assert got == expected

            listed = await stub.ListOrders(pb.ListOrdersRequest(account_id=1))
            assert [o.order_id for o in listed.orders] == [1] and listed.next_page_token == ""

    asyncio.run(go())


def test_unset_times_are_filled_with_the_service_clock(tmp_path):
    async def go():
        async with serving(tmp_path) as stub:
            bare = order(1)
            bare.ClearField("create_time")
            await stub.WriteBatch(pb.WriteBatchRequest(new_orders=[bare]))
            got = (await stub.GetOrder(pb.GetOrderRequest(order_id=1))).order
            assert got.create_time.seconds > 1_700_000_000

    asyncio.run(go())


async def expect(call, code, reason=None):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    assert e.value.code() == code, e.value.details()
    if reason:
        assert reason_of(e.value) == reason
    return e.value


def test_errors_map_to_codes_and_name_the_field(tmp_path):
    async def go():
        async with serving(tmp_path) as stub:
            await stub.WriteBatch(pb.WriteBatchRequest(new_orders=[order(1, account=1)]))
            NF, IA = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
            await expect(stub.GetOrder(pb.GetOrderRequest(order_id=1, account_id=2)), NF, "ORDER_NOT_FOUND")
            await expect(stub.GetOrder(pb.GetOrderRequest(order_id=5)), NF)
            await expect(stub.GetOrder(pb.GetOrderRequest(order_id=0)), IA, "INVALID_ORDER_ID")
            await expect(stub.ListOrders(pb.ListOrdersRequest(account_id=1, page_size=5000)), IA, "INVALID_PAGE_SIZE")
            e = await expect(stub.ListOrders(pb.ListOrdersRequest(account_id=1, page_token="junk!")), IA,
                             "INVALID_PAGE_TOKEN")
            assert "page_token" in e.details()
            await expect(stub.ListOrders(pb.ListOrdersRequest(account_id=0)), IA, "INVALID_ACCOUNT_ID")
            e = await expect(stub.WriteBatch(pb.WriteBatchRequest(new_orders=[order(2), order(3, "??")])), IA,
                             "INVALID_SYMBOL")
            assert "new_orders[1].symbol" in e.details()
            await expect(stub.WriteBatch(pb.WriteBatchRequest(new_orders=[order(4, client="x" * 65)])), IA)
            await expect(stub.WriteBatch(pb.WriteBatchRequest(trades=[t.Trade(trade_id=0, symbol="AAPL")])), IA,
                         "INVALID_TRADE_ID")
            bad_side = order(5)
            bad_side.side = 40000
            e = await expect(stub.WriteBatch(pb.WriteBatchRequest(updated_orders=[bad_side])), IA, "INVALID_SIDE")
            assert "updated_orders[0].side" in e.details()
            await expect(stub.WriteBatch(pb.WriteBatchRequest(new_orders=[order(6, status=0)])), IA, "INVALID_STATUS")
            # Nothing of a refused batch was written.
            await expect(stub.GetOrder(pb.GetOrderRequest(order_id=2)), NF)

    asyncio.run(go())


def test_recovery_rpcs_over_grpc(tmp_path):
    async def go():
        async with serving(tmp_path) as stub:
            journal = [pb.JournalEntry(sequence=s, command=b"c%d" % s, time=Timestamp(seconds=1_780_000_000 + s))
                       for s in range(1, 8)]
            batch = pb.WriteBatchRequest(new_orders=[order(1, "MSFT")], matching_shard=1, journal=journal)
            assert (await stub.WriteBatch(batch)).orders_inserted == 1
            assert (await stub.WriteBatch(batch)).orders_inserted == 0  # a retry: idempotent

            pages = [r async for r in stub.ReadJournal(pb.ReadJournalRequest(matching_shard=1, after_sequence=2,
                                                                             page_size=2))]
            assert [[e.sequence for e in p.entries] for p in pages] == [[3, 4], [5, 6], [7]]
            assert pages[0].entries[0] == journal[2]
            assert [r async for r in stub.ReadJournal(pb.ReadJournalRequest(matching_shard=0))] == []

            state = await stub.GetShardState(pb.GetShardStateRequest(matching_shard=1))
            assert (state.last_sequence, state.snapshot_sequence, state.HasField("snapshot_time")) == (7, 0, False)
            assert [r async for r in stub.ReadSnapshot(pb.ReadSnapshotRequest(matching_shard=1))] == []

            chunks = [pb.SnapshotChunk(matching_shard=1, sequence=7, index=i, data=bytes([i]) * 1000, last=i == 2)
                      for i in range(3)]
            saved = await stub.SaveSnapshot(pb.SaveSnapshotRequest(chunk=c) for c in chunks)
            assert saved.bytes_written == 3000
            got = [r.chunk async for r in stub.ReadSnapshot(pb.ReadSnapshotRequest(matching_shard=1))]
            assert got == chunks
            state = await stub.GetShardState(pb.GetShardStateRequest(matching_shard=1))
            assert state.snapshot_sequence == 7 and state.snapshot_time.seconds > 1_700_000_000

    asyncio.run(go())


def test_recovery_rpcs_refuse_bad_input_naming_the_field(tmp_path):
    async def go():
        async with serving(tmp_path) as stub:
            IA = grpc.StatusCode.INVALID_ARGUMENT
            bad_order = pb.WriteBatchRequest(new_orders=[order(1)], matching_shard=0,
                                             journal=[pb.JournalEntry(sequence=2), pb.JournalEntry(sequence=2)])
            e = await expect(stub.WriteBatch(bad_order), IA, "INVALID_SEQUENCE")
            assert "journal[1].sequence" in e.details()
            long_id = pb.WriteBatchRequest(new_orders=[order(3, client="x" * 65)])
            e = await expect(stub.WriteBatch(long_id), IA, "INVALID_CLIENT_ORDER_ID")
            assert "new_orders[0].client_order_id" in e.details()

            async def drain(call):
                return [r async for r in call]

            await expect(drain(stub.ReadJournal(pb.ReadJournalRequest(matching_shard=0, page_size=10001))), IA,
                         "INVALID_PAGE_SIZE")
            await expect(drain(stub.ReadSnapshot(pb.ReadSnapshotRequest(matching_shard=-1))), IA,
                         "INVALID_MATCHING_SHARD")
            await expect(stub.GetShardState(pb.GetShardStateRequest(matching_shard=-1)), IA)
            chunks = [pb.SnapshotChunk(matching_shard=0, sequence=3, index=i, data=b"x") for i in (0, 2)]
            e = await expect(stub.SaveSnapshot(pb.SaveSnapshotRequest(chunk=c) for c in chunks), IA, "INVALID_INDEX")
            assert "chunk.index" in e.details()
            await expect(stub.SaveSnapshot(pb.SaveSnapshotRequest(chunk=c) for c in chunks[:1]), IA, "INVALID_LAST")
            # Nothing of it became visible.
            assert (await stub.GetShardState(pb.GetShardStateRequest(matching_shard=0))).snapshot_sequence == 0
            await expect(stub.GetOrder(pb.GetOrderRequest(order_id=1)), grpc.StatusCode.NOT_FOUND)

    asyncio.run(go())


def test_reading_a_pruned_journal_is_failed_precondition_naming_the_first_retained_entry(tmp_path):
    async def go():
        async with serving(tmp_path, journal_prune=True) as stub:
            journal = [pb.JournalEntry(sequence=s, command=b"c", time=Timestamp(seconds=1_780_000_000))
                       for s in range(1, 31)]
            await stub.WriteBatch(pb.WriteBatchRequest(matching_shard=1, journal=journal))
            for sequence in (10, 20):
                chunk = pb.SnapshotChunk(matching_shard=1, sequence=sequence, index=0, data=b"s", last=True)
                await stub.SaveSnapshot(iter([pb.SaveSnapshotRequest(chunk=chunk)]))

            async def drain(after):
                request = pb.ReadJournalRequest(matching_shard=1, after_sequence=after, page_size=4)
                return [e.sequence for r in [r async for r in stub.ReadJournal(request)] for e in r.entries]

            for after in (0, 9):
                e = await expect(drain(after), grpc.StatusCode.FAILED_PRECONDITION, "JOURNAL_PRUNED")
                assert "first retained sequence is 11" in e.details() and "snapshot" in e.details(), e.details()
            assert await drain(10) == list(range(11, 31))

    asyncio.run(go())


@pytest.mark.parametrize("raw, prune", [(None, True), ("", True), ("1", True), ("on", True), ("TRUE", True),
                                        ("yes", True), ("0", False), ("off", False), ("False", False),
                                        ("no", False)])
def test_journal_pruning_setting(monkeypatch, raw, prune):
    monkeypatch.setenv("BOURSE_DB_URLS", "sqlite:///x.sqlite")
    if raw is None:
        monkeypatch.delenv("BOURSE_JOURNAL_PRUNE", raising=False)
    else:
        monkeypatch.setenv("BOURSE_JOURNAL_PRUNE", raw)
    assert Settings.from_env().journal_prune is prune


def test_a_bad_journal_pruning_setting_stops_startup(monkeypatch):
    monkeypatch.setenv("BOURSE_DB_URLS", "sqlite:///x.sqlite")
    monkeypatch.setenv("BOURSE_JOURNAL_PRUNE", "sometimes")
    with pytest.raises(SystemExit, match="BOURSE_JOURNAL_PRUNE"):
        Settings.from_env()


def test_write_batch_stream_commits_in_order_and_answers_a_refused_batch_without_closing(tmp_path):
    async def go():
        async with serving(tmp_path) as stub:
            call = stub.WriteBatchStream()
            await call.write(pb.WriteBatchStreamRequest(batch_id=7, batch=pb.WriteBatchRequest(new_orders=[order(1)])))
            first = await call.read()
            assert first.batch_id == 7 and first.result.orders_inserted == 1 and not first.HasField("error")
            # A refused batch: its answer carries what WriteBatch would have raised...
            bad = pb.WriteBatchRequest(new_orders=[order(2), order(3, "??")])
            await call.write(pb.WriteBatchStreamRequest(batch_id=8, batch=bad))
            refused = await call.read()
            assert refused.batch_id == 8 and not refused.HasField("result")
            # (a google.rpc.Status: code, message, ErrorInfo reason, BadRequest naming the field)
            assert (refused.error.code, status_reason(refused.error)) == (grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                                                          "INVALID_SYMBOL")
            assert "new_orders[1].symbol" in refused.error.message
            bad_request = error_details_pb2.BadRequest()
            assert refused.error.details[1].Unpack(bad_request)
            assert [v.field for v in bad_request.field_violations] == ["new_orders[1].symbol"]
            # ...and the stream goes on.
            filled = order(1, status=t.ORDER_STATUS_FILLED, filled=10)
            await call.write(pb.WriteBatchStreamRequest(batch_id=9, batch=pb.WriteBatchRequest(updated_orders=[filled])))
            assert (await call.read()).result.orders_updated == 1
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
            got = (await stub.GetOrder(pb.GetOrderRequest(order_id=1))).order
            assert got.status == t.ORDER_STATUS_FILLED
            await expect(stub.GetOrder(pb.GetOrderRequest(order_id=2)), grpc.StatusCode.NOT_FOUND)

    asyncio.run(go())


def test_a_draining_server_answers_the_batch_in_hand_then_ends_the_stream(tmp_path):
    async def go():
        servicers = []
        async with serving(tmp_path, servicers=servicers) as stub:
            call = stub.WriteBatchStream()
            await call.write(pb.WriteBatchStreamRequest(batch_id=1, batch=pb.WriteBatchRequest(new_orders=[order(1)])))
            assert (await call.read()).result.orders_inserted == 1
            # Batch 2 is held in the store's write, so it is in hand when draining starts
            # (set before it arrived, the stream would rightly end without it).
            store, in_hand, release = servicers[0]._store, asyncio.Event(), asyncio.Event()
            write_batch = store.write_batch

            async def held(*args, **kwargs):
                in_hand.set()
                await release.wait()
                return await write_batch(*args, **kwargs)

            store.write_batch = held
            await call.write(pb.WriteBatchStreamRequest(batch_id=2, batch=pb.WriteBatchRequest(new_orders=[order(2)])))
            await in_hand.wait()
            servicers[0].draining.set()  # the server stops taking work...
            release.set()
            answer = await call.read()  # ...yet the batch in hand is committed and answered
            assert answer.batch_id == 2 and answer.result.orders_inserted == 1
            assert await call.read() == grpc.aio.EOF  # and the stream ends cleanly
            assert await call.code() == grpc.StatusCode.OK
            assert (await stub.GetOrder(pb.GetOrderRequest(order_id=2))).order.order_id == 2

    asyncio.run(go())
