"""Idempotency of submits, kept by the shard that owns the symbol.

A client_order_id names one order per (account, symbol). The shard checks the key in
memory when the submit reaches it, in sequence order, and the key becomes durable with
the order's journal entry in the same group commit: no separate claim, no extra hop.
Every replica routes a symbol to the same shard, and the shard rebuilds this map from
its snapshot and journal after a crash, so a retry (same key, same request) finds the
original wherever it lands; the same key with a different request is refused.

Memory is bounded by time, not history: a key is kept while its order works, and for
KEY_WINDOW_MS after the order was submitted (by its Snowflake id's time). After that,
the key may name a new order (as FIX ClOrdIDs are unique per session day and several
venues scope them to open orders).
"""

from __future__ import annotations

import hashlib

from bourse.type.v1 import types_pb2

from services.common.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS

KEY_WINDOW_MS = 10 * 60_000
# Unset means CANCEL_INCOMING: both fingerprint alike.
_DEFAULT_STP = (types_pb2.SELF_TRADE_PREVENTION_UNSPECIFIED, types_pb2.SELF_TRADE_PREVENTION_CANCEL_INCOMING)
# How many keys are added between two sweeps of keys past the window.
SWEEP_EVERY = 4096

Key = tuple[int, str, str]  # (account_id, symbol, client_order_id)


def request_hash(order) -> int:
    """A stable 63-bit fingerprint of what a submit (NewOrder) asks for, ids aside."""
    key = f"{order.symbol}|{order.side}|{order.order_type}|{order.time_in_force}|{order.price}|{order.quantity}"
    if order.post_only:
        key += "|post_only"
    if order.self_trade_prevention not in _DEFAULT_STP:
        key += f"|stp={order.self_trade_prevention}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


def id_ms(order_id: int) -> int:
    """Milliseconds since the Snowflake epoch at which the order id was minted."""
    return order_id >> (NODE_BITS + SEQUENCE_BITS)


class ClientOrderIds:
    """key -> (order_id, request_hash) of every order submitted within the window or working."""

    __slots__ = ("_added", "keys")

    def __init__(self, keys: dict[Key, tuple[int, int]] | None = None):
        self.keys = keys if keys is not None else {}
        self._added = 0

    def __len__(self) -> int:
        return len(self.keys)

    def owner(self, key: Key) -> tuple[int, int] | None:
        return self.keys.get(key)

    def add(self, key: Key, order_id: int, fingerprint: int, now_ns: int, working) -> None:
        """Binds `key`; now and then forgets keys past the window whose order is not
        `working` (a container of live order ids). `now_ns` is the command's journaled
        time, so a replay forgets exactly what the live run forgot."""
        self.keys[key] = (order_id, fingerprint)
        self._added += 1
        if self._added % SWEEP_EVERY == 0:
            horizon = now_ns // 1_000_000 - EPOCH_MS - KEY_WINDOW_MS
            self.keys = {k: v for k, v in self.keys.items() if id_ms(v[0]) >= horizon or v[0] in working}

    def rows(self) -> list[tuple[int, str, str, int, int]]:
        """(account_id, symbol, client_order_id, order_id, request_hash), for a snapshot."""
        return [(*key, order_id, fingerprint) for key, (order_id, fingerprint) in self.keys.items()]

    @classmethod
    def from_rows(cls, rows) -> ClientOrderIds:
        return cls({(a, s, c): (o, h) for a, s, c, o, h in rows})
