"""API keys are data: an operator creates, lists and revokes them with `python -m
infra.admin keys`; every order-service replica honours a revocation within seconds, on
new calls and on open streams; a replica without a key source does not start."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import grpc
import psycopg
import pytest
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.servers import free_port
from infra.local.stack import Stack
from services.common.errors import reason_of

pytestmark = pytest.mark.timeout(180)
ALICE = (("authorization", "Bearer demo-key-alice"),)


@pytest.fixture(scope="module")
def stack():
    with Stack(order_replicas=2) as running:
        yield running


def admin(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.admin", "keys", "--persistence", stack.persistence_address,
                           *args], capture_output=True, text=True, timeout=60, env=stack.env())


def create_key(stack, account: int, label: str) -> tuple[str, str]:
    """(key_id, key) as the operator's command prints them."""
    done = admin(stack, "create", "--account", str(account), "--label", label)
    assert done.returncode == 0, done.stderr
    first, *_, key = done.stdout.strip().splitlines()
    return first.split()[1], key


def submit(channel, key: str, price: int = 10) -> t.Order:
    return order_grpc.OrderServiceStub(channel).SubmitOrder(pb.SubmitOrderRequest(
        client_order_id=f"keys-{time.time_ns()}", symbol="AAPL", side=t.SIDE_BUY, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=t.TIME_IN_FORCE_GTC, price=price, quantity=1),
        metadata=(("authorization", f"Bearer {key}"),), timeout=10).order


def refused(channel, key: str) -> bool:
    try:
        submit(channel, key)
        return False
    except grpc.RpcError as error:
        assert (error.code(), reason_of(error)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")
        return True


def test_a_created_key_trades_and_its_revocation_reaches_every_replica_within_seconds(stack):
    key_id, key = create_key(stack, 77, "e2e desk")
    assert key.startswith("bk_") and key_id == hashlib.sha256(key.encode()).hexdigest()[:16]
    with psycopg.connect(stack.db_urls(driver="postgresql")[0]) as conn:
        stored = conn.execute("SELECT key_hash, account_id, label FROM api_keys WHERE key_id = %s",
                              (key_id,)).fetchone()
    assert (bytes(stored[0]), stored[1], stored[2]) == (hashlib.sha256(key.encode()).digest(), 77, "e2e desk")

    replicas = [grpc.insecure_channel(address) for address in stack.order_addresses]
    try:
        # A new key is in every replica's table within a refresh.
        deadline = time.monotonic() + 5
        while any(refused(channel, key) for channel in replicas):
            assert time.monotonic() < deadline, "a replica never learnt the new key"
            time.sleep(0.2)
        with grpc.insecure_channel(stack.target) as envoy:
            assert submit(envoy, key).account_id == 77

        listed = admin(stack, "list")
        assert listed.returncode == 0 and key_id in listed.stdout and "e2e desk" in listed.stdout

        revoked_at = time.monotonic()
        done = admin(stack, "revoke", key_id)
        assert done.returncode == 0 and "revoked" in done.stdout, done.stderr
        waiting = set(range(len(replicas)))
        while waiting:
            waiting -= {i for i in waiting if refused(replicas[i], key)}
            assert time.monotonic() - revoked_at < 5, f"replicas {waiting} still accept a revoked key"
            time.sleep(0.1)
        assert key_id not in admin(stack, "list").stdout
        assert key_id in admin(stack, "list", "--all").stdout
        with grpc.insecure_channel(stack.target) as envoy:
            assert submit(envoy, "demo-key-alice").account_id == 1  # other keys unaffected
    finally:
        for channel in replicas:
            channel.close()


def test_a_revoked_key_ends_its_open_streams(stack):
    key_id, key = create_key(stack, 78, "streams")
    time.sleep(1.5)  # a refresh: every replica knows the key
    with grpc.insecure_channel(stack.target) as envoy:
        stream = md_grpc.MarketDataServiceStub(envoy).SubscribeMarketData(
            md_pb2.SubscribeMarketDataRequest(symbol="AAPL", depth=5),
            metadata=(("authorization", f"Bearer {key}"),), timeout=30)
        assert next(stream).HasField("book")
        assert admin(stack, "revoke", key_id).returncode == 0
        time.sleep(1.5)
        submit(envoy, "demo-key-alice", price=11)  # a book change: the stream's next message
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stream:
                pass
        assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")


def test_bad_operator_input_is_refused_plainly(stack):
    done = admin(stack, "create", "--account", "0")
    assert done.returncode == 1 and "INVALID_ARGUMENT" in done.stderr and "account_id" in done.stderr
    done = admin(stack, "revoke", "0123456789abcdef")
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr


def order_replica(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOURSE_")}
    environment.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), BOURSE_STARTUP_TIMEOUT_MS="1000",
                       BOURSE_SHARD_RANGES="A-Z",
                       BOURSE_ORDER_ADDR=f"127.0.0.1:{free_port()}", **env)
    return subprocess.run([sys.executable, "-m", "services.order.main"], env=environment, capture_output=True,
                          text=True, timeout=60)


def test_an_order_replica_does_not_start_without_a_key_source():
    nobody = f"127.0.0.1:{free_port()}"
    done = order_replica(BOURSE_PERSISTENCE_ADDR=nobody)
    assert done.returncode != 0 and "no key source" in done.stderr
    done = order_replica(BOURSE_PERSISTENCE_ADDR=nobody, BOURSE_API_KEYS="k=1")
    assert done.returncode != 0 and "BOURSE_API_KEYS is no longer read" in done.stderr


@pytest.mark.parametrize("length", [300, 20_000, 200_000])
def test_an_absurd_api_key_is_refused_and_the_connection_carries_on(stack, length):
    # A header field over 64 KiB once ended the whole connection at Envoy (GOAWAY), which
    # every call on it saw as a retryable UNAVAILABLE.
    with grpc.insecure_channel(stack.target) as envoy:
        assert submit(envoy, "demo-key-alice").account_id == 1
        with pytest.raises(grpc.RpcError) as caught:
            submit(envoy, "k" * length)
        assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")
        assert "longer than 256" in caught.value.details()
        assert submit(envoy, "demo-key-alice").account_id == 1
