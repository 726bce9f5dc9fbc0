"""What the shard needs from persistence, and the gRPC client that provides it.

Anything with these coroutines will do (tests use an in-process store):
  write_batch(ShardWrite) -> None, raising on any failure (nothing committed); a
    ShardWrite (shard_write.py) has the batch's rows, and its WriteBatchRequest form
  read_snapshot(shard) -> bytes | None: the newest complete snapshot
  read_journal(shard, after_sequence) -> async iterator of lists of JournalEntry
  save_snapshot(shard, sequence, data) -> None
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc

from services.common.batch_stream import BatchStream
from services.matching.shard_write import ShardWrite

SNAPSHOT_CHUNK = 2 * 1024 * 1024


class Persistence(Protocol):
    async def write_batch(self, batch: ShardWrite) -> None: ...

    async def read_snapshot(self, shard: int) -> bytes | None: ...

    def read_journal(self, shard: int, after_sequence: int) -> AsyncIterator[list]: ...

    async def save_snapshot(self, shard: int, sequence: int, data: bytes) -> None: ...


def snapshot_chunks(shard: int, sequence: int, data: bytes, size: int = SNAPSHOT_CHUNK):
    view = memoryview(data)
    count = max(1, -(-len(data) // size))
    for index in range(count):
        yield persistence_pb2.SnapshotChunk(
            matching_shard=shard, sequence=sequence, index=index,
            data=bytes(view[index * size : (index + 1) * size]), last=index == count - 1,
        )


class WriteFailed(Exception):
    """The batch did not commit, or its outcome is unknown."""


class GrpcPersistence:
    def __init__(self, channel, write_timeout_s: float = 3.0, read_timeout_s: float = 120.0, direct=None):
        """direct: a DirectWrites (direct_writes.py) that commits the batches itself,
        on PostgreSQL; without one they go to the persistence service."""
        self._stub = persistence_grpc.PersistenceServiceStub(channel)
        self._read_timeout = read_timeout_s
        self._direct = direct
        # Group commits go over one WriteBatchStream: a message per batch, not a call.
        self._writes = BatchStream(
            self._stub.WriteBatchStream,
            lambda batch_id, batch: persistence_pb2.WriteBatchStreamRequest(batch_id=batch_id, batch=batch),
            write_timeout_s, WriteFailed, "persistence")

    async def write_batch(self, batch: ShardWrite) -> None:
        if self._direct is not None:
            await self._direct.write_batch(batch)
        else:
            await self._writes(batch.request)

    async def close(self) -> None:
        await self._writes.close()
        if self._direct is not None:
            await self._direct.close()

    async def read_snapshot(self, shard: int) -> bytes | None:
        parts = []
        call = self._stub.ReadSnapshot(persistence_pb2.ReadSnapshotRequest(matching_shard=shard),
                                       timeout=self._read_timeout)
        async for response in call:
            parts.append(response.chunk.data)
        return b"".join(parts) if parts else None

    async def read_journal(self, shard: int, after_sequence: int):
        call = self._stub.ReadJournal(
            persistence_pb2.ReadJournalRequest(matching_shard=shard, after_sequence=after_sequence, page_size=5000),
            timeout=self._read_timeout,
        )
        async for response in call:
            yield list(response.entries)

    async def save_snapshot(self, shard: int, sequence: int, data: bytes) -> None:
        if self._direct is not None:  # where the batches go: the same statements, one hop and 2 processes fewer
            await self._direct.save_snapshot(shard, sequence, data, SNAPSHOT_CHUNK)
            return
        requests = (persistence_pb2.SaveSnapshotRequest(chunk=c) for c in snapshot_chunks(shard, sequence, data))
        await self._stub.SaveSnapshot(requests, timeout=self._read_timeout)
