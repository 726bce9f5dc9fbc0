"""An account's order updates for SubscribeOrders, read from its orders:{ACCOUNT} Redis
stream (written by services/matching/market_data.py), from a resume point on.

A resume token is "<epoch>:<entry id>". The epoch is a random value kept in Redis
(orders:epoch): a Redis that lost its data gets a new one, so tokens from before are
recognised instead of resuming past updates that are gone. Reading from a token checks
that its entry is still there (trimming keeps about the last 10,000 per account), on
resume and before every catch-up read, so a client too far behind is told
(ResumeGap) rather than silently skipped ahead.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

from bourse.type.v1 import types_pb2

from services.common.redis_keys import ORDERS_EPOCH_KEY as EPOCH_KEY
from services.common.redis_keys import orders_stream as stream_key

TOKEN = re.compile(r"[0-9a-f]{16}:\d{1,20}-\d{1,20}")
BATCH = 100
START = "0-0"


class ResumeGap(Exception):
    """Updates after the resume point are gone: the client catches up with ListOrders."""


def _id(token: str | bytes) -> tuple[int, int]:
    if isinstance(token, bytes):
        token = token.decode()
    ms, _, seq = token.partition("-")
    return int(ms), int(seq or 0)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _epoch(client) -> str:
    await client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
    return _text(await client.get(EPOCH_KEY))


async def _still_there(client, key: str, entry: str) -> bool:
    """Nothing after `entry` was lost: it is kept, or (START) nothing was ever trimmed."""
    if entry == START:
        if not await client.exists(key):
            return True
        info = await client.xinfo_stream(key)
        return info["entries-added"] == info["length"]
    return bool(await client.xrange(key, entry, entry, count=1))


async def _start(client, key: str, epoch: str, after: str) -> str:
    """The entry id reading begins after: the token's, when nothing after it is missing;
    without a token, the newest entry (only what comes next is wanted)."""
    if not after:
        if not await client.exists(key):
            return START
        return _text((await client.xinfo_stream(key))["last-generated-id"])
    token_epoch, _, entry = after.partition(":")
    if token_epoch != epoch:
        raise ResumeGap(f"{after} is from before the order-update store lost its data")
    if not await _still_there(client, key, entry):
        raise ResumeGap(f"updates after {after} were trimmed")
    return entry


async def read_updates(client, account_id: int, after: str, wait_s) -> AsyncIterator:
    """Yields (token, Order | None): first (token, None) once reading from a definite point,
    then (token, Order) for each update in order, and (token, None) when nothing came
    within wait_s() seconds (a heartbeat is due). Raises ResumeGap; Redis errors pass
    through."""
    key = stream_key(account_id)
    epoch = await _epoch(client)
    last = await _start(client, key, epoch, after)
    yield f"{epoch}:{last}", None
    while True:
        # Catching up: check first that nothing after `last` was trimmed meanwhile.
        async with client.pipeline(transaction=True) as pipe:
            if last == START:
                pipe.exists(key)
            else:
                pipe.xrange(key, last, last, count=1)
            pipe.xread({key: last}, count=BATCH)
            kept, found = await pipe.execute()
        if last != START and not kept:
            raise ResumeGap(f"updates after {epoch}:{last} were trimmed before they were read")
        if not found:  # caught up: wait for the next one
            found = await client.xread({key: last}, count=BATCH, block=max(1, int(wait_s() * 1000)))
        if not found:
            yield f"{epoch}:{last}", None
            continue
        for entry_id, fields in found[0][1]:
            last = _text(entry_id)
            try:
                order = types_pb2.Order.FromString(fields[b"order"])
            except Exception:  # noqa: BLE001 - an unreadable entry must not end every resume
                continue
            yield f"{epoch}:{last}", order
