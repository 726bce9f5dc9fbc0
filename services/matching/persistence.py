"""What the shard needs from persistence, and the gRPC client that provides it.

Anything with these two coroutines will do (tests use an in-process store):
  write_batch(WriteBatchRequest) -> None, raising on any failure (nothing committed)
  list_open_orders(symbols) -> list[Order]
"""

from __future__ import annotations

from typing import Protocol

from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc
from bourse.type.v1 import types_pb2


class Persistence(Protocol):
    async def write_batch(self, request: persistence_pb2.WriteBatchRequest) -> None: ...

    async def list_open_orders(self, symbols: list[str]) -> list[types_pb2.Order]: ...


class GrpcPersistence:
    def __init__(self, channel, write_timeout_s: float = 3.0, read_timeout_s: float = 30.0):
        self._stub = persistence_grpc.PersistenceServiceStub(channel)
        self._write_timeout = write_timeout_s
        self._read_timeout = read_timeout_s

    async def write_batch(self, request: persistence_pb2.WriteBatchRequest) -> None:
        await self._stub.WriteBatch(request, timeout=self._write_timeout, wait_for_ready=False)

    async def list_open_orders(self, symbols: list[str]) -> list[types_pb2.Order]:
        response = await self._stub.ListOpenOrders(
            persistence_pb2.ListOpenOrdersRequest(symbols=symbols), timeout=self._read_timeout
        )
        return list(response.orders)
