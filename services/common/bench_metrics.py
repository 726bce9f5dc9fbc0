"""What the metrics cost a served call, side by side (a program, not a test).

    bazel run -c opt //services/common:bench_metrics -- --calls 3000 --rounds 5

One process serves the health service twice on grpc.aio (the services' own server
options), one server whose methods are timed as serve() times them when metrics are on
(metrics.TimedRegistration) and one without, and a client alternates rounds of unary Check calls against each (one call in
flight: the interceptor's cost is all on the call's path). Prints the CPU of the
process per call, client and server together, for each, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import metrics
from services.common.server import SERVER_OPTIONS


async def _server(timed: bool) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, metrics.TimedRegistration(server) if timed else server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _round(stub, calls: int) -> float:
    """CPU seconds of this process per call."""
    request = health_pb2.HealthCheckRequest()
    started = time.process_time()
    for _ in range(calls):
        await stub.Check(request)
    return (time.process_time() - started) / calls


async def main(calls: int, rounds: int) -> None:
    plain, plain_port = await _server(False)
    timed, timed_port = await _server(True)
    channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{port}")
                for name, port in (("without", plain_port), ("with", timed_port))}
    stubs = {name: health_pb2_grpc.HealthStub(channel) for name, channel in channels.items()}
    for stub in stubs.values():  # warm both
        await _round(stub, 200)
    per_call: dict[str, list[float]] = {"without": [], "with": []}
    for index in range(rounds):
        for name in (("without", "with") if index % 2 == 0 else ("with", "without")):
            per_call[name].append(await _round(stubs[name], calls))
    for name, values in per_call.items():
        print(f"{name:8} metrics: {statistics.median(values) * 1e6:7.1f} us of CPU per call "
              f"(rounds: {', '.join(f'{v * 1e6:.1f}' for v in values)})")
    ratios = [w / o for w, o in zip(per_call["with"], per_call["without"])]
    print(f"with / without: median {statistics.median(ratios):.3f}x (rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    for channel in channels.values():
        await channel.close()
    await plain.stop(None)
    await timed.stop(None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
