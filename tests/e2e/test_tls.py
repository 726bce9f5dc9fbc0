"""Clients reach Envoy over TLS, as `make up` serves by default: the SDK and the load
generator trust the local CA the launcher made; a plaintext client or one trusting
another CA is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.stack import Stack
from infra.local.tls import local_tls

pytestmark = pytest.mark.timeout(180)
ALICE = (("authorization", "Bearer demo-key-alice"),)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(order_replicas=1, tls_dir=str(tmp_path_factory.mktemp("tls"))) as running:
        yield running


def submit(stub) -> t.Order:
    return stub.SubmitOrder(pb.SubmitOrderRequest(
        client_order_id=f"tls-{time.time_ns()}", symbol="AAPL", side=t.SIDE_BUY, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=t.TIME_IN_FORCE_GTC, price=10, quantity=1), metadata=ALICE, timeout=10).order


def test_the_sdk_trades_over_tls_trusting_the_local_ca(stack):
    from bourse_client import Client, OrderStatus, Side

    with Client(stack.target, api_key="demo-key-alice", ca_file=stack.ca_file) as client:
        order = client.submit_order("AAPL", Side.BUY, quantity=2, price=11)
    assert order.status == OrderStatus.NEW


def test_plaintext_and_an_untrusted_ca_are_refused(stack, tmp_path):
    with grpc.insecure_channel(stack.target) as channel, pytest.raises(grpc.RpcError) as caught:
        submit(order_grpc.OrderServiceStub(channel))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    other = local_tls(tmp_path / "other").ca.read_bytes()
    with grpc.secure_channel(stack.target, grpc.ssl_channel_credentials(other)) as channel, \
            pytest.raises(grpc.RpcError) as caught:
        submit(order_grpc.OrderServiceStub(channel))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.secure_channel(stack.target, grpc.ssl_channel_credentials(open(stack.ca_file, "rb").read())) as channel:
        assert submit(order_grpc.OrderServiceStub(channel)).status == t.ORDER_STATUS_NEW


def test_the_load_generator_runs_over_tls(stack, tmp_path):
    report = tmp_path / "loadgen.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadgen.main", "--target", stack.target, "--ca-file", stack.ca_file,
         "--clients", "2", "--duration", "2", "--api-keys", "demo-key-alice", "--report", str(report),
         "--plot", "", "--no-progress", *sum((["--db-url", u] for u in stack.db_urls(driver="postgresql")), [])],
        env=stack.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["orders_acked"] > 0 and result["durability"]["lost"] == 0
