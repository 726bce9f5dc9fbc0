"""The batched calls the order service makes: commands to each matching shard over one
long-lived stream (batch_stream.py). Idempotency is the shard's (services/matching/client_ids.py).
"""

from __future__ import annotations

from bourse.matching.v1 import matching_service_pb2 as matching_pb2

from services.common.batch_stream import BatchStream


class ShardUnavailable(Exception):
    """A batch the shard did not execute, or whose outcome is unknown (no answer)."""


class ShardStream(BatchStream):
    """Batch send for one matching shard over one ExecuteStream:
    `await stream(commands) -> results` (one per command), else ShardUnavailable."""

    def __init__(self, matching_stub, timeout_s: float):
        super().__init__(
            matching_stub.ExecuteStream,
            lambda batch_id, commands: matching_pb2.ExecuteStreamRequest(batch_id=batch_id, commands=commands),
            timeout_s, ShardUnavailable, "the shard")

    async def __call__(self, commands: list[matching_pb2.Command]):
        return (await super().__call__(commands)).results
