"""An account's order updates for SubscribeOrders, read from its orders:{ACCOUNT} Redis
stream (written by services/matching/market_data.py), from a resume point on.

Each entry id is a resume token: a client that reconnects with the last token it saw
gets every update after it, unless those were trimmed away (about the last 10,000 per
account are kept) or lost with Redis itself; that is a ResumeGap, never a silent hole.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from bourse.type.v1 import types_pb2

TOKEN = re.compile(r"\d{1,20}-\d{1,20}")
BATCH = 100


class ResumeGap(Exception):
    """Updates after the resume point are gone: the client catches up with ListOrders."""


def stream_key(account_id: int) -> str:
    return f"orders:{account_id}"


def _id(token: str | bytes) -> tuple[int, int]:
    if isinstance(token, bytes):
        token = token.decode()
    ms, _, seq = token.partition("-")
    return int(ms), int(seq or 0)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _start(client, key: str, after: str) -> str:
    """Where reading begins: `after` when nothing after it is missing, else ResumeGap;
    without `after`, the newest entry (only what comes next is wanted)."""
    if not await client.exists(key):
        # Never written, or lost with a Redis that restarted empty.
        if after and _id(after) != (0, 0):
            raise ResumeGap(f"no updates are kept after {after}")
        return "0-0"
    info = await client.xinfo_stream(key)
    newest = _text(info["last-generated-id"])
    if not after:
        return newest
    if _id(after) > _id(newest):
        raise ResumeGap(f"{after} is newer than any update kept: the store lost them")
    first = info.get("first-entry")
    trimmed = info.get("entries-added", 0) > info.get("length", 0)
    if trimmed and (first is None or _id(after) < _id(first[0])):
        # Something older than what is kept was dropped, maybe right after `after`.
        raise ResumeGap(f"updates after {after} were trimmed")
    return after


async def read_updates(client, account_id: int, after: str, block_s: float) -> AsyncIterator:
    """Yields (token, Order | None): first (token, None) once reading from a definite point,
    then (token, Order) for each update in order, and (token, None) after block_s of
    nothing (a heartbeat). Raises ResumeGap; Redis errors pass through."""
    key = stream_key(account_id)
    last = await _start(client, key, after)
    yield last, None
    while True:
        found = await client.xread({key: last}, count=BATCH, block=int(block_s * 1000))
        if not found:
            yield last, None
            continue
        for entry_id, fields in found[0][1]:
            last = _text(entry_id)
            yield last, types_pb2.Order.FromString(fields[b"order"])
