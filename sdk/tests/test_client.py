"""The SDK's clients against a scripted OrderService (a real gRPC server on a socket):
typed exceptions per reason, which calls are sent again and with what, the server's
retry advice followed, resumable streams, pages; blocking and asyncio alike."""

from __future__ import annotations

import asyncio
import time
from concurrent import futures

import grpc
import pytest
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2
from bourse_client import AsyncClient, Client, RetryPolicy, Side
from bourse_client import errors as e
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

FAST = RetryPolicy(for_s=5, initial_s=0.01, max_s=0.05)


def status(code: grpc.StatusCode, reason: str, message: str = "no", retry_after_s: float | None = None,
           field: str | None = None) -> status_pb2.Status:
    details = [any_pb2.Any()]
    details[0].Pack(error_details_pb2.ErrorInfo(reason=reason, domain="bourse.exchange"))
    if retry_after_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(retry_after_s * 1e9))
        details.append(any_pb2.Any())
        details[-1].Pack(retry)
    if field is not None:
        details.append(any_pb2.Any())
        details[-1].Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=message)]))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


class Scripted(order_grpc.OrderServiceServicer):
    """Each method answers the next failure of its script (a google.rpc.Status), then
    succeeds; what each call carried is kept."""

    def __init__(self, **failures: list[status_pb2.Status]):
        self.failures = failures
        self.seen: dict[str, list] = {}
        self.times: list[float] = []

    def _next(self, method: str, request, context):
        self.seen.setdefault(method, []).append(request)
        self.times.append(time.monotonic())
        script = self.failures.get(method, [])
        if script:
            context.abort_with_status(rpc_status.to_status(script.pop(0)))

    def SubmitOrder(self, request, context):
        self._next("SubmitOrder", request, context)
        return pb.SubmitOrderResponse(order=types_pb2.Order(order_id=7, client_order_id=request.client_order_id,
                                                            status=types_pb2.ORDER_STATUS_NEW))

    def ModifyOrder(self, request, context):
        self._next("ModifyOrder", request, context)
        return pb.ModifyOrderResponse(order=types_pb2.Order(order_id=request.order_id))

    def CancelOrder(self, request, context):
        self._next("CancelOrder", request, context)
        return pb.CancelOrderResponse(order=types_pb2.Order(order_id=request.order_id))

    def ListOrders(self, request, context):
        self._next("ListOrders", request, context)
        page = int(request.page_token or 0)
        return pb.ListOrdersResponse(orders=[types_pb2.Order(order_id=page * 10 + i) for i in range(2)],
                                     next_page_token=str(page + 1) if page < 2 else "")

    def SubscribeOrders(self, request, context):
        self._next("SubscribeOrders", request, context)
        start = int(request.resume_after or 0)
        yield pb.SubscribeOrdersResponse(resume_token=str(start))  # live
        for token in range(start + 1, start + 3):
            yield pb.SubscribeOrdersResponse(order=types_pb2.Order(order_id=token), resume_token=str(token))
        if start == 0:  # the first stream breaks after two updates
            context.abort_with_status(rpc_status.to_status(status(grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING")))


@pytest.fixture
def serve():
    servers = []

    def start(servicer) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(4))
        order_grpc.add_OrderServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(None)


def test_a_submit_is_sent_again_while_unavailable_with_the_same_client_order_id(serve):
    down = status(grpc.StatusCode.UNAVAILABLE, "SHARD_DOWN")
    servicer = Scripted(SubmitOrder=[down, down])
    with Client(serve(servicer), api_key="k", retry=FAST) as client:
        order = client.submit_order("AAPL", Side.BUY, quantity=1, price=10)
    ids = [r.client_order_id for r in servicer.seen["SubmitOrder"]]
    assert len(ids) == 3 and len(set(ids)) == 1 and order.client_order_id == ids[0]


def test_the_servers_retry_advice_is_followed(serve):
    servicer = Scripted(CancelOrder=[status(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", retry_after_s=0.3)])
    with Client(serve(servicer), api_key="k", retry=FAST) as client:
        assert client.cancel_order(5, "AAPL").order_id == 5
    first, second = servicer.times
    assert second - first >= 0.3  # the advice, not the policy's 10 ms


def test_a_modify_is_not_sent_again(serve):
    servicer = Scripted(ModifyOrder=[status(grpc.StatusCode.UNAVAILABLE, "SHARD_DOWN", "shard down")])
    with Client(serve(servicer), api_key="k", retry=FAST) as client, pytest.raises(e.Unavailable) as refused:
        client.modify_order(5, "AAPL", price=10, quantity=2)
    assert len(servicer.seen["ModifyOrder"]) == 1
    assert (refused.value.reason, refused.value.message) == ("SHARD_DOWN", "shard down")


def test_retries_stop_after_the_policy_and_raise_the_last_error(serve):
    servicer = Scripted(SubmitOrder=[status(grpc.StatusCode.UNAVAILABLE, "SHARD_DOWN")] * 1000)
    started = time.monotonic()
    with Client(serve(servicer), api_key="k", retry=RetryPolicy(for_s=0.5, initial_s=0.01, max_s=0.02)) as client:
        with pytest.raises(e.Unavailable):
            client.submit_order("AAPL", Side.BUY, quantity=1, price=10)
    assert 0.5 <= time.monotonic() - started < 3 and len(servicer.seen["SubmitOrder"]) > 3


@pytest.mark.parametrize("code, reason, expected", [
    (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_DONE", e.OrderDone),
    (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND", e.OrderNotFound),
    (grpc.StatusCode.ALREADY_EXISTS, "CLIENT_ORDER_ID_REUSED", e.ClientOrderIdReused),
    (grpc.StatusCode.OUT_OF_RANGE, "UPDATES_TRIMMED", e.UpdatesTrimmed),
    (grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY", e.InvalidApiKey),
    (grpc.StatusCode.NOT_FOUND, "SOMETHING_NEW", e.NotFound),  # a reason this SDK does not know
    (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_NOT_FOUND", e.FailedPrecondition),  # the code decides
])
def test_each_reason_raises_its_class_under_its_codes_class(serve, code, reason, expected):
    servicer = Scripted(CancelOrder=[status(code, reason, "why")])
    with Client(serve(servicer), api_key="k", retry=FAST) as client, pytest.raises(e.BourseError) as refused:
        client.cancel_order(5, "AAPL")
    assert type(refused.value) is expected and isinstance(refused.value, e.BY_CODE[code])
    assert (refused.value.code, refused.value.reason, refused.value.message) == (code, reason, "why")


def test_an_invalid_argument_names_its_field(serve):
    servicer = Scripted(SubmitOrder=[status(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE", "price: no", field="price")])
    with Client(serve(servicer), api_key="k") as client, pytest.raises(e.InvalidArgument) as refused:
        client.submit_order("AAPL", Side.BUY, quantity=1, price=10)
    assert (refused.value.field, refused.value.reason) == ("price", "INVALID_PRICE")


def test_a_transport_failure_is_unavailable_without_a_reason():
    with Client("127.0.0.1:1", api_key="k", retry=RetryPolicy(for_s=0.2, initial_s=0.01)) as client:
        with pytest.raises(e.Unavailable) as refused:
            client.get_order(1)
    assert refused.value.reason == ""


def test_an_order_stream_that_breaks_resumes_from_its_last_token(serve):
    servicer = Scripted()
    with Client(serve(servicer), api_key="k", retry=FAST) as client, client.subscribe_orders() as updates:
        ids = [next(m.order.order_id for m in updates if m.order is not None) for _ in range(4)]
        assert (ids, updates.reopened, updates.resume_token) == ([1, 2, 3, 4], 1, "4")
    assert [r.resume_after for r in servicer.seen["SubscribeOrders"]] == ["", "2"]


def test_list_orders_reads_every_page(serve):
    with Client(serve(Scripted()), api_key="k") as client:
        assert [o.order_id for o in client.list_orders(page_size=2)] == [0, 1, 10, 11, 20, 21]


def test_the_asyncio_client_retries_pages_and_resumes_alike(serve):
    down = status(grpc.StatusCode.UNAVAILABLE, "SHARD_DOWN")
    servicer = Scripted(SubmitOrder=[down], ListOrders=[down])
    target = serve(servicer)

    async def scenario():
        async with AsyncClient(target, api_key="k", retry=FAST) as client:
            order = await client.submit_order("AAPL", Side.SELL, quantity=1, price=10)
            listed = [o.order_id async for o in client.list_orders()]
            with pytest.raises(e.OrderDone):
                servicer.failures["CancelOrder"] = [status(grpc.StatusCode.FAILED_PRECONDITION, "ORDER_DONE")]
                await client.cancel_order(order.order_id, "AAPL")
            updates = client.subscribe_orders()
            seen = []
            async for message in updates:
                if message.order is not None:
                    seen.append(message.order.order_id)
                if len(seen) == 4:
                    break
            updates.close()
            return order, listed, seen, updates.reopened

    order, listed, seen, reopened = asyncio.run(scenario())
    submitted = [r.client_order_id for r in servicer.seen["SubmitOrder"]]
    assert len(submitted) == 2 and submitted[0] == submitted[1] == order.client_order_id
    assert listed == [0, 1, 10, 11, 20, 21] and (seen, reopened) == ([1, 2, 3, 4], 1)
