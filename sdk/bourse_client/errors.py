"""The exchange's refusals as exceptions a caller can branch on.

Every error the exchange sends carries a canonical gRPC code and a google.rpc.ErrorInfo
reason. The SDK raises one class per reason a caller acts on differently (ORDER_DONE:
stop cancelling; CLIENT_ORDER_ID_REUSED: a bug in the caller's ids; RATE_LIMITED: slow
down), each a subclass of its code's class, so `except NotFound` still catches
`OrderNotFound`. Every invalid argument is an `InvalidArgument` whose `field` names the
request field that was wrong. A reason this SDK does not know yet raises its code's
class, with the reason still in `.reason`.

    try:
        client.cancel_order(order_id, symbol="AAPL")
    except OrderDone:
        pass  # filled or cancelled already
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


class BourseError(Exception):
    """A call the exchange refused, or that failed on the way.

    code: the canonical gRPC status code; reason: the ErrorInfo reason (UPPER_SNAKE, ""
    when the failure came from the transport, not from the exchange); message: what was
    wrong, in words; retry_after_s: the server's advice (RetryInfo) on when to try again,
    if it gave one; field: for an invalid argument, the request field that was wrong
    ("" for the request as a whole)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    retryable = False  # the SDK may send the same call again (with the same client_order_id)

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, reason: str = "",
                 retry_after_s: float | None = None, field: str | None = None):
        super().__init__(f"{(code or self.code).name} {reason or '-'}: {message}")
        self.code = code or self.code
        self.reason, self.message, self.retry_after_s, self.field = reason, message, retry_after_s, field


class InvalidArgument(BourseError):
    """A field is missing or out of range, the symbol is unknown, or the instrument's
    rules (tick, lot, band) refuse the value; `field` names it."""
    code = grpc.StatusCode.INVALID_ARGUMENT


class MalformedRequest(InvalidArgument):
    """The bytes were not the method's message (a client built on other protos)."""


class Unauthenticated(BourseError):
    code = grpc.StatusCode.UNAUTHENTICATED


class MissingApiKey(Unauthenticated):
    """The call carried no `authorization: Bearer <api key>`."""


class InvalidApiKey(Unauthenticated):
    """The key is unknown, revoked or malformed."""


class NotFound(BourseError):
    code = grpc.StatusCode.NOT_FOUND


class OrderNotFound(NotFound):
    """No order with that id (and symbol) in the caller's account."""


class AlreadyExists(BourseError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ClientOrderIdReused(AlreadyExists):
    """The client_order_id names a different order of the account on this symbol: a
    retry must repeat the original request exactly."""


class FailedPrecondition(BourseError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OrderDone(FailedPrecondition):
    """The order is filled, cancelled or rejected: nothing is left to cancel or modify."""


class QuantityNotAboveFilled(FailedPrecondition):
    """A modify asked for a quantity not above what has filled: cancel instead."""


class WouldTakeLiquidity(FailedPrecondition):
    """A post-only order's new price would trade on arrival."""


class StopWouldTrigger(FailedPrecondition):
    """A waiting stop's new stop price has been reached by the last trade already (a new
    stop order so placed is answered REJECTED with this reason instead)."""


class InstrumentHalted(FailedPrecondition):
    """The instrument is halted: new orders and modifies are refused until it trades again
    (nothing was created: the same submit may be sent again then); cancels work."""


class RiskLimitExceeded(FailedPrecondition):
    """Refused by the account's pre-trade limits (an operator sets them); nothing was
    created. The subclass says which limit."""


class OrderQuantityAboveLimit(RiskLimitExceeded):
    """The order's quantity is above the account's maximum order quantity."""


class NotionalAboveLimit(RiskLimitExceeded):
    """Price times quantity is above the account's maximum notional."""


class PriceOutsideCollar(RiskLimitExceeded):
    """The limit price is too far from the instrument's last trade (fat-finger protection)."""


class TooManyOpenOrders(RiskLimitExceeded):
    """The account has its most working orders allowed (on the instrument's shard)."""


class Aborted(BourseError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(BourseError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UpdatesTrimmed(OutOfRange):
    """The resume token is older than the updates the exchange keeps: catch up with
    list_orders, then subscribe without a token."""


class ResourceExhausted(BourseError):
    """Too much at once; `retry_after_s` says when to try again, when the server knows."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class RateLimited(ResourceExhausted):
    """The key's calls per second on the replica it reached."""
    retryable = True


class TooManyInFlight(ResourceExhausted):
    """The key's calls (or a session's commands) in flight."""
    retryable = True


class TooManySessions(ResourceExhausted):
    """The key's order-entry sessions on one replica."""


class TooManySubscriptions(ResourceExhausted):
    """The replica's order-update subscriptions."""


class Unavailable(BourseError):
    """A replica, shard, database or store is down or stalled, or the connection broke.
    A submit may or may not have been accepted: sending it again with the same
    client_order_id is safe, and the SDK does so for a while before it raises this."""
    code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class DeadlineExceeded(BourseError):
    """The caller's deadline passed first; as for Unavailable, a submit may have executed."""
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(BourseError):
    code = grpc.StatusCode.INTERNAL


class SessionEnded(Unavailable):
    """The order-entry session ended (closed, or could not reconnect) with this command
    unanswered: it may have executed; submit it again with the same client_order_id."""
    retryable = False


BY_CODE: dict[grpc.StatusCode, type[BourseError]] = {
    cls.code: cls for cls in (InvalidArgument, Unauthenticated, NotFound, AlreadyExists, FailedPrecondition,
                              Aborted, OutOfRange, ResourceExhausted, Unavailable, DeadlineExceeded, Internal)}

BY_REASON: dict[str, type[BourseError]] = {
    "MALFORMED_REQUEST": MalformedRequest,
    "MISSING_API_KEY": MissingApiKey,
    "INVALID_API_KEY": InvalidApiKey,
    "ORDER_NOT_FOUND": OrderNotFound,
    "CLIENT_ORDER_ID_REUSED": ClientOrderIdReused,
    "ORDER_DONE": OrderDone,
    "QUANTITY_NOT_ABOVE_FILLED": QuantityNotAboveFilled,
    "WOULD_TAKE_LIQUIDITY": WouldTakeLiquidity,
    "STOP_WOULD_TRIGGER": StopWouldTrigger,
    "INSTRUMENT_HALTED": InstrumentHalted,
    "ORDER_QUANTITY_ABOVE_LIMIT": OrderQuantityAboveLimit,
    "NOTIONAL_ABOVE_LIMIT": NotionalAboveLimit,
    "PRICE_OUTSIDE_COLLAR": PriceOutsideCollar,
    "TOO_MANY_OPEN_ORDERS": TooManyOpenOrders,
    "UPDATES_TRIMMED": UpdatesTrimmed,
    "RATE_LIMITED": RateLimited,
    "TOO_MANY_IN_FLIGHT": TooManyInFlight,
    "TOO_MANY_SESSIONS": TooManySessions,
    "TOO_MANY_SUBSCRIPTIONS": TooManySubscriptions,
}


def _code(number: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == number), grpc.StatusCode.UNKNOWN)


def from_status(status: status_pb2.Status) -> BourseError:
    """The exception for a google.rpc.Status: the reason's class (an order-entry result's
    error, or a failed call's details)."""
    code = _code(status.code)
    reason, retry_after_s, field = "", None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after_s = retry.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            field = bad.field_violations[0].field if bad.field_violations else ""
    cls = BY_REASON.get(reason)
    if cls is None or cls.code != code:
        cls = BY_CODE.get(code, BourseError)
    return cls(status.message, code=code, reason=reason, retry_after_s=retry_after_s, field=field)


def from_rpc_error(error: grpc.RpcError) -> BourseError:
    """The exception for a failed call (sync or asyncio): its status details when the
    exchange sent them, else the transport's code and details (reason "")."""
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    if status is None:
        status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
    return from_status(status)
