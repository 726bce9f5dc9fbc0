"""Malformed requests answered INVALID_ARGUMENT instead of UNKNOWN.

gRPC parses a request before the servicer runs; bytes that are not the method's message
made it answer UNKNOWN ("Unexpected DecodeError") and log a traceback for every such
request. `tolerant(server, log)` stands for the server while a generated
`add_XServicer_to_server` registers a servicer: each method's request is parsed by a
deserializer that keeps a parse failure as a value, and the method then ends the call
INVALID_ARGUMENT (reason MALFORMED_REQUEST) and logs one line, without running. A
request stream yields the failure as an Undecodable in its place, for the method to end
the stream so once it has answered what came before.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from services.common.errors import BourseError, abort


class Undecodable:
    """A request whose bytes are not the method's message (`error` says why)."""

    def __init__(self, error: str):
        self.error = error


class _Tolerant:
    def __init__(self, server: grpc.aio.Server, log):
        self._server = server
        self._log = log

    def add_generic_rpc_handlers(self, handlers) -> None:
        """Ignored: the generated code registers the same methods through
        add_registered_method_handlers next, where they are wrapped."""

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        wrapped = {name: self._wrap(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)

    def _wrap(self, method: str, handler):
        if handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def deserialize(data: bytes):
            try:
                return parse(data)
            except DecodeError as error:
                return Undecodable(str(error))

        if handler.request_streaming:  # the method meets each Undecodable in its stream
            return handler._replace(request_deserializer=deserialize)

        async def refuse(request: Undecodable, context) -> None:
            self._log.warning("malformed request refused", method=method, error=request.error)
            await abort(context, malformed(method, request))

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                if isinstance(request, Undecodable):
                    await refuse(request, context)
                return await inner(request, context)

            return handler._replace(request_deserializer=deserialize, unary_unary=unary_unary)
        inner_stream = handler.unary_stream

        async def unary_stream(request, context):
            if isinstance(request, Undecodable):
                await refuse(request, context)
            async for response in inner_stream(request, context):
                yield response

        return handler._replace(request_deserializer=deserialize, unary_stream=unary_stream)


def malformed(method: str, request: Undecodable) -> BourseError:
    return BourseError(grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST",
                       f"request: not a valid message for {method} ({request.error})", field="")


def tolerant(server: grpc.aio.Server, log) -> _Tolerant:
    return _Tolerant(server, log)
