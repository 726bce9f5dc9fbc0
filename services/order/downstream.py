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
    """A batch the shard did not execute, or whose outcome is unknown (no answer)."""


class _Stream:
    """One ExecuteStream call, its reader, and the batches written on it awaiting answers.

    Waiting batches belong to their stream: when a stream breaks, only its own batches
    lose their answers (a newer stream's batches may well commit).
    """

    def __init__(self, call):
        self.call = call
        self.waiting: dict[int, asyncio.Future] = {}
        self.reader: asyncio.Task | None = None
        self.broken: str | None = None  # why no more answers will come


class ShardStream:
    """Batch send for one matching shard over one long-lived ExecuteStream.

    Callable like a unary sender: `await stream(commands) -> results`. Batches are
    written in order; one reader task per stream matches answers to callers by
    batch_id. Anything that leaves a batch without its answer (the stream ends or
    errs, the reader dies, a write fails, no answer within timeout_s) breaks the
    stream: every batch still waiting on it fails with ShardUnavailable (its outcome
    is unknown: the client retries with the same client_order_id) and the next batch
    opens a new stream.
    """

    def __init__(self, matching_stub, timeout_s: float):
        self._stub = matching_stub
        self._timeout = timeout_s
        self._ids = itertools.count(1)
        self._stream: _Stream | None = None
        self._write_lock = asyncio.Lock()
        self._closed = False

    async def __call__(self, commands: list[matching_pb2.Command]):
        batch_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        request = matching_pb2.ExecuteStreamRequest(batch_id=batch_id, commands=commands)
        stream = None
        try:
            # The deadline covers the write too: a shard that stops reading blocks it.
            async with asyncio.timeout(self._timeout):
                async with self._write_lock:
                    stream = self._open()
                    stream.waiting[batch_id] = future  # before the write: the answer may beat it
                    await stream.call.write(request)
                response = await future
        except ShardUnavailable:
            raise
        except (Exception, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and asyncio.current_task().cancelling():
                raise  # our caller gave up on this batch; the stream itself is fine
            # grpc raises CancelledError from a write on a call cancelled under it, and
            # other internal errors as non-RpcErrors: the batch's fate is unknown either way.
            why = f"no answer within {self._timeout}s" if isinstance(error, TimeoutError) else _why(error)
            if stream is not None:
                self._broken(stream, why)
            raise ShardUnavailable(f"no answer from the shard: {why}") from error
        finally:
            if stream is not None:
                stream.waiting.pop(batch_id, None)
        if response is None:
            raise ShardUnavailable(f"stream to the shard broke: {stream.broken}")
        if response.HasField("error"):
            raise ShardUnavailable(f"{response.error.reason}: {response.error.message}")
        return response.results

    def _open(self) -> _Stream:
        if self._closed:
            raise ShardUnavailable("the stream to the shard is closed")
        if self._stream is None:
            self._stream = _Stream(self._stub.ExecuteStream())
            self._stream.reader = asyncio.create_task(self._read(self._stream))
        return self._stream

    async def _read(self, stream: _Stream) -> None:
        why = "the stream was closed"
        try:
            while (response := await stream.call.read()) is not grpc.aio.EOF:
                future = stream.waiting.get(response.batch_id)
                if future is not None and not future.done():
                    future.set_result(response)
            why = "the shard ended the stream"
        except Exception as error:  # noqa: BLE001 - any: without its reader a stream answers nothing
            why = _why(error)
        finally:
            self._broken(stream, why)

    def _broken(self, stream: _Stream, why: str) -> None:
        """No more answers will come on `stream`: its waiting batches fail now, the
        next batch opens a new stream."""
        if self._stream is stream:
            self._stream = None
        if stream.broken is None:
            stream.broken = why
        stream.call.cancel()
        for future in stream.waiting.values():
            if not future.done():
                future.set_result(None)  # None: no answer (an exception nobody awaits would be logged)

    async def close(self) -> None:
        self._closed = True
        stream = self._stream
        if stream is not None:
            self._broken(stream, "the order service is closing")
            stream.reader.cancel()
            await asyncio.gather(stream.reader, return_exceptions=True)


def _why(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


def claim_sender(persistence_stub, timeout_s: float):
    """Batch send for idempotency claims: ClientOrderIdClaims -> (owner order_id, its request_hash)."""

    async def send(claims: list[persistence_pb2.ClientOrderIdClaim]):
        request = persistence_pb2.ClaimClientOrderIdsRequest(claims=claims)
        response = await persistence_stub.ClaimClientOrderIds(request, timeout=timeout_s)
        return list(zip(response.owner_order_ids, response.owner_request_hashes))

    return send
