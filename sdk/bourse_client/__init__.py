"""Python SDK of bourse: typed dataclasses (betterproto2) over a grpcio channel.

    from bourse_client import connect
    from bourse_sdk.bourse.order.v1 import SubmitOrderRequest
    from bourse_sdk.bourse.type.v1 import OrderType, Side, TimeInForce

    with connect("127.0.0.1:8080", api_key="demo-key-alice") as client:
        order = client.orders.submit_order(SubmitOrderRequest(
            client_order_id="my-1", symbol="AAPL", side=Side.BUY,
            order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, price=100, quantity=5,
        )).order
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from bourse_sdk.bourse.marketdata.v1 import MarketDataServiceStub
from bourse_sdk.bourse.order.v1 import OrderServiceStub


class _BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <key>` to every call, the streaming ones included."""

    def __init__(self, api_key: str):
        self._header = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details):
        return details._replace(metadata=list(details.metadata or []) + [self._header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_key(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_key(details), request)


@dataclass
class Client:
    channel: grpc.Channel
    orders: OrderServiceStub
    market_data: MarketDataServiceStub

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(target: str, api_key: str, credentials: grpc.ChannelCredentials | None = None,
            ca_file: str | None = None) -> Client:
    """A client for the exchange at `target` (Envoy), authenticated by `api_key`; over
    TLS trusting the PEM CA `ca_file` (or with `credentials`), else in plaintext."""
    if ca_file is not None:
        with open(ca_file, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(ca.read())
    raw = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    channel = grpc.intercept_channel(raw, _BearerAuth(api_key))
    return Client(channel=raw, orders=OrderServiceStub(channel), market_data=MarketDataServiceStub(channel))
