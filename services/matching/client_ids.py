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

import numpy as np

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


def key_digest(key: Key) -> int:
    """128 bits standing for (account_id, symbol, client_order_id): the table keeps this
    rather than the texts (chance of two keys alike: about n^2 / 2^129, nil for any n a
    shard holds)."""
    account, symbol, client_order_id = key
    text = f"{account}|{symbol}|{client_order_id}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "little")


# A key in a snapshot: its digest, the order it names and the request's fingerprint.
PACKED_KEY = np.dtype([("digest_lo", "<u8"), ("digest_hi", "<u8"), ("order_id", "<i8"), ("request_hash", "<i8")])
_LOW = (1 << 64) - 1


class ClientOrderIds:
    """digest of key -> order_id << 64 | request_hash, for every order submitted within
    the window or working. One int per side of the dict entry: about 140 bytes a key,
    where a tuple of the texts took about 250 (tracemalloc, 200,000 keys)."""

    __slots__ = ("_added", "keys")

    def __init__(self, keys: dict[int, int] | None = None):
        self.keys = keys if keys is not None else {}
        self._added = 0

    def __len__(self) -> int:
        return len(self.keys)

    def owner(self, key: Key) -> tuple[int, int] | None:
        """(order_id, request_hash) of the order `key` names, or None."""
        value = self.keys.get(key_digest(key))
        return None if value is None else (value >> 64, value & _LOW)

    def add(self, key: Key, order_id: int, fingerprint: int, now_ns: int, working) -> None:
        """Binds `key`; now and then forgets keys past the window whose order is not
        `working` (a container of live order ids). `now_ns` is the command's journaled
        time, so a replay forgets exactly what the live run forgot."""
        self.keys[key_digest(key)] = order_id << 64 | fingerprint
        self._added += 1
        if self._added % SWEEP_EVERY == 0:
            horizon = now_ns // 1_000_000 - EPOCH_MS - KEY_WINDOW_MS
            self.keys = {k: v for k, v in self.keys.items()
                         if id_ms(v >> 64) >= horizon or (v >> 64) in working}

    def packed(self) -> bytes:
        """Every key as PACKED_KEY records, by digest (a snapshot's, deterministic)."""
        items = sorted(self.keys.items())
        rows = np.zeros(len(items), PACKED_KEY)
        rows["digest_lo"] = np.fromiter((d & _LOW for d, _ in items), np.uint64, len(items))
        rows["digest_hi"] = np.fromiter((d >> 64 for d, _ in items), np.uint64, len(items))
        rows["order_id"] = np.fromiter((v >> 64 for _, v in items), np.int64, len(items))
        rows["request_hash"] = np.fromiter((v & _LOW for _, v in items), np.int64, len(items))
        return rows.tobytes()

    @classmethod
    def from_packed(cls, data: bytes) -> ClientOrderIds:
        rows = np.frombuffer(data, PACKED_KEY)
        return cls({int(hi) << 64 | int(lo): int(order) << 64 | int(fingerprint)
                    for lo, hi, order, fingerprint in rows.tolist()})

    @classmethod
    def from_rows(cls, rows) -> ClientOrderIds:
        """From (account_id, symbol, client_order_id, order_id, request_hash) rows: the
        keys of a snapshot written before keys were packed."""
        return cls({key_digest((a, s, c)): o << 64 | h for a, s, c, o, h in rows})
