"""The batched calls the order service makes: commands to matching shards, and
idempotency claims to persistence.

Idempotency is durable: (account, client_order_id) is bound to the order_id that first
claims it in PostgreSQL before the order reaches a matching shard, so a retry after any
crash, on any replica, finds the original order_id. Redis plays no part in it, so
trading goes on while Redis is down.
"""

from __future__ import annotations

from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2


def command_sender(matching_stub, timeout_s: float):
    """Batch send for one matching shard: Commands -> CommandResults."""

    async def send(commands: list[matching_pb2.Command]):
        request = matching_pb2.ExecuteBatchRequest(commands=commands)
        return (await matching_stub.ExecuteBatch(request, timeout=timeout_s)).results

    return send


def claim_sender(persistence_stub, timeout_s: float):
    """Batch send for idempotency claims: ClientOrderIdClaims -> owning order_ids."""

    async def send(claims: list[persistence_pb2.ClientOrderIdClaim]):
        request = persistence_pb2.ClaimClientOrderIdsRequest(claims=claims)
        return (await persistence_stub.ClaimClientOrderIds(request, timeout=timeout_s)).owner_order_ids

    return send
