"""Reading an account's order-update stream from a private Redis: from now, from a
resume token, across a trim, after Redis lost everything."""

import asyncio

import pytest
import redis.asyncio as redis
from bourse.type.v1 import types_pb2

from infra.local.servers import running_redis
from services.order.order_updates import ResumeGap, read_updates, stream_key

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def redis_url():
    with running_redis() as server:
        yield server.url


def add(client, account: int, order_id: int, maxlen=None):
    data = types_pb2.Order(order_id=order_id, account_id=account).SerializeToString()
    return client.xadd(stream_key(account), {"order": data}, maxlen=maxlen, approximate=False)


async def take(updates, n: int) -> list:
    got = []
    async with asyncio.timeout(10):
        while len(got) < n:
            token, order = await anext(updates)
            got.append((token, order.order_id if order else None))
    return got


def test_from_now_then_resumed_from_a_token_nothing_is_missed(redis_url):
    async def go():
        client = redis.from_url(redis_url)
        await client.flushdb()
        await add(client, 1, 10)  # before the subscription: not wanted without a token
        updates = read_updates(client, 1, "", block_s=0.2)
        [(start, none)] = await take(updates, 1)
        assert none is None
        await add(client, 1, 11)
        await add(client, 2, 99)  # another account's
        await add(client, 1, 12)
        got = await take(updates, 2)
        assert [order_id for _, order_id in got] == [11, 12]
        await updates.aclose()
        # Reconnect with the token of 11: 12 and what came meanwhile, nothing else.
        await add(client, 1, 13)
        resumed = read_updates(client, 1, got[0][0], block_s=0.2)
        assert [order_id for _, order_id in await take(resumed, 3)] == [None, 12, 13]
        # Quiet: heartbeats carry the last token.
        newest = (await client.xrevrange(stream_key(1), count=1))[0][0].decode()
        assert await take(resumed, 1) == [(newest, None)]
        await resumed.aclose()
        await client.aclose()
    asyncio.run(go())


def test_a_token_older_than_what_is_kept_or_unknown_to_the_store_is_a_gap(redis_url):
    async def go():
        client = redis.from_url(redis_url)
        await client.flushdb()
        first = (await add(client, 3, 1)).decode()
        for order_id in range(2, 30):
            await add(client, 3, order_id, maxlen=10)  # trims the oldest
        with pytest.raises(ResumeGap, match="trimmed"):
            await anext(read_updates(client, 3, first, block_s=0.2))
        with pytest.raises(ResumeGap, match="lost"):
            await anext(read_updates(client, 3, "99999999999999-0", block_s=0.2))
        await client.delete(stream_key(3))  # as after a restart that kept nothing
        with pytest.raises(ResumeGap):
            await anext(read_updates(client, 3, first, block_s=0.2))
        await client.aclose()
    asyncio.run(go())
