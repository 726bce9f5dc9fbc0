"""The SDK's dataclasses speak the same wire format as the services' protobuf classes."""

from bourse.order.v1 import order_service_pb2 as pb
from bourse.type.v1 import types_pb2
from bourse_sdk.bourse.order.v1 import SubmitOrderRequest, SubmitOrderResponse
from bourse_sdk.bourse.type.v1 import Order, OrderStatus, OrderType, Side, TimeInForce


def test_a_request_built_with_the_sdk_parses_in_the_services():
    request = SubmitOrderRequest(
        client_order_id="sdk-1", symbol="AAPL", side=Side.SELL, order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC, price=12345, quantity=2**40,
    )
    parsed = pb.SubmitOrderRequest.FromString(bytes(request))
    assert (parsed.client_order_id, parsed.symbol, parsed.price, parsed.quantity) == ("sdk-1", "AAPL", 12345, 2**40)
    assert (parsed.side, parsed.time_in_force) == (types_pb2.SIDE_SELL, types_pb2.TIME_IN_FORCE_IOC)


def test_a_service_response_reads_as_sdk_dataclasses():
    wire = pb.SubmitOrderResponse(
        order=types_pb2.Order(order_id=7, status=types_pb2.ORDER_STATUS_PARTIALLY_FILLED, filled_quantity=3,
                              fills=[types_pb2.Fill(trade_id=1, price=99, quantity=3, maker=True)]),
        replayed=True,
    ).SerializeToString()
    response = SubmitOrderResponse.parse(wire)
    assert isinstance(response.order, Order)
    assert response.order.status == OrderStatus.PARTIALLY_FILLED and response.replayed
    assert [(f.price, f.quantity, f.maker) for f in response.order.fills] == [(99, 3, True)]
