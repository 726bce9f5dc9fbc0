"""Feeds against a private Redis: one pub/sub connection fanned out by key, a slow
subscriber dropped, every stream ended when Redis goes away."""

import asyncio
import contextlib

import grpc
import pytest
import redis.asyncio as redis
import structlog

from infra.local.servers import Redis
from services.order.feeds import QUEUE_MAX, FeedError, market_data_feed

CHANNEL_PREFIX = "md:updates:"

pytestmark = pytest.mark.timeout(60)
LOG = structlog.get_logger()


def update(n: int) -> str:
    # The matching shard's message (services/matching/market_data.py PUBLISH_SCRIPT).
    return '{"book": {"bids": [[%d, 1, 1]], "asks": [], "time": "2026-11-27T00:00:00+00:00"}, "trades": []}' % n


@contextlib.asynccontextmanager
async def feed_and_publisher(server_out=None, **timing):
    server = Redis().start()
    if server_out is not None:
        server_out.append(server)
    client, publisher = redis.from_url(server.url), redis.from_url(server.url)
    feed = market_data_feed(client, LOG, **timing)
    try:
        yield feed, publisher
    finally:
        await feed.close()
        await client.aclose()
        await publisher.aclose()
        server.stop()


def test_updates_reach_the_subscribers_of_their_symbol_only():
    async def go():
        async with feed_and_publisher() as (feed, publisher):
            async with feed.subscribe("AAPL") as a1, feed.subscribe("AAPL") as a2, feed.subscribe("MSFT") as m:
                assert await publisher.pubsub_numpat() == 1  # one connection for every stream
                await publisher.publish(CHANNEL_PREFIX + "AAPL", update(100))
                await publisher.publish(CHANNEL_PREFIX + "MSFT", update(200))
                assert (await a1.next())["book"]["bids"] == [[100, 1, 1]]
                assert (await a2.next())["book"]["bids"] == [[100, 1, 1]]
                assert (await m.next())["book"]["bids"] == [[200, 1, 1]]
    asyncio.run(go())


def test_a_subscriber_too_far_behind_is_dropped_and_others_go_on():
    async def go():
        async with feed_and_publisher() as (feed, publisher):
            async with feed.subscribe("AAPL") as slow, feed.subscribe("AAPL") as fast:
                for n in range(QUEUE_MAX + 50):
                    await publisher.publish(CHANNEL_PREFIX + "AAPL", update(n))
                    assert (await fast.next())["book"]["bids"] == [[n, 1, 1]]
                read = 0
                with pytest.raises(FeedError) as dropped:
                    while True:
                        await slow.next()
                        read += 1
                assert dropped.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and read < QUEUE_MAX
    asyncio.run(go())


def test_every_stream_ends_unavailable_when_redis_goes_away_and_subscribing_then_fails_fast():
    async def go():
        server = Redis().start()
        client = redis.from_url(server.url, socket_connect_timeout=0.5)
        feed = market_data_feed(client, LOG)
        try:
            async with feed.subscribe("AAPL") as subscription:
                server.stop()
                with pytest.raises(FeedError) as ended:
                    async with asyncio.timeout(10):
                        await subscription.next()
                assert ended.value.code == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(FeedError) as refused:
                async with feed.subscribe("AAPL"):
                    pass
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        finally:
            await feed.close()
            await client.aclose()
    asyncio.run(go())



def test_a_redis_that_stops_answering_ends_every_stream_and_undecodable_messages_are_skipped():
    import os
    import signal

    async def go():
        servers = []
        async with feed_and_publisher(server_out=servers, ping_every_s=0.2, dead_after_s=1.5) as (feed, publisher):
            server = servers[0]
            async with feed.subscribe("AAPL") as subscription:
                await publisher.publish(CHANNEL_PREFIX + "AAPL", b"not json")  # skipped, the feed goes on
                await publisher.publish(CHANNEL_PREFIX + "AAPL", update(5))
                assert (await subscription.next())["book"]["bids"] == [[5, 1, 1]]
                os.kill(server.process.pid, signal.SIGSTOP)  # alive, connected, silent
                try:
                    with pytest.raises(FeedError) as ended:
                        async with asyncio.timeout(10):
                            await subscription.next()
                    assert ended.value.code == grpc.StatusCode.UNAVAILABLE
                finally:
                    os.kill(server.process.pid, signal.SIGCONT)
    asyncio.run(go())



def test_closing_ends_the_subscriptions_and_refuses_new_ones():
    async def go():
        async with feed_and_publisher() as (feed, publisher):
            async with feed.subscribe("AAPL") as subscription:
                await feed.close()
                with pytest.raises(FeedError) as ended:
                    await subscription.next()
                assert ended.value.code == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(FeedError, match="shutting down"):
                async with feed.subscribe("AAPL"):
                    pass
    asyncio.run(go())
