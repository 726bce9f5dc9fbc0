"""Claims (account, client_order_id) -> order_id in Redis, shared by all replicas.

The first SubmitOrder of a key claims it with its new order_id (SET NX); a retry,
on any replica, finds the claimed order_id and answers with that order as stored.
The database's UNIQUE(account_id, client_order_id) is the backstop should Redis lose
a key. With Redis unreachable the claim degrades to a database lookup.
"""

from __future__ import annotations

import redis.asyncio as redis
import structlog

TTL_SECONDS = 7 * 24 * 3600
log = structlog.get_logger()


class IdempotencyKeys:
    def __init__(self, client: redis.Redis):
        self._redis = client

    @staticmethod
    def _key(account_id: int, client_order_id: str) -> str:
        return f"idem:{account_id}:{client_order_id}"

    async def claim(self, account_id: int, client_order_id: str, order_id: int) -> int | None:
        """Returns None when the key is newly ours, else the order_id that owns it.

        Raises redis.RedisError when Redis is unreachable.
        """
        key = self._key(account_id, client_order_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, order_id, nx=True, ex=TTL_SECONDS)
            pipe.get(key)
            created, owner = await pipe.execute()
        return None if created else int(owner)
