"""Snapshots of a matching shard's books, stored in chunks on its home database.

SnapshotWriter (on the event loop) takes an upload chunk by chunk; the functions below
run on a worker thread per call. A snapshot becomes visible with its head row, written
in the last chunk's transaction, so readers never see a partial one.

Journal pruning (the store's journal_prune, on in the service unless BOURSE_JOURNAL_PRUNE
is off): once SNAPSHOTS_KEPT complete snapshots exist, the head's transaction also
deletes the shard's journal up to the oldest kept snapshot. Recovery from either kept
snapshot still finds every entry after it; a read from further back gets JournalPruned.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa

from services.persistence.errors import InvalidArgument, check_shard
from services.persistence.models import JOURNAL, SNAPSHOT_HEADS, SNAPSHOTS, Row
from services.persistence.shards import Shard

if TYPE_CHECKING:
    # Only for annotations: store.py imports this module.
    from services.persistence.store import ShardedStore

# Complete snapshots kept per matching shard: the newest, and one to fall back on.
SNAPSHOTS_KEPT = 2


class SnapshotWriter:
    """Stores one snapshot chunk by chunk, each chunk in its own transaction (so a
    100 MB snapshot never sits in memory); the last chunk's transaction also writes the
    head that makes it visible and prunes all but the newest SNAPSHOTS_KEPT complete
    snapshots of the shard (and, with the store's journal_prune, the journal they no
    longer need). A snapshot already complete at that sequence is left as it is (a
    retried upload): its chunks are checked for order and dropped, nothing is pruned."""

    def __init__(self, store: ShardedStore):
        self._store = store
        self._first: Row | None = None
        self._next_index = 0
        self._done = False
        self._duplicate = False
        self._bytes = 0

    async def add(self, chunk: Row) -> None:
        """chunk: matching_shard, sequence, index, data, last."""
        index = chunk["index"]
        if self._done:
            raise InvalidArgument("chunk.index", f"chunk {index} after the one marked last")
        if self._first is None:
            check_shard(chunk["matching_shard"])
            if chunk["sequence"] < 0:
                raise InvalidArgument("chunk.sequence", f"must not be negative, got {chunk['sequence']}")
            self._first = chunk
        elif (chunk["matching_shard"], chunk["sequence"]) != (self._first["matching_shard"], self._first["sequence"]):
            raise InvalidArgument("chunk.sequence", "every chunk of a snapshot must have the first one's "
                                  "matching_shard and sequence")
        if index != self._next_index:
            raise InvalidArgument("chunk.index", f"expected {self._next_index}, got {index}")
        self._next_index += 1
        self._done = chunk["last"]
        matching_shard = self._first["matching_shard"]
        shard = self._store._shards[self._store.home_of(matching_shard)]
        if index == 0:
            stored = await self._store._call(shard, snapshot_start, matching_shard, chunk["sequence"])
            self._duplicate = stored is not None
            self._bytes = stored or 0
        if self._duplicate:
            return
        self._bytes += len(chunk["data"])
        await self._store._call(shard, snapshot_put, matching_shard, chunk["sequence"], index, chunk["data"],
                                self._bytes if chunk["last"] else None, self._store.journal_prune)

    async def finish(self) -> int:
        """Bytes stored (of the snapshot already there, for a repeated one); refuses a
        stream that ended before its last chunk."""
        if self._first is None:
            raise InvalidArgument("chunk", "no chunks")
        if not self._done:
            raise InvalidArgument("chunk.last", f"the stream ended after chunk {self._next_index - 1} without "
                                  "a chunk marked last: the snapshot stays invisible")
        return self._bytes


# -- per-database work (runs on a worker thread) ---------------------------------------

def save(shard: Shard, matching_shard: int, sequence: int, chunks: list[bytes], prune_journal: bool) -> int:
    """A whole snapshot, stored as SnapshotWriter stores an upload of these chunks (each in
    its own transaction, the last with the head, pruning); the bytes stored, or those of
    the snapshot complete at that sequence already. For a matching shard that writes its
    own home database (its direct writes): through this service, a 5 MB snapshot cost the
    service 20-30 ms of CPU and the shard's event loop 12 ms, besides the database's own."""
    check_shard(matching_shard)
    if sequence < 0:
        raise InvalidArgument("sequence", f"must not be negative, got {sequence}")
    stored = snapshot_start(shard, matching_shard, sequence)
    if stored is not None:
        return stored
    total = sum(len(chunk) for chunk in chunks)
    for index, chunk in enumerate(chunks):
        snapshot_put(shard, matching_shard, sequence, index, chunk, total if index == len(chunks) - 1 else None,
                     prune_journal)
    return total


# Also read by reads.shard_state.
NEWEST_HEAD = (
    sa.select(SNAPSHOT_HEADS.c.sequence, SNAPSHOT_HEADS.c.chunks, SNAPSHOT_HEADS.c.time)
    .where(SNAPSHOT_HEADS.c.matching_shard == sa.bindparam("shard"))
    .order_by(SNAPSHOT_HEADS.c.sequence.desc())
    .limit(1)
)


def newest_head(shard: Shard, matching_shard: int) -> tuple[int, int] | None:
    with shard.engine.connect() as conn:
        head = conn.execute(NEWEST_HEAD, {"shard": matching_shard}).first()
    return None if head is None else (head.sequence, head.chunks)


def snapshot_chunk(shard: Shard, matching_shard: int, sequence: int, index: int) -> bytes | None:
    with shard.engine.connect() as conn:
        data = conn.execute(sa.select(SNAPSHOTS.c.data).where(
            SNAPSHOTS.c.matching_shard == matching_shard, SNAPSHOTS.c.sequence == sequence,
            SNAPSHOTS.c.chunk_index == index)).scalar()
    return None if data is None else bytes(data)


def snapshot_start(shard: Shard, matching_shard: int, sequence: int) -> int | None:
    """The size of that snapshot when it is complete already; else None, having cleared
    leftovers of an earlier attempt at it (chunks without a head)."""
    with shard.engine.begin() as conn:
        stored = conn.execute(sa.select(SNAPSHOT_HEADS.c.bytes).where(
            SNAPSHOT_HEADS.c.matching_shard == matching_shard, SNAPSHOT_HEADS.c.sequence == sequence)).scalar()
        if stored is None:
            conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.matching_shard == matching_shard,
                                                    SNAPSHOTS.c.sequence == sequence))
        return stored


def snapshot_put(shard: Shard, matching_shard: int, sequence: int, index: int, data: bytes,
                 total_bytes: int | None, prune_journal: bool = False) -> None:
    """Stores a chunk; with total_bytes (the last chunk) also the head, and prunes
    snapshots (and the journal, with prune_journal)."""
    with shard.engine.begin() as conn:
        conn.execute(sa.insert(SNAPSHOTS), {"matching_shard": matching_shard, "sequence": sequence,
                                            "chunk_index": index, "data": data})
        if total_bytes is None:
            return
        conn.execute(sa.insert(SNAPSHOT_HEADS), {"matching_shard": matching_shard, "sequence": sequence,
                                                 "chunks": index + 1, "bytes": total_bytes,
                                                 "time": datetime.now(timezone.utc)})
        kept = [r[0] for r in conn.execute(
            sa.select(SNAPSHOT_HEADS.c.sequence).where(SNAPSHOT_HEADS.c.matching_shard == matching_shard)
            .order_by(SNAPSHOT_HEADS.c.sequence.desc()).limit(SNAPSHOTS_KEPT))]
        conn.execute(sa.delete(SNAPSHOT_HEADS).where(SNAPSHOT_HEADS.c.matching_shard == matching_shard,
                                                     SNAPSHOT_HEADS.c.sequence.not_in(kept)))
        # Chunks of pruned snapshots, and of uploads abandoned below the newest kept one.
        conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.matching_shard == matching_shard,
                                                SNAPSHOTS.c.sequence.not_in(kept),
                                                SNAPSHOTS.c.sequence < max(kept)))
        if prune_journal and len(kept) == SNAPSHOTS_KEPT:
            # The oldest kept snapshot is the fallback: it needs the journal after it, and
            # nothing needs what comes before. A late upload older than both is already
            # gone from `kept`, so it prunes nothing new.
            conn.execute(sa.delete(JOURNAL).where(JOURNAL.c.matching_shard == matching_shard,
                                                  JOURNAL.c.sequence <= min(kept)))
