"""A matching process: `python -m services.matching.main` (settings: config.py).

It serves one shard, or several (BOURSE_SHARD_INDEX=0,1,2): each with its own books,
sequence, group committer and database connection; the gRPC server, the persistence
channel, Redis and the market-data sender are shared.
"""

from __future__ import annotations

import gc

import grpc
import redis.asyncio as redis

from services.common import logs, tracing
from services.common.ids import MATCHING_NODE_BASE, SnowflakeIds
from services.common.server import CHANNEL_OPTIONS, Lifecycle, Service, run, serve
from services.matching import service
from services.matching.committer import SNAPSHOT_PACE, GroupCommitter
from services.matching.config import MatchingSettings
from services.matching.direct_writes import DirectWrites
from services.matching.market_data import MarketData
from services.matching.persistence import GrpcPersistence
from services.matching.shard import MatchingShard, PresizedEngine


async def main() -> None:
    settings = MatchingSettings.from_env()
    log = logs.configure("matching").bind(shards=list(settings.hosted))
    if (spans_to := tracing.configure("matching")) is not None:  # BOURSE_OTLP_ENDPOINT
        log.info("tracing", exporting_to=spans_to)
    channel = grpc.aio.insecure_channel(settings.persistence_address, options=CHANNEL_OPTIONS)
    # No socket timeout (redis-py 8 defaults to 5 s): it arms one per reply read (several per pipeline);
    # market_data.py bounds each whole send instead.
    redis_client = redis.from_url(settings.redis_url, socket_timeout=None, socket_connect_timeout=1.0)
    lifecycle = Lifecycle()
    committers: dict[int, GroupCommitter] = {}
    closers = []
    not_serving: set[int] = set(settings.hosted)

    def health_of(index: int):
        async def set_serving(serving: bool) -> None:  # the process serves once all its shards do
            (not_serving.discard if serving else not_serving.add)(index)
            await lifecycle.set_serving(not not_serving)

        return set_serving

    # One market-data sender for all the shards: one Redis pipeline per interval.
    market_data = MarketData(redis_client, log, interval_s=settings.market_data_interval_s)
    snapshot_pace = SNAPSHOT_PACE * len(settings.hosted)  # the shards' snapshots share this process's time
    for index, symbols in settings.hosted.items():
        shard_log = log.bind(shard=index)
        url = settings.direct_db_urls.get(index)
        direct = (DirectWrites(url, index, timeout_s=settings.write_timeout_s, journal_prune=settings.journal_prune)
                  if url else None)
        persistence = GrpcPersistence(channel, write_timeout_s=settings.write_timeout_s, direct=direct)
        shard = MatchingShard(symbols, SnowflakeIds(MATCHING_NODE_BASE + index), engine_factory=PresizedEngine,
                              shard_index=index, finished_kept=settings.finished_kept)
        committers[index] = GroupCommitter(shard, persistence, market_data, shard_log,
                                           snapshot_every=settings.snapshot_every, set_serving=health_of(index),
                                           linger_s=settings.batch_linger_s, snapshot_pace=snapshot_pace,
                                           snapshot_in_child=settings.snapshot_in_child)
        closers.append((committers[index], persistence))
        log.info("starting shard", shard=index, symbols=sorted(symbols), direct_writes=direct is not None)

    async def ready() -> None:
        for committer in committers.values():
            await committer.start(timeout_s=settings.startup_timeout_s)
        # What exists once the books are recovered (modules, functions, the books' own
        # structures) lives as long as the process: out of every later collection's walk.
        # Measured in a stream run: half of the oldest generation's 210,000 objects were these.
        gc.collect()
        gc.freeze()

    async def closing() -> None:
        for committer, _ in closers:
            await committer.stop()
        await market_data.close()  # after every committer: their last batches get sent
        for _, persistence in closers:
            await persistence.close()
        await redis_client.aclose()
        await channel.close()

    lifecycle.ready, lifecycle.closing = ready, closing
    await serve(
        [Service(service.SERVICE_NAME, service.register(committers))],
        settings.address,
        log,
        drain_seconds=settings.drain_seconds,
        lifecycle=lifecycle,
    )


if __name__ == "__main__":
    run(main)
