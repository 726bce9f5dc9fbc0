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
        updates = read_updates(client, 1, "", lambda: 0.2)
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
        resumed = read_updates(client, 1, got[0][0], lambda: 0.2)
        assert [order_id for _, order_id in await take(resumed, 3)] == [None, 12, 13]
        # Quiet: heartbeats carry the last token.
        newest = (await client.xrevrange(stream_key(1), count=1))[0][0].decode()
        [(token, none)] = await take(resumed, 1)
        assert none is None and token.endswith(":" + newest)
        await resumed.aclose()
        await client.aclose()
    asyncio.run(go())


def test_a_token_older_than_what_is_kept_or_from_before_the_store_lost_its_data_is_a_gap(redis_url):
    async def go():
        client = redis.from_url(redis_url)
        await client.flushdb()
        updates = read_updates(client, 3, "", lambda: 0.2)
        [(start, _)] = await take(updates, 1)
        await add(client, 3, 1)
        [(first, _)] = await take(updates, 1)
        await updates.aclose()
        for order_id in range(2, 30):
            await add(client, 3, order_id, maxlen=10)  # trims the oldest
        for token in (start, first):
            with pytest.raises(ResumeGap, match="trimmed"):
                await anext(read_updates(client, 3, token, lambda: 0.2))
        # Redis lost everything (a restart without persistence), then trading went on.
        await client.flushdb()
        await add(client, 3, 30)
        with pytest.raises(ResumeGap, match="lost its data"):
            await anext(read_updates(client, 3, first, lambda: 0.2))
        await client.aclose()
    asyncio.run(go())


def test_a_reader_that_falls_behind_the_trimming_is_stopped_not_skipped_ahead(redis_url):
    async def go():
        client = redis.from_url(redis_url)
        await client.flushdb()
        updates = read_updates(client, 4, "", lambda: 0.2)
        await take(updates, 1)
        await add(client, 4, 1)
        assert [order_id for _, order_id in await take(updates, 1)] == [1]
        for order_id in range(2, 400):
            await add(client, 4, order_id, maxlen=100)  # order 1 and those after it go
        with pytest.raises(ResumeGap, match="before they were read"):
            await take(updates, 1)
        await client.aclose()
    asyncio.run(go())
