"""An OTLP/gRPC trace receiver, for tests and benchmarks that turn tracing on: it keeps
each span with its service's name (or, `--count-only`, counts them and keeps nothing).

    python -m infra.local.otlp_receiver --port 4317 --count-only   # a sink for a benchmark

(the tracing benchmark: BENCHMARKS.md, "Tracing: what it costs when on").
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, keep: bool = True):
        self.keep = keep
        self.spans: list[tuple[str, object]] = []  # (service.name, span)
        self.count = 0
        self._lock = threading.Lock()

    def Export(self, request, context):
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                with self._lock:
                    self.count += len(scope.spans)
                    if self.keep:
                        self.spans += [(service, span) for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    def serve(self, port: int = 0) -> tuple[grpc.Server, str]:
        """Starts receiving on 127.0.0.1:port (0: a free one); the server and its endpoint URL."""
        server = grpc.server(futures.ThreadPoolExecutor(4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        return server, f"http://127.0.0.1:{bound}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.otlp_receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4317)
    parser.add_argument("--count-only", action="store_true", help="keep no span: a sink for benchmarks")
    args = parser.parse_args(argv)
    receiver = Receiver(keep=not args.count_only)
    _, endpoint = receiver.serve(args.port)
    print(f"receiving OTLP traces on {endpoint}", flush=True)
    while True:
        time.sleep(30)
        print(f"spans received: {receiver.count}", flush=True)


if __name__ == "__main__":
    main()
