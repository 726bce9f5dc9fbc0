"""gRPC face of a matching shard: decode, hand to the group committer, map errors."""

from __future__ import annotations

import asyncio

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc

from services.common.batch_stream import set_error
from services.common.errors import BourseError, abort
from services.matching.committer import GroupCommitter, Unavailable
from services.matching.shard import InvalidCommand

SERVICE_NAME = "bourse.matching.v1.MatchingService"


class MatchingServicer(matching_grpc.MatchingServiceServicer):
    def __init__(self, committer: GroupCommitter):
        self._committer = committer

    async def _execute(self, commands):
        """Results, or the BourseError the whole batch fails with."""
        try:
            return await self._committer.execute(commands)
        except InvalidCommand as error:
            reason = "INVALID_" + error.field.rsplit(".", 1)[-1].split("[")[0].upper()
            return BourseError(grpc.StatusCode.INVALID_ARGUMENT, reason, str(error))
        except Unavailable as error:
            return BourseError(grpc.StatusCode.UNAVAILABLE, error.reason, str(error))

    async def ExecuteBatch(self, request, context):
        outcome = await self._execute(request.commands)
        if isinstance(outcome, BourseError):
            await abort(context, outcome)
        return matching_pb2.ExecuteBatchResponse(results=outcome)

    async def ExecuteStream(self, request_iterator, context):
        """Every request is handed to the committer as it arrives (so batches of one
        stream queue in order and share commits); answers go out as batches commit."""
        answers: asyncio.Queue = asyncio.Queue()

        async def answer(request):
            outcome = await self._execute(request.commands)
            response = matching_pb2.ExecuteStreamResponse(batch_id=request.batch_id)
            if isinstance(outcome, BourseError):
                set_error(response, outcome)
            else:
                response.results.extend(outcome)
            answers.put_nowait(response)

        async def read():
            pending = set()
            try:
                async for request in request_iterator:
                    task = asyncio.create_task(answer(request))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.gather(*pending)
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await answers.get()) is not None:
                yield response
        finally:
            reader.cancel()

    async def GetShardStatus(self, request, context):
        committer = self._committer
        shard = committer.shard
        return matching_pb2.GetShardStatusResponse(
            shard_index=shard.shard_index, symbols=sorted(shard.symbols), sequence=shard.sequence,
            snapshot_sequence=committer.snapshot_sequence, queued_commands=committer.queued_commands,
            resting_orders=len(shard.live), event_hash=shard.engine.event_hash(), serving=committer.serving,
            committed_batches=committer.batches, committed_commands=committer.committed_commands,
        )

    async def TakeSnapshot(self, request, context):
        try:
            sequence, size = await self._committer.take_snapshot()
        except Unavailable as error:
            await abort(context, BourseError(grpc.StatusCode.UNAVAILABLE, error.reason, str(error)))
        except grpc.RpcError as error:
            await abort(context, BourseError(grpc.StatusCode.UNAVAILABLE, "PERSISTENCE_UNAVAILABLE",
                                             f"snapshot not stored: {error.details()}"))
        return matching_pb2.TakeSnapshotResponse(sequence=sequence, bytes=size)


def register(committer: GroupCommitter):
    def add(server: grpc.aio.Server) -> None:
        matching_grpc.add_MatchingServiceServicer_to_server(MatchingServicer(committer), server)

    return add
