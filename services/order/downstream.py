"""The batched calls the order service makes: commands to matching shards, and
idempotency claims to persistence.

Idempotency is durable: (account, client_order_id) is bound to the order_id that first
claims it in PostgreSQL before the order reaches a matching shard, so a retry after any
crash, on any replica, finds the original order_id. Redis plays no part in it, so
trading goes on while Redis is down.
"""

from __future__ import annotations

import asyncio
import itertools

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2


class ShardUnavailable(Exception):
    """A batch the shard did not execute (or whose answer was lost with the stream)."""


class ShardStream:
    """Batch send for one matching shard over one long-lived ExecuteStream.

    Callable like a unary sender: `await stream(commands) -> results`. Batches are
    written in order; one reader task matches answers to callers by batch_id. When the
    stream breaks, every batch still waiting fails with ShardUnavailable (its outcome is
    unknown: the client retries with the same client_order_id) and the next batch opens
    a new stream.
    """

    def __init__(self, matching_stub, timeout_s: float):
        self._stub = matching_stub
        self._timeout = timeout_s
        self._ids = itertools.count(1)
        self._call = None
        self._reader: asyncio.Task | None = None
        self._waiting: dict[int, asyncio.Future] = {}
        self._write_lock = asyncio.Lock()

    async def __call__(self, commands: list[matching_pb2.Command]):
        batch_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[batch_id] = future
        call = None
        try:
            async with self._write_lock:
                call = self._open()
                await call.write(matching_pb2.ExecuteStreamRequest(batch_id=batch_id, commands=commands))
            response = await asyncio.wait_for(future, self._timeout)
        except (grpc.RpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as error:
            self._broken(call, error)  # a write to a broken stream
            raise ShardUnavailable(f"stream to the shard broke: {error}") from error
        finally:
            self._waiting.pop(batch_id, None)
        if response.HasField("error"):
            raise ShardUnavailable(f"{response.error.reason}: {response.error.message}")
        return response.results

    def _open(self):
        if self._call is None:
            self._call = self._stub.ExecuteStream()
            self._reader = asyncio.create_task(self._read(self._call))
        return self._call

    async def _read(self, call) -> None:
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise ShardUnavailable("the shard closed the stream")
                future = self._waiting.get(response.batch_id)
                if future is not None and not future.done():
                    future.set_result(response)
        except (grpc.RpcError, ShardUnavailable) as error:
            self._broken(call, error)
        except asyncio.CancelledError:
            pass

    def _broken(self, call, error: Exception) -> None:
        if call is not None and call is self._call:
            self._call = None
            call.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ShardUnavailable(f"stream to the shard broke: {error}"))

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def claim_sender(persistence_stub, timeout_s: float):
    """Batch send for idempotency claims: ClientOrderIdClaims -> owning order_ids."""

    async def send(claims: list[persistence_pb2.ClientOrderIdClaim]):
        request = persistence_pb2.ClaimClientOrderIdsRequest(claims=claims)
        return (await persistence_stub.ClaimClientOrderIds(request, timeout=timeout_s)).owner_order_ids

    return send
