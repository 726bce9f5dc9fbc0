"""A small load for fault tests: clients that submit, modify and cancel through Envoy, and
retry every failed call with the same client_order_id until it is answered, as a
careful client of an exchange does. Records what was acknowledged, every error seen,
and every call given up on (an error that was not a final answer)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import grpc
from bourse.order.v1 import order_service_pb2 as pb
from bourse.order.v1 import order_service_pb2_grpc as order_grpc
from bourse.type.v1 import types_pb2 as t

from services.common.errors import reason_of

SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT", "TSLA", "ZM")  # every shard
KEYS = ("demo-key-alice", "demo-key-bob", "demo-key-carol")


@dataclass
class Acks:
    orders: dict[int, t.Order] = field(default_factory=dict)  # order_id -> order as acked
    by_key: dict[tuple[str, str], int] = field(default_factory=dict)  # (api key, coid) -> order_id
    cancels: dict[int, t.Order] = field(default_factory=dict)
    modifies: dict[int, t.Order] = field(default_factory=dict)  # order_id -> the last modify's answer
    # order_id -> (price, quantity) of every modify sent, answered or not: one whose
    # answer was lost to a crash may have committed.
    modify_attempts: dict[int, set] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # status code name -> times seen, retries included
    # "method CODE" -> calls that ended in that error after their retries (a cancel of an
    # order already done or unknown is an answer, not abandoned).
    abandoned: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    mass_cancels: int = 0  # MassCancelOrders answered
    mass_cancelled: int = 0  # orders they said they cancelled
    refused: dict[str, int] = field(default_factory=dict)  # submits answered with a REFUSALS reason, by reason


TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
# A cancel or modify of an order that is done (filled meanwhile) is an answer.
CANCEL_ANSWERS = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
# So is a submit refused by what an operator set (a halt, an account's limits), or a retry
# of a GTD submit that never committed and whose time has passed since: nothing was created.
REFUSALS = frozenset(((grpc.StatusCode.FAILED_PRECONDITION, "INSTRUMENT_HALTED"),
                      (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_QUANTITY_ABOVE_LIMIT"),
                      (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EXPIRE_TIME")))


async def _call(acks: Acks, stop_retrying_at: float, method: str, send):
    """Calls until answered (retrying transient failures) or the retry window closes."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await send()
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            acks.errors[code] = acks.errors.get(code, 0) + 1
            if error.code() in TRANSIENT and loop.time() <= stop_retrying_at:
                acks.retried += 1
                await asyncio.sleep(0.1)
                continue
            if method == "SubmitOrder" and (error.code(), reason := reason_of(error)) in REFUSALS:
                acks.refused[reason] = acks.refused.get(reason, 0) + 1
            elif not (method in ("CancelOrder", "ModifyOrder") and error.code() in CANCEL_ANSWERS):
                key = f"{method} {code}"
                acks.abandoned[key] = acks.abandoned.get(key, 0) + 1
            return error


async def client(target: str, index: int, acks: Acks, stop: asyncio.Event, retry_window_s: float) -> None:
    rng = random.Random(index)
    key = KEYS[index % len(KEYS)]
    metadata = (("authorization", f"Bearer {key}"),)
    resting: list[tuple[int, str, int]] = []  # (order_id, symbol, total quantity)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = order_grpc.OrderServiceStub(channel)
        n = 0
        while not stop.is_set():
            n += 1
            deadline = asyncio.get_running_loop().time() + retry_window_s
            roll = rng.random()
            if resting and roll < 0.15:
                order_id, symbol, _ = resting.pop(rng.randrange(len(resting)))
                request = pb.CancelOrderRequest(order_id=order_id, symbol=symbol)
                answer = await _call(acks, deadline, "CancelOrder",
                                     lambda: stub.CancelOrder(request, metadata=metadata, timeout=3))
                if isinstance(answer, pb.CancelOrderResponse):
                    acks.cancels[order_id] = answer.order
                continue
            if roll > 0.98:
                # All of the key's working orders on a symbol (other clients of the key
                # included: their later cancels and modifies find them done).
                symbol = rng.choice(SYMBOLS)
                request = pb.MassCancelOrdersRequest(symbol=symbol)
                answer = await _call(acks, deadline, "MassCancelOrders",
                                     lambda: stub.MassCancelOrders(request, metadata=metadata, timeout=3))
                if isinstance(answer, pb.MassCancelOrdersResponse):
                    acks.mass_cancels += 1
                    acks.mass_cancelled += answer.cancelled_count
                    resting = [r for r in resting if r[1] != symbol]
                continue
            if resting and roll < 0.25:
                # A new price (it may cross and trade) and more lots: always above what filled.
                slot = rng.randrange(len(resting))
                order_id, symbol, quantity = resting[slot]
                request = pb.ModifyOrderRequest(order_id=order_id, symbol=symbol, price=100 + rng.randint(-3, 3),
                                                quantity=quantity + rng.randint(1, 3))
                acks.modify_attempts.setdefault(order_id, set()).add((request.price, request.quantity))
                answer = await _call(acks, deadline, "ModifyOrder",
                                     lambda: stub.ModifyOrder(request, metadata=metadata, timeout=3))
                if isinstance(answer, pb.ModifyOrderResponse):
                    acks.modifies[order_id] = answer.order
                    resting[slot] = (order_id, symbol, request.quantity)
                    if answer.order.leaves_quantity == 0:
                        resting.pop(slot)
                else:
                    resting.pop(slot)  # done meanwhile
                continue
            symbol = rng.choice(SYMBOLS)
            kind = rng.random()
            market, stops = kind < 0.1, kind > 0.9  # stops and stop-limits around the market: cascades
            order_type = (t.ORDER_TYPE_MARKET if market else t.ORDER_TYPE_STOP if stops and kind > 0.95
                          else t.ORDER_TYPE_STOP_LIMIT if stops else t.ORDER_TYPE_LIMIT)
            request = pb.SubmitOrderRequest(
                client_order_id=f"fault-{index}-{n}", symbol=symbol, side=rng.choice((t.SIDE_BUY, t.SIDE_SELL)),
                order_type=order_type, time_in_force=t.TIME_IN_FORCE_IOC if market else t.TIME_IN_FORCE_GTC,
                price=0 if order_type in (t.ORDER_TYPE_MARKET, t.ORDER_TYPE_STOP) else 100 + rng.randint(-3, 3),
                quantity=rng.randint(1, 5), stop_price=100 + rng.randint(-4, 4) if stops else 0,
            )
            if order_type == t.ORDER_TYPE_LIMIT and rng.random() < 0.2:
                if request.quantity > 1 and rng.random() < 0.5:  # an iceberg showing one lot at a time
                    request.display_quantity = 1
                else:  # expiring within seconds: the shard's own ExpireOrders commands
                    request.time_in_force = t.TIME_IN_FORCE_GTD
                    request.expire_time.FromNanoseconds(time.time_ns() + rng.randint(1, 4) * 1_000_000_000)
            answer = await _call(acks, deadline, "SubmitOrder",
                                 lambda: stub.SubmitOrder(request, metadata=metadata, timeout=3))
            if isinstance(answer, pb.SubmitOrderResponse):
                order = answer.order
                previous = acks.by_key.setdefault((key, request.client_order_id), order.order_id)
                assert previous == order.order_id, "a retry answered with another order"
                acks.orders[order.order_id] = order
                # A waiting STOP has no limit price to modify: the load only cancels it.
                if order.leaves_quantity > 0 and order_type != t.ORDER_TYPE_STOP:
                    resting.append((order.order_id, symbol, order.quantity))


async def run_load(target: str, clients: int, stop: asyncio.Event, retry_window_s: float = 30.0,
                   acks: Acks | None = None) -> Acks:
    """Runs until `stop`; pass `acks` to watch progress while it runs."""
    acks = acks if acks is not None else Acks()
    await asyncio.gather(*(client(target, i, acks, stop, retry_window_s) for i in range(clients)))
    return acks
