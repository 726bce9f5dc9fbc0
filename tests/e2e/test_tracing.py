"""One SubmitOrder traced through the real processes, exported by OTLP/gRPC to a collector
this test runs: the order service's call, the batch it rode in, the matching shard's
batch, group commit, engine pass and commit, and (when the shard commits through the
persistence service) that service's write, all in the caller's trace, each the child of
the one before."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.otlp_receiver import Receiver
from infra.local.stack import Stack

pytestmark = pytest.mark.timeout(300)
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def collector():
    received = Receiver()
    server, endpoint = received.serve()
    yield received, endpoint
    server.stop(None)


@pytest.mark.parametrize("direct_writes", ["1", "0"], ids=["shard-commits", "through-persistence"])
def test_one_submit_order_is_traced_through_every_process(collector, direct_writes):
    received, endpoint = collector
    trace_id = uuid.uuid4().hex
    env = {"BOURSE_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", "BOURSE_DIRECT_WRITES": direct_writes}
    with Stack(order_replicas=1, service_env=env) as stack, grpc.insecure_channel(stack.target) as channel:
        traceparent = f"00-{trace_id}-{CALLER_SPAN}-01"  # the caller's own trace (W3C)
        order = order_grpc.OrderServiceStub(channel).SubmitOrder(pb.SubmitOrderRequest(
            client_order_id=f"traced-{time.time_ns()}", symbol="IBM", side=t.SIDE_BUY,
            order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=1200, quantity=3),
            metadata=(("authorization", "Bearer demo-key-alice"), ("traceparent", traceparent)), timeout=10).order
        assert order.status == t.ORDER_STATUS_NEW
        chain = [("bourse-order", "bourse.order.v1.OrderService/SubmitOrder"), ("bourse-order", "order.batch"),
                 ("bourse-matching", "matching.batch"), ("bourse-matching", "matching.group_commit"),
                 ("bourse-matching", "persistence.commit")]
        if direct_writes == "0":
            chain.append(("bourse-persistence", "persistence.write_batch"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ours = {(service, span.name): span for service, span in received.spans if span.trace_id.hex() == trace_id}
            if all(step in ours for step in chain) and ("bourse-matching", "matching.engine") in ours:
                break
            time.sleep(0.2)
    assert all(step in ours for step in chain), f"missing: {[s for s in chain if s not in ours]}; got {sorted(ours)}"
    parent = bytes.fromhex(CALLER_SPAN)
    for step in chain:
        span = ours[step]
        assert span.parent_span_id == parent, f"{step} is not the child of the step before it"
        parent = span.span_id
    engine = ours[("bourse-matching", "matching.engine")]
    assert engine.parent_span_id == ours[("bourse-matching", "matching.group_commit")].span_id
