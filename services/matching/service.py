"""gRPC face of a matching shard: decode, hand to the group committer, map errors."""

from __future__ import annotations

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc

from services.common.errors import BourseError, abort
from services.matching.committer import GroupCommitter, Unavailable
from services.matching.shard import InvalidCommand

SERVICE_NAME = "bourse.matching.v1.MatchingService"


class MatchingServicer(matching_grpc.MatchingServiceServicer):
    def __init__(self, committer: GroupCommitter):
        self._committer = committer

    async def ExecuteBatch(self, request, context):
        try:
            results = await self._committer.execute(request.commands)
        except InvalidCommand as error:
            reason = "INVALID_" + error.field.rsplit(".", 1)[-1].split("[")[0].upper()
            await abort(context, BourseError(grpc.StatusCode.INVALID_ARGUMENT, reason, str(error)))
        except Unavailable as error:
            await abort(context, BourseError(grpc.StatusCode.UNAVAILABLE, error.reason, str(error)))
        return matching_pb2.ExecuteBatchResponse(results=results)

    async def GetShardStatus(self, request, context):
        committer = self._committer
        shard = committer.shard
        return matching_pb2.GetShardStatusResponse(
            shard_index=shard.shard_index, symbols=sorted(shard.symbols), sequence=shard.sequence,
            snapshot_sequence=committer.snapshot_sequence, queued_commands=committer.queued_commands,
            resting_orders=len(shard.live), event_hash=shard.engine.event_hash(), serving=committer.serving,
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
