import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as order_pb2
from bourse.type.v1 import types_pb2 as t

from services.common import limits
from services.common.errors import BourseError
from services.order import validation

LISTED = {"AAPL", "MSFT"}


def limit(**overrides):
    fields = dict(
        client_order_id="c-1", symbol="AAPL", side=t.SIDE_BUY, order_type=t.ORDER_TYPE_LIMIT,
        time_in_force=t.TIME_IN_FORCE_GTC, price=100, quantity=5,
    )
    fields.update(overrides)
    return order_pb2.SubmitOrderRequest(**fields)


def refused(request) -> BourseError:
    with pytest.raises(BourseError) as caught:
        validation.new_order(request, account_id=1, order_id=9, listed=LISTED)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def test_a_valid_limit_order_becomes_a_matching_command():
    command = validation.new_order(limit(), account_id=7, order_id=42, listed=LISTED)
    assert (command.order_id, command.account_id, command.symbol, command.price, command.quantity) == (
        42, 7, "AAPL", 100, 5)


def test_an_order_at_the_shared_limits_is_valid():
    # services/common/limits.py: the engine's bounds (a matching test holds them equal),
    # so the order service refuses nothing the engine would take, and the reverse.
    request = limit(price=limits.MAX_PRICE, quantity=1, client_order_id="x" * limits.MAX_CLIENT_ORDER_ID)
    assert validation.new_order(request, 1, 2, LISTED).price == limits.MAX_PRICE
    assert validation.new_order(limit(price=1, quantity=limits.MAX_QUANTITY), 1, 2, LISTED).quantity == limits.MAX_QUANTITY


def test_a_market_order_without_price_is_valid():
    request = limit(order_type=t.ORDER_TYPE_MARKET, price=0, time_in_force=t.TIME_IN_FORCE_IOC)
    assert validation.new_order(request, 1, 2, LISTED).price == 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -3}, "quantity"),
        ({"quantity": validation.MAX_QUANTITY + 1}, "quantity"),
        ({"price": 0}, "price"),
        ({"price": -1}, "price"),
        ({"price": validation.MAX_PRICE + 1}, "price"),
        ({"price": 10**12, "quantity": 10**8}, "quantity"),  # notional overflows int64
        ({"order_type": t.ORDER_TYPE_MARKET, "price": 100, "time_in_force": t.TIME_IN_FORCE_IOC}, "price"),
        ({"order_type": t.ORDER_TYPE_MARKET, "price": 0}, "time_in_force"),
        ({"side": t.SIDE_UNSPECIFIED}, "side"),
        ({"side": 7}, "side"),
        ({"order_type": t.ORDER_TYPE_UNSPECIFIED}, "order_type"),
        ({"time_in_force": t.TIME_IN_FORCE_UNSPECIFIED}, "time_in_force"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "NOPE"}, "symbol"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"client_order_id": "x" * (limits.MAX_CLIENT_ORDER_ID + 1)}, "client_order_id"),
        ({"client_order_id": "tab\there"}, "client_order_id"),
        ({"post_only": True, "time_in_force": t.TIME_IN_FORCE_IOC}, "post_only"),
        ({"self_trade_prevention": 9}, "self_trade_prevention"),
        ({"post_only": True, "order_type": t.ORDER_TYPE_MARKET, "price": 0, "time_in_force": t.TIME_IN_FORCE_IOC},
         "post_only"),
        # Stops: a stop price is required by STOP and STOP_LIMIT and refused on any other order.
        ({"order_type": t.ORDER_TYPE_STOP, "price": 0}, "stop_price"),
        ({"order_type": t.ORDER_TYPE_STOP_LIMIT, "stop_price": -1}, "stop_price"),
        ({"order_type": t.ORDER_TYPE_STOP_LIMIT, "stop_price": validation.MAX_PRICE + 1}, "stop_price"),
        ({"stop_price": 100}, "stop_price"),
        ({"order_type": t.ORDER_TYPE_STOP, "price": 100, "stop_price": 100}, "price"),
        ({"order_type": t.ORDER_TYPE_STOP, "price": 0, "stop_price": 100, "time_in_force": t.TIME_IN_FORCE_IOC},
         "time_in_force"),
        ({"order_type": t.ORDER_TYPE_STOP_LIMIT, "price": 0, "stop_price": 100}, "price"),
        ({"order_type": t.ORDER_TYPE_STOP_LIMIT, "stop_price": 100, "post_only": True}, "post_only"),
        ({"order_type": t.ORDER_TYPE_STOP, "price": 0, "stop_price": 100, "quantity": 10, "display_quantity": 2},
         "display_quantity"),
    ],
)
def test_bad_input_names_the_field(overrides, field):
    error = refused(limit(**overrides))
    assert error.message.startswith(field + ":"), error.message
    assert error.reason == "INVALID_" + field.upper()


@pytest.mark.parametrize("size, expected", [(0, 100), (1, 1), (1000, 1000)])
def test_page_size_defaults_and_bounds(size, expected):
    assert validation.page_size(size) == expected


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_size_out_of_range_is_refused(size):
    with pytest.raises(BourseError):
        validation.page_size(size)


def test_post_only_goes_to_the_shard_and_into_the_fingerprint():
    from services.matching.client_ids import request_hash

    plain = validation.new_order(limit(), 1, 2, LISTED)
    post_only = validation.new_order(limit(post_only=True), 1, 2, LISTED)
    assert post_only.post_only and not plain.post_only
    assert request_hash(plain) != request_hash(post_only)


def modify(**overrides):
    fields = dict(order_id=5, symbol="AAPL", price=101, quantity=3)
    fields.update(overrides)
    return order_pb2.ModifyOrderRequest(**fields)


def test_a_valid_modify_becomes_a_matching_command():
    command = validation.modify_order(modify(), account_id=7, listed=LISTED)
    assert (command.order_id, command.account_id, command.symbol, command.price, command.quantity) == (
        5, 7, "AAPL", 101, 3)


@pytest.mark.parametrize(
    "overrides, field",
    [({"order_id": 0}, "order_id"), ({"symbol": "NOPE"}, "symbol"), ({"price": -1}, "price"),
     ({"price": validation.MAX_PRICE + 1}, "price"), ({"quantity": 0}, "quantity"), ({"quantity": -1}, "quantity"),
     ({"price": 10**12, "quantity": 10**8}, "quantity"), ({"stop_price": -1}, "stop_price"),
     ({"stop_price": validation.MAX_PRICE + 1}, "stop_price")],
)
def test_a_bad_modify_names_the_field(overrides, field):
    with pytest.raises(BourseError) as caught:
        validation.modify_order(modify(**overrides), account_id=1, listed=LISTED)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith(field + ":"), caught.value.message


def test_self_trade_prevention_goes_to_the_shard_and_into_the_fingerprint_unless_default():
    from services.matching.client_ids import request_hash

    default = request_hash(validation.new_order(limit(), 1, 2, LISTED))
    incoming = validation.new_order(limit(self_trade_prevention=t.SELF_TRADE_PREVENTION_CANCEL_INCOMING), 1, 2, LISTED)
    resting = validation.new_order(limit(self_trade_prevention=t.SELF_TRADE_PREVENTION_CANCEL_RESTING), 1, 2, LISTED)
    assert resting.self_trade_prevention == t.SELF_TRADE_PREVENTION_CANCEL_RESTING
    assert request_hash(incoming) == default != request_hash(resting)


def required_fields(message) -> list[str]:
    """The fields the proto annotates (google.api.field_behavior) REQUIRED."""
    from google.api import field_behavior_pb2

    return [f.name for f in message.DESCRIPTOR.fields
            if field_behavior_pb2.REQUIRED in f.GetOptions().Extensions[field_behavior_pb2.field_behavior]]


MODIFY = dict(order_id=5, symbol="AAPL", price=101, quantity=7)


@pytest.mark.parametrize("message, field", [
    *((order_pb2.SubmitOrderRequest, f) for f in required_fields(order_pb2.SubmitOrderRequest)),
    *((order_pb2.ModifyOrderRequest, f) for f in required_fields(order_pb2.ModifyOrderRequest)),
])
def test_every_field_the_proto_marks_required_is_refused_when_missing_naming_it(message, field):
    """The annotations and the validation agree: each REQUIRED field, left unset, is the
    field the refusal names (in its message and its BadRequest)."""
    request = limit() if message is order_pb2.SubmitOrderRequest else order_pb2.ModifyOrderRequest(**MODIFY)
    request.ClearField(field)
    with pytest.raises(BourseError) as caught:
        if message is order_pb2.SubmitOrderRequest:
            validation.new_order(request, account_id=1, order_id=9, listed=LISTED)
        else:
            validation.modify_order(request, account_id=1, listed=LISTED)
    assert (caught.value.code, caught.value.field) == (grpc.StatusCode.INVALID_ARGUMENT, field)


def test_the_annotations_name_what_a_submit_and_a_modify_need():
    assert required_fields(order_pb2.SubmitOrderRequest) == [
        "client_order_id", "symbol", "side", "order_type", "time_in_force", "quantity"]
    assert required_fields(order_pb2.ModifyOrderRequest) == ["order_id", "symbol", "quantity"]
    assert required_fields(order_pb2.CancelOrderRequest) == ["order_id", "symbol"]


NOW_US = 1_800_000_000 * 1_000_000 + 123  # 2027-01-15T08:00:00.000123Z
DAY_US = 86_400 * 1_000_000


def at(us: int):
    from google.protobuf.timestamp_pb2 import Timestamp
    return Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


def expiry(request, day_end_s=0):
    return validation.expire_time_us(request, request.time_in_force, day_end_s, now_us=NOW_US)


def test_a_gtd_order_carries_its_expire_time_in_microseconds():
    request = limit(time_in_force=t.TIME_IN_FORCE_GTD, expire_time=at(NOW_US + 5_000_001))
    assert expiry(request) == NOW_US + 5_000_001
    assert validation.new_order(request, 1, 2, LISTED).expire_time_us > 0  # against the real clock: still ahead


@pytest.mark.parametrize("overrides, message", [
    (dict(time_in_force=t.TIME_IN_FORCE_GTD), "is required for a GTD order"),
    (dict(time_in_force=t.TIME_IN_FORCE_GTD, expire_time=at(0)), "must be in the future"),  # the shard: any past
    (dict(time_in_force=t.TIME_IN_FORCE_GTD, expire_time=at(NOW_US + 367 * DAY_US)), "within a year"),
    (dict(expire_time=at(NOW_US + DAY_US)), "only a GTD order has one"),
    (dict(time_in_force=t.TIME_IN_FORCE_DAY, expire_time=at(NOW_US + DAY_US)), "only a GTD order has one"),
])
def test_a_wrong_expire_time_is_refused_naming_it(overrides, message):
    with pytest.raises(BourseError) as caught:
        expiry(limit(**overrides))
    assert (caught.value.code, caught.value.field) == (grpc.StatusCode.INVALID_ARGUMENT, "expire_time")
    assert message in caught.value.message


def test_a_day_order_expires_at_the_next_end_of_the_trading_day():
    day = limit(time_in_force=t.TIME_IN_FORCE_DAY)
    midnight = NOW_US - NOW_US % DAY_US
    assert expiry(day) == midnight + DAY_US  # 00:00 UTC: tomorrow's midnight
    assert expiry(day, day_end_s=21 * 3600) == midnight + 21 * 3600 * 1_000_000  # 21:00 today
    assert expiry(day, day_end_s=8 * 3600) == midnight + DAY_US + 8 * 3600 * 1_000_000  # 08:00 passed: tomorrow


@pytest.mark.parametrize("tif", [t.TIME_IN_FORCE_GTC, t.TIME_IN_FORCE_GTD, t.TIME_IN_FORCE_DAY])
def test_a_market_order_cannot_ask_to_rest(tif):
    error = refused(limit(order_type=t.ORDER_TYPE_MARKET, price=0, time_in_force=tif))
    assert error.field == "time_in_force"


def test_post_only_goes_with_any_resting_time_in_force():
    request = limit(time_in_force=t.TIME_IN_FORCE_DAY, post_only=True)
    assert validation.new_order(request, 1, 2, LISTED).post_only
    assert refused(limit(time_in_force=t.TIME_IN_FORCE_IOC, post_only=True)).field == "post_only"


@pytest.mark.parametrize("overrides", [
    dict(display_quantity=-1),
    dict(display_quantity=5),  # all of it: not an iceberg
    dict(display_quantity=6),
    dict(display_quantity=2, time_in_force=t.TIME_IN_FORCE_IOC),
    dict(display_quantity=2, order_type=t.ORDER_TYPE_MARKET, price=0, time_in_force=t.TIME_IN_FORCE_IOC),
])
def test_a_display_quantity_goes_only_with_a_resting_limit_order_and_below_its_quantity(overrides):
    error = refused(limit(**overrides))
    assert error.field == "display_quantity"


def test_an_iceberg_shows_at_least_a_thousandth_of_its_quantity():
    assert refused(limit(quantity=100_000, display_quantity=99)).field == "display_quantity"
    assert validation.new_order(limit(quantity=100_000, display_quantity=100), 1, 2, LISTED).display_quantity == 100


def test_an_iceberg_carries_its_display_quantity():
    command = validation.new_order(limit(display_quantity=2, time_in_force=t.TIME_IN_FORCE_DAY), 1, 2, LISTED)
    assert (command.display_quantity, command.quantity) == (2, 5)


def test_stop_and_stop_limit_orders_carry_their_stop_price_to_the_shard():
    stop = validation.new_order(limit(order_type=t.ORDER_TYPE_STOP, price=0, stop_price=105), 1, 2, LISTED)
    assert (stop.order_type, stop.price, stop.stop_price, stop.time_in_force) == (
        t.ORDER_TYPE_STOP, 0, 105, t.TIME_IN_FORCE_GTC)
    iceberg = validation.new_order(limit(order_type=t.ORDER_TYPE_STOP_LIMIT, price=101, stop_price=100, quantity=10,
                                         display_quantity=2), 1, 2, LISTED)
    assert (iceberg.price, iceberg.stop_price, iceberg.display_quantity) == (101, 100, 2)
    waiting = validation.modify_order(modify(price=0, stop_price=107), account_id=7, listed=LISTED)
    assert (waiting.price, waiting.stop_price) == (0, 107)
