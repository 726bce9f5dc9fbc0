"""The floor benchmark's servers answer real gRPC calls: the echo at once, the relay
through its batched stream to the backend; and the floor's Envoy in front of them."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as order_pb2
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2

from infra.local.servers import free_port, wait_serving
from loadgen.floor import Floor

pytestmark = pytest.mark.timeout(120)

SUBMIT = order_pb2.SubmitOrderRequest(
    client_order_id="floor-1", symbol="AAPL", side=types_pb2.SIDE_BUY, order_type=types_pb2.ORDER_TYPE_LIMIT,
    time_in_force=types_pb2.TIME_IN_FORCE_GTC, price=1234, quantity=7)


@pytest.fixture
def spawn(tmp_path):
    """Starts `python -m loadgen.floor_servers MODE --address A ...` until SERVING."""
    env = Floor("echo", {}, tmp_path).env()  # the env the benchmark gives its servers
    started = []

    def start(mode: str, *args: str) -> str:
        address = f"127.0.0.1:{free_port()}"
        log = tmp_path / f"{mode}-{len(started)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "loadgen.floor_servers", mode, "--address", address,
                                        *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append(process)
        wait_serving(address, process, log, timeout=30)
        return address

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=15)


def exchange(address: str) -> None:
    """A submit, a modify and a cancel of it, each answered with a plausible order."""
    with grpc.insecure_channel(address) as channel:
        stub = order_grpc.OrderServiceStub(channel)
        order = stub.SubmitOrder(SUBMIT, timeout=10).order
        assert order.order_id > 0 and order.status == types_pb2.ORDER_STATUS_NEW
        assert (order.client_order_id, order.symbol, order.side, order.price, order.quantity, order.leaves_quantity) \
            == ("floor-1", "AAPL", types_pb2.SIDE_BUY, 1234, 7, 7)
        assert stub.SubmitOrder(SUBMIT, timeout=10).order.order_id != order.order_id  # a fresh id each time
        modified = stub.ModifyOrder(order_pb2.ModifyOrderRequest(order_id=order.order_id, symbol="AAPL", price=1235,
                                                                 quantity=9), timeout=10).order
        assert (modified.order_id, modified.price, modified.quantity, modified.status) \
            == (order.order_id, 1235, 9, types_pb2.ORDER_STATUS_NEW)
        cancelled = stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.order_id, symbol="AAPL"),
                                     timeout=10).order
        assert (cancelled.order_id, cancelled.status) == (order.order_id, types_pb2.ORDER_STATUS_CANCELLED)


def test_echo_answers(spawn):
    exchange(spawn("echo", "--node", "3"))


@pytest.mark.parametrize("mode", ["echo", "relay"])
def test_a_session_answers_each_request_in_one_response(spawn, mode):
    if mode == "echo":
        address = spawn("echo", "--node", "5")
    else:  # through the batcher to the backend, as the order service's sessions go
        address = spawn("relay-front", "--node", "5", "--backend", spawn("relay-back"))
    requests = [
        order_pb2.OrderEntryRequest(commands=[
            order_pb2.OrderEntryCommand(correlation_id=1, submit=SUBMIT),
            order_pb2.OrderEntryCommand(correlation_id=2, cancel=order_pb2.CancelOrderRequest(order_id=9, symbol="AAPL")),
        ]),
        order_pb2.OrderEntryRequest(commands=[order_pb2.OrderEntryCommand(
            correlation_id=3, modify=order_pb2.ModifyOrderRequest(order_id=9, symbol="AAPL", price=5, quantity=2))],
            close=True),
    ]
    with grpc.insecure_channel(address) as channel:
        responses = list(order_grpc.OrderServiceStub(channel).OrderEntry(iter(requests), timeout=10))
    responses.sort(key=lambda response: response.results[0].correlation_id)  # the relay answers as they finish
    assert [[r.correlation_id for r in response.results] for response in responses] == [[1, 2], [3]]
    submitted, cancelled, modified = (result.order for response in responses for result in response.results)
    assert (submitted.client_order_id, submitted.status, submitted.leaves_quantity) == ("floor-1", types_pb2.ORDER_STATUS_NEW, 7)
    assert (cancelled.order_id, cancelled.status) == (9, types_pb2.ORDER_STATUS_CANCELLED)
    assert (modified.order_id, modified.price, modified.quantity) == (9, 5, 2)


def test_relay_answers_through_its_backend(spawn):
    backend = spawn("relay-back")
    exchange(spawn("relay-front", "--node", "4", "--backend", backend))


def test_relay_behind_envoy(tmp_path):
    with Floor("relay", {}, tmp_path / "relay") as floor:
        assert set(floor.pids()) == {"relay_backend", "order-0", "order-1", "envoy"}
        exchange(floor.target)
    assert not floor.processes


def test_journal_floor_commits_each_command_in_its_shards_database_before_answering(tmp_path):
    import psycopg
    from bourse.matching.v1 import matching_service_pb2 as matching_pb2

    with Floor("journal", {}, tmp_path / "journal") as floor:
        assert set(floor.pids()) == {"relay_backend", "order-0", "order-1", "envoy", "postgres"}
        exchange(floor.target)  # AAPL: shard 0 of A-G,H-O,P-Z
        with grpc.insecure_channel(floor.target) as channel:
            order_grpc.OrderServiceStub(channel).SubmitOrder(
                order_pb2.SubmitOrderRequest(client_order_id="floor-2", symbol="MSFT", side=types_pb2.SIDE_SELL,
                                             order_type=types_pb2.ORDER_TYPE_LIMIT, price=5, quantity=1), timeout=10)
        journals = []
        for shard in range(3):
            url = floor.postgres.url(f"bourse_shard{shard}", driver="postgresql")
            with psycopg.connect(url) as conn:
                journals.append(conn.execute(
                    "SELECT matching_shard, sequence, command FROM journal ORDER BY sequence").fetchall())
    kinds = [[matching_pb2.Command.FromString(row[2]).WhichOneof("command") for row in rows] for rows in journals]
    assert kinds == [["new_order", "new_order", "modify_order", "cancel_order"], ["new_order"], []]
    assert [[(row[0], row[1]) for row in rows] for rows in journals[:2]] == [[(0, 1), (0, 2), (0, 3), (0, 4)], [(1, 1)]]


def test_an_ab_setting_runs_the_stack_with_it_beside_the_plain_stack_and_pairs_their_rounds():
    from loadgen import floor as bench

    args = bench.parse_args(["--variants", "stack", "--ab-setting", "BOURSE_METRICS_ADDR=127.0.0.1:0"])
    assert args.variant_list == ["stack", bench.AB] and args.ab_settings == {"BOURSE_METRICS_ADDR": "127.0.0.1:0"}
    with pytest.raises(SystemExit):
        bench.parse_args(["--variants", "echo", "--ab-setting", "X=1"])

    def run(orders_per_s, us_per_order, order_s, envoy_s):  # CPU seconds over 1,000 orders
        return {"orders_per_s": orders_per_s, "orders_acked": 1000, "cpu": {
            "us_per_order": us_per_order, "seconds": {"order-0": order_s, "envoy": envoy_s}}}

    pairs = bench.paired({"stack": [run(100, 1000, 0.5, 0.2), run(50, 2000, 1.0, 0.4), run(80, 1000, 0.5, 0.2)],
                          bench.AB: [run(110, 1010, 0.55, 0.2), run(40, 2100, 1.1, 0.44), run(80, 1020, 0.5, 0.25)]})
    assert [round(r["cpu_per_order"], 3) for r in pairs["rounds"]] == [1.01, 1.05, 1.02]
    assert round(pairs["cpu_per_order"], 3) == 1.02 and round(pairs["orders_per_s"], 3) == 1.0
    # The services' CPU over the controls' (the machine's drift between the two runs).
    assert [round(r["services_over_controls"], 3) for r in pairs["rounds"]] == [1.1, 1.0, 0.8]
    assert round(pairs["services_over_controls"], 3) == 1.0


def test_half_rate_runs_the_floors_it_is_asked_for():
    from loadgen import half_rate

    assert half_rate.parse_args([]).floor == []
    assert half_rate.parse_args(["--floor"]).floor == ["echo"]
    assert half_rate.parse_args(["--floor", "journal", "--floor"]).floor == ["journal", "echo"]
    with pytest.raises(SystemExit):
        half_rate.parse_args(["--floor", "stack"])


def test_half_rate_measures_a_stack_with_other_order_replicas_beside_the_plain_one(monkeypatch, tmp_path, capsys):
    from loadgen import half_rate

    runs = []

    def fake_run_once(variant, settings, run_args, workdir, extra=(), hops=False, replicas=2):
        runs.append((replicas, run_args.rate))
        slower = replicas == 1  # one replica: a lower maximum, a lower p99 at its half
        return {"orders_per_s": 900.0 if slower else 1000.0, "calls_per_s": 1000.0 if slower else 1100.0,
                "latency": {"all": {"p50_ms": 5.0, "p99_ms": 20.0 if slower else 80.0, "p99_9_ms": 90.0}},
                "orders_acked": 1000, "loadgen_cpu_s": 0.01, "cpu": {"seconds": {"matching-0": 0.05}},
                "durability": {"lost": 0, "inconsistent": 0}, "duration_s": 4.0,
                # the last second is partial: left out
                "orders_per_second": {"slowest_ms": [30.0, 210.0, 40.0, 35.0, 500.0]}}

    monkeypatch.setattr(half_rate, "run_once", fake_run_once)
    report = tmp_path / "half.json"
    assert half_rate.main(["--rounds", "2", "--order-replicas", "2", "--ab-order-replicas", "1",
                           "--report", str(report)]) == 0
    # Each round: the maximum, then the open loop at half of it, for each stack; which
    # stack goes first alternates.
    assert runs == [(1, 0), (1, 500), (2, 0), (2, 550), (2, 0), (2, 550), (1, 0), (1, 500)]
    out = capsys.readouterr().out
    assert "with {'order replicas': 1}: met in 2 of 2 rounds" in out
    assert "max 0.90x, 0.90x; p50 at half 1.00x, 1.00x; p99 at half 0.25x, 0.25x" in out
    assert "slowest ack per second: median 38 ms, worst 210 (second 1), 40 (second 2), 35 (second 3)" in out
    with pytest.raises(SystemExit):
        half_rate.parse_args(["--ab-order-replicas", "0"])
