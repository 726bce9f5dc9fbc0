"""The batched calls the order service makes: commands to matching shards, and
idempotency claims to persistence, each over one long-lived stream (batch_stream.py).

Idempotency is durable: (account, client_order_id) is bound to the order_id that first
claims it in PostgreSQL before the order reaches a matching shard, so a retry after any
crash, on any replica, finds the original order_id. Redis plays no part in it, so
trading goes on while Redis is down.
"""

from __future__ import annotations

from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2

from services.common.batch_stream import BatchStream


class ShardUnavailable(Exception):
    """A batch the shard did not execute, or whose outcome is unknown (no answer)."""


class ClaimsUnavailable(Exception):
    """Claims persistence did not commit, or whose outcome is unknown (no answer)."""


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


class ClaimStream(BatchStream):
    """Batch send for idempotency claims over one ClaimClientOrderIdsStream:
    `await stream(claims) -> [(owner order_id, its request_hash), ...]`, else ClaimsUnavailable."""

    def __init__(self, persistence_stub, timeout_s: float):
        super().__init__(
            persistence_stub.ClaimClientOrderIdsStream,
            lambda batch_id, claims: persistence_pb2.ClaimClientOrderIdsStreamRequest(
                batch_id=batch_id, claims=persistence_pb2.ClaimClientOrderIdsRequest(claims=claims)),
            timeout_s, ClaimsUnavailable, "persistence")

    async def __call__(self, claims: list[persistence_pb2.ClientOrderIdClaim]):
        result = (await super().__call__(claims)).result
        return list(zip(result.owner_order_ids, result.owner_request_hashes))
