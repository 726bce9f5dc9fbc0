"""Tracing with the SDK's in-memory exporter: a batch's span is the child of its first
call's span and linked to (and from) the others; its context rides in the message to
the next process and continues there; a unary call's server span continues the caller's
trace. Off, nothing is recorded and nothing is carried."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing
from services.order.batcher import Batcher


def test_off_by_default_nothing_is_carried(monkeypatch):
    monkeypatch.delenv("BOURSE_OTLP_ENDPOINT", raising=False)
    assert tracing.configure("test") is None and not tracing.enabled
    assert tracing.current_span() is None


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", exporter=exporter) == "InMemorySpanExporter" and tracing.enabled
    return exporter


def by_name(exporter, name):
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert found, f"no {name} span in {[s.name for s in exporter.get_finished_spans()]}"
    return found


def test_a_batch_is_the_child_of_its_first_call_and_linked_to_the_others(spans):
    carried = []

    async def send(items):
        message = {}
        tracing.inject(message)  # as BatchStream does into ExecuteStreamRequest.trace_context
        carried.append(message)
        return items

    async def call(batcher, i):
        with tracing.tracer.start_as_current_span(f"call-{i}"):
            return await batcher.execute(i)

    async def scenario():
        batcher = Batcher(send)
        calls = [asyncio.create_task(call(batcher, i)) for i in range(3)]
        await asyncio.sleep(0)  # all three queued before the batcher runs: one batch
        batcher.start()
        results = await asyncio.gather(*calls)
        await batcher.stop()
        return results

    assert asyncio.run(scenario()) == [0, 1, 2]
    (batch,) = by_name(spans, "order.batch")
    calls = {i: by_name(spans, f"call-{i}")[0] for i in range(3)}
    assert batch.parent.span_id == calls[0].context.span_id
    assert batch.context.trace_id == calls[0].context.trace_id
    assert {link.context.span_id for link in batch.links} == {calls[1].context.span_id, calls[2].context.span_id}
    for i in (1, 2):  # each other call links back to the batch it rode in
        assert [link.context.span_id for link in calls[i].links] == [batch.context.span_id]
    assert batch.attributes["bourse.commands"] == 3
    # The next process continues the batch's trace from the message.
    (message,) = carried
    assert message["traceparent"].split("-")[1:3] == [f"{batch.context.trace_id:032x}", f"{batch.context.span_id:016x}"]
    with tracing.continued("matching.batch", message):
        pass
    (received,) = by_name(spans, "matching.batch")
    assert (received.parent.span_id, received.context.trace_id) == (batch.context.span_id, batch.context.trace_id)
    assert received.kind == trace.SpanKind.SERVER


def test_a_unary_calls_server_span_continues_the_callers_trace(spans):
    seen = []

    class Health(health.aio.HealthServicer):
        async def Check(self, request, context):
            seen.append(trace.get_current_span().get_span_context())
            return await super().Check(request, context)

    async def scenario():
        server = grpc.aio.server(interceptors=[tracing.ServerSpans()])
        health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            with tracing.tracer.start_as_current_span("client") as client:
                metadata = {}
                tracing.inject(metadata)
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                    metadata=tuple(metadata.items()))
            return client.get_span_context()
        finally:
            await server.stop(None)

    client = asyncio.run(scenario())
    (served,) = by_name(spans, "grpc.health.v1.Health/Check")
    assert served.parent.span_id == client.span_id and served.context.trace_id == client.trace_id
    assert seen[0].span_id == served.context.span_id  # the handler ran inside it
