"""BatchStream against a real grpc.aio server (the persistence service's claim stream on
SQLite): answers by batch_id, refused batches, a dead server, close."""

import asyncio
import contextlib

import grpc
import pytest

from bourse.persistence.v1 import persistence_service_pb2 as pb
from bourse.persistence.v1 import persistence_service_pb2_grpc as pb_grpc
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
async def claim_stream(tmp_path, timeout_s=5.0, server_options=None, channel_options=None):
    store = ShardedStore([f"sqlite:///{tmp_path}/s.sqlite"], ShardMap.parse("A-Z"))
    store.create_schema()
    server = grpc.aio.server(options=server_options)
    pb_grpc.add_PersistenceServiceServicer_to_server(PersistenceServicer(store, LOG), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options)
    stream = BatchStream(
        pb_grpc.PersistenceServiceStub(channel).ClaimClientOrderIdsStream,
        lambda batch_id, claims: pb.ClaimClientOrderIdsStreamRequest(
            batch_id=batch_id, claims=pb.ClaimClientOrderIdsRequest(claims=claims)),
        timeout_s, Failed, "persistence")
    try:
        yield stream, server
    finally:
        await stream.close()
        await channel.close()
        await server.stop(None)
        store.close()


def claim(account, client_id, order_id):
    return pb.ClientOrderIdClaim(account_id=account, client_order_id=client_id, order_id=order_id, request_hash=1)


def test_concurrent_batches_get_their_own_answers(tmp_path):
    async def go():
        async with claim_stream(tmp_path) as (stream, _):
            answers = await asyncio.gather(*(stream([claim(1, f"c{i}", 1000 + i)]) for i in range(30)))
            assert [list(a.result.owner_order_ids) for a in answers] == [[1000 + i] for i in range(30)]

    asyncio.run(go())


def test_a_refused_batch_raises_and_the_next_one_uses_the_same_stream(tmp_path):
    async def go():
        async with claim_stream(tmp_path) as (stream, _):
            with pytest.raises(Failed, match="INVALID"):
                await stream([claim(1, "", 5)])  # no client_order_id: refused by the store
            opened = stream._stream
            assert list((await stream([claim(1, "ok", 6)])).result.owner_order_ids) == [6]
            assert stream._stream is opened

    asyncio.run(go())


def test_a_server_gone_fails_the_batch_and_closed_refuses_more(tmp_path):
    async def go():
        async with claim_stream(tmp_path, timeout_s=2.0) as (stream, server):
            await stream([claim(1, "a", 1)])
            await server.stop(None)
            with pytest.raises(Failed):
                await stream([claim(1, "b", 2)])
            await stream.close()
            with pytest.raises(Failed, match="closed"):
                await stream([claim(1, "c", 3)])

    asyncio.run(go())


def test_an_idle_stream_survives_the_clients_keepalive_pings(tmp_path):
    # Clients ping idle connections (every 20 s in production, every second here); with
    # gRPC's default server settings the third such ping gets the connection closed
    # (GOAWAY too_many_pings), which would break the stream under every batch on it.
    fast_pings = [(k, v) for k, v in CHANNEL_OPTIONS if k != "grpc.keepalive_time_ms"]
    fast_pings.append(("grpc.keepalive_time_ms", 1000))

    async def go():
        async with claim_stream(tmp_path, server_options=SERVER_OPTIONS, channel_options=fast_pings) as (stream, _):
            await stream([claim(1, "a", 1)])
            opened = stream._stream
            await asyncio.sleep(8)
            assert stream._stream is opened, "the idle stream was closed"
            assert list((await stream([claim(1, "b", 2)])).result.owner_order_ids) == [2]

    asyncio.run(go())
