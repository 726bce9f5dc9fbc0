"""Each process's Prometheus metrics (prometheus-client), on its own /metrics port.

BOURSE_METRICS_ADDR (host:port, e.g. 127.0.0.1:9464; port 0: any free one, named by the
process's "metrics" log line; unset or empty: no metrics) is where `start(log)` serves
them. Names follow Prometheus conventions, in base units:

  bourse_rpc_duration_seconds{grpc_service,grpc_method,grpc_code}  every served call (a
      stream: from its start to its end); its _count is the calls by method and code
  bourse_group_commit_commands{shard}          commands per group commit (matching)
  bourse_group_commit_duration_seconds{shard}  a group commit, engine pass to commit
  bourse_persistence_commit_duration_seconds{shard}  the batch's database commit alone
  bourse_order_batch_commands{target}, bourse_order_batch_duration_seconds{target}  an order
      replica's batches to each matching process (target: its address) and their round trips
  bourse_shard_sequence{shard}, bourse_shard_durable_sequence{shard},
  bourse_shard_snapshot_sequence{shard}, bourse_shard_resting_orders{shard},
  bourse_shard_queued_commands{shard}          read when scraped, not kept up on the hot path
  bourse_journal_sequence{shard}, bourse_snapshot_age_seconds{shard},
  bourse_replay_lag_commands{shard}            what the store holds for each matching shard
      (persistence, every JOURNAL_WATCH_S): the journal's last sequence, how old the newest
      snapshot is, and the commands a restart would replay after it
  bourse_book_levels{symbol,side}, bourse_book_resting_orders{symbol}  each book, read when scraped
  bourse_redis_errors_total{operation}         publish (matching), book_read, order_updates, feed
  bourse_database_errors_total{shard}          a matching shard's failed commits
  bourse_subscribers{stream}                   market_data and order_updates streams open (order service)
  bourse_subscribers_ended_total{stream,reason}  market data subscribers dropped too slow, order
                                               update resumes refused for a gap (updates_trimmed)

Recording is off (no timed handlers, no observation) when the address is unset, so a
process without it pays nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.common.settings import Shared

# Calls take from a fraction of a millisecond (a relay) to seconds (a stalled store).
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMANDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

RPC_SECONDS = Histogram("bourse_rpc_duration_seconds", "Served gRPC calls, from start to end, by method and code",
                        ["grpc_service", "grpc_method", "grpc_code"], buckets=_SECONDS)
GROUP_COMMIT_COMMANDS = Histogram("bourse_group_commit_commands", "Commands per group commit of a matching shard",
                                  ["shard"], buckets=_COMMANDS)
GROUP_COMMIT_SECONDS = Histogram("bourse_group_commit_duration_seconds",
                                 "A matching shard's group commit, engine pass to committed", ["shard"],
                                 buckets=_SECONDS)
PERSISTENCE_COMMIT_SECONDS = Histogram("bourse_persistence_commit_duration_seconds",
                                       "The database commit of a matching shard's batch", ["shard"],
                                       buckets=_SECONDS)
ORDER_BATCH_COMMANDS = Histogram("bourse_order_batch_commands",
                                 "Commands per batch an order replica sends a matching process", ["target"],
                                 buckets=_COMMANDS)
ORDER_BATCH_SECONDS = Histogram("bourse_order_batch_duration_seconds",
                                "A batch's round trip from an order replica to its matching process, answered",
                                ["target"], buckets=_SECONDS)
REDIS_ERRORS = Counter("bourse_redis_errors_total", "Redis operations that failed, by what they were doing",
                       ["operation"])
DATABASE_ERRORS = Counter("bourse_database_errors_total", "A matching shard's batches whose commit failed",
                          ["shard"])
SUBSCRIBERS = Gauge("bourse_subscribers", "Streams subscribed to market data or to order updates", ["stream"])
SUBSCRIBERS_ENDED = Counter("bourse_subscribers_ended_total",
                            "Subscriptions the server ended: too slow (market data), updates gone (order updates)",
                            ["stream", "reason"])
BOOK_LEVELS = Gauge("bourse_book_levels", "Price levels of a symbol's book, by side", ["symbol", "side"])
BOOK_ORDERS = Gauge("bourse_book_resting_orders", "Orders resting in a symbol's book", ["symbol"])
BOOK_DEPTH_READ = 100_000  # levels per side read to count them: every level of any real book
JOURNAL_WATCH_S = 5.0
JOURNAL_SEQUENCE = Gauge("bourse_journal_sequence", "Last sequence in a matching shard's stored journal", ["shard"])
SNAPSHOT_AGE = Gauge("bourse_snapshot_age_seconds", "Age of a matching shard's newest stored snapshot "
                     "(since the shard's start when it has none)", ["shard"])
REPLAY_LAG = Gauge("bourse_replay_lag_commands", "Journal commands after a matching shard's newest snapshot: "
                   "what its restart would replay", ["shard"])
SHARD_GAUGES = {
    "sequence": Gauge("bourse_shard_sequence", "Sequence of the last command a shard applied", ["shard"]),
    "durable_sequence": Gauge("bourse_shard_durable_sequence", "Sequence of the last command a shard committed",
                              ["shard"]),
    "snapshot_sequence": Gauge("bourse_shard_snapshot_sequence", "Sequence of a shard's newest stored snapshot",
                               ["shard"]),
    "resting_orders": Gauge("bourse_shard_resting_orders", "Orders resting in a shard's books", ["shard"]),
    "queued_commands": Gauge("bourse_shard_queued_commands", "Commands waiting for a shard's batch in flight",
                             ["shard"]),
}

_enabled = False


def enabled() -> bool:
    return _enabled


def start(log) -> str | None:
    """Serves /metrics at BOURSE_METRICS_ADDR, if set (port 0: any free port, which the
    "metrics" log line names); the address, else None."""
    global _enabled
    address = Shared.load().metrics_addr
    if not address:
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"BOURSE_METRICS_ADDR={address!r}: want host:port")
    server, _ = start_http_server(int(port), addr=host)
    _enabled = True
    address = f"{host}:{server.server_port}"
    log.info("metrics", address=address)
    return address


def watch_books(symbols, depth: Callable[[str, int], tuple[list, list]]) -> None:
    """Per symbol, its levels per side and resting orders, read from `depth(symbol,
    levels)` ((bids, asks) of (price, quantity, orders)) when scraped: no cost per order."""
    for symbol in symbols:
        def read(symbol=symbol) -> tuple[list, list]:
            return depth(symbol, BOOK_DEPTH_READ)

        BOOK_LEVELS.labels(symbol, "buy").set_function(lambda read=read: len(read()[0]))
        BOOK_LEVELS.labels(symbol, "sell").set_function(lambda read=read: len(read()[1]))
        BOOK_ORDERS.labels(symbol).set_function(
            lambda read=read: sum(level[2] for side in read() for level in side))


def batch_observer(target: str) -> Callable[[int, float], None]:
    """observe(commands, seconds) for an order replica's batches to `target`; does nothing
    while metrics are off (batchers are made before the server, and so before start())."""
    children = []

    def observe(commands: int, seconds: float) -> None:
        if not _enabled:
            return
        if not children:
            children.extend((ORDER_BATCH_COMMANDS.labels(target), ORDER_BATCH_SECONDS.labels(target)))
        children[0].observe(commands)
        children[1].observe(seconds)

    return observe


def watch_shard(shard: int, read: Callable[[], dict[str, float]]) -> None:
    """The shard gauges, each read from `read()` when scraped."""
    for name, gauge in SHARD_GAUGES.items():
        gauge.labels(str(shard)).set_function(lambda name=name: read()[name])


async def watch_journals(shard_state, shards: int, log, every_s: float = JOURNAL_WATCH_S) -> None:
    """Keeps the journal gauges of matching shards 0..shards-1 up to date, from
    `await shard_state(shard)` -> (last sequence, snapshot sequence, snapshot time or None)."""
    started = time.time()
    while True:
        for shard in range(shards):
            try:
                last, snapshot, when = await shard_state(shard)
            except Exception as error:  # noqa: BLE001 - a store down now is read again next round
                log.warning("journal gauges not read", shard=shard, error=repr(error))
                continue
            label = str(shard)
            JOURNAL_SEQUENCE.labels(label).set(last)
            REPLAY_LAG.labels(label).set(last - snapshot)
            SNAPSHOT_AGE.labels(label).set(time.time() - (when.timestamp() if when is not None else started))
        await asyncio.sleep(every_s)


class TimedRegistration:
    """Stands for the server while the services register their methods: each method's
    handler is wrapped once, there, with the timing of its calls. (A server interceptor
    wrapped it again for every call: a coroutine and a handler made per call, 2.2 us of
    work beside the 2 us of the observation; BENCHMARKS.md.) Calls reach the registered
    handlers; the generic ones, a fallback, go on untimed."""

    def __init__(self, server: grpc.aio.Server):
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self._server.add_registered_method_handlers(
            service, {name: _timed(handler, service, name) for name, handler in handlers.items()})


_rpc_children: dict[tuple, object] = {}  # (service, method, code) -> its histogram: labels() is a lookup under a lock


def _observe(service: str, method: str, context, started: float, failed: BaseException | None) -> None:
    code = context.code()
    if code is None:
        code = grpc.StatusCode.OK if failed is None else grpc.StatusCode.UNKNOWN
    elif isinstance(code, int):
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    key = (service, method, code)
    child = _rpc_children.get(key)
    if child is None:
        child = _rpc_children[key] = RPC_SECONDS.labels(service, method, code.name)
    child.observe(time.perf_counter() - started)


def _timed(handler, service: str, method: str):
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        inner = getattr(handler, kind)
        if inner is None:
            continue
        if inspect.isasyncgenfunction(inner):
            async def behavior(request, context, inner=inner):
                started, failed = time.perf_counter(), None
                try:
                    async for response in inner(request, context):
                        yield response
                except BaseException as error:
                    failed = error
                    raise
                finally:
                    _observe(service, method, context, started, failed)
        else:
            async def behavior(request, context, inner=inner):
                started, failed = time.perf_counter(), None
                try:
                    return await inner(request, context)
                except BaseException as error:
                    failed = error
                    raise
                finally:
                    _observe(service, method, context, started, failed)
        return handler._replace(**{kind: behavior})
    return handler
