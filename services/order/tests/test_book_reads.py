"""Book reads (GetBook, and each market-data stream's first book and heartbeats) from a
private Redis: a burst far beyond the pool waits for connections instead of failing, and
concurrent reads of one book share a round trip."""

import asyncio
import json

import pytest
import redis.asyncio as redis

from infra.local.servers import running_redis
from services.order.market_data import READ_POOL, BookReader, book_client, read_book

pytestmark = pytest.mark.timeout(60)
SYMBOLS = [f"S{i:03d}" for i in range(200)]


@pytest.fixture(scope="module")
def redis_url():
    with running_redis() as server:
        yield server.url


async def seeded(url: str) -> redis.Redis:
    admin = redis.from_url(url)
    await admin.flushdb()
    await admin.config_resetstat()
    for symbol in SYMBOLS:
        await admin.set(f"md:book:{symbol}", json.dumps({"bids": [[10, 1, 1]], "asks": [], "time": None}))
    return admin


def test_a_burst_of_reads_far_beyond_the_pool_waits_for_connections_instead_of_failing(redis_url):
    """The abuse probe: 2,000 market-data streams' heartbeats came due together, and 8% of
    the streams ended UNAVAILABLE "Too many connections" (redis-py's pool of 100)."""
    async def go():
        admin = await seeded(redis_url)
        client = book_client(redis_url)
        try:
            books = await asyncio.gather(*(read_book(client, SYMBOLS[i % len(SYMBOLS)], 10, trades=20)
                                           for i in range(2000)))
            assert all(book.bids[0].price == 10 for book in books)
            assert (await admin.info("clients"))["connected_clients"] <= READ_POOL + 1
        finally:
            await client.aclose()
            await admin.aclose()
    asyncio.run(go())


def test_concurrent_reads_of_one_book_share_one_round_trip(redis_url):
    async def go():
        admin = await seeded(redis_url)
        reader = BookReader(book_client(redis_url))
        try:
            books = await asyncio.gather(*(reader.read("S007", 10) for _ in range(500)))
            assert {book.bids[0].price for book in books} == {10}
            gets = (await admin.info("commandstats"))["cmdstat_get"]["calls"]
            assert gets <= 5, gets
            # Later reads go to Redis again: nothing is cached beyond the reads in flight.
            await admin.set("md:book:S007", json.dumps({"bids": [[11, 1, 1]], "asks": [], "time": None}))
            assert (await reader.read("S007", 10)).bids[0].price == 11
        finally:
            await reader.client.aclose()
            await admin.aclose()
    asyncio.run(go())


def test_a_reader_that_gives_up_does_not_cancel_the_read_others_wait_for(redis_url):
    async def go():
        admin = await seeded(redis_url)
        reader = BookReader(book_client(redis_url))
        try:
            impatient = asyncio.ensure_future(reader.read("S008", 10))
            patient = asyncio.ensure_future(reader.read("S008", 10))
            await asyncio.sleep(0)
            impatient.cancel()
            assert (await patient).bids[0].price == 10
        finally:
            await reader.client.aclose()
            await admin.aclose()
    asyncio.run(go())
