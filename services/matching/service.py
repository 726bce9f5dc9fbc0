"""gRPC face of a matching process: decode, hand each shard's commands to its group
committer, map errors. A batch may carry commands of several shards the process serves:
each shard commits its part (concurrently), and the answers go back in the batch's order."""

from __future__ import annotations

import asyncio

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc

from services.common import tracing
from services.common.batch_stream import answer_as_done, set_error
from services.common.errors import BourseError, abort
from services.matching.committer import GroupCommitter, Unavailable
from services.matching.shard import InvalidCommand

SERVICE_NAME = "bourse.matching.v1.MatchingService"
# Commands that go to the shard owning their symbol.
_BY_SYMBOL = frozenset(("new_order", "cancel_order", "modify_order", "set_trading_status"))


def add_results(results, answers) -> None:
    """The shard's answers (shard.Answer) as EncodedCommandResults of a response's
    `results`: the Order bytes go in as they are."""
    add = results.add
    for encoded_order, error_reason, cancelled_count in answers:
        if cancelled_count:
            add(order=encoded_order, error_reason=error_reason, cancelled_count=cancelled_count)
        else:
            add(order=encoded_order, error_reason=error_reason)


class MatchingServicer(matching_grpc.MatchingServiceServicer):
    def __init__(self, committers: dict[int, GroupCommitter]):
        self._committers = committers
        self._first = next(iter(committers.values()))
        self._by_symbol = {symbol: c for c in committers.values() for symbol in c.shard.symbols}

    def _parts(self, commands) -> list[tuple[GroupCommitter, list[int], list]]:
        """The batch split by shard: (committer, positions in the batch, its commands)."""
        if len(self._committers) == 1:
            return [(self._first, [], commands)]
        parts: dict[int, tuple[GroupCommitter, list[int], list]] = {}
        for position, command in enumerate(commands):
            kind = command.WhichOneof("command")
            if kind in _BY_SYMBOL:
                committer = self._by_symbol.get(getattr(command, kind).symbol)
            else:
                committer = self._shard_of(position, kind, command)
            committer = committer or self._first  # it refuses the batch, naming the field
            part = parts.setdefault(id(committer), (committer, [], []))
            part[1].append(position)
            part[2].append(command)
        return list(parts.values())

    def _shard_of(self, position: int, kind: str | None, command) -> GroupCommitter | None:
        """The shard of a command not routed by its symbol alone."""
        if kind == "mass_cancel":  # of one symbol, or of every symbol of the shard it names
            body = command.mass_cancel
            return self._by_symbol.get(body.symbol) if body.symbol else self._committers.get(body.matching_shard)
        if kind in ("set_risk_limits", "expire_orders"):  # their own calls' (and timers'), never a batch's
            raise InvalidCommand(f"commands[{position}]", f"{kind} is not taken in a batch")
        return None

    async def _execute(self, commands, committer: GroupCommitter | None = None):
        """Results, or the BourseError the whole batch fails with; all on `committer` when given."""
        try:
            parts = [(committer, [], commands)] if committer else self._parts(commands)
            if len(parts) == 1:
                return await parts[0][0].execute(parts[0][2])
            for committer, _, part in parts:  # refused as a whole before any shard runs its part
                committer.shard.validate(part)
            answers = await asyncio.gather(*(c.execute(part, validated=True) for c, _, part in parts),
                                           return_exceptions=True)
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
            results = [None] * len(commands)
            for (_, positions, _), answer in zip(parts, answers):
                for position, result in zip(positions, answer):
                    results[position] = result
            return results
        except InvalidCommand as error:
            reason = "INVALID_" + error.field.rsplit(".", 1)[-1].split("[")[0].upper()
            return BourseError(grpc.StatusCode.INVALID_ARGUMENT, reason, str(error), field=error.field)
        except Unavailable as error:
            return BourseError(grpc.StatusCode.UNAVAILABLE, error.reason, str(error))

    async def _committer(self, request, context) -> GroupCommitter:
        """The shard a status or snapshot request names (unset: the first served)."""
        if not request.HasField("shard_index"):
            return self._first
        committer = self._committers.get(request.shard_index)
        if committer is None:
            await abort(context, BourseError(grpc.StatusCode.NOT_FOUND, "SHARD_NOT_SERVED",
                                             f"shard_index: {request.shard_index} is not served here"))
        return committer

    async def ExecuteBatch(self, request, context):
        outcome = await self._execute(request.commands)
        if isinstance(outcome, BourseError):
            await abort(context, outcome)
        response = matching_pb2.EncodedExecuteBatchResponse()
        add_results(response.results, outcome)
        return response

    async def ExecuteStream(self, request_iterator, context):
        """Every request is handed to the committer as it arrives (so batches of one
        stream queue in order and share commits); answers go out as batches commit."""

        async def answer(request):
            with tracing.continued("matching.batch", request.trace_context,
                                   **{"bourse.commands": len(request.commands)}):
                outcome = await self._execute(request.commands)
            response = matching_pb2.EncodedExecuteStreamResponse(batch_id=request.batch_id)
            if isinstance(outcome, BourseError):
                set_error(response, outcome)
            else:
                add_results(response.results, outcome)
            return response

        async for response in answer_as_done(request_iterator, answer):
            yield response

    async def GetShardStatus(self, request, context):
        committer = await self._committer(request, context)
        shard = committer.shard
        return matching_pb2.GetShardStatusResponse(
            shard_index=shard.shard_index, symbols=sorted(shard.symbols), sequence=shard.sequence,
            snapshot_sequence=committer.snapshot_sequence, queued_commands=committer.queued_commands,
            resting_orders=len(shard.live), event_hash=shard.engine.event_hash(), serving=committer.serving,
            committed_batches=committer.batches, committed_commands=committer.committed_commands,
            halted_symbols=sorted(shard.halted),
            risk_limits=[matching_pb2.RiskLimits(account_id=account, **limits._asdict())
                         for account, limits in sorted(shard.risk.items())],
        )

    async def SetRiskLimits(self, request, context):
        """Journaled through the named shard's group committer, in line with its orders."""
        if not request.HasField("shard_index"):  # never "the first": limits bind per shard
            await abort(context, BourseError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SHARD_INDEX",
                                             "shard_index: required", field="shard_index"))
        committer = await self._committer(request, context)
        outcome = await self._execute([matching_pb2.Command(set_risk_limits=request.limits)], committer)
        if isinstance(outcome, BourseError):
            await abort(context, outcome)
        return matching_pb2.SetRiskLimitsResponse(limits=request.limits)

    async def SetTradingStatus(self, request, context):
        """Journaled through the symbol's group committer, in line with its orders."""
        command = request.command
        outcome = await self._execute([matching_pb2.Command(set_trading_status=command)])
        if isinstance(outcome, BourseError):
            await abort(context, outcome)
        return matching_pb2.SetTradingStatusResponse(symbol=command.symbol, status=command.status)

    async def TakeSnapshot(self, request, context):
        committer = await self._committer(request, context)
        try:
            sequence, size = await committer.take_snapshot()
        except Unavailable as error:
            await abort(context, BourseError(grpc.StatusCode.UNAVAILABLE, error.reason, str(error)))
        except grpc.RpcError as error:
            await abort(context, BourseError(grpc.StatusCode.UNAVAILABLE, "PERSISTENCE_UNAVAILABLE",
                                             f"snapshot not stored: {error.details()}"))
        return matching_pb2.TakeSnapshotResponse(sequence=sequence, bytes=size)


def _serialize(response) -> bytes:
    # Duck-typed: ExecuteBatch and ExecuteStream answer with their Encoded* forms.
    return response.SerializeToString()


def register(committers: dict[int, GroupCommitter]):
    """The generated registration, except that every response is written by its own
    SerializeToString: the Execute RPCs answer with Encoded* messages (the wire form of
    their declared responses, see the proto), which the generated serializers, bound to
    the declared types, are not meant to take."""
    def add(server: grpc.aio.Server) -> None:
        servicer = MatchingServicer(committers)
        handlers = {
            "ExecuteBatch": grpc.unary_unary_rpc_method_handler(
                servicer.ExecuteBatch, matching_pb2.ExecuteBatchRequest.FromString, _serialize),
            "ExecuteStream": grpc.stream_stream_rpc_method_handler(
                servicer.ExecuteStream, matching_pb2.ExecuteStreamRequest.FromString, _serialize),
            "GetShardStatus": grpc.unary_unary_rpc_method_handler(
                servicer.GetShardStatus, matching_pb2.GetShardStatusRequest.FromString, _serialize),
            "TakeSnapshot": grpc.unary_unary_rpc_method_handler(
                servicer.TakeSnapshot, matching_pb2.TakeSnapshotRequest.FromString, _serialize),
            "SetRiskLimits": grpc.unary_unary_rpc_method_handler(
                servicer.SetRiskLimits, matching_pb2.SetRiskLimitsRequest.FromString, _serialize),
            "SetTradingStatus": grpc.unary_unary_rpc_method_handler(
                servicer.SetTradingStatus, matching_pb2.SetTradingStatusRequest.FromString, _serialize),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)

    return add
