"""The descriptions of a shard's working orders (resting, and stops waiting off the book):
order_id -> OrderState, packed when it can be.

A restore makes no Python object per order: the rows stay packed (ROW_DTYPE, the same
bytes the snapshot carries, see snapshot_codec.py) and an order's OrderState is built
when a command first touches it. Measured with 1M resting orders (bench_recovery.py):
restore 0.8 s instead of 7.1 s; the shard process needs ~200 B RSS per resting order,
engine included, instead of ~635.
"""

from __future__ import annotations

import copy
from collections.abc import MutableMapping

import numpy as np
from _matching_native import find_sorted, state_rows, untrack

from services.matching.order_state import OrderState

# One working order's description, packed: a row of a snapshot (snapshot_codec.py). Version 1
# of the snapshot had no stops: its rows end at status.
ROW_DTYPE_V1 = np.dtype([
    ("order_id", "<i8"), ("account_id", "<i8"), ("price", "<i8"), ("quantity", "<i8"), ("filled", "<i8"),
    ("leaves", "<i8"), ("create_ns", "<i8"), ("update_ns", "<i8"), ("coid_offset", "<u4"), ("coid_length", "<u4"),
    ("symbol", "<u2"), ("reason", "<u2"), ("side", "u1"), ("order_type", "u1"), ("time_in_force", "u1"),
    ("status", "u1"),
])
ROW_DTYPE = np.dtype(ROW_DTYPE_V1.descr + [("stop_price", "<i8"), ("display_quantity", "<i8"), ("expire_us", "<i8"),
                                            ("triggered", "u1")])

# Orders a step of `packing` makes rows for: about a millisecond, orders scattered over the heap.
PACK_STEP = 2048


class LiveOrders(MutableMapping):
    """order_id -> OrderState of every working order (the dict calls the shard uses).

    After a restore most orders are packed rows (ROW_DTYPE, ascending id, found by
    binary search); a row becomes an OrderState in `_states` when first touched, and
    is marked taken in the packed part."""

    __slots__ = ("_blob", "_frozen", "_ids", "_last_id", "_open", "_packed", "_rows", "_since", "_states", "_taken",
                 "_texts")

    def __init__(self, states: dict[int, OrderState] | None = None, rows=None, texts=(), blob=b""):
        self._states = states if states is not None else {}
        self._hold(rows if rows is not None else np.zeros(0, ROW_DTYPE), texts, blob)
        # Resting orders per account, kept only for the accounts `track` names (those with
        # an open-orders limit): every other order costs one empty-dict test.
        self._open: dict[int, int] = {}
        # The orders looked up, added or removed since `mark()` (None: not marking).
        self._since: set[int] | None = None
        # The states of a view that a snapshot packs (freeze()), which must not change: a
        # command that looks one up or removes it gets a copy. None: no view.
        self._frozen: dict[int, OrderState] | None = None

    def track(self, account_id: int) -> None:
        """Counts the account's resting orders from now on (open_orders)."""
        if account_id in self._open:
            return
        packed = self._rows["account_id"][~self._taken] if self._packed else ()
        self._open[account_id] = (sum(1 for state in self._states.values() if state.account_id == account_id)
                                  + int(np.count_nonzero(packed == account_id)))

    def untrack(self, account_id: int) -> None:
        self._open.pop(account_id, None)

    def open_orders(self, account_id: int) -> int:
        """The account's resting orders; only for a tracked account."""
        return self._open[account_id]

    def _index(self, order_id) -> int:
        # Orders placed since the rows were packed have higher ids (and are in _states).
        if not self._packed or order_id > self._last_id:
            return -1
        i = find_sorted(self._ids, order_id)
        return i if i >= 0 and not self._taken[i] else -1

    def _take(self, i: int) -> OrderState:
        (order_id, account_id, price, quantity, filled, leaves, create_ns, update_ns, offset, length, symbol,
         reason, side, order_type, tif, status, stop_price, display, expire_us, triggered) = self._rows[i].tolist()
        self._taken[i] = True
        self._packed -= 1
        return OrderState(order_id, account_id, self._blob[offset : offset + length].decode(), self._texts[symbol],
                          side, order_type, tif, price, quantity, create_ns, filled, leaves, status,
                          self._texts[reason], update_ns, stop_price, triggered, display, expire_us)

    def get(self, order_id, default=None):
        if self._since is not None:
            self._since.add(order_id)
        state = self._states.get(order_id)
        if state is None:
            i = self._index(order_id)
            if i < 0:
                return default
            state = self._states[order_id] = untrack(self._take(i))
        elif self._frozen is not None and self._frozen.get(order_id) is state:
            state = self._states[order_id] = untrack(copy.copy(state))
        return state

    def __getitem__(self, order_id) -> OrderState:
        state = self.get(order_id)
        if state is None:
            raise KeyError(order_id)
        return state

    def pop(self, order_id, *default):
        if self._since is not None:
            self._since.add(order_id)
        state = self._states.pop(order_id, None)
        if state is None:
            i = self._index(order_id)
            if i < 0:
                if default:
                    return default[0]
                raise KeyError(order_id)
            state = self._take(i)
        elif self._frozen is not None and self._frozen.get(order_id) is state:
            state = copy.copy(state)
        if self._open and state.account_id in self._open:
            self._open[state.account_id] -= 1
        return state

    def __delitem__(self, order_id) -> None:
        self.pop(order_id)

    def __setitem__(self, order_id, state: OrderState) -> None:
        # Only for an order that just came to rest: the engine refuses an id that is live.
        if self._open and state.account_id in self._open and order_id not in self._states:
            self._open[state.account_id] += 1
        if self._since is not None:
            self._since.add(order_id)
        # Out of the garbage collector's view (gc_untrack.cc): a resting order lives long,
        # and every collection of an older generation walked each one.
        self._states[order_id] = untrack(state)

    def __contains__(self, order_id) -> bool:
        return order_id in self._states or self._index(order_id) >= 0

    def __len__(self) -> int:
        return len(self._states) + self._packed

    def __iter__(self):
        yield from list(self._states)
        if self._packed:
            yield from self._ids[~self._taken].tolist()

    def __repr__(self) -> str:
        return f"<resting orders: {len(self._states)} as OrderState, {self._packed} packed>"

    def pack(self) -> tuple[np.ndarray, list[str], bytes]:
        """(rows in ascending order_id, texts, client_order_id blob) of every resting order."""
        steps = self.packing()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def mark(self) -> None:
        """From now on, records which orders are looked up, added or removed, for `adopt`.
        Called when a snapshot's child is forked: it packs the orders as they are now."""
        self._since = set()

    def freeze(self) -> LiveOrders:
        """The working orders as they are now, as a view for a snapshot to pack (`packing`)
        while commands go on. The view shares this one's states: from now on, a command
        that looks up or removes one of them gets a copy (copy-on-write), so that the
        view's never change, until `adopt` (as after a fork, and it marks as `mark` does).
        Packed on the event loop in steps, a snapshot holds the shard's books only for
        this (a dict's copy), where packing under the hold took 20-40 ms at 16,000 orders
        (and a thread doing it kept the event loop from the GIL for all that time)."""
        view = LiveOrders.__new__(LiveOrders)
        view._states = dict(self._states)
        view._rows, view._texts, view._blob, view._ids, view._last_id = (
            self._rows, self._texts, self._blob, self._ids, self._last_id)
        view._taken, view._packed = self._taken.copy(), self._packed
        view._open, view._since, view._frozen = {}, None, None
        self._frozen = view._states
        self.mark()
        return view

    def release(self, step: int = 4096):
        """Drops a frozen view's states (`freeze`), `step` at a time, yielding between: the
        last references to most of them, whose deallocation takes about 0.2 us each."""
        while self._states:
            for _ in range(min(step, len(self._states))):
                self._states.popitem()
            yield

    def adopt(self, packed: LiveOrders | None, view: LiveOrders | None = None) -> bool:
        """Holds the rows of `packed` (every working order as it was at `mark()` or
        `freeze()`, packed by a snapshot's child or from the view: the pack this process
        would have made itself) as the descriptions of the orders not touched since; those
        touched stay as they are now. None (the child failed): stops marking, and copying
        for a view. False, changing nothing, when `view` is not the latest frozen one, or
        when the rows' orders, less those touched since, and the touched ones still working
        are not exactly the orders working now (the rows cannot be the orders of the mark)."""
        if view is not None and view._states is not self._frozen:
            return False
        self._frozen = None
        since, self._since = self._since, None
        if packed is None or since is None or packed._states or packed._packed != len(packed._rows):
            return False
        rows = packed._rows
        ids = np.ascontiguousarray(rows["order_id"])
        touched = np.fromiter(since, dtype=ids.dtype, count=len(since))
        taken = np.zeros(len(rows), dtype=bool)
        if len(touched) and len(ids):
            at = np.minimum(np.searchsorted(ids, touched), len(ids) - 1)
            taken[at[ids[at] == touched]] = True
        states = {order_id: self._states[order_id] for order_id in since if order_id in self._states}
        # The rows' untouched orders must be exactly the untouched ones working now: both
        # ascending, merged from sorted runs (on the event loop, with the books held: at a
        # million orders 22 ms, where sorting every id on both sides took 43).
        untouched = _merged(self._ids[~self._taken], [order_id for order_id in self._states if order_id not in since])
        if not np.array_equal(ids[~taken], untouched):
            return False
        self._states = states
        self._hold(rows, packed._texts, packed._blob, ids)
        self._taken, self._packed = taken, len(rows) - int(taken.sum())
        return True

    def _hold(self, rows: np.ndarray, texts, blob: bytes, ids: np.ndarray | None = None) -> None:
        """Packed rows (ascending order_id) as the orders' descriptions, none taken yet
        (ids: their order_id column, contiguous, if the caller has it)."""
        self._rows, self._texts, self._blob = rows, list(texts), blob
        self._ids = np.ascontiguousarray(rows["order_id"]) if ids is None else ids
        self._last_id = int(self._ids[-1]) if len(self._ids) else -1
        self._taken = np.zeros(len(rows), dtype=bool)
        self._packed = len(rows)

    def packing(self, step: int | None = None):
        """`pack()` in steps, yielding between `step` orders' rows (on the event loop, so
        that batches run between them); returns what `pack()` returns. Canonical: the rows
        by order_id, the blob in their order, the texts sorted, so one set of working
        orders packs alike whatever was packed or touched before."""
        if not self._states and self._packed == len(self._rows):
            return self._rows, list(self._texts), self._blob  # as restored or adopted: packed already
        texts = list(self._texts)
        index = {text: i for i, text in enumerate(texts)}
        kept = self._rows[~self._taken] if self._packed < len(self._rows) else self._rows
        step = step or PACK_STEP
        states, parts, coid_parts, blob_at = list(self._states.values()), [], [], len(self._blob)
        for start in range(0, len(states), step):
            part, coids = rows_of(states[start : start + step], index, texts, blob_at)
            parts.append(part)
            coid_parts.append(coids)
            blob_at += len(coids)
            yield
        new = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, ROW_DTYPE)
        coids = b"".join(coid_parts)
        rows = np.concatenate([kept, new]) if len(kept) else new
        ids = rows["order_id"]
        if not (ids[1:] > ids[:-1]).all():  # mostly ascending already: orders rest in id order
            rows = rows[np.argsort(ids, kind="stable")]
        blob, offsets = _gather(bytes(self._blob) + coids, rows["coid_offset"], rows["coid_length"])
        if len(blob) > 0xFFFFFFFF:
            raise RuntimeError("client_order_ids too large for a packed snapshot")
        rows["coid_offset"] = offsets
        # Counted, not np.union1d: that imports numpy.ma on first use (11 ms, in a first snapshot).
        counts = np.bincount(rows["symbol"], minlength=len(texts)) + np.bincount(rows["reason"], minlength=len(texts))
        used = sorted({texts[i] for i in np.flatnonzero(counts).tolist()})
        if len(used) > 0xFFFF:
            raise RuntimeError("too many distinct symbols and reasons for a packed snapshot")
        renumber = np.zeros(len(texts), dtype=np.uint16)
        renumber[[index[value] for value in used]] = np.arange(len(used), dtype=np.uint16)
        rows["symbol"], rows["reason"] = renumber[rows["symbol"]], renumber[rows["reason"]]
        return rows, used, blob


# A row's columns read from the OrderState attribute of the same name, as state_rows takes
# them (symbol and reason are numbered texts; the client_order_id columns are its own).
_KINDS = {"<i8": "q", "<u4": "I", "<u2": "H", "|u1": "B"}
ROW_COLUMNS = tuple(
    (name, ROW_DTYPE.fields[name][1], "t" if name in ("symbol", "reason") else _KINDS[ROW_DTYPE.fields[name][0].str])
    for name in ROW_DTYPE.names if name not in ("coid_offset", "coid_length"))
_COID = ("client_order_id", ROW_DTYPE.fields["coid_offset"][1], ROW_DTYPE.fields["coid_length"][1])


def rows_of(states: list[OrderState], index: dict[str, int], texts: list[str], blob_at: int = 0):
    """(the rows of `states`, their client_order_ids' UTF-8 concatenated): the symbol and
    reason numbered by `index` (a new text is appended to `texts` and numbered), each
    client_order_id at blob_at plus its place. A snapshot builds them for every order that
    came to rest since the last, with the shard's books held: natively (state_rows.cc),
    0.63 us an order where numpy, a column at a time, took 1.44 (bench_pack.py, orders
    scattered over the heap as a shard's are; 0.17 against 0.84 laid out in a row)."""
    rows = np.zeros(len(states), ROW_DTYPE)
    coids = state_rows(states, rows, ROW_COLUMNS, index, texts, (*_COID, blob_at))
    return rows, coids


def _gather(blob: bytes, offsets: np.ndarray, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The byte ranges (offsets[i], lengths[i]) of blob, concatenated, and their new offsets."""
    lengths = lengths.astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    if not total:
        return b"", starts
    index = np.arange(total, dtype=np.int64) + np.repeat(offsets.astype(np.int64) - starts, lengths)
    return np.frombuffer(blob, dtype=np.uint8)[index].tobytes(), starts


def _merged(ascending: np.ndarray, others: list[int]) -> np.ndarray:
    """`ascending` and `others` in one ascending array: two sorted runs, which a stable
    sort (timsort) merges in one pass."""
    ids = np.concatenate([ascending, np.sort(np.fromiter(others, dtype=np.int64, count=len(others)))])
    ids.sort(kind="stable")
    return ids
