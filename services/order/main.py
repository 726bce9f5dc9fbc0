"""Order service process: `python -m services.order.main` (settings in config.py)."""

from __future__ import annotations

import grpc
import redis.asyncio as redis
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc

from services.common import logs, metrics, tracing
from services.common.ids import SnowflakeIds
from services.common.malformed import tolerant
from services.common.server import CHANNEL_OPTIONS, Lifecycle, Service, run, serve
from services.order.api_keys import ApiKeys, Authenticator
from services.order.config import OrderSettings
from services.order.downstream import ShardStream
from services.order.feeds import market_data_feed
from services.order.limits import InFlight, KeyLimits, Rate
from services.order.market_data import book_client
from services.order.orders import OrderDesk
from services.order.service import (
    HEARTBEAT_S,
    MARKET_DATA_SERVICE,
    ORDER_SERVICE,
    MarketDataServicer,
    OrderServicer,
)

# The client API's largest request message (an order is under 200 bytes): bigger ones are
# refused unparsed, before authentication, so they cannot grow the process.
MAX_REQUEST_BYTES = 64 * 1024
# Request headers as big as Envoy passes on (infra/envoy/config.py): an absurd API key is
# answered INVALID_API_KEY here, rather than refused by gRPC or by the connection's end.
MAX_METADATA_BYTES = 256 * 1024 + 1024


async def main() -> None:
    settings = OrderSettings.from_env()
    log = logs.configure("order").bind(node=settings.node_id)
    if (spans_to := tracing.configure("order")) is not None:  # BOURSE_OTLP_ENDPOINT
        log.info("tracing", exporting_to=spans_to)
    # One channel, stream and batcher per matching process: shards served by one process
    # (the same address) share them, so a batch is one message whatever shards it spans.
    distinct = list(dict.fromkeys(settings.matching_addresses))
    channels = [grpc.aio.insecure_channel(a, options=CHANNEL_OPTIONS) for a in distinct]
    batching = settings.batching
    streams = [ShardStream(matching_grpc.MatchingServiceStub(ch), batching.call_timeout_s) for ch in channels]
    batchers = [batching.batcher(stream, metrics.batch_observer(address)) for stream, address in zip(streams, distinct)]
    shards = [batchers[distinct.index(address)] for address in settings.matching_addresses]
    persistence_channel = grpc.aio.insecure_channel(settings.persistence_address, options=CHANNEL_OPTIONS)
    persistence = persistence_grpc.PersistenceServiceStub(persistence_channel)
    redis_client = book_client(settings.redis_url)
    # Pub/sub waits for messages indefinitely: its own client, without the read timeout.
    feed_client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, health_check_interval=10)
    market_feed = market_data_feed(feed_client, log)
    # Order updates block in XREAD for up to a heartbeat: a read timeout beyond that.
    # Each order subscription holds a connection while it waits: the pool's size is the
    # most subscriptions this process serves (more get RESOURCE_EXHAUSTED).
    updates_client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0,
                                          socket_timeout=HEARTBEAT_S + 5,
                                          max_connections=settings.max_order_subscriptions)
    api_keys = ApiKeys(persistence, log, settings.api_key_refresh_s)
    auth = Authenticator(api_keys)
    desk = OrderDesk(
        symbols=settings.symbols,
        shard_map=settings.shard_map,
        shards=shards,
        persistence=persistence,
        ids=SnowflakeIds(settings.node_id),
        call_timeout_s=batching.call_timeout_s,
        trading_day_end_s=settings.trading_day_end_s,
    )

    async def ready():
        await api_keys.load(settings.startup_timeout_s)
        for batcher in batchers:
            batcher.start()

    limits = KeyLimits(InFlight("orders", settings.max_orders_in_flight_per_key),
                       InFlight("reads", settings.max_reads_in_flight_per_key), Rate(settings.rate_per_key))
    order_servicer = OrderServicer(desk, auth, updates_client, limits, log=log,
                                   entry_window=settings.order_entry_window,
                                   sessions_per_key=settings.order_entry_sessions_per_key,
                                   entry_heartbeat_s=settings.order_entry_heartbeat_s)

    async def draining():
        # Subscription streams end UNAVAILABLE now (clients subscribe again elsewhere)
        # instead of holding the grace that in-flight orders need.
        await market_feed.close()
        order_servicer.draining.set()
        await updates_client.connection_pool.disconnect()  # wakes the blocked XREADs

    async def closing():
        await api_keys.stop()
        for batcher in batchers:
            await batcher.stop()
        for stream in streams:
            await stream.close()
        for channel in [*channels, persistence_channel]:
            await channel.close()
        await redis_client.aclose()
        await feed_client.aclose()
        await updates_client.aclose()

    # The client API: a request that is not its method's message is INVALID_ARGUMENT.
    def register_order(server):
        order_grpc.add_OrderServiceServicer_to_server(order_servicer, tolerant(server, log))

    def register_market_data(server):
        md_grpc.add_MarketDataServiceServicer_to_server(
            MarketDataServicer(redis_client, settings.symbols, auth, market_feed, limits), tolerant(server, log))

    await serve(
        [Service(ORDER_SERVICE, register_order), Service(MARKET_DATA_SERVICE, register_market_data)],
        settings.address,
        log,
        drain_seconds=settings.drain_seconds,
        lifecycle=Lifecycle(ready=ready, draining=draining, closing=closing),
        max_request_bytes=MAX_REQUEST_BYTES,
        max_metadata_bytes=MAX_METADATA_BYTES,
    )


if __name__ == "__main__":
    run(main)
