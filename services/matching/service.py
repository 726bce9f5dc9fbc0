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


def register(committer: GroupCommitter):
    def add(server: grpc.aio.Server) -> None:
        matching_grpc.add_MatchingServiceServicer_to_server(MatchingServicer(committer), server)

    return add
