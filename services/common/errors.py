"""Errors with a gRPC code and a machine-readable reason (google.rpc.ErrorInfo)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "bourse.exchange"


class BourseError(Exception):
    """A failure the caller should see: code, UPPER_SNAKE reason, human message; for an
    invalid argument, the request field that was wrong ("" when the request as a whole
    was: not a valid message)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, retry_after_s: float | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s  # sent as a google.rpc.RetryInfo when set
        self.field = field  # sent as a google.rpc.BadRequest when set


def invalid(field: str, message: str, reason: str | None = None) -> BourseError:
    """INVALID_ARGUMENT naming `field`: reason INVALID_<FIELD> unless given, the message
    "field: message", and a BadRequest detail with the field's violation."""
    return BourseError(grpc.StatusCode.INVALID_ARGUMENT, reason or "INVALID_" + field.upper(), f"{field}: {message}",
                       field=field)


def status_message(error: BourseError) -> status_pb2.Status:
    """The error as a google.rpc.Status: code, message, ErrorInfo (and RetryInfo, and for
    a field that was wrong BadRequest) details."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN))
    details = [detail]
    if error.retry_after_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(error.retry_after_s * 1e9))
        details.append(any_pb2.Any())
        details[-1].Pack(retry)
    if error.field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
        details.append(any_pb2.Any())
        details[-1].Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    return status_pb2.Status(code=error.code.value[0], message=error.message, details=details)


def to_status(error: BourseError) -> grpc.Status:
    return rpc_status.to_status(status_message(error))


async def abort(context: grpc.aio.ServicerContext, error: BourseError):
    """Ends the call with error's code, message and ErrorInfo detail."""
    await context.abort_with_status(to_status(error))


def _detail(error: grpc.RpcError, message_type):
    """The first detail of a received error's status that is a `message_type`, if any."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        message = message_type()
        if detail.Unpack(message):
            return message
    return None


def status_reason(status: status_pb2.Status) -> str:
    """The ErrorInfo reason of a google.rpc.Status ("" if it carries none)."""
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Unpack(info):
            return info.reason
    return ""


def reason_of(error: grpc.RpcError) -> str | None:
    """The ErrorInfo reason of a received error, if it carries one."""
    info = _detail(error, error_details_pb2.ErrorInfo)
    return info.reason if info is not None else None


def bad_fields_of(error: grpc.RpcError) -> list[str]:
    """The fields a received INVALID_ARGUMENT's BadRequest names, if it carries one."""
    bad = _detail(error, error_details_pb2.BadRequest)
    return [violation.field for violation in bad.field_violations] if bad is not None else []


def retry_after_of(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay of a received error, in seconds, if it carries one."""
    retry = _detail(error, error_details_pb2.RetryInfo)
    return retry.retry_delay.ToNanoseconds() / 1e9 if retry is not None else None
