"""The order desk: submit (with idempotency), cancel, read. No gRPC server code here.

Downstream failures become BourseError with UNAVAILABLE. A submit first claims its
(account, client_order_id) durably; whatever happens after, the client's retry with the
same client_order_id finds the original order, or re-sends it under the same order_id
when it never reached the books.
"""

from __future__ import annotations

import asyncio
import hashlib

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc
from bourse.type.v1 import types_pb2

from services.common.config import ShardMap
from services.common.errors import BourseError
from services.common.ids import RESEND_WINDOW_MS, SnowflakeIds
from services.order import validation
from services.order.batcher import Batcher
from services.order.downstream import ClaimsUnavailable, ShardUnavailable

DONE = {types_pb2.ORDER_STATUS_FILLED, types_pb2.ORDER_STATUS_CANCELLED, types_pb2.ORDER_STATUS_REJECTED}
# How long a retry waits for an in-flight original to be committed before re-sending it.
REPLAY_WAIT_S = 1.0


def request_hash(order: matching_pb2.NewOrder) -> int:
    """A stable 63-bit fingerprint of what a submit asks for (not its ids)."""
    key = f"{order.symbol}|{order.side}|{order.order_type}|{order.time_in_force}|{order.price}|{order.quantity}"
    # Appended only when set: fingerprints stored before these fields existed still match.
    if order.post_only:
        key += "|post_only"
    if order.self_trade_prevention not in (types_pb2.SELF_TRADE_PREVENTION_UNSPECIFIED,
                                           types_pb2.SELF_TRADE_PREVENTION_CANCEL_INCOMING):
        key += f"|stp={order.self_trade_prevention}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


def unavailable(what: str, error: Exception) -> BourseError:
    detail = error.details() if isinstance(error, grpc.RpcError) else str(error)
    return BourseError(
        grpc.StatusCode.UNAVAILABLE, f"{what.upper()}_UNAVAILABLE",
        f"{what} unavailable ({detail}); retry with the same client_order_id",
    )


def not_found(order_id: int) -> BourseError:
    return BourseError(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND", f"order {order_id} not found")


class OrderDesk:
    def __init__(
        self,
        symbols,
        shard_map: ShardMap,
        shards: list[Batcher],
        persistence: persistence_grpc.PersistenceServiceStub,
        claims: Batcher,
        ids: SnowflakeIds,
        call_timeout_s: float,
    ):
        self.symbols = frozenset(symbols)
        self._shards = shard_map
        self._shard_batchers = shards
        self._persistence = persistence
        self._claims = claims
        self._ids = ids
        self._timeout = call_timeout_s

    def _batcher(self, symbol: str) -> Batcher:
        shard = self._shards.shard_of(symbol)
        if shard is None:
            raise BourseError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SYMBOL", f"symbol: no shard owns {symbol!r}")
        return self._shard_batchers[shard]

    async def _execute(self, symbol: str, command: matching_pb2.Command) -> matching_pb2.CommandResult:
        try:
            async with asyncio.timeout(self._timeout):  # unlike wait_for, no task per call
                return await self._batcher(symbol).execute(command)
        except BourseError:
            raise
        except (grpc.RpcError, asyncio.TimeoutError, RuntimeError, ShardUnavailable) as error:
            raise unavailable("matching shard", error) from error

    async def submit(self, request, account_id: int) -> tuple[types_pb2.Order, bool]:
        """Returns (order, replayed)."""
        order_id = self._ids.next()
        new_order = validation.new_order(request, account_id, order_id, self.symbols)
        fingerprint = request_hash(new_order)
        claim = persistence_pb2.ClientOrderIdClaim(
            account_id=account_id, client_order_id=request.client_order_id, order_id=order_id,
            request_hash=fingerprint,
        )
        try:
            async with asyncio.timeout(self._timeout):
                owner, owner_hash = await self._claims.execute(claim)
        except (grpc.RpcError, asyncio.TimeoutError, RuntimeError, ClaimsUnavailable) as error:
            raise unavailable("persistence", error) from error
        replay = owner != order_id
        if replay:
            if owner_hash != fingerprint:
                raise BourseError(
                    grpc.StatusCode.ALREADY_EXISTS, "CLIENT_ORDER_ID_REUSED",
                    f"client_order_id: {request.client_order_id!r} was used for a different order "
                    f"({owner}); a retry must repeat the original request",
                )
            stored = await self._wait_for_stored(owner, account_id)
            if stored is not None:
                return stored, True
            if SnowflakeIds.age_ms(owner) > RESEND_WINDOW_MS:
                # The original never reached the books and no longer can: shards remember
                # ids only so long, so re-sending it now could run it twice.
                raise BourseError(
                    grpc.StatusCode.ABORTED, "ORDER_NEVER_EXECUTED",
                    f"order {owner} for client_order_id {request.client_order_id!r} never reached the book; "
                    "submit it again with a new client_order_id",
                )
            new_order.order_id = owner  # the original never committed: send it again as itself
        result = await self._execute(request.symbol, matching_pb2.Command(new_order=new_order))
        if result.error_reason == "DUPLICATE_ORDER_ID":
            # The shard ran the original in this batch or an earlier one, and batches
            # commit in order: it is stored by now, one read finds it.
            stored = await self._find(new_order.order_id, account_id, request.symbol)
            if stored is not None:
                return stored, True
            raise unavailable("matching shard", RuntimeError(f"original order {new_order.order_id} not found"))
        return result.order, replay

    async def _wait_for_stored(self, order_id: int, account_id: int, wait_s: float = REPLAY_WAIT_S):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            order = await self._find(order_id, account_id)
            if order is not None or loop.time() >= deadline:
                return order
            await asyncio.sleep(0.02)

    async def _find(self, order_id: int, account_id: int, symbol: str = "") -> types_pb2.Order | None:
        try:
            response = await self._persistence.GetOrder(
                persistence_pb2.GetOrderRequest(order_id=order_id, account_id=account_id, symbol=symbol),
                timeout=self._timeout,
            )
            return response.order
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise unavailable("persistence", error) from error

    async def cancel(self, request, account_id: int) -> types_pb2.Order:
        validation.order_id(request.order_id)
        validation.check_symbol(request.symbol, self.symbols)
        command = matching_pb2.Command(
            cancel_order=matching_pb2.CancelOrder(order_id=request.order_id, account_id=account_id, symbol=request.symbol)
        )
        result = await self._execute(request.symbol, command)
        if not result.error_reason:
            return result.order
        raise await self._not_working(request, account_id, result.error_reason, "cancel",
                                      lambda name: f"order {request.order_id} is already {name}")

    async def _not_working(self, request, account_id: int, reason: str, action: str, done_message) -> BourseError:
        """Why the shard found no working order to `action`: unknown or another account's
        (NOT_FOUND), done (FAILED_PRECONDITION, only its owner learns it), else ABORTED."""
        stored = await self._find(request.order_id, account_id, request.symbol)
        if stored is None or stored.symbol != request.symbol:
            return not_found(request.order_id)
        if stored.status in DONE:
            name = types_pb2.OrderStatus.Name(stored.status)
            return BourseError(grpc.StatusCode.FAILED_PRECONDITION, "ORDER_DONE", done_message(name))
        return BourseError(grpc.StatusCode.ABORTED, reason, f"{action} refused: {reason}")

    async def modify(self, request, account_id: int) -> types_pb2.Order:
        command = matching_pb2.Command(modify_order=validation.modify_order(request, account_id, self.symbols))
        result = await self._execute(request.symbol, command)
        reason = result.error_reason
        if not reason:
            return result.order
        if reason == "UNKNOWN_ORDER":
            raise await self._not_working(request, account_id, reason, "modify",
                                          lambda name: f"order {request.order_id} is {name}: nothing left to modify")
        if reason == "QUANTITY_NOT_ABOVE_FILLED":
            raise BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason,
                              f"quantity: {request.quantity} is not above the {result.order.filled_quantity} "
                              "already filled; cancel the order instead")
        if reason == "WOULD_TAKE_LIQUIDITY":
            raise BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason,
                              f"price: the order is post-only and {request.price} would trade on arrival")
        # The instrument's rules (tick, lot, band, limits): the request's values.
        field = "quantity" if "QUANTITY" in reason else "price"
        raise BourseError(grpc.StatusCode.INVALID_ARGUMENT, reason, f"{field}: refused by the instrument's rules "
                          f"({reason})")

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
                timeout=self._timeout,
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise BourseError(error.code(), "INVALID_PAGE_TOKEN", f"page_token: {error.details()}") from error
            raise unavailable("persistence", error) from error
