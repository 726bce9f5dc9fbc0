"""The order desk: submit (with idempotency), cancel, read. No gRPC server code here.

Downstream failures become BourseError with UNAVAILABLE. Every downstream call ends by
the caller's own deadline (CALLER_DEADLINE, set per call by the servicer) or after the
call timeout, whichever comes first: a stalled dependency costs a client at most its own
deadline, and the desk stops waiting when the client has. Idempotency is the matching
shard's (services/matching/client_ids.py): a submit goes straight to the shard that owns
its symbol, which answers a retry (same account, symbol and client_order_id) with the
original's id instead of executing it; the original is read back from persistence
(it is committed before the shard answers). A submit whose answer was lost may be
retried: if it committed, the retry finds it; if not, the retry runs it.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc
from bourse.type.v1 import types_pb2

from services.common.config import ShardMap
from services.common.errors import BourseError, invalid
from services.common.ids import SnowflakeIds
from services.order import validation
from services.order.batcher import Batcher
from services.order.downstream import ShardUnavailable

DONE = {types_pb2.ORDER_STATUS_FILLED, types_pb2.ORDER_STATUS_CANCELLED, types_pb2.ORDER_STATUS_REJECTED}


# The current call's deadline in event-loop time (None: the client set none). Each gRPC
# call runs in its own task, so each sees its own value.
CALLER_DEADLINE: ContextVar[float | None] = ContextVar("caller_deadline", default=None)


def unavailable(what: str, error: Exception, advice: str = "retry") -> BourseError:
    detail = error.details() if isinstance(error, grpc.RpcError) else str(error)
    return BourseError(grpc.StatusCode.UNAVAILABLE, f"{what.upper()}_UNAVAILABLE",
                       f"{what} unavailable ({detail}); {advice}")


def _budget(timeout_s: float) -> float:
    """Seconds a downstream call may take: the call timeout, or less if the caller's
    deadline comes first."""
    deadline = CALLER_DEADLINE.get()
    if deadline is None:
        return timeout_s
    return max(0.0, min(timeout_s, deadline - asyncio.get_running_loop().time()))


def not_found(order_id: int) -> BourseError:
    return BourseError(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND", f"order {order_id} not found")


# The shard's refusals by the account's pre-trade limits (set by an operator, per shard):
# reason -> the message, from the request's price and quantity.
RISK_REFUSALS = {
    "ORDER_QUANTITY_ABOVE_LIMIT": "quantity: {quantity} is above the account's maximum order quantity",
    "NOTIONAL_ABOVE_LIMIT": "price x quantity is above the account's maximum notional",
    "PRICE_OUTSIDE_COLLAR": "price: {price} is outside the account's price collar around the last trade",
    "TOO_MANY_OPEN_ORDERS": "the account has its most working orders allowed on this instrument's shard: "
                            "cancel some first",
}


def risk_refusal(reason: str, request) -> BourseError:
    """Nothing was created: the same submit may be sent again once the limits allow it."""
    return BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason,
                       RISK_REFUSALS[reason].format(price=request.price, quantity=request.quantity))


def halted(symbol: str) -> BourseError:
    return BourseError(grpc.StatusCode.FAILED_PRECONDITION, "INSTRUMENT_HALTED",
                       f"symbol: {symbol} is halted: new orders and modifies are refused until it trades "
                       "again (cancels work)")


class OrderDesk:
    def __init__(
        self,
        symbols,
        shard_map: ShardMap,
        shards: list[Batcher],
        persistence: persistence_grpc.PersistenceServiceStub,
        ids: SnowflakeIds,
        call_timeout_s: float,
        trading_day_end_s: int = 0,
    ):
        self.symbols = frozenset(symbols)
        self._shards = shard_map
        self._shard_batchers = shards
        self._persistence = persistence
        self._ids = ids
        self._timeout = call_timeout_s
        self._day_end_s = trading_day_end_s  # when DAY orders expire, after midnight UTC

    def _batcher(self, symbol: str) -> Batcher:
        shard = self._shards.shard_of(symbol)
        if shard is None:
            raise invalid("symbol", f"no shard owns {symbol!r}")
        return self._shard_batchers[shard]

    def prepare(self, kind: str, request, account_id: int):
        """A submit, cancel or modify checked and made into its matching command:
        (the shard's batcher, the command, finish), where `finish(request, account_id,
        result)` turns the shard's result into (order, replayed), raises the BourseError
        that answers it, or returns a coroutine of either when the answer needs a read
        of the stored order. Raises BourseError for a request refused before it is sent."""
        if kind == "submit":
            # Built in place from the fields: a message built first would be copied in.
            command = matching_pb2.Command(
                new_order=validation.new_order_fields(request, account_id, self._ids.next(), self.symbols,
                                                      self._day_end_s))
            finish = self._submitted
        elif kind == "cancel":
            validation.order_id(request.order_id)
            validation.check_symbol(request.symbol, self.symbols)
            command = matching_pb2.Command(cancel_order={
                "order_id": request.order_id, "account_id": account_id, "symbol": request.symbol})
            finish = self._cancelled
        else:
            command = matching_pb2.Command(modify_order=validation.modify_order_fields(request, account_id,
                                                                                       self.symbols))
            finish = self._modified
        return self._batcher(request.symbol), command, finish

    def deadline(self) -> float:
        """When a command sent now stops being waited for (event-loop time)."""
        return asyncio.get_running_loop().time() + _budget(self._timeout)

    @staticmethod
    def failed(kind: str, error: BaseException) -> BaseException:
        """What a command whose batch failed answers: UNAVAILABLE for the shard's and the
        transport's failures (a submit's retry keeps its client_order_id), else the error."""
        if isinstance(error, (grpc.RpcError, asyncio.TimeoutError, RuntimeError, ShardUnavailable)):
            advice = "retry with the same client_order_id" if kind == "submit" else "retry"
            return unavailable("matching shard", error, advice)
        return error

    async def _run(self, kind: str, request, account_id: int) -> tuple[types_pb2.Order, bool]:
        batcher, command, finish = self.prepare(kind, request, account_id)
        try:
            result = await batcher.execute(command, self.deadline())
        except Exception as error:  # noqa: BLE001 - mapped, or raised as it is
            answer = self.failed(kind, error)
            if answer is error:
                raise
            raise answer from error
        outcome = finish(request, account_id, result)
        return await outcome if asyncio.iscoroutine(outcome) else outcome

    async def submit(self, request, account_id: int) -> tuple[types_pb2.Order, bool]:
        """Returns (order, replayed)."""
        return await self._run("submit", request, account_id)

    def _submitted(self, request, account_id: int, result: matching_pb2.CommandResult):
        reason = result.error_reason
        if reason == "CLIENT_ORDER_ID_REUSED":
            raise BourseError(
                grpc.StatusCode.ALREADY_EXISTS, reason,
                f"client_order_id: {request.client_order_id!r} was used for a different order "
                f"({result.order.order_id}) on {request.symbol}; a retry must repeat the original request",
            )
        if reason in ("DUPLICATE_CLIENT_ORDER_ID", "DUPLICATE_ORDER_ID"):
            return self._original(result.order.order_id, account_id, request.symbol)
        if reason == "INSTRUMENT_HALTED":  # nothing was created: the same request may come again
            raise halted(request.symbol)
        if reason in RISK_REFUSALS:
            raise risk_refusal(reason, request)
        if reason == "EXPIRE_TIME_PASSED":  # nothing was created
            raise invalid("expire_time", "must be in the future (it had passed when the order reached its shard)")
        return result.order, False

    async def _original(self, order_id: int, account_id: int, symbol: str) -> tuple[types_pb2.Order, bool]:
        # The original ran in this batch or an earlier one, and the shard answers
        # once its batch committed: one read finds it.
        stored = await self._find(order_id, account_id, symbol)
        if stored is not None:
            return stored, True
        raise unavailable("matching shard", RuntimeError(f"original order {order_id} not found"),
                          "retry with the same client_order_id")

    async def _find(self, order_id: int, account_id: int, symbol: str = "",
                    fills: bool = True) -> types_pb2.Order | None:
        try:
            response = await self._persistence.GetOrder(
                persistence_pb2.GetOrderRequest(order_id=order_id, account_id=account_id, symbol=symbol,
                                                without_fills=not fills),
                timeout=_budget(self._timeout),
            )
            return response.order
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise unavailable("persistence", error) from error

    async def cancel(self, request, account_id: int) -> types_pb2.Order:
        return (await self._run("cancel", request, account_id))[0]

    def _cancelled(self, request, account_id: int, result: matching_pb2.CommandResult):
        if not result.error_reason:
            return result.order, False
        return self._not_working(request, account_id, result, "cancel",
                                 lambda name: f"order {request.order_id} is already {name}")

    def _not_working(self, request, account_id: int, result, action: str, done_message):
        """Raises why the shard found no working order to `action`: unknown or another
        account's (NOT_FOUND), done (FAILED_PRECONDITION, only its owner learns it), else
        ABORTED. The shard says ORDER_DONE itself for the account's orders it saw finish
        lately, and that answer is raised at once (no task); otherwise only the stored
        order tells, and a coroutine that raises after reading it is returned."""
        reason = result.error_reason
        if reason == "ORDER_DONE":
            raise _refusal(result.order.status, reason, action, done_message)
        return self._stored_refusal(request, account_id, reason, action, done_message)

    async def _stored_refusal(self, request, account_id: int, reason: str, action: str, done_message):
        stored = await self._find(request.order_id, account_id, request.symbol, fills=False)  # its state is enough
        if stored is None or stored.symbol != request.symbol:
            raise not_found(request.order_id)
        raise _refusal(stored.status, reason, action, done_message)

    async def modify(self, request, account_id: int) -> types_pb2.Order:
        return (await self._run("modify", request, account_id))[0]

    def _modified(self, request, account_id: int, result: matching_pb2.CommandResult):
        reason = result.error_reason
        if not reason:
            return result.order, False
        if reason in ("UNKNOWN_ORDER", "ORDER_DONE"):
            return self._not_working(request, account_id, result, "modify",
                                     lambda name: f"order {request.order_id} is {name}: nothing left to modify")
        if reason == "QUANTITY_NOT_ABOVE_FILLED":
            raise BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason,
                              f"quantity: {request.quantity} is not above the {result.order.filled_quantity} "
                              "already filled; cancel the order instead")
        if reason == "INSTRUMENT_HALTED":
            raise halted(request.symbol)
        if reason in RISK_REFUSALS:
            raise risk_refusal(reason, request)
        if reason == "WOULD_TAKE_LIQUIDITY":
            raise BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason,
                              f"price: the order is post-only and {request.price} would trade on arrival")
        if reason == "STOP_WOULD_TRIGGER":
            raise BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason,
                              "stop_price: the last trade has reached it already; the stop would enter at once")
        if reason == "INVALID_STOP_PRICE":
            raise invalid("stop_price", "only a waiting stop or stop-limit order has one to change", reason)
        if reason == "INVALID_PRICE" and request.price == 0:
            raise invalid("price", "must be 1 or more ticks: only a waiting STOP has none", reason)
        # The instrument's rules (tick, lot, band, limits): the request's values.
        field = "quantity" if "QUANTITY" in reason else "price"
        raise invalid(field, f"refused by the instrument's rules ({reason})", reason)

    async def mass_cancel(self, symbol: str, account_id: int) -> int:
        """Cancels the account's working orders on `symbol`, or on every symbol when it is
        empty: one command for that symbol's shard, or one for each shard, at once. How
        many it cancelled; UNAVAILABLE if a shard did not answer (the others' cancels
        stand, and a repeat cancels what still works)."""
        if symbol:
            validation.check_symbol(symbol, self.symbols)
            sends = [(self._batcher(symbol), {"account_id": account_id, "symbol": symbol})]
        else:
            sends = [(batcher, {"account_id": account_id, "matching_shard": index})
                     for index, batcher in enumerate(self._shard_batchers)]
        deadline = self.deadline()
        groups = [batcher.enqueue_group([matching_pb2.Command(mass_cancel=fields)], deadline)
                  for batcher, fields in sends]
        await asyncio.gather(*(group.future for group in groups), return_exceptions=True)
        cancelled, failure = 0, None
        for group in groups:
            future = group.future
            missing = RuntimeError("the batch was abandoned") if future.cancelled() else future.exception()
            for outcome in group.outcomes:
                outcome = missing if outcome is None else outcome
                if isinstance(outcome, BaseException) or outcome is None:
                    failure = failure or outcome or RuntimeError("no answer")
                else:
                    cancelled += outcome.cancelled_count
        if failure is not None:
            error = self.failed("mass_cancel", failure)
            if error is failure:
                raise error
            raise unavailable("matching shard", failure,
                              f"at least {cancelled} orders were cancelled on the shards that answered; "
                              "repeat the call")
        return cancelled

    async def get(self, order_id: int, account_id: int) -> types_pb2.Order:
        validation.order_id(order_id)
        order = await self._find(order_id, account_id)
        if order is None:
            raise not_found(order_id)
        return order

    async def list(self, request, account_id: int) -> persistence_pb2.ListOrdersResponse:
        size = validation.page_size(request.page_size)
        if request.symbol:
            validation.check_symbol(request.symbol, self.symbols)
        try:
            return await self._persistence.ListOrders(
                persistence_pb2.ListOrdersRequest(
                    account_id=account_id, page_size=size, page_token=request.page_token, symbol=request.symbol
                ),
                timeout=_budget(self._timeout),
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise BourseError(error.code(), "INVALID_PAGE_TOKEN", f"page_token: {error.details()}") from error
            raise unavailable("persistence", error) from error


def _refusal(status: int, reason: str, action: str, done_message) -> BourseError:
    if status in DONE:
        name = types_pb2.OrderStatus.Name(status)
        return BourseError(grpc.StatusCode.FAILED_PRECONDITION, "ORDER_DONE", done_message(name))
    return BourseError(grpc.StatusCode.ABORTED, reason, f"{action} refused: {reason}")
