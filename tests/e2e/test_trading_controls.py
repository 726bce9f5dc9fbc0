"""Halts, mass cancels and pre-trade limits through the whole exchange: the operator's command (infra.admin)
to the matching shard, the client's calls through Envoy (raw gRPC and the SDK), the
market data and the stored orders."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from bourse.marketdata.v1 import market_data_service_pb2 as md_pb2
from bourse.marketdata.v1 import market_data_service_pb2_grpc as md_grpc
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t

from infra.admin.__main__ import main as admin
from infra.local.stack import Stack
from services.common.errors import reason_of

ALICE = [("authorization", "Bearer demo-key-alice")]
BOB = [("authorization", "Bearer demo-key-bob")]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack():
    with Stack(order_replicas=2) as running:  # three shards in one matching process, as the demo
        yield running


@pytest.fixture(scope="module")
def channel(stack):
    with grpc.insecure_channel(stack.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def orders(channel):
    return order_grpc.OrderServiceStub(channel)


def limit(symbol, side, price, quantity, client_order_id=None):
    return pb.SubmitOrderRequest(
        client_order_id=client_order_id or uuid.uuid4().hex, symbol=symbol, side=side,
        order_type=t.ORDER_TYPE_LIMIT, time_in_force=t.TIME_IN_FORCE_GTC, price=price, quantity=quantity)


def shard_statuses(stack) -> list:
    from bourse.matching.v1 import matching_service_pb2 as m
    from bourse.matching.v1 import matching_service_pb2_grpc as m_grpc

    statuses = []
    for index, address in enumerate(stack.matching_addresses):
        with grpc.insecure_channel(address) as channel:
            statuses.append(m_grpc.MatchingServiceStub(channel).GetShardStatus(
                m.GetShardStatusRequest(shard_index=index), timeout=10))
    return statuses


def operator(stack, command: str, symbol: str) -> int:
    return admin([command, symbol, "--matching", ",".join(stack.matching_addresses),
                  "--shard-ranges", stack.shard_ranges])


def book_status(channel, symbol: str, wanted: int, timeout_s: float = 10.0) -> md_pb2.GetBookResponse:
    books = md_grpc.MarketDataServiceStub(channel)
    deadline = time.monotonic() + timeout_s
    while True:  # market data is published after the commit, off the ack's path
        book = books.GetBook(md_pb2.GetBookRequest(symbol=symbol), metadata=ALICE)
        if book.trading_status == wanted or time.monotonic() > deadline:
            return book
        time.sleep(0.05)


def test_a_halted_instrument_refuses_orders_and_modifies_lets_cancels_through_and_shows_halted(
        stack, channel, orders):
    resting = orders.SubmitOrder(limit("NVDA", t.SIDE_SELL, 500, 10), metadata=ALICE).order
    other = orders.SubmitOrder(limit("NVDA", t.SIDE_SELL, 501, 10), metadata=ALICE).order
    assert operator(stack, "halt", "NVDA") == 0
    try:
        assert book_status(channel, "NVDA", t.TRADING_STATUS_HALTED).trading_status == t.TRADING_STATUS_HALTED
        buy = limit("NVDA", t.SIDE_BUY, 500, 4)
        with pytest.raises(grpc.RpcError) as refused:
            orders.SubmitOrder(buy, metadata=BOB)
        assert (refused.value.code(), reason_of(refused.value)) == (
            grpc.StatusCode.FAILED_PRECONDITION, "INSTRUMENT_HALTED")
        assert "NVDA is halted" in refused.value.details()
        with pytest.raises(grpc.RpcError) as refused:
            orders.ModifyOrder(pb.ModifyOrderRequest(order_id=resting.order_id, symbol="NVDA", price=499,
                                                     quantity=10), metadata=ALICE)
        assert (refused.value.code(), reason_of(refused.value)) == (
            grpc.StatusCode.FAILED_PRECONDITION, "INSTRUMENT_HALTED")
        cancelled = orders.CancelOrder(pb.CancelOrderRequest(order_id=other.order_id, symbol="NVDA"),
                                       metadata=ALICE).order
        assert cancelled.status == t.ORDER_STATUS_CANCELLED
        # Another instrument of the same shard trades on.
        assert orders.SubmitOrder(limit("MSFT", t.SIDE_BUY, 10, 1), metadata=BOB).order.status == t.ORDER_STATUS_NEW
    finally:
        assert operator(stack, "resume", "NVDA") == 0
    assert book_status(channel, "NVDA", t.TRADING_STATUS_TRADING).trading_status == t.TRADING_STATUS_TRADING
    # Nothing was created by the refused submit: the same request now trades.
    filled = orders.SubmitOrder(buy, metadata=BOB)
    assert (filled.replayed, filled.order.status, filled.order.filled_quantity) == (False, t.ORDER_STATUS_FILLED, 4)
    kept = orders.GetOrder(pb.GetOrderRequest(order_id=resting.order_id), metadata=ALICE).order
    assert (kept.price, kept.filled_quantity, kept.leaves_quantity) == (500, 4, 6)


def test_the_operator_names_what_it_cannot_halt(stack, capsys):
    assert operator(stack, "halt", "NOPE") == 1  # N is shard 1's, which does not list it
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
    assert operator(stack, "halt", "1ABC") == 1  # no shard's range holds it
    assert "no shard owns it" in capsys.readouterr().err


def test_mass_cancel_on_every_shard_cancels_only_the_callers_working_orders(stack, orders):
    mine = [orders.SubmitOrder(limit(symbol, t.SIDE_BUY, 20, 3), metadata=ALICE).order
            for symbol in ("AMD", "IBM", "QCOM", "QCOM")]  # one shard each, two on the last
    theirs = orders.SubmitOrder(limit("AMD", t.SIDE_BUY, 20, 3), metadata=BOB).order
    before = orders.MassCancelOrders(pb.MassCancelOrdersRequest(), metadata=ALICE).cancelled_count
    assert before >= len(mine)  # and whatever else of Alice's still worked
    for order in mine:
        stored = orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=ALICE).order
        assert (stored.status, stored.reason, stored.leaves_quantity) == (t.ORDER_STATUS_CANCELLED, "MASS_CANCEL", 0)
    untouched = orders.GetOrder(pb.GetOrderRequest(order_id=theirs.order_id), metadata=BOB).order
    assert untouched.status == t.ORDER_STATUS_NEW
    assert orders.MassCancelOrders(pb.MassCancelOrdersRequest(), metadata=ALICE).cancelled_count == 0


def test_mass_cancel_of_one_symbol_leaves_the_others_and_refuses_an_unknown_symbol(orders):
    kept = orders.SubmitOrder(limit("KO", t.SIDE_SELL, 900, 2), metadata=ALICE).order
    gone = orders.SubmitOrder(limit("JNJ", t.SIDE_SELL, 900, 2), metadata=ALICE).order
    assert orders.MassCancelOrders(pb.MassCancelOrdersRequest(symbol="JNJ"), metadata=ALICE).cancelled_count == 1
    assert orders.GetOrder(pb.GetOrderRequest(order_id=gone.order_id), metadata=ALICE).order.status == (
        t.ORDER_STATUS_CANCELLED)
    assert orders.GetOrder(pb.GetOrderRequest(order_id=kept.order_id), metadata=ALICE).order.status == (
        t.ORDER_STATUS_NEW)
    with pytest.raises(grpc.RpcError) as refused:
        orders.MassCancelOrders(pb.MassCancelOrdersRequest(symbol="NOPE"), metadata=ALICE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_sdk_mass_cancels_and_raises_instrument_halted(stack):
    from bourse_client import Client, Side, TradingStatus
    from bourse_client.errors import InstrumentHalted

    with Client(stack.target, api_key="demo-key-carol") as client:
        client.submit_order("TSLA", Side.BUY, quantity=1, price=30)
        client.submit_order("WMT", Side.BUY, quantity=1, price=30)
        assert client.mass_cancel_orders(symbol="TSLA") == 1
        assert client.mass_cancel_orders() == 1
        assert operator(stack, "halt", "TSLA") == 0
        try:
            assert [list(status.halted_symbols) for status in shard_statuses(stack)].count(["TSLA"]) == 1
            with pytest.raises(InstrumentHalted):
                client.submit_order("TSLA", Side.BUY, quantity=1, price=30)
            deadline = time.monotonic() + 10
            while client.get_book("TSLA").trading_status != TradingStatus.HALTED and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.get_book("TSLA").trading_status == TradingStatus.HALTED
        finally:
            assert operator(stack, "resume", "TSLA") == 0


def test_an_accounts_pre_trade_limits_set_by_the_operator_bind_on_every_shard(stack, orders):
    from bourse_client import Client, Side
    from bourse_client.errors import OrderQuantityAboveLimit, RiskLimitExceeded, TooManyOpenOrders

    assert admin(["risk", "4", "--max-order-quantity", "10", "--max-open-orders", "1",
                  "--matching", ",".join(stack.matching_addresses)]) == 0
    for status in shard_statuses(stack):  # the operator reads back what is in force on each shard
        assert [(x.account_id, x.max_order_quantity, x.max_open_orders, x.max_notional) for x in status.risk_limits
                if x.account_id == 4] == [(4, 10, 1, 0)]
    try:
        with Client(stack.target, api_key="demo-key-dave") as dave:
            for symbol in ("AMZN", "INTC", "PFE"):  # one of each shard
                with pytest.raises(OrderQuantityAboveLimit) as refused:
                    dave.submit_order(symbol, Side.SELL, quantity=11, price=700)
                assert isinstance(refused.value, RiskLimitExceeded) and refused.value.code.name == "FAILED_PRECONDITION"
                assert dave.submit_order(symbol, Side.SELL, quantity=10, price=700).leaves_quantity == 10
                with pytest.raises(TooManyOpenOrders):
                    dave.submit_order(symbol, Side.SELL, quantity=1, price=701)
    finally:
        assert admin(["risk", "4", "--matching", ",".join(stack.matching_addresses)]) == 0  # lifted
    with Client(stack.target, api_key="demo-key-dave") as dave:
        assert dave.submit_order("AMZN", Side.SELL, quantity=11, price=702).leaves_quantity == 11
        assert dave.mass_cancel_orders() == 4


def test_a_gtd_order_expires_by_itself_and_a_day_order_rests(stack, orders):
    from google.protobuf.timestamp_pb2 import Timestamp

    soon = Timestamp()
    soon.FromNanoseconds(time.time_ns() + 1_500_000_000)
    gtd = limit("UNH", t.SIDE_BUY, 40, 2)
    gtd.time_in_force = t.TIME_IN_FORCE_GTD
    gtd.expire_time.CopyFrom(soon)
    placed = orders.SubmitOrder(gtd, metadata=BOB).order
    assert (placed.status, placed.time_in_force) == (t.ORDER_STATUS_NEW, t.TIME_IN_FORCE_GTD)
    day = limit("UNH", t.SIDE_BUY, 39, 2)
    day.time_in_force = t.TIME_IN_FORCE_DAY
    resting = orders.SubmitOrder(day, metadata=BOB).order
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), metadata=BOB).order
        if seen.status != t.ORDER_STATUS_NEW:
            break
        time.sleep(0.1)
    assert (seen.status, seen.reason, seen.leaves_quantity) == (t.ORDER_STATUS_CANCELLED, "EXPIRED", 0)
    assert orders.GetOrder(pb.GetOrderRequest(order_id=resting.order_id), metadata=BOB).order.status == (
        t.ORDER_STATUS_NEW)
    late = limit("UNH", t.SIDE_BUY, 40, 2)
    late.time_in_force, late.expire_time.seconds = t.TIME_IN_FORCE_GTD, 1
    with pytest.raises(grpc.RpcError) as refused:
        orders.SubmitOrder(late, metadata=BOB)
    assert (refused.value.code(), reason_of(refused.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EXPIRE_TIME")


def test_the_sdk_places_a_gtd_order(stack):
    from datetime import UTC, datetime, timedelta

    from bourse_client import Client, OrderStatus, Side, TimeInForce

    with Client(stack.target, api_key="demo-key-carol") as client:
        expire_time = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=123_456)
        order = client.submit_order("V", Side.SELL, quantity=1, price=900, time_in_force=TimeInForce.GTD,
                                    expire_time=expire_time)
        assert (order.status, order.time_in_force, order.expire_time) == (OrderStatus.NEW, TimeInForce.GTD, expire_time)
        assert client.get_order(order.order_id).expire_time == expire_time  # as stored


def test_an_iceberg_shows_only_its_slice_in_the_book(stack, channel):
    from bourse_client import Client, Side
    from bourse_client.errors import InvalidArgument

    with Client(stack.target, api_key="demo-key-carol") as client:
        order = client.submit_order("XOM", Side.SELL, quantity=50, price=777, display_quantity=5)
        assert (order.leaves_quantity, order.display_quantity) == (50, 5)
        assert client.get_order(order.order_id).display_quantity == 5  # as stored
        deadline = time.monotonic() + 10
        while not client.get_book("XOM").asks and time.monotonic() < deadline:
            time.sleep(0.05)
        [level] = [a for a in client.get_book("XOM").asks if a.price == 777]
        assert (level.quantity, level.order_count) == (5, 1)
        with pytest.raises(InvalidArgument) as refused:
            client.submit_order("XOM", Side.SELL, quantity=5, price=777, display_quantity=5)
        assert refused.value.field == "display_quantity"


def test_a_stop_waits_and_enters_when_a_trade_reaches_it(stack, orders):
    """Through Envoy: a buy STOP at 502 waits (the book does not show it), a print at 502
    triggers it, and it buys the next ask as a market order; the stored order says so."""
    from bourse_client import Client, OrderStatus, OrderType, Side
    from bourse_client.errors import StopWouldTrigger

    symbol = "SBUX"
    with Client(stack.target, api_key="demo-key-carol") as carol, Client(stack.target, api_key="demo-key-bob") as bob:
        bob.submit_order(symbol, Side.SELL, quantity=1, price=500)
        carol.submit_order(symbol, Side.BUY, quantity=1, price=500)  # the last trade: 500
        for price in (502, 503):
            bob.submit_order(symbol, Side.SELL, quantity=2, price=price)
        stop = carol.submit_order(symbol, Side.BUY, quantity=3, order_type=OrderType.STOP, stop_price=502)
        assert (stop.status, stop.leaves_quantity, stop.stop_price, stop.triggered) == (OrderStatus.NEW, 3, 502, False)
        refused = carol.submit_order(symbol, Side.BUY, quantity=1, order_type=OrderType.STOP, stop_price=499)
        assert (refused.status, refused.reason) == (OrderStatus.REJECTED, "STOP_WOULD_TRIGGER")
        stop = carol.modify_order(stop.order_id, symbol, price=0, quantity=3, stop_price=502)  # kept as it was
        with pytest.raises(StopWouldTrigger):
            carol.modify_order(stop.order_id, symbol, price=0, quantity=3, stop_price=500)
        with Client(stack.target, api_key="demo-key-alice") as alice:  # prints 502: the stop enters
            assert alice.submit_order(symbol, Side.BUY, quantity=1, price=502).status == OrderStatus.FILLED
        deadline = time.monotonic() + 10
        while (order := carol.get_order(stop.order_id)).status != OrderStatus.FILLED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (order.status, order.filled_quantity, order.triggered) == (OrderStatus.FILLED, 3, True)
        assert sorted((f.price, f.quantity) for f in order.fills) == [(502, 1), (503, 2)]
