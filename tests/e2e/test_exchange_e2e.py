"""The whole exchange through Envoy, driven as a client would drive it.

One stack (PostgreSQL with three shard databases, Redis, persistence, three matching
shards, two order-service replicas, Envoy) serves every test in this module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import psycopg
import pytest
import redis
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from infra.local.stack import Stack
from services.common.errors import bad_fields_of, reason_of

ALICE = [("authorization", "Bearer demo-key-alice")]
BOB = [("authorization", "Bearer demo-key-bob")]
CAROL = [("authorization", "Bearer demo-key-carol")]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack():
    # One matching process per shard, as Kubernetes runs them (the demo's one process for
    # all shards is what the fault tests run).
    with Stack(order_replicas=2, matching_processes=3, metrics=True) as running:
        yield running


@pytest.fixture(scope="module")
def channel(stack):
    with grpc.insecure_channel(stack.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def orders(channel):
    return order_grpc.OrderServiceStub(channel)


def coid() -> str:
    return "e2e-" + uuid.uuid4().hex[:12]


def limit(symbol, side, price, quantity, tif=t.TIME_IN_FORCE_GTC, client_order_id=None):
    return pb.SubmitOrderRequest(
        client_order_id=client_order_id or coid(), symbol=symbol, side=side, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=tif, price=price, quantity=quantity,
    )


def rows(stack, shard: int, sql: str, *params):
    with psycopg.connect(stack.db_urls(driver="postgresql")[shard]) as conn:
        return conn.execute(sql, params).fetchall()


def test_crossing_orders_of_two_accounts_trade_at_the_resting_price(stack, orders):
    sell = orders.SubmitOrder(limit("AAPL", t.SIDE_SELL, 100, 10), metadata=ALICE).order
    assert sell.status == t.ORDER_STATUS_NEW and sell.leaves_quantity == 10
    buy = orders.SubmitOrder(limit("AAPL", t.SIDE_BUY, 101, 4), metadata=BOB).order
    assert buy.status == t.ORDER_STATUS_FILLED
    assert [(f.price, f.quantity, f.maker) for f in buy.fills] == [(100, 4, False)]

    seen_by_alice = orders.GetOrder(pb.GetOrderRequest(order_id=sell.order_id), metadata=ALICE).order
    assert (seen_by_alice.status, seen_by_alice.filled_quantity, seen_by_alice.leaves_quantity) == (
        t.ORDER_STATUS_PARTIALLY_FILLED, 4, 6)
    assert [(f.price, f.quantity, f.maker) for f in seen_by_alice.fills] == [(100, 4, True)]

    # Durable: both orders and the trade are rows on AAPL's shard (A-G = shard 0).
    stored = dict(rows(stack, 0, "SELECT order_id, status FROM orders WHERE order_id = ANY(%s)",
                       [sell.order_id, buy.order_id]))
    assert stored == {sell.order_id: t.ORDER_STATUS_PARTIALLY_FILLED, buy.order_id: t.ORDER_STATUS_FILLED}
    trades = rows(stack, 0, "SELECT price, quantity, maker_order_id, taker_order_id FROM trades "
                            "WHERE taker_order_id = %s", buy.order_id)
    assert trades == [(100, 4, sell.order_id, buy.order_id)]

    # Cancel the rest; another account can neither see nor cancel it.
    with pytest.raises(grpc.RpcError) as foreign:
        orders.CancelOrder(pb.CancelOrderRequest(order_id=sell.order_id, symbol="AAPL"), metadata=BOB)
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as hidden:
        orders.GetOrder(pb.GetOrderRequest(order_id=sell.order_id), metadata=BOB)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    cancelled = orders.CancelOrder(pb.CancelOrderRequest(order_id=sell.order_id, symbol="AAPL"), metadata=ALICE).order
    assert (cancelled.status, cancelled.filled_quantity, cancelled.leaves_quantity) == (t.ORDER_STATUS_CANCELLED, 4, 0)
    with pytest.raises(grpc.RpcError) as again:
        orders.CancelOrder(pb.CancelOrderRequest(order_id=sell.order_id, symbol="AAPL"), metadata=ALICE)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """A /metrics page as {(sample name, sorted labels): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as page:
        text = page.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_order_replicas_count_their_market_data_subscribers(stack, channel):
    def subscribers():
        return sum(scrape(url).get(("bourse_subscribers", (("stream", "market_data"),)), 0)
                   for name, url in stack.metrics_addresses().items() if name.startswith("order-"))

    before = subscribers()
    stream = md_grpc.MarketDataServiceStub(channel).SubscribeMarketData(
        md_pb2.SubscribeMarketDataRequest(symbol="MSFT", depth=5), metadata=ALICE, timeout=30)
    next(stream)  # the book as it is now: the subscription is in place
    try:
        assert subscribers() == before + 1
    finally:
        stream.cancel()
    deadline = time.monotonic() + 10
    while subscribers() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subscribers() == before


def test_every_process_serves_its_metrics_and_they_count_what_happened(stack, orders):
    """services/common/metrics.py: calls by method and code on the order replicas, group
    commits and the shards' sequences on the matching processes, Envoy's own beside them."""
    before = {name: scrape(url) for name, url in stack.metrics_addresses().items()}
    assert set(before) >= {"persistence", "matching-0", "matching-1", "matching-2", "order-0", "order-1", "envoy"}
    orders.SubmitOrder(limit("AAPL", t.SIDE_BUY, 5, 1), metadata=ALICE)
    with pytest.raises(grpc.RpcError):
        orders.SubmitOrder(limit("AAPL", t.SIDE_BUY, 0, 1), metadata=ALICE)  # INVALID_ARGUMENT
    after = {name: scrape(url) for name, url in stack.metrics_addresses().items()}

    def calls(name, method, code):
        key = ("bourse_rpc_duration_seconds_count", (("grpc_code", code), ("grpc_method", method),
                                                      ("grpc_service", "bourse.order.v1.OrderService")))
        return after[name].get(key, 0) - before[name].get(key, 0)

    assert sum(calls(f"order-{i}", "SubmitOrder", "OK") for i in range(2)) == 1
    # The accepted order went in a batch to matching-0 (AAPL's shard) from one of the replicas.
    target = stack.matching_addresses[0]
    batches = ("bourse_order_batch_commands_count", (("target", target),))
    assert sum(after[f"order-{i}"].get(batches, 0) - before[f"order-{i}"].get(batches, 0) for i in range(2)) >= 1
    assert sum(calls(f"order-{i}", "SubmitOrder", "INVALID_ARGUMENT") for i in range(2)) == 1
    # AAPL is shard 0, served by matching-0: the order went through one more group commit.
    commits = ("bourse_group_commit_commands_count", (("shard", "0"),))
    assert after["matching-0"][commits] > before["matching-0"].get(commits, 0)
    sequence = after["matching-0"][("bourse_shard_sequence", (("shard", "0"),))]
    assert sequence >= 1 and after["matching-0"][("bourse_shard_durable_sequence", (("shard", "0"),))] == sequence
    assert any(name.startswith("envoy_cluster_upstream_rq") for name, _ in after["envoy"])
    # The order rests at 5 in AAPL's book, read from the engine when scraped.
    assert after["matching-0"][("bourse_book_levels", (("side", "buy"), ("symbol", "AAPL")))] >= 1
    assert after["matching-0"][("bourse_book_resting_orders", (("symbol", "AAPL"),))] >= 1
    # Persistence reads what the store holds per shard (every few seconds): the journal
    # reaches the shard's durable sequence, and a restart would replay what is past the
    # newest snapshot.
    shard0 = (("shard", "0"),)
    deadline = time.monotonic() + 15
    while (held := scrape(stack.metrics_addresses()["persistence"])).get(("bourse_journal_sequence", shard0),
                                                                         0) < sequence:
        assert time.monotonic() < deadline, "the journal gauge did not reach the shard's sequence"
        time.sleep(0.5)
    snapshot = after["matching-0"][("bourse_shard_snapshot_sequence", shard0)]
    assert held[("bourse_replay_lag_commands", shard0)] == held[("bourse_journal_sequence", shard0)] - snapshot
    assert held[("bourse_snapshot_age_seconds", shard0)] >= 0


def test_top_of_book_is_published_to_redis_and_served(stack, channel, orders):
    orders.SubmitOrder(limit("MSFT", t.SIDE_BUY, 250, 3), metadata=ALICE)
    orders.SubmitOrder(limit("MSFT", t.SIDE_SELL, 260, 7), metadata=BOB)
    client = redis.Redis.from_url(stack.redis.url)
    deadline = time.monotonic() + 5  # published just after the commit, off the ack's path
    while True:
        raw = client.get("md:book:MSFT")
        book = json.loads(raw) if raw else {"bids": [], "asks": []}
        if (book["bids"] and book["asks"]) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert book["bids"][0][:2] == [250, 3] and book["asks"][0][:2] == [260, 7]
    served = md_grpc.MarketDataServiceStub(channel).GetBook(md_pb2.GetBookRequest(symbol="MSFT", depth=5),
                                                            metadata=BOB)
    assert (served.bids[0].price, served.bids[0].quantity) == (250, 3)
    assert (served.asks[0].price, served.asks[0].quantity) == (260, 7)


def test_a_retry_returns_the_original_order_on_any_replica(stack, orders):
    request = limit("TSLA", t.SIDE_BUY, 50, 2)
    first = orders.SubmitOrder(request, metadata=ALICE)
    assert not first.replayed
    for address in stack.order_addresses:  # each replica directly, bypassing Envoy
        with grpc.insecure_channel(address) as direct:
            retry = order_grpc.OrderServiceStub(direct).SubmitOrder(request, metadata=ALICE)
        assert retry.replayed and retry.order.order_id == first.order.order_id
    count = rows(stack, 2, "SELECT count(*) FROM orders WHERE account_id = 1 AND client_order_id = %s",
                 request.client_order_id)
    assert count == [(1,)]


def test_orders_are_listed_newest_first_page_by_page(orders):
    placed = [orders.SubmitOrder(limit("IBM", t.SIDE_BUY, 10 + i, 1), metadata=BOB).order.order_id for i in range(5)]
    seen, token = [], ""
    while True:
        page = orders.ListOrders(pb.ListOrdersRequest(page_size=2, page_token=token, symbol="IBM"), metadata=BOB)
        assert len(page.orders) <= 2
        seen += [o.order_id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert seen[:5] == sorted(placed, reverse=True)


@pytest.mark.parametrize("metadata, reason", [([], "MISSING_API_KEY"),
                                              ([("authorization", "Bearer nope")], "INVALID_API_KEY")])
def test_calls_without_a_valid_key_are_unauthenticated(orders, metadata, reason):
    with pytest.raises(grpc.RpcError) as caught:
        orders.SubmitOrder(limit("AAPL", t.SIDE_BUY, 1, 1), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == reason


@pytest.mark.parametrize("method", ["/bourse.order.v1.OrderService/SubmitOrder",
                                    "/bourse.marketdata.v1.MarketDataService/SubscribeMarketData"])
def test_bytes_that_are_not_the_methods_message_are_invalid_argument(channel, method):
    """The abuse probe: corrupt protobuf bytes were answered UNKNOWN, with a traceback
    logged for each."""
    with pytest.raises(grpc.RpcError) as caught:
        call = channel.unary_unary(method) if "Submit" in method else channel.unary_stream(method)
        result = call(b"\xff\xff\xff\xff\x0f", metadata=ALICE, timeout=10)
        if "Subscribe" in method:
            next(result)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert reason_of(caught.value) == "MALFORMED_REQUEST"
    assert caught.value.details().startswith("request: not a valid message for " + method)
    assert bad_fields_of(caught.value) == [""]  # the request as a whole


def test_an_oversized_request_is_refused_unparsed_before_authentication(orders):
    """The abuse probe sent a 60 MB SubmitOrder without a key: it was parsed, and the
    replica grew from 100 to 390 MB. The client API takes requests up to 64 KiB."""
    request = limit("AAPL", t.SIDE_BUY, 1, 1)
    request.client_order_id = "x" * (100 * 1024)
    with pytest.raises(grpc.RpcError) as caught:
        orders.SubmitOrder(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in caught.value.details(), caught.value.details()


@pytest.mark.parametrize(
    "change, field",
    [({"quantity": 0}, "quantity"), ({"quantity": -5}, "quantity"), ({"price": 0}, "price"),
     ({"order_type": t.ORDER_TYPE_MARKET, "time_in_force": t.TIME_IN_FORCE_IOC}, "price"),
     ({"side": t.SIDE_UNSPECIFIED}, "side"), ({"symbol": "NOPE"}, "symbol"),
     ({"price": 2**62}, "price"), ({"client_order_id": ""}, "client_order_id")],
)
def test_bad_input_is_refused_naming_the_field_and_stores_nothing(stack, orders, change, field):
    request = limit("AAPL", t.SIDE_BUY, 100, 1)
    for name, value in change.items():
        setattr(request, name, value)
    with pytest.raises(grpc.RpcError) as caught:
        orders.SubmitOrder(request, metadata=ALICE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + ":")
    assert bad_fields_of(caught.value) == [field]  # a google.rpc.BadRequest naming it
    if request.client_order_id:
        stored = [rows(stack, s, "SELECT 1 FROM orders WHERE client_order_id = %s", request.client_order_id)
                  for s in range(3)]
        assert stored == [[], [], []]


def test_reflection_lists_the_public_services_through_envoy(channel):
    names = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"bourse.order.v1.OrderService", "bourse.marketdata.v1.MarketDataService",
            "grpc.health.v1.Health"} <= names


def test_grpcurl_lists_services_and_places_an_order_through_envoy(stack):
    """A standard client nobody here wrote: grpcurl, driven purely by reflection."""
    grpcurl = str(Path(sys.executable).parent / "grpcurl")
    listed = subprocess.run([grpcurl, "-plaintext", stack.target, "list"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.split()
    assert "bourse.order.v1.OrderService" in listed
    body = json.dumps({"client_order_id": coid(), "symbol": "NVDA", "side": "SIDE_SELL",
                       "order_type": "ORDER_TYPE_LIMIT", "time_in_force": "TIME_IN_FORCE_GTC",
                       "price": "900", "quantity": "3"})
    placed = subprocess.run(
        [grpcurl, "-plaintext", "-H", "authorization: Bearer demo-key-carol", "-d", body, stack.target,
         "bourse.order.v1.OrderService/SubmitOrder"], capture_output=True, text=True, check=True, timeout=30)
    order = json.loads(placed.stdout)["order"]
    assert order["status"] == "ORDER_STATUS_NEW" and order["leaves_quantity"] == "3", placed.stdout


def test_an_account_never_trades_with_itself(orders):
    resting = orders.SubmitOrder(limit("HD", t.SIDE_SELL, 300, 5), metadata=ALICE).order
    own = orders.SubmitOrder(limit("HD", t.SIDE_BUY, 301, 2), metadata=ALICE).order
    assert (own.status, own.filled_quantity, own.reason) == (t.ORDER_STATUS_CANCELLED, 0, "SELF_TRADE_PREVENTED")
    still = orders.GetOrder(pb.GetOrderRequest(order_id=resting.order_id), metadata=ALICE).order
    assert (still.status, still.leaves_quantity) == (t.ORDER_STATUS_NEW, 5)
    other = orders.SubmitOrder(limit("HD", t.SIDE_BUY, 301, 2), metadata=BOB).order
    assert [(f.price, f.quantity) for f in other.fills] == [(300, 2)]


def test_a_client_order_id_reused_for_another_order_is_refused(orders):
    request = limit("JPM", t.SIDE_BUY, 140, 2)
    orders.SubmitOrder(request, metadata=BOB)
    request.price = 141
    with pytest.raises(grpc.RpcError) as caught:
        orders.SubmitOrder(request, metadata=BOB)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(caught.value) == "CLIENT_ORDER_ID_REUSED"


def test_a_retry_finds_the_original_after_its_shard_restarts_and_keys_are_per_symbol(stack, orders):
    """The key lives with the symbol's shard: a SIGKILLed shard rebuilds it from its
    journal, so the retry is still the original. The same key on another symbol (of the
    same shard: KO and INTC are H-O) is a new order."""
    request = limit("KO", t.SIDE_BUY, 60, 1)
    first = orders.SubmitOrder(request, metadata=ALICE)
    stack.kill(stack.matching_process_of(1))
    stack.restart(stack.matching_process_of(1))
    deadline = time.monotonic() + 30
    while True:  # the order service reopens its stream to the shard on the next batch
        try:
            retry = orders.SubmitOrder(request, metadata=ALICE, timeout=10)
            break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert retry.replayed and retry.order.order_id == first.order.order_id
    request.symbol = "INTC"
    other = orders.SubmitOrder(request, metadata=ALICE)
    assert not other.replayed and other.order.order_id != first.order.order_id


def test_modify_changes_price_and_quantity_durably_and_keeps_priority_only_when_reduced(stack, orders):
    # NFLX (H-O = shard 1), which no other test trades. Alice rests SELL 5 then Bob SELL 5
    # at 5011; Alice cuts hers to 3 (keeps priority), Bob raises his to 8 (back of queue,
    # behind nobody else here). Carol's BUY 4 takes Alice's 3 first, then 1 from Bob.
    first = orders.SubmitOrder(limit("NFLX", t.SIDE_SELL, 5011, 5), metadata=ALICE).order
    second = orders.SubmitOrder(limit("NFLX", t.SIDE_SELL, 5011, 5), metadata=BOB).order
    reduced = orders.ModifyOrder(pb.ModifyOrderRequest(order_id=first.order_id, symbol="NFLX", price=5011, quantity=3),
                                 metadata=ALICE).order
    assert (reduced.quantity, reduced.leaves_quantity, reduced.status) == (3, 3, t.ORDER_STATUS_NEW)
    raised = orders.ModifyOrder(pb.ModifyOrderRequest(order_id=second.order_id, symbol="NFLX", price=5011,
                                                      quantity=8), metadata=BOB).order
    assert raised.leaves_quantity == 8
    taker = orders.SubmitOrder(limit("NFLX", t.SIDE_BUY, 5011, 4), metadata=CAROL).order
    assert [f.quantity for f in taker.fills] == [3, 1]
    stored = dict((oid, (price, quantity, filled, leaves)) for oid, price, quantity, filled, leaves in rows(
        stack, 1, "SELECT order_id, price, quantity, filled_quantity, leaves_quantity FROM orders "
                  "WHERE order_id = ANY(%s)", [first.order_id, second.order_id]))
    assert stored == {first.order_id: (5011, 3, 3, 0), second.order_id: (5011, 8, 1, 7)}

    # Bob reprices the rest to cross Alice's new bid: it trades at once, as the taker.
    bid = orders.SubmitOrder(limit("NFLX", t.SIDE_BUY, 5009, 2), metadata=ALICE).order
    crossed = orders.ModifyOrder(pb.ModifyOrderRequest(order_id=second.order_id, symbol="NFLX", price=5009,
                                                       quantity=8), metadata=BOB).order
    assert [(f.price, f.quantity, f.maker) for f in crossed.fills] == [(5009, 2, False)]
    assert (crossed.price, crossed.filled_quantity, crossed.leaves_quantity) == (5009, 3, 5)
    assert orders.GetOrder(pb.GetOrderRequest(order_id=bid.order_id), metadata=ALICE).order.status == (
        t.ORDER_STATUS_FILLED)
    orders.CancelOrder(pb.CancelOrderRequest(order_id=second.order_id, symbol="NFLX"), metadata=BOB)


@pytest.mark.parametrize(
    "who, change, code, reason",
    [("bob", {}, grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND"),
     ("alice", {"quantity": 2}, grpc.StatusCode.FAILED_PRECONDITION, "QUANTITY_NOT_ABOVE_FILLED"),
     ("alice", {"price": 0}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE"),
     ("alice", {"order_id": 1}, grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")],
)
def test_a_modify_that_cannot_apply_is_refused_and_changes_nothing(stack, orders, who, change, code, reason):
    # Alice: SELL 6 @ 7013 on JNJ, 2 of it filled by Bob.
    order = orders.SubmitOrder(limit("JNJ", t.SIDE_SELL, 7013, 6), metadata=ALICE).order
    orders.SubmitOrder(limit("JNJ", t.SIDE_BUY, 7013, 2), metadata=BOB)
    request = pb.ModifyOrderRequest(order_id=order.order_id, symbol="JNJ", price=7013, quantity=5)
    for name, value in change.items():
        setattr(request, name, value)
    with pytest.raises(grpc.RpcError) as caught:
        orders.ModifyOrder(request, metadata=ALICE if who == "alice" else BOB)
    assert (caught.value.code(), reason_of(caught.value)) == (code, reason), caught.value.details()
    after = orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=ALICE).order
    assert (after.price, after.quantity, after.leaves_quantity) == (7013, 6, 4)
    orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id, symbol="JNJ"), metadata=ALICE)
    with pytest.raises(grpc.RpcError) as done:
        orders.ModifyOrder(pb.ModifyOrderRequest(order_id=order.order_id, symbol="JNJ", price=7013, quantity=5),
                           metadata=ALICE)
    assert (done.value.code(), reason_of(done.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_DONE")


def test_a_post_only_order_that_would_trade_is_rejected_and_trades_nothing(orders):
    ask = orders.SubmitOrder(limit("DIS", t.SIDE_SELL, 9017, 5), metadata=ALICE).order
    request = limit("DIS", t.SIDE_BUY, 9017, 5)
    request.post_only = True
    refused = orders.SubmitOrder(request, metadata=BOB).order
    assert (refused.status, refused.reason, refused.filled_quantity) == (
        t.ORDER_STATUS_REJECTED, "WOULD_TAKE_LIQUIDITY", 0)
    resting = limit("DIS", t.SIDE_BUY, 9016, 5)
    resting.post_only = True
    assert orders.SubmitOrder(resting, metadata=BOB).order.status == t.ORDER_STATUS_NEW
    assert orders.GetOrder(pb.GetOrderRequest(order_id=ask.order_id), metadata=ALICE).order.leaves_quantity == 5


def test_cancel_resting_self_trade_prevention_cancels_the_accounts_own_resting_order(orders):
    # AMZN, which no other test trades: Alice's ask 3 @ 4021 rests; her bid 5 @ 4021 with
    # CANCEL_RESTING cancels that ask (SELF_TRADE_PREVENTED) and rests all 5 itself.
    ask = orders.SubmitOrder(limit("AMZN", t.SIDE_SELL, 4021, 3), metadata=ALICE).order
    request = limit("AMZN", t.SIDE_BUY, 4021, 5)
    request.self_trade_prevention = t.SELF_TRADE_PREVENTION_CANCEL_RESTING
    bid = orders.SubmitOrder(request, metadata=ALICE).order
    assert (bid.status, bid.filled_quantity, bid.leaves_quantity) == (t.ORDER_STATUS_NEW, 0, 5)
    cancelled = orders.GetOrder(pb.GetOrderRequest(order_id=ask.order_id), metadata=ALICE).order
    assert (cancelled.status, cancelled.reason) == (t.ORDER_STATUS_CANCELLED, "SELF_TRADE_PREVENTED")
    orders.CancelOrder(pb.CancelOrderRequest(order_id=bid.order_id, symbol="AMZN"), metadata=ALICE)


def test_market_data_streams_the_book_then_each_change_and_every_trade(channel, orders):
    # META, which no other test trades. The stream opens with the (empty) book; Alice's
    # ask then shows in a new book; Bob's crossing bid prints a trade and empties it.
    market_data = md_grpc.MarketDataServiceStub(channel)
    stream = market_data.SubscribeMarketData(md_pb2.SubscribeMarketDataRequest(symbol="META", depth=5),
                                             metadata=BOB, timeout=30)
    first = next(stream)
    assert first.symbol == "META" and first.WhichOneof("update") == "book" and not first.book.asks

    def until(predicate):
        for message in stream:  # bounded by the call's deadline
            if predicate(message):
                return message
        raise AssertionError("the stream ended")

    ask = orders.SubmitOrder(limit("META", t.SIDE_SELL, 6001, 2), metadata=ALICE).order
    book = until(lambda m: m.WhichOneof("update") == "book" and m.book.asks)
    assert [(level.price, level.quantity, level.order_count) for level in book.book.asks] == [(6001, 2, 1)]
    bid = orders.SubmitOrder(limit("META", t.SIDE_BUY, 6001, 2), metadata=BOB).order
    trade = until(lambda m: m.WhichOneof("update") == "trade").trade
    assert (trade.price, trade.quantity, trade.maker_order_id, trade.taker_order_id, trade.aggressor_side) == (
        6001, 2, ask.order_id, bid.order_id, t.SIDE_BUY)
    assert trade.maker_account_id == trade.taker_account_id == 0  # accounts are never published
    until(lambda m: m.WhichOneof("update") == "book" and not m.book.asks)
    stream.cancel()


def test_a_market_data_subscription_with_bad_input_is_refused(channel):
    market_data = md_grpc.MarketDataServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        next(market_data.SubscribeMarketData(md_pb2.SubscribeMarketDataRequest(symbol="NOPE"), metadata=BOB,
                                             timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        next(market_data.SubscribeMarketData(md_pb2.SubscribeMarketDataRequest(symbol="META"), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_account_streams_its_own_order_updates_and_resumes_after_a_disconnect(orders):
    # MA, which no other test trades. Dave subscribes to MA; his ask rests (NEW) and he
    # disconnects. Carol's bid fills it meanwhile. Resuming from the last token he saw,
    # Dave gets the fill (FILLED, a maker fill) and nothing of Carol's.
    dave = [("authorization", "Bearer demo-key-dave")]
    stream = orders.SubscribeOrders(pb.SubscribeOrdersRequest(symbol="MA"), metadata=dave, timeout=30)
    first = next(stream)
    assert not first.HasField("order") and first.resume_token  # subscribed: from here on
    ask = orders.SubmitOrder(limit("MA", t.SIDE_SELL, 3033, 4), metadata=dave).order

    def until(stream, status):
        for message in stream:
            if message.HasField("order"):
                assert message.order.account_id == 4, "another account's order on Dave's stream"
                if message.order.order_id == ask.order_id and message.order.status == status:
                    return message
        raise AssertionError("the stream ended")

    seen = until(stream, t.ORDER_STATUS_NEW)
    assert seen.order.leaves_quantity == 4
    stream.cancel()
    bid = orders.SubmitOrder(limit("MA", t.SIDE_BUY, 3033, 4), metadata=CAROL).order
    resumed = orders.SubscribeOrders(pb.SubscribeOrdersRequest(symbol="MA", resume_after=seen.resume_token),
                                     metadata=dave, timeout=30)
    filled = until(resumed, t.ORDER_STATUS_FILLED).order
    assert (filled.filled_quantity, filled.leaves_quantity) == (4, 0)
    assert [(f.price, f.quantity, f.maker) for f in filled.fills] == [(3033, 4, True)]
    assert bid.fills[0].trade_id == filled.fills[0].trade_id
    resumed.cancel()
    for token, code in (("nonsense", grpc.StatusCode.INVALID_ARGUMENT),
                        ("0123456789abcdef:1-0", grpc.StatusCode.OUT_OF_RANGE)):  # another store's epoch
        with pytest.raises(grpc.RpcError) as refused:
            next(orders.SubscribeOrders(pb.SubscribeOrdersRequest(resume_after=token), metadata=dave, timeout=10))
        assert refused.value.code() == code, refused.value.details()


def test_the_python_sdk_submits_modifies_and_streams_through_envoy(stack):
    from bourse_client import Client, OrderStatus, Side
    from bourse_client.errors import ClientOrderIdReused, InvalidArgument, OrderDone

    with Client(stack.target, api_key="demo-key-alice") as client:
        updates = client.subscribe_orders(symbol="NFLX")
        assert next(updates).order is None  # subscribed (streams carry the API key too)
        order = client.submit_order("NFLX", Side.BUY, quantity=3, price=2001, client_order_id=coid())
        assert order.status == OrderStatus.NEW
        modified = client.modify_order(order.order_id, "NFLX", price=2000, quantity=5)
        assert (modified.price, modified.quantity) == (2000, 5)
        seen = next(u.order for u in updates if u.order is not None and u.order.price == 2000)
        assert (seen.order_id, seen.leaves_quantity) == (order.order_id, 5)
        assert updates.resume_token  # where a new subscription would go on from
        updates.close()
        # The exchange's refusals arrive as the SDK's typed exceptions.
        with pytest.raises(InvalidArgument) as refused:
            client.submit_order("NFLX", Side.BUY, quantity=1, price=-1)
        assert (refused.value.field, refused.value.reason) == ("price", "INVALID_PRICE")
        with pytest.raises(ClientOrderIdReused):
            client.submit_order("NFLX", Side.SELL, quantity=1, price=2500, client_order_id=order.client_order_id)
        client.cancel_order(order.order_id, "NFLX")
        with pytest.raises(OrderDone):
            client.cancel_order(order.order_id, "NFLX")


def test_streams_that_reach_the_clients_deadline_end_deadline_exceeded(stack, channel):
    # Envoy once enforced the deadline too, and a stream it ended first reached the
    # client as a reset: INTERNAL. Many streams, with deadlines spread over a second.
    import concurrent.futures

    def until_deadline(i):
        timeout = 1.0 + i / 40
        try:
            if i % 2:
                stream = order_grpc.OrderServiceStub(channel).SubscribeOrders(
                    pb.SubscribeOrdersRequest(), metadata=ALICE, timeout=timeout)
            else:
                stream = md_grpc.MarketDataServiceStub(channel).SubscribeMarketData(
                    md_pb2.SubscribeMarketDataRequest(symbol="AAPL"), metadata=ALICE, timeout=timeout)
            for _ in stream:
                pass
        except grpc.RpcError as error:
            return error.code()
        return None

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(until_deadline, range(40)))
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 40
