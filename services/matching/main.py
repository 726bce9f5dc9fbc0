"""A matching shard process: `python -m services.matching.main` (settings: config.py)."""

from __future__ import annotations

import grpc
import redis.asyncio as redis

from services.common import logs
from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.common.server import CHANNEL_OPTIONS, Lifecycle, Service, run, serve
from services.matching import service
from services.matching.committer import GroupCommitter
from services.matching.config import MatchingSettings
from services.matching.direct_writes import DirectWrites
from services.matching.market_data import MarketData
from services.matching.persistence import GrpcPersistence
from services.matching.shard import MatchingShard


async def main() -> None:
    settings = MatchingSettings.from_env()
    log = logs.configure("matching").bind(shard=settings.shard_index)
    channel = grpc.aio.insecure_channel(settings.persistence_address, options=CHANNEL_OPTIONS)
    direct = None
    if settings.direct_db_url:
        direct = DirectWrites(settings.direct_db_url, settings.shard_index, timeout_s=settings.write_timeout_s)
    persistence = GrpcPersistence(channel, write_timeout_s=settings.write_timeout_s, direct=direct)
    redis_client = redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    market_data = MarketData(redis_client, log, interval_s=settings.market_data_interval_s)
    shard = MatchingShard(settings.symbols, SnowflakeIds(MATCHING_NODE_BASE + settings.shard_index),
                          shard_index=settings.shard_index)
    lifecycle = Lifecycle()
    committer = GroupCommitter(shard, persistence, market_data, log, snapshot_every=settings.snapshot_every,
                               set_serving=lifecycle.set_serving, linger_s=settings.batch_linger_s)

    async def ready() -> None:
        await committer.start(timeout_s=settings.startup_timeout_s)

    async def closing() -> None:
        await committer.stop()
        await market_data.close()
        await persistence.close()
        await channel.close()

    lifecycle.ready, lifecycle.closing = ready, closing
    log.info("starting", symbols=sorted(settings.symbols), persistence=settings.persistence_address,
             direct_writes=direct is not None)
    await serve(
        [Service(service.SERVICE_NAME, service.register(committer))],
        settings.address,
        log,
        drain_seconds=settings.drain_seconds,
        lifecycle=lifecycle,
    )


if __name__ == "__main__":
    run(main)
