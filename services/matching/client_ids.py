"""Idempotency of submits, kept by the shard that owns the symbol.

A client_order_id names one order per (account, symbol). The shard checks the key in
memory when the submit reaches it, in sequence order, and the key becomes durable with
the order's journal entry in the same group commit: no separate claim, no extra hop.
Every replica routes a symbol to the same shard, and the shard rebuilds this map from
its snapshot and journal after a crash, so a retry (same key, same request) finds the
original wherever it lands; the same key with a different request is refused.

Memory is bounded by time, not history: a key is kept while its order works, and for
KEY_WINDOW_MS after it was bound (the submit's journaled time). After that,
the key may name a new order (as FIX ClOrdIDs are unique per session day and several
venues scope them to open orders).

The shard keeps its keys in a KeyTable (native/key_table.cc, new_key_table()): under a
stream's load the window holds millions, and as Python ints in a dict they took about
twice the memory, and each snapshot spent about a microsecond a key encoding them
(bench_keys.py measures both side by side). ClientOrderIds below is the same table in
Python, the reference the native one is tested against.
"""

from __future__ import annotations

import hashlib
from collections import deque
from itertools import repeat

import numpy as np
from _matching_native import KeyTable, key_table_from_packed

from bourse.type.v1 import types_pb2

from services.common.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS

KEY_WINDOW_MS = 10 * 60_000
# Unset means CANCEL_INCOMING: both fingerprint alike.
_DEFAULT_STP = (types_pb2.SELF_TRADE_PREVENTION_UNSPECIFIED, types_pb2.SELF_TRADE_PREVENTION_CANCEL_INCOMING)
# How many of the oldest keys each new key looks at (and forgets if past the window):
# more than one, so forgetting outpaces binding.
RECLAIM_PER_ADD = 4

Key = tuple[int, str, str]  # (account_id, symbol, client_order_id)


def request_hash(order) -> int:
    """A stable 63-bit fingerprint of what a submit (NewOrder) asks for, ids aside."""
    key = f"{order.symbol}|{order.side}|{order.order_type}|{order.time_in_force}|{order.price}|{order.quantity}"
    if order.post_only:
        key += "|post_only"
    if order.self_trade_prevention not in _DEFAULT_STP:
        key += f"|stp={order.self_trade_prevention}"
    # Each only when set, so that a request without them keeps the fingerprint it had before
    # they existed (keys in snapshots and journals). A DAY order's expiry is computed again
    # on each attempt: only a GTD's, the client's own, counts.
    if order.display_quantity:
        key += f"|display={order.display_quantity}"
    if order.stop_price:
        key += f"|stop={order.stop_price}"
    if order.time_in_force == types_pb2.TIME_IN_FORCE_GTD and order.expire_time_us:
        key += f"|expire={order.expire_time_us}"
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
PACKED_KEY = np.dtype([("digest_lo", "<u8"), ("digest_hi", "<u8"), ("order_id", "<i8"), ("request_hash", "<i8"),
                       ("bound_ms", "<i8")])
_LOW = (1 << 64) - 1


def key_bytes(digests: list[int], values: list[int]) -> tuple[bytes, bytes]:
    """The bytes of the digests (lo, hi) and of their table values (request_hash,
    order_id, bound_ms), 8 bytes each, little-endian, one C call per int: a Python
    expression per key took about 5 us, which at a few hundred thousand keys held the
    shard for seconds. Callers on an event loop take it in chunks."""
    count = len(digests)
    return (b"".join(map(int.to_bytes, digests, repeat(16, count), repeat("little", count))),
            b"".join(map(int.to_bytes, values, repeat(24, count), repeat("little", count))))


def pack_keys(digest_bytes: bytes, value_bytes: bytes) -> bytes:
    """Keys (as key_bytes gives them) as PACKED_KEY records in digest order."""
    digest = np.frombuffer(digest_bytes, np.uint64).reshape(-1, 2)  # lo, hi
    value = np.frombuffer(value_bytes, np.uint64).reshape(-1, 3)  # request_hash, order_id, bound_ms
    records = np.empty((len(digest), 5), np.uint64)  # PACKED_KEY's fields, in its order
    records[:, :2] = digest
    records[:, 2], records[:, 3], records[:, 4] = value[:, 1], value[:, 0], value[:, 2]
    order = np.argsort(digest[:, 1])
    if len(order) > 1 and bool(np.any(np.diff(digest[order, 1]) == 0)):  # ties: a total order, still
        order = np.lexsort((digest[:, 0], digest[:, 1]))
    return np.take(records, order, axis=0).tobytes()


def _ms(now_ns: int) -> int:
    """Milliseconds since the Snowflake epoch (0 before it)."""
    return max(0, now_ns // 1_000_000 - EPOCH_MS)


def new_key_table() -> KeyTable:
    """The table a shard keeps its keys in: ClientOrderIds's in C++ (key_table.cc), about
    50 bytes a key (its ring in blocks of 1,024, as used; 48 at 1M keys), against about 100
    in the dict (bench_keys.py, 1M keys), copied for a snapshot in one pass."""
    return KeyTable(KEY_WINDOW_MS, EPOCH_MS)


def key_table_of(packed: bytes) -> KeyTable:
    """A KeyTable holding PACKED_KEY records (a snapshot's)."""
    return key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, packed)


class ClientOrderIds:
    """The reference for KeyTable, which the shard uses (tests check one against the
    other): digest of key -> bound_ms << 128 | order_id << 64 | request_hash, for every key
    bound within the window or whose order works. One int per side of the dict entry,
    and the digest again in the reclaim queue: about 150 bytes a key, where a tuple of
    the texts took about 250 (tracemalloc, 200,000 keys).

    Whether a key still names its order is decided at lookup, from the command's
    journaled time: a live run, a replay and a restored shard answer alike, whenever
    memory is reclaimed. Memory is reclaimed as keys age: they are queued in the order
    they were bound, and each bind looks at a few of the oldest, so the work per order
    stays constant however many keys the window holds."""

    __slots__ = ("_queue", "keys")

    def __init__(self, keys: dict[int, int] | None = None):
        self.keys = keys if keys is not None else {}
        # Digests, oldest bound first (a restore: by their order's id).
        self._queue: deque[int] = deque(sorted(self.keys, key=lambda digest: self.keys[digest] >> 128))

    def __len__(self) -> int:
        return len(self.keys)

    def owner(self, digest: int, now_ns: int | None = None, working=()) -> tuple[int, int] | None:
        """(order_id, request_hash) of the order the key of `digest` (key_digest) names,
        or None: also None once the key is past the window at `now_ns` and its order is
        not `working`."""
        value = self.keys.get(digest)
        if value is None:
            return None
        order_id = value >> 64 & _LOW
        if now_ns is not None and value >> 128 < _ms(now_ns) - KEY_WINDOW_MS and order_id not in working:
            return None
        return order_id, value & _LOW

    def add(self, digest: int, order_id: int, fingerprint: int, now_ns: int, working) -> None:
        """Binds the key of `digest` (for good, replacing a key past the window); forgets a
        few keys past the window whose order is not `working` (a container of live order
        ids). Keys go by their digest, which the caller computes once for both calls."""
        self.keys[digest] = _ms(now_ns) << 128 | order_id << 64 | fingerprint
        self._queue.append(digest)
        self.reclaim(now_ns, working, RECLAIM_PER_ADD)

    def reclaim(self, now_ns: int, working, limit: int) -> int:
        """Forgets up to `limit` of the oldest keys that are past the window at `now_ns` and
        whose order is not `working`; how many it looked at. (Answers do not depend on it:
        owner() decides by time. `now_ns` must not exceed a later command's time.)"""
        horizon = _ms(now_ns) - KEY_WINDOW_MS
        looked = 0
        while looked < limit and self._queue:
            oldest = self._queue[0]
            value = self.keys.get(oldest)
            if value is not None and value >> 128 >= horizon:
                break  # within the window (so, nearly always, is everything after it)
            looked += 1
            self._queue.popleft()
            if value is None:  # forgotten already (the digest was queued twice)
                continue
            if (value >> 64 & _LOW) in working:
                self._queue.append(oldest)  # still named while its order works: look again later
            else:
                del self.keys[oldest]
        return looked

    def packed(self) -> bytes:
        """Every key as PACKED_KEY records, by digest (a snapshot's, deterministic)."""
        return pack_keys(*key_bytes(list(self.keys), list(self.keys.values())))

    @classmethod
    def from_packed(cls, data: bytes) -> ClientOrderIds:
        rows = np.frombuffer(data, PACKED_KEY)
        return cls({int(hi) << 64 | int(lo): int(bound) << 128 | int(order) << 64 | int(fingerprint)
                    for lo, hi, order, fingerprint, bound in rows.tolist()})

    @classmethod
    def from_rows(cls, rows) -> ClientOrderIds:
        """From (account_id, symbol, client_order_id, order_id, request_hash) rows: the
        keys of a snapshot written before keys were packed, bound when their order was
        (its Snowflake id's time)."""
        return cls({key_digest((a, s, c)): id_ms(o) << 128 | o << 64 | h for a, s, c, o, h in rows})
