"""The matching process over a real socket, with a real persistence process and Redis."""

import json
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
import redis
from bourse.matching.v1 import matching_service_pb2 as m
from bourse.matching.v1 import matching_service_pb2_grpc as m_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.servers import Redis, free_port, wait_serving
from services.common.errors import reason_of

pytestmark = pytest.mark.timeout(120)
BUY, SELL = t.SIDE_BUY, t.SIDE_SELL


def new(order_id, side, price, qty, account=1, symbol="AAPL"):
    return m.Command(new_order=m.NewOrder(
        order_id=order_id, account_id=account, client_order_id=f"c{order_id}", symbol=symbol, side=side,
        order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=price, quantity=qty,
    ))


def start(module, env, log_path):
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "BOURSE_DRAIN_MS": "0", **env}
    return subprocess.Popen([sys.executable, "-m", module], env=full_env, stdout=log, stderr=log)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def stack(tmp_path):
    redis_server = Redis().start()
    processes = []
    common = {"BOURSE_SYMBOLS": "AAPL GOOG MSFT", "BOURSE_SHARD_RANGES": "A-G,H-O,P-Z"}
    persistence_addr = f"127.0.0.1:{free_port()}"
    matching_addr = f"127.0.0.1:{free_port()}"
    matching_env = {**common, "BOURSE_SHARD_INDEX": "0", "BOURSE_MATCHING_ADDR": matching_addr,
                    "BOURSE_PERSISTENCE_ADDR": persistence_addr, "BOURSE_REDIS_URL": redis_server.url}

    def start_matching(**env):
        log = tmp_path / "matching.log"
        process = start("services.matching.main", {**matching_env, **env}, log)
        processes.append(process)
        wait_serving(matching_addr, process, log)
        return process

    try:
        log = tmp_path / "persistence.log"
        urls = ",".join(f"sqlite:///{tmp_path}/db{i}.sqlite" for i in range(3))
        persistence = start("services.persistence.main",
                            {**common, "BOURSE_DB_URLS": urls, "BOURSE_PERSISTENCE_ADDR": persistence_addr}, log)
        processes.append(persistence)
        wait_serving(persistence_addr, persistence, log)
        yield matching_addr, start_matching, redis.Redis.from_url(redis_server.url), persistence
    finally:
        for process in processes:
            stop(process)
        redis_server.stop()


def _assert(condition: bool) -> None:
    assert condition


def eventually(check, timeout: float = 5.0):
    """Market data is published just after the ack: poll until `check` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, TypeError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_execute_batch_over_grpc_publishes_to_redis_and_survives_a_restart(stack):
    address, start_matching, r, persistence = stack
    process = start_matching()
    with grpc.insecure_channel(address) as channel:
        stub = m_grpc.MatchingServiceStub(channel)
        response = stub.ExecuteBatch(m.ExecuteBatchRequest(commands=[
            new(1, SELL, 101, 10, account=1), new(2, SELL, 102, 5, account=1), new(3, BUY, 101, 4, account=2),
        ]), timeout=10)
        rest, _, take = response.results
        assert rest.order.status == t.ORDER_STATUS_NEW
        assert (take.order.status, take.order.filled_quantity) == (t.ORDER_STATUS_FILLED, 4)
        [fill] = take.order.fills

        def published():
            book = json.loads(r.get("md:book:AAPL"))
            assert (book["bids"], book["asks"]) == ([], [[101, 6, 1], [102, 5, 1]])
            assert book["time"].endswith("+00:00")
            [trade] = [json.loads(x) for x in r.lrange("md:trades:AAPL", 0, -1)]
            return trade

        trade = eventually(published)
        assert {k: trade[k] for k in ("trade_id", "price", "quantity", "aggressor_side", "maker_order_id",
                                      "taker_order_id")} == {
            "trade_id": fill.trade_id, "price": 101, "quantity": 4, "aggressor_side": BUY,
            "maker_order_id": 1, "taker_order_id": 3}
        assert json.loads(r.get("md:book:GOOG"))["bids"] == []  # every book is published at startup

        with pytest.raises(grpc.RpcError) as caught:
            stub.ExecuteBatch(m.ExecuteBatchRequest(commands=[new(9, BUY, 1, 1, symbol="MSFT")]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "MSFT" in caught.value.details() and reason_of(caught.value) == "INVALID_SYMBOL"

    stop(process)
    r.delete("md:book:AAPL")
    start_matching()
    with grpc.insecure_channel(address) as channel:
        stub = m_grpc.MatchingServiceStub(channel)
        # The restart republished the rebuilt book.
        eventually(lambda: _assert(json.loads(r.get("md:book:AAPL"))["asks"] == [[101, 6, 1], [102, 5, 1]]))
        [result] = stub.ExecuteBatch(m.ExecuteBatchRequest(commands=[new(4, BUY, 102, 8, account=3)]), timeout=10).results
        assert [(f.price, f.quantity) for f in result.order.fills] == [(101, 6), (102, 2)]
        eventually(lambda: _assert(len(r.lrange("md:trades:AAPL", 0, -1)) == 3))
        assert json.loads(r.lindex("md:trades:AAPL", 0))["price"] == 102  # newest first

        stop(persistence)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ExecuteBatch(m.ExecuteBatchRequest(commands=[new(5, BUY, 90, 1)]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(caught.value) == "PERSISTENCE_UNAVAILABLE"


def test_one_process_serves_several_shards_each_committing_its_part(stack):
    """Shards 0 (A-G: AAPL) and 1 (H-O: MSFT) in one process: a batch mixing their
    symbols is split, each shard sequences and journals its part, the answers come back
    in the batch's order; a symbol no served shard owns refuses the whole batch."""
    address, start_matching, _, _ = stack
    start_matching(BOURSE_SHARD_INDEX="0,1")
    with grpc.insecure_channel(address) as channel:
        stub = m_grpc.MatchingServiceStub(channel)
        results = stub.ExecuteBatch(m.ExecuteBatchRequest(commands=[
            new(1, SELL, 101, 10, symbol="MSFT"), new(2, SELL, 50, 3), new(3, BUY, 101, 4, account=2, symbol="MSFT"),
        ]), timeout=10).results
        assert [(r.order.order_id, r.order.symbol) for r in results] == [(1, "MSFT"), (2, "AAPL"), (3, "MSFT")]
        assert results[2].order.filled_quantity == 4 and results[1].order.status == t.ORDER_STATUS_NEW
        status = {i: stub.GetShardStatus(m.GetShardStatusRequest(shard_index=i), timeout=5) for i in (0, 1)}
        assert (status[0].sequence, status[1].sequence) == (1, 2)
        assert set(status[1].symbols) == {"MSFT"} and stub.GetShardStatus(m.GetShardStatusRequest()).shard_index == 0
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetShardStatus(m.GetShardStatusRequest(shard_index=2), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as caught:
            stub.ExecuteBatch(m.ExecuteBatchRequest(commands=[new(4, BUY, 1, 1), new(5, BUY, 1, 1, symbol="ZM")]),
                              timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.GetShardStatus(m.GetShardStatusRequest(shard_index=0), timeout=5).sequence == 1
