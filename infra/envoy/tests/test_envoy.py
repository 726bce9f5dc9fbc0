"""Generated Envoy configs are valid, and real Envoy balances and fails over gRPC calls."""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bourse.order.v1 import order_service_pb2, order_service_pb2_grpc
from bourse.type.v1 import types_pb2
from infra.envoy import config
from infra.envoy.binary import envoy_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def validate(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warn"],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("count", [1, 3])
def test_generated_config_is_valid(tmp_path, count):
    backends = [("127.0.0.1", 50051 + i) for i in range(count)]
    path = tmp_path / "envoy.json"
    assert config.main(["--listen-port", "18080", "--admin-port", "19901", "--access-log", "-",
                        *sum((["--backend", f"{h}:{p}"] for h, p in backends), []), "-o", str(path)]) == 0
    data = json.loads(path.read_text())
    calls, sessions = data["static_resources"]["clusters"]
    # Calls by least requests; order-entry sessions, placed once each, round robin (a
    # burst of sessions opening together all see idle replicas).
    assert (calls["name"], calls["lb_policy"]) == (config.CLUSTER, "LEAST_REQUEST")
    assert (sessions["name"], sessions["lb_policy"]) == (config.SESSION_CLUSTER, "ROUND_ROBIN")
    for cluster in (calls, sessions):
        assert len(cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]) == count
    [manager] = [f["typed_config"] for f in data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
                 if f["name"] == "envoy.filters.network.http_connection_manager"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert [(r["match"], r["route"]["cluster"]) for r in routes] == [
        ({"path": "/bourse.order.v1.OrderService/OrderEntry"}, config.SESSION_CLUSTER),
        ({"prefix": "/"}, config.CLUSTER)]
    assert routes[0]["route"]["retry_policy"] == routes[1]["route"]["retry_policy"]
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_hostname_backend_and_file_log_are_valid(tmp_path):
    path = tmp_path / "envoy.json"
    path.write_text(config.dumps(config.render(8080, 9901, [("order-0", 50051), ("localhost", 50052)],
                                               str(tmp_path / "access.log"))))
    assert json.loads(path.read_text())["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_health_path_answers_and_drains(tmp_path):
    """health_path: Envoy answers the probe path itself, 503 once drained via admin."""
    assert not any(f["name"] == "envoy.filters.http.health_check" for f in _filters(config.render(8080, 9901, [("order", 1)])))
    listen, admin = free_port(), free_port()
    path = tmp_path / "envoy.json"
    path.write_text(config.dumps(config.render(listen, admin, [("order.bourse.svc", 50051)], listen_host="127.0.0.1",
                                               health_path="/healthz")))
    assert _filters(json.loads(path.read_text()))[0]["name"] == "envoy.filters.http.health_check"
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(ValueError):
        config.render(8080, 9901, [("order", 1)], health_path="healthz")
    with open(tmp_path / "envoy.err", "w") as err:
        proxy = subprocess.Popen([envoy_binary(), "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
                                  "-l", "warn"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while _http_status(f"http://127.0.0.1:{listen}/healthz") != 200:
            assert time.monotonic() < deadline, (tmp_path / "envoy.err").read_text()
            time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{admin}/healthcheck/fail", method="POST"),
                               timeout=2).read()
        assert _http_status(f"http://127.0.0.1:{listen}/healthz") == 503
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def test_the_stats_listener_serves_prometheus_stats_and_nothing_else_of_the_admin(tmp_path):
    listen, admin, stats = free_port(), free_port(), free_port()
    path = tmp_path / "envoy.json"
    path.write_text(config.dumps(config.render(listen, admin, [("127.0.0.1", 1)], listen_host="127.0.0.1",
                                               stats_port=stats)))
    with open(tmp_path / "envoy.err", "w") as err:
        proxy = subprocess.Popen([envoy_binary(), "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
                                  "-l", "warn"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while _http_status(f"http://127.0.0.1:{stats}/metrics") != 200:
            assert time.monotonic() < deadline, (tmp_path / "envoy.err").read_text()
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{stats}/metrics", timeout=2) as response:
            text = response.read().decode()
        assert "# TYPE envoy_server_live gauge" in text and "envoy_cluster_upstream_rq_total" in text
        for admin_only in ("/stats", "/stats/prometheus", "/quitquitquit", "/healthcheck/fail", "/config_dump"):
            assert _http_status(f"http://127.0.0.1:{stats}{admin_only}") == 404, admin_only
        assert proxy.poll() is None
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def _filters(bootstrap: dict) -> list[dict]:
    return config.http_filters(bootstrap)


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_bad_backend_is_refused():
    with pytest.raises(ValueError):
        config.render(8080, 9901, [])
    with pytest.raises(SystemExit):
        config.main(["--backend", "nohost"])


class EchoOrders(order_service_pb2_grpc.OrderServiceServicer):
    """Answers SubmitOrder with the request as a NEW order, tagging which backend served it."""

    def __init__(self, index: int, hits: collections.Counter):
        self.index = index
        self.hits = hits

    async def SubmitOrder(self, request, context):
        self.hits[self.index] += 1
        order = types_pb2.Order(
            order_id=self.index * 1_000_000 + self.hits[self.index],
            client_order_id=request.client_order_id, symbol=request.symbol, side=request.side,
            order_type=request.order_type, time_in_force=request.time_in_force, price=request.price,
            quantity=request.quantity, leaves_quantity=request.quantity,
            status=types_pb2.ORDER_STATUS_NEW,
        )
        return order_service_pb2.SubmitOrderResponse(order=order)


async def start_backend(index: int, hits) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    order_service_pb2_grpc.add_OrderServiceServicer_to_server(EchoOrders(index, hits), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    await checker.set(config.HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def healthy_hosts(admin_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters?format=json", timeout=2) as r:
        data = json.load(r)
    statuses = [
        host.get("health_status", {})
        for cluster in data.get("cluster_statuses", []) if cluster["name"] == config.CLUSTER
        for host in cluster.get("host_statuses", [])
    ]
    return sum(1 for s in statuses if s.get("eds_health_status") == "HEALTHY" and len(s) == 1)


async def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def submit_many(stub, count: int, tag: str) -> list[order_service_pb2.SubmitOrderResponse]:
    async def one(n):
        request = order_service_pb2.SubmitOrderRequest(
            client_order_id=f"{tag}-{n}", symbol="AAPL", side=types_pb2.SIDE_BUY,
            order_type=types_pb2.ORDER_TYPE_LIMIT, time_in_force=types_pb2.TIME_IN_FORCE_GTC,
            price=100, quantity=1,
        )
        return await stub.SubmitOrder(request, timeout=5)
    return await asyncio.gather(*(one(n) for n in range(count)))


@pytest.mark.timeout(45)
def test_envoy_balances_and_survives_backend_loss(tmp_path):
    async def scenario():
        hits: collections.Counter = collections.Counter()
        (server0, port0), (server1, port1) = [await start_backend(i, hits) for i in range(2)]
        listen, admin = free_port(), free_port()
        path = tmp_path / "envoy.json"
        path.write_text(config.dumps(config.render(
            listen, admin, [("127.0.0.1", port0), ("127.0.0.1", port1)], str(tmp_path / "access.log"),
            listen_host="127.0.0.1")))
        # Envoy sets PR_SET_PDEATHSIG, so it also dies with this test process.
        proxy = subprocess.Popen(
            [envoy_binary(), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "-l", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "envoy.err", "w"),
        )
        try:
            await wait_until(lambda: healthy_hosts(admin) == 2, 15, "both backends healthy")
            async with grpc.aio.insecure_channel(f"127.0.0.1:{listen}") as channel:
                stub = order_service_pb2_grpc.OrderServiceStub(channel)
                answers = await submit_many(stub, 60, "before")
                assert all(a.order.client_order_id == f"before-{n}" for n, a in enumerate(answers))
                assert hits[0] > 0 and hits[1] > 0, hits

                await server1.stop(None)  # abrupt: connections reset, port closed
                # Right after the loss, retries on connect-failure/reset reach backend 0.
                answers = await submit_many(stub, 40, "during")
                assert len(answers) == 40
                await wait_until(lambda: healthy_hosts(admin) == 1, 10, "the dead backend ejected")
                before = hits[0]
                answers = await submit_many(stub, 40, "after")
                assert all(a.order.order_id < 1_000_000 for a in answers)
                assert hits[0] - before == 40
            log = (tmp_path / "access.log").read_text()
            assert "grpc=OK" in log and "grpc=Unavailable" not in log
        finally:
            proxy.terminate()
            try:
                proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy.kill()
            await server0.stop(None)
            await server1.stop(None)

    asyncio.run(scenario())

