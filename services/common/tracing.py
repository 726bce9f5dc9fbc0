"""Tracing (OpenTelemetry): off unless BOURSE_OTLP_ENDPOINT names an OTLP/gRPC collector.

What a trace shows (one SubmitOrder at light load is one trace; under load each batch
links the orders it carries):

  order   bourse.order.v1.OrderService/SubmitOrder   (server span, per unary call)
  order     order.batch        a batch to a matching process: child of its first
                               command's call, linked to every other call it carries
  matching    matching.batch     that batch in the shard (its context rides in
                                 ExecuteStreamRequest.trace_context)
  matching      matching.group_commit   one engine pass and one commit for the calls
                                        queued together: child of the first, linked to the rest
  matching        matching.engine       the engine pass
  matching        persistence.commit    the batch's transaction, in the shard (direct
                                        writes) or, through the persistence service:
  persistence       persistence.write_batch   (context in WriteBatchStreamRequest.trace_context)

Off, a span is nothing (`span`, `continued` and the batches' spans return a shared
nullcontext) and no context is carried. On, spans leave in batches (BatchSpanProcessor; OTEL_BSP_* tune it)
and a process flushes what it holds when it exits.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager, nullcontext

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from services.common.settings import Shared

enabled = False
tracer: trace.Tracer = trace.NoOpTracer()
_NOTHING = nullcontext()  # what a span is while tracing is off


def configure(service: str, exporter: SpanExporter | None = None) -> str | None:
    """Turns tracing on for this process when BOURSE_OTLP_ENDPOINT is set (spans go there
    by OTLP/gRPC) or `exporter` is given (tests: the SDK's InMemorySpanExporter, each span
    exported as it ends). Returns where spans go, else None (off)."""
    global enabled, tracer
    endpoint = Shared.load().otlp_endpoint
    if exporter is None and not endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": f"bourse-{service}"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bourse")
    enabled = True
    return endpoint or type(exporter).__name__


def current_span() -> trace.Span | None:
    """The span a call is in, to be linked from the batch that carries it (None when off)."""
    return trace.get_current_span() if enabled else None


def span(name: str, **attributes):
    """A span, the child of the current one, around a step (nothing while tracing is off)."""
    return tracer.start_as_current_span(name, attributes=attributes) if enabled else _NOTHING


class Waiting:
    """The spans of calls waiting to go in a batch, by the future (or group slot) each
    waits on: kept only while tracing is on, and taken by the batch that carries them.
    A batch is a list of (item, future) pairs, as the batcher and the committer keep."""

    __slots__ = ("_spans",)

    def __init__(self):
        self._spans: dict = {}

    def add(self, future) -> None:
        if enabled:
            self._spans[future] = trace.get_current_span()

    def forget_done(self, batch) -> None:
        """Drops the spans of the calls that gave up (deadline, cancel) before their batch left."""
        if self._spans:
            for _, future in batch:
                if future.done():
                    self._spans.pop(future, None)

    def batch_span(self, name: str, batch, **attributes):
        """The span of the batch that carries `batch`'s calls (see batch_span), taking
        their spans; nothing while tracing is off."""
        if not enabled:
            return _NOTHING
        return batch_span(name, [self._spans.pop(future, None) for _, future in batch], **attributes)


@contextmanager
def batch_span(name: str, members: Iterable[trace.Span | None], **attributes):
    """A span for work done for many calls at once: the child of the first call's span,
    linked to the others' (each of which gets a link back to it)."""
    spans = [span for span in members if span is not None and span.get_span_context().is_valid]
    parent = trace.set_span_in_context(spans[0]) if spans else otel_context.Context()
    links = [trace.Link(span.get_span_context()) for span in spans[1:]]
    with tracer.start_as_current_span(name, context=parent, links=links, attributes=attributes) as span:
        for member in spans[1:]:
            if member.is_recording():
                member.add_link(span.get_span_context())
        yield span


def inject(carrier) -> None:
    """Writes the current span's context (traceparent, tracestate) into a message's
    `trace_context` map, for the process that receives it."""
    propagate.inject(carrier)


def continued(name: str, carrier, **attributes):
    """A span continuing the trace whose context a received message carries (nothing
    while tracing is off)."""
    if not enabled:
        return _NOTHING
    return tracer.start_as_current_span(name, context=propagate.extract(dict(carrier)), kind=trace.SpanKind.SERVER,
                                        attributes=attributes)


class ServerSpans(grpc.aio.ServerInterceptor):
    """A server span per unary call (named by its method), the child of the caller's
    span when its metadata carries a traceparent. Streams trace per batch instead."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner, name = handler.unary_unary, details.method.lstrip("/")
        parent = propagate.extract({key: value for key, value in details.invocation_metadata or ()})

        async def traced(request, context):
            with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.SERVER) as span:
                try:
                    return await inner(request, context)
                finally:
                    code = context.code()
                    if code not in (None, grpc.StatusCode.OK, 0):
                        span.set_attribute("rpc.grpc.status_code", str(code))
                        span.set_status(trace.StatusCode.ERROR)

        return handler._replace(unary_unary=traced)
