"""BatchStream against a real grpc.aio server (the persistence service's write stream on
SQLite): answers by batch_id, refused batches, a dead server, close."""

import asyncio
import contextlib

import grpc
import pytest

from bourse.persistence.v1 import persistence_service_pb2 as pb
from bourse.persistence.v1 import persistence_service_pb2_grpc as pb_grpc
from bourse.type.v1 import types_pb2 as t
from services.common import logs
from services.common.batch_stream import BatchStream
from services.common.config import ShardMap
from services.common.server import CHANNEL_OPTIONS, SERVER_OPTIONS
from services.persistence.service import PersistenceServicer
from services.persistence.store import ShardedStore

pytestmark = pytest.mark.timeout(60)
LOG = logs.configure("batch-stream-test")


class Failed(Exception):
    pass


@contextlib.asynccontextmanager
async def write_stream(tmp_path, timeout_s=5.0, server_options=None, channel_options=None):
    store = ShardedStore([f"sqlite:///{tmp_path}/s.sqlite"], ShardMap.parse("A-Z"))
    store.create_schema()
    server = grpc.aio.server(options=server_options)
    pb_grpc.add_PersistenceServiceServicer_to_server(PersistenceServicer(store, LOG), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options)
    stream = BatchStream(
        pb_grpc.PersistenceServiceStub(channel).WriteBatchStream,
        lambda batch_id, orders: pb.WriteBatchStreamRequest(batch_id=batch_id,
                                                            batch=pb.WriteBatchRequest(new_orders=orders)),
        timeout_s, Failed, "persistence")
    try:
        yield stream, server
    finally:
        await stream.close()
        await channel.close()
        await server.stop(None)
        store.close()


def orders(first_id, count=1, symbol="AAPL"):
    """`count` new orders from id `first_id` on: a batch whose answer counts them."""
    return [t.Order(order_id=first_id + i, account_id=1, symbol=symbol, side=t.SIDE_BUY,
                    order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=100, quantity=1,
                    leaves_quantity=1, status=t.ORDER_STATUS_NEW) for i in range(count)]


def test_concurrent_batches_get_their_own_answers(tmp_path):
    async def go():
        async with write_stream(tmp_path) as (stream, _):
            # Batch i carries i + 1 orders: each answer counts its own batch's.
            answers = await asyncio.gather(*(stream(orders(1000 * (i + 1), i + 1)) for i in range(30)))
            assert [a.result.orders_inserted for a in answers] == [i + 1 for i in range(30)]

    asyncio.run(go())


def test_a_refused_batch_raises_and_the_next_one_uses_the_same_stream(tmp_path):
    async def go():
        async with write_stream(tmp_path) as (stream, _):
            with pytest.raises(Failed, match="INVALID_SYMBOL"):
                await stream(orders(5, symbol="??"))  # no shard owns it: refused by the service
            opened = stream._stream
            assert (await stream(orders(6))).result.orders_inserted == 1
            assert stream._stream is opened

    asyncio.run(go())


def test_a_server_gone_fails_the_batch_and_closed_refuses_more(tmp_path):
    async def go():
        async with write_stream(tmp_path, timeout_s=2.0) as (stream, server):
            await stream(orders(1))
            await server.stop(None)
            with pytest.raises(Failed):
                await stream(orders(2))
            await stream.close()
            with pytest.raises(Failed, match="closed"):
                await stream(orders(3))

    asyncio.run(go())


def test_an_idle_stream_survives_the_clients_keepalive_pings(tmp_path):
    # Clients ping idle connections (every 20 s in production, every second here); with
    # gRPC's default server settings the third such ping gets the connection closed
    # (GOAWAY too_many_pings), which would break the stream under every batch on it.
    fast_pings = [(k, v) for k, v in CHANNEL_OPTIONS if k != "grpc.keepalive_time_ms"]
    fast_pings.append(("grpc.keepalive_time_ms", 1000))

    async def go():
        async with write_stream(tmp_path, server_options=SERVER_OPTIONS, channel_options=fast_pings) as (stream, _):
            await stream(orders(1))
            opened = stream._stream
            await asyncio.sleep(8)
            assert stream._stream is opened, "the idle stream was closed"
            assert (await stream(orders(2))).result.orders_inserted == 1

    asyncio.run(go())
