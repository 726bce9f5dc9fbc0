"""Order-entry sessions (OrderEntry streams) through Envoy: answers per command as the
unary calls give them, one symbol's answers in order, flow control, heartbeats,
cancel-on-disconnect, idempotency across sessions, and the SDK's session surviving a
replica that drains or dies with nothing lost or doubled."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import grpc
import psycopg
import pytest
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t

from infra.local.stack import Stack
from services.common.errors import reason_of

pytestmark = pytest.mark.timeout(240)
ALICE = (("authorization", "Bearer demo-key-alice"),)
WINDOW = 8


@pytest.fixture(scope="module")
def stack():
    with Stack(order_replicas=2, service_env={"BOURSE_ORDER_ENTRY_WINDOW": str(WINDOW),
                                              "BOURSE_ORDER_ENTRY_HEARTBEAT_MS": "500"}) as running:
        yield running


@pytest.fixture(scope="module")
def channel(stack):
    with grpc.insecure_channel(stack.target) as ch:
        yield ch


def coid() -> str:
    return "oe-" + uuid.uuid4().hex[:12]


def submit(correlation_id, symbol="AAPL", price=10, side=t.SIDE_BUY, client_order_id=None, quantity=1,
           tif=t.TIME_IN_FORCE_GTC):
    return pb.OrderEntryCommand(correlation_id=correlation_id, submit=pb.SubmitOrderRequest(
        client_order_id=client_order_id or coid(), symbol=symbol, side=side, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=tif, price=price, quantity=quantity))


def results_of(channel, requests, metadata=ALICE, want=None, timeout=20):
    """Sends `requests` on one session, half-closes, and returns every result in arrival
    order (or the first `want` ones, then cancels)."""
    call = order_grpc.OrderServiceStub(channel).OrderEntry(iter(requests), metadata=metadata, timeout=timeout)
    results = []
    for response in call:
        results.extend(response.results)
        if want is not None and len(results) >= want:
            call.cancel()
            break
    return results


def bad_fields(result) -> list[str]:
    """The fields a result's error names in its google.rpc.BadRequest detail."""
    from google.rpc import error_details_pb2

    for detail in result.error.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return [violation.field for violation in bad.field_violations]
    return []


def code_and_reason(result):
    from google.rpc import error_details_pb2

    reason = ""
    for detail in result.error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason = info.reason
    return grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == result.error.code)), reason


def test_every_command_is_answered_as_the_unary_call_would_and_one_symbols_answers_keep_order(channel):
    sell = coid()
    request = pb.OrderEntryRequest(commands=[
        submit(1, "AAPL", 50, side=t.SIDE_SELL, client_order_id=sell),
        submit(2, "AAPL", -5),                      # refused: bad price
        pb.OrderEntryCommand(correlation_id=3),     # no command at all
        submit(4, "MSFT", 11),
        submit(5, "AAPL", 50),                      # meets 1, the same account's: after it
        submit(6, "NOPE", 10),                      # unknown symbol
    ])
    results = {r.correlation_id: r for r in results_of(channel, [request])}
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert results[1].order.status == t.ORDER_STATUS_NEW and results[1].order.client_order_id == sell
    assert code_and_reason(results[2]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE")
    assert code_and_reason(results[3]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_COMMAND")
    assert (bad_fields(results[2]), bad_fields(results[3]), bad_fields(results[6])) == (["price"], ["command"], ["symbol"])
    assert results[4].order.status == t.ORDER_STATUS_NEW
    assert (results[5].order.status, results[5].order.reason) == (t.ORDER_STATUS_CANCELLED, "SELF_TRADE_PREVENTED")
    assert code_and_reason(results[6])[0] == grpc.StatusCode.INVALID_ARGUMENT
    # A resting order, then cancels and modifies of it in the same message: in order.
    [placed] = results_of(channel, [pb.OrderEntryRequest(commands=[submit(1, "AAPL", 12)])])
    order_id = placed.order.order_id
    answers = results_of(channel, [pb.OrderEntryRequest(commands=[
        pb.OrderEntryCommand(correlation_id=7, modify=pb.ModifyOrderRequest(order_id=order_id, symbol="AAPL",
                                                                            price=13, quantity=2)),
        pb.OrderEntryCommand(correlation_id=8, cancel=pb.CancelOrderRequest(order_id=order_id, symbol="AAPL")),
        pb.OrderEntryCommand(correlation_id=9, cancel=pb.CancelOrderRequest(order_id=order_id, symbol="AAPL")),
    ])])
    assert [a.correlation_id for a in answers] == [7, 8, 9]
    assert (answers[0].order.price, answers[0].order.quantity) == (13, 2)
    assert answers[1].order.status == t.ORDER_STATUS_CANCELLED
    assert code_and_reason(answers[2])[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_commands_beyond_the_window_are_refused_at_once_not_stalled(channel):
    request = pb.OrderEntryRequest(commands=[submit(i, "AAPL", 9) for i in range(1, 21)])
    answers = results_of(channel, [request])
    assert [a.correlation_id for a in answers] == list(range(1, 21))  # one symbol: in order
    refused = [a for a in answers if a.HasField("error")]
    # The first WINDOW run; the next ones are told at once. (Answers held for the symbol's
    # order count too: at 2 x WINDOW held the session stops reading until some leave.)
    assert all(a.order.status == t.ORDER_STATUS_NEW for a in answers[:WINDOW])
    assert WINDOW <= len(refused) <= 20 - WINDOW
    assert all(code_and_reason(a) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_IN_FLIGHT") for a in refused)


def test_a_quiet_session_gets_heartbeats_and_a_bad_key_is_refused(channel):
    def quiet():
        yield pb.OrderEntryRequest()
        time.sleep(1.8)

    call = order_grpc.OrderServiceStub(channel).OrderEntry(quiet(), metadata=ALICE, timeout=10)
    heartbeats = [response for response in call]
    assert len(heartbeats) >= 2 and not any(h.results for h in heartbeats)
    with pytest.raises(grpc.RpcError) as caught:
        results_of(channel, [pb.OrderEntryRequest(commands=[submit(1)])],
                   metadata=(("authorization", "Bearer nope"),))
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")


def test_a_retry_on_another_session_is_answered_with_the_original(channel):
    key = coid()
    [first] = results_of(channel, [pb.OrderEntryRequest(commands=[submit(1, "ZM", 10, client_order_id=key)])])
    [again] = results_of(channel, [pb.OrderEntryRequest(commands=[submit(1, "ZM", 10, client_order_id=key)])])
    assert again.replayed and again.order.order_id == first.order.order_id


def order_status(channel, order_id):
    return order_grpc.OrderServiceStub(channel).GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=ALICE,
                                                          timeout=10).order.status


@pytest.mark.parametrize("opted_in, clean_close, cancelled", [(True, False, True), (False, False, False),
                                                              (True, True, False), ("half-close", False, True)])
def test_cancel_on_disconnect_cancels_the_sessions_working_orders(channel, opted_in, clean_close, cancelled):
    answered = threading.Event()
    release = threading.Event()

    half_close_only = opted_in == "half-close"  # ends its stream without saying close: not clean

    def requests():
        yield pb.OrderEntryRequest(options=pb.OrderEntryOptions(cancel_on_disconnect=bool(opted_in)),
                                   commands=[submit(1, "MSFT", 7)])
        answered.wait(10)
        if clean_close:
            yield pb.OrderEntryRequest(close=True)
        elif not half_close_only:
            release.wait(10)

    call = order_grpc.OrderServiceStub(channel).OrderEntry(requests(), metadata=ALICE, timeout=30)
    order_id = None
    for response in call:
        if response.results:
            order_id = response.results[0].order.order_id
            answered.set()
            if not clean_close and not half_close_only:
                call.cancel()  # the client goes away without closing
                break
    release.set()
    assert order_id
    deadline = time.monotonic() + 10
    while cancelled and order_status(channel, order_id) != t.ORDER_STATUS_CANCELLED:
        assert time.monotonic() < deadline, "the working order was not cancelled on disconnect"
        time.sleep(0.2)
    time.sleep(0.5 if not cancelled else 0)
    expected = t.ORDER_STATUS_CANCELLED if cancelled else t.ORDER_STATUS_NEW
    assert order_status(channel, order_id) == expected


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_sdk_session_survives_a_replica_that_stops_with_nothing_lost_or_doubled(stack, sig):
    from bourse_client.order_entry import OrderEntrySession
    from bourse_sdk.bourse.order.v1 import SubmitOrderRequest
    from bourse_sdk.bourse.type.v1 import OrderType, Side, TimeInForce

    run = uuid.uuid4().hex[:8]
    count = 400

    async def trade():
        async with OrderEntrySession(stack.target, api_key="demo-key-bob", window=WINDOW) as session:
            async def one(i):
                await asyncio.sleep(i * 0.01)  # spread over 4 s, while each replica stops in turn
                return await session.submit(SubmitOrderRequest(
                    client_order_id=f"{run}-{i}", symbol="IBM", side=Side.BUY, order_type=OrderType.LIMIT,
                    time_in_force=TimeInForce.GTC, price=5, quantity=1))

            async def stop_a_replica():
                # Both in turn, so that the session's own replica is one of them. SIGTERM:
                # it drains (answers what it holds, ends its streams UNAVAILABLE); SIGKILL:
                # its streams break mid-flight.
                for name in ("order-0", "order-1"):
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(stack.kill, name, sig)
                    await asyncio.to_thread(stack.restart, name)

            orders, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(count))), stop_a_replica())
            return orders, session.reconnects

    orders, reconnects = asyncio.run(trade())
    assert reconnects >= 1
    assert len({o.order_id for o in orders}) == count  # every command answered, each its own order
    stored = 0
    for url in stack.db_urls(driver="postgresql"):
        with psycopg.connect(url) as conn:
            stored += conn.execute("SELECT count(*) FROM orders WHERE client_order_id LIKE %s",
                                   (f"{run}-%",)).fetchone()[0]
    assert stored == count, f"{stored} orders stored for {count} submits ({reconnects} reconnects)"


def test_a_client_that_never_reads_its_answers_cannot_grow_the_server(stack):
    import psutil

    # The replicas and Envoy: what a client could make the exchange hold.
    replicas = [psutil.Process(pid) for name, pid in stack.pids().items() if name.startswith(("order-", "envoy"))]
    before = sum(p.memory_info().rss for p in replicas)
    request = pb.OrderEntryRequest(commands=[submit(i, "NOPE", 10) for i in range(500)])  # refused, cheaply
    sent = 0

    async def flood():
        nonlocal sent
        async with grpc.aio.insecure_channel(stack.target) as channel_:
            call = order_grpc.OrderServiceStub(channel_).OrderEntry(metadata=ALICE)
            try:
                async with asyncio.timeout(8):
                    while True:  # never reads an answer
                        await call.write(request)
                        sent += 500
            except TimeoutError:
                pass
            call.cancel()

    asyncio.run(flood())
    grown = sum(p.memory_info().rss for p in replicas) - before
    # The session holds at most its window of answers and stops reading beyond; what the
    # client's gRPC library takes off the socket without the application reading it is
    # the client's memory (here it took hundreds of thousands of answers), not the server's.
    assert sent > 10_000  # the flood did happen
    assert grown < 64 * 2**20, f"the replicas and Envoy grew {grown / 2**20:.0f} MiB for {sent} commands"
    with grpc.insecure_channel(stack.target) as fresh:
        assert results_of(fresh, [pb.OrderEntryRequest(commands=[submit(1, "AAPL", 3)])])[0].order.order_id


def test_grpcurl_holds_a_session_through_envoy(stack):
    """A standard client nobody here wrote, speaking the bidirectional stream by reflection."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    grpcurl = str(Path(sys.executable).parent / "grpcurl")
    key = coid()
    messages = [
        {"options": {"cancelOnDisconnect": True},
         "commands": [{"correlationId": "1", "submit": {"clientOrderId": key, "symbol": "ZM", "side": "SIDE_SELL",
                                                         "orderType": "ORDER_TYPE_LIMIT",
                                                         "timeInForce": "TIME_IN_FORCE_GTC", "price": "900",
                                                         "quantity": "2"}}]},
        {"commands": [{"correlationId": "2", "submit": {"clientOrderId": coid(), "symbol": "ZM", "price": "1"}}],
         "close": True},
    ]
    done = subprocess.run(
        [grpcurl, "-plaintext", "-H", "authorization: Bearer demo-key-carol", "-d", "@", stack.target,
         "bourse.order.v1.OrderService/OrderEntry"],
        input="\n".join(json.dumps(m) for m in messages), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    decoder, text, results = json.JSONDecoder(), done.stdout.strip(), []
    while text:
        message, end = decoder.raw_decode(text)
        results += message.get("results", [])
        text = text[end:].strip()
    by_id = {r["correlation_id"]: r for r in results}  # grpcurl prints the proto's field names
    assert by_id["1"]["order"]["client_order_id"] == key and by_id["1"]["order"]["status"] == "ORDER_STATUS_NEW"
    assert by_id["2"]["error"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert by_id["2"]["error"]["details"][0]["reason"] == "INVALID_SIDE"


def test_a_request_that_does_not_parse_ends_the_stream_invalid_argument_after_the_rest(channel):
    raw = channel.stream_stream("/bourse.order.v1.OrderService/OrderEntry", request_serializer=lambda b: b,
                                response_deserializer=pb.OrderEntryResponse.FromString)
    good = pb.OrderEntryRequest(commands=[submit(1, "AAPL", 4)]).SerializeToString()
    answered = []
    with pytest.raises(grpc.RpcError) as caught:
        for response in raw(iter([good, b"\xff\xff\xff\xff not a message", good]), metadata=ALICE, timeout=20):
            answered += [r.correlation_id for r in response.results]
    assert answered == [1]  # what came before is answered; the stream then ends, loudly
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")


def test_the_load_generator_drives_order_entry_sessions(stack, tmp_path):
    """`make demo MODE=stream`'s path: sessions each carrying a window of closed-loop
    clients, every acked order durable, each command answered before its timeout."""
    report = tmp_path / "loadgen.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadgen.main", "--target", stack.target, "--sessions", "2", "--window", str(WINDOW),
         "--duration", "2", "--api-keys", "demo-key-alice,demo-key-bob", "--report", str(report), "--plot", "",
         "--no-progress", *sum((["--db-url", u] for u in stack.db_urls(driver="postgresql")), [])],
        env=stack.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["orders_acked"] > 0 and result["durability"]["lost"] == 0
    assert result["errors"]["total"] == 0, result["errors"]
    assert result["stream_messages"]["sent"] > 0

