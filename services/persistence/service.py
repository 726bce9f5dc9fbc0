"""gRPC face of the store: decode messages into rows, call the store, map errors."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bourse.persistence.v1 import persistence_service_pb2 as pb
from bourse.persistence.v1 import persistence_service_pb2_grpc as pb_grpc
from bourse.type.v1 import types_pb2
from services.common import tracing
from services.common.batch_stream import answer_in_order
from services.common.errors import BourseError, abort, invalid
from services.common.limits import MAX_CLIENT_ORDER_ID
from services.persistence.api_keys import KeyExists
from services.persistence.errors import JournalPruned
from services.persistence.store import InvalidArgument, Row, SequenceTaken, ShardedStore, StoreUnavailable

SERVICE_NAME = "bourse.persistence.v1.PersistenceService"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Column widths (models.py): longer strings are refused here rather than by the database.
_MAX_SYMBOL, _MAX_REASON, _MAX_LABEL = 12, 64, 200
_MAX_CLIENT_ID = MAX_CLIENT_ORDER_ID
_MAX_KEYS_PAGE = 1000
_SIDES = frozenset(t for t in types_pb2.Side.values() if t)
_ORDER_TYPES = frozenset(t for t in types_pb2.OrderType.values() if t)
_TIME_IN_FORCES = frozenset(t for t in types_pb2.TimeInForce.values() if t)
_STATUSES = frozenset(t for t in types_pb2.OrderStatus.values() if t)


def _time(ts: Timestamp, now: datetime) -> datetime:
    # An unset time means "now": the service's clock is as good as any caller's.
    if not ts.seconds and not ts.nanos:
        return now
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _bad(field: str, reason: str, message: str) -> BourseError:
    return invalid(field, message, reason)


def _reason(field: str) -> str:
    # "journal[3].sequence" -> INVALID_SEQUENCE: the reason names the kind, the message the place.
    return "INVALID_" + re.sub(r"\[\d+\]", "", field).rsplit(".", 1)[-1].upper()


def _chunk_row(chunk: pb.SnapshotChunk) -> Row:
    return {"matching_shard": chunk.matching_shard, "sequence": chunk.sequence, "index": chunk.index,
            "data": chunk.data, "last": chunk.last}


def order_row(order: types_pb2.Order, now: datetime) -> Row:
    return {
        "order_id": order.order_id,
        "account_id": order.account_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "time_in_force": order.time_in_force,
        "status": order.status,
        "price": order.price,
        "quantity": order.quantity,
        "filled_quantity": order.filled_quantity,
        "leaves_quantity": order.leaves_quantity,
        "reason": order.reason,
        "create_time": _time(order.create_time, now),
        "update_time": _time(order.update_time, now),
        "stop_price": order.stop_price,
        "triggered": int(order.triggered),
        "display_quantity": order.display_quantity,
        "expire_time_us": order.expire_time.ToMicroseconds() if order.HasField("expire_time") else 0,
    }


def trade_row(trade: types_pb2.Trade, now: datetime) -> Row:
    return {
        "trade_id": trade.trade_id,
        "symbol": trade.symbol,
        "price": trade.price,
        "quantity": trade.quantity,
        "maker_order_id": trade.maker_order_id,
        "taker_order_id": trade.taker_order_id,
        "maker_account_id": trade.maker_account_id,
        "taker_account_id": trade.taker_account_id,
        "aggressor_side": trade.aggressor_side,
        "time": _time(trade.time, now),
    }


def order_message(row: Row) -> types_pb2.Order:
    order = types_pb2.Order(
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        account_id=row["account_id"],
        symbol=row["symbol"],
        side=row["side"],
        order_type=row["order_type"],
        time_in_force=row["time_in_force"],
        price=row["price"],
        quantity=row["quantity"],
        filled_quantity=row["filled_quantity"],
        leaves_quantity=row["leaves_quantity"],
        status=row["status"],
        reason=row["reason"],
        create_time=_timestamp(row["create_time"]),
        update_time=_timestamp(row["update_time"]),
        stop_price=row.get("stop_price", 0),
        triggered=bool(row.get("triggered", 0)),
        display_quantity=row.get("display_quantity", 0),
    )
    if row.get("expire_time_us"):
        order.expire_time.FromMicroseconds(row["expire_time_us"])
    for fill in row.get("fills", ()):
        order.fills.add(trade_id=fill["trade_id"], price=fill["price"], quantity=fill["quantity"],
                        maker=fill["maker"], time=_timestamp(fill["time"]))
    return order


def journal_response(page) -> pb.ReadJournalResponse:
    """Entries from (sequence, command, microseconds) rows; field by field, which is
    about twice as fast as building a Timestamp per entry (1M entries per replay)."""
    response = pb.ReadJournalResponse()
    add = response.entries.add
    for sequence, command, micros in page:
        when = add(sequence=sequence, command=command).time
        when.seconds, when.nanos = micros // 1_000_000, micros % 1_000_000 * 1000
    return response


class PersistenceServicer(pb_grpc.PersistenceServiceServicer):
    def __init__(self, store: ShardedStore, log):
        self._store = store
        self._log = log
        # Set when the server stops taking work: batch streams end after their batch in hand.
        self.draining = asyncio.Event()

    def _check_order(self, order: types_pb2.Order, field: str) -> None:
        if order.order_id <= 0:
            raise _bad(f"{field}.order_id", "INVALID_ORDER_ID", "must be positive")
        if order.account_id <= 0:
            raise _bad(f"{field}.account_id", "INVALID_ACCOUNT_ID", "must be positive")
        if len(order.symbol) > _MAX_SYMBOL or self._store.db_of(order.symbol) is None:
            raise _bad(f"{field}.symbol", "INVALID_SYMBOL", f"{order.symbol!r} belongs to no shard")
        if len(order.client_order_id) > _MAX_CLIENT_ID:
            raise _bad(f"{field}.client_order_id", "INVALID_CLIENT_ORDER_ID", f"longer than {_MAX_CLIENT_ID}")
        if len(order.reason) > _MAX_REASON:
            raise _bad(f"{field}.reason", "INVALID_REASON", f"longer than {_MAX_REASON}")
        for name, value, allowed in (("side", order.side, _SIDES), ("order_type", order.order_type, _ORDER_TYPES),
                                     ("time_in_force", order.time_in_force, _TIME_IN_FORCES),
                                     ("status", order.status, _STATUSES)):
            if value not in allowed:
                raise _bad(f"{field}.{name}", "INVALID_" + name.upper(), f"unknown value {value}")

    def _check_trade(self, trade: types_pb2.Trade, field: str) -> None:
        if trade.trade_id <= 0:
            raise _bad(f"{field}.trade_id", "INVALID_TRADE_ID", "must be positive")
        if len(trade.symbol) > _MAX_SYMBOL or self._store.db_of(trade.symbol) is None:
            raise _bad(f"{field}.symbol", "INVALID_SYMBOL", f"{trade.symbol!r} belongs to no shard")
        if trade.aggressor_side not in _SIDES:
            raise _bad(f"{field}.aggressor_side", "INVALID_AGGRESSOR_SIDE", f"unknown value {trade.aggressor_side}")

    async def _mapped(self, call):
        """await call(), its store errors as BourseError (what a stream answer carries)."""
        try:
            return await call()
        except BourseError:
            raise
        except Exception as e:  # noqa: BLE001  (_error re-raises what it does not map)
            raise self._error(e) from e

    async def _run(self, context, call):
        try:
            return await self._mapped(call)
        except BourseError as e:
            await abort(context, e)

    def _error(self, e: Exception) -> BourseError:
        if isinstance(e, BourseError):
            return e
        if isinstance(e, InvalidArgument):
            return _bad(e.field, _reason(e.field), e.message)
        if isinstance(e, StoreUnavailable):
            self._log.warning("database_unavailable", error=str(e))
            return BourseError(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", str(e))
        if isinstance(e, SequenceTaken):
            self._log.error("journal_sequence_taken", error=str(e))
            return BourseError(grpc.StatusCode.FAILED_PRECONDITION, "JOURNAL_SEQUENCE_TAKEN", str(e))
        if isinstance(e, KeyExists):
            return BourseError(grpc.StatusCode.ALREADY_EXISTS, "API_KEY_EXISTS", f"key {e} is stored already")
        if isinstance(e, JournalPruned):
            self._log.warning("journal_pruned", matching_shard=e.matching_shard, after=e.after,
                              first_retained=e.first_retained)
            return BourseError(grpc.StatusCode.FAILED_PRECONDITION, "JOURNAL_PRUNED", str(e))
        raise e

    async def _write_batch(self, request: pb.WriteBatchRequest) -> pb.WriteBatchResponse:
        now = datetime.now(timezone.utc)
        new, updated, trades = [], [], []
        for i, order in enumerate(request.new_orders):
            self._check_order(order, f"new_orders[{i}]")
            new.append(order_row(order, now))
        for i, order in enumerate(request.updated_orders):
            self._check_order(order, f"updated_orders[{i}]")
            updated.append(order_row(order, now))
        for i, trade in enumerate(request.trades):
            self._check_trade(trade, f"trades[{i}]")
            trades.append(trade_row(trade, now))
        journal = [{"sequence": e.sequence, "command": e.command, "time": _time(e.time, now)}
                   for e in request.journal]
        result = await self._store.write_batch(new, updated, trades, request.matching_shard, journal)
        return pb.WriteBatchResponse(orders_inserted=result.orders_inserted,
                                     orders_updated=result.orders_updated,
                                     trades_inserted=result.trades_inserted)

    async def WriteBatch(self, request: pb.WriteBatchRequest, context) -> pb.WriteBatchResponse:
        return await self._run(context, lambda: self._write_batch(request))

    async def WriteBatchStream(self, request_iterator, context):
        async for response in answer_in_order(
                request_iterator, lambda r: self._mapped(lambda: self._traced_write(r)),
                lambda batch_id: pb.WriteBatchStreamResponse(batch_id=batch_id), self.draining):
            yield response

    async def _traced_write(self, request: pb.WriteBatchStreamRequest):
        with tracing.continued("persistence.write_batch", request.trace_context):
            return await self._write_batch(request.batch)

    async def GetOrder(self, request: pb.GetOrderRequest, context) -> pb.GetOrderResponse:
        async def call():
            if request.order_id <= 0:
                raise _bad("order_id", "INVALID_ORDER_ID", "must be positive")
            row = await self._store.get_order(request.order_id, request.account_id or None, request.symbol,
                                              fills=not request.without_fills)
            if row is None:
                raise BourseError(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND", f"order {request.order_id} not found")
            return pb.GetOrderResponse(order=order_message(row))

        return await self._run(context, call)

    async def ListOrders(self, request: pb.ListOrdersRequest, context) -> pb.ListOrdersResponse:
        async def call():
            if request.account_id <= 0:
                raise _bad("account_id", "INVALID_ACCOUNT_ID", "must be positive")
            rows, token = await self._store.list_orders(
                request.account_id, request.page_size, request.page_token, request.symbol)
            return pb.ListOrdersResponse(orders=[order_message(r) for r in rows], next_page_token=token)

        return await self._run(context, call)

    async def ReadJournal(self, request: pb.ReadJournalRequest, context):
        try:
            async for page in self._store.read_journal(request.matching_shard, request.after_sequence,
                                                       request.page_size):
                yield journal_response(page)
        except Exception as e:  # noqa: BLE001
            await abort(context, self._error(e))

    async def SaveSnapshot(self, request_iterator, context) -> pb.SaveSnapshotResponse:
        async def call():
            writer = self._store.snapshot_writer()
            async for request in request_iterator:
                await writer.add(_chunk_row(request.chunk))
            return pb.SaveSnapshotResponse(bytes_written=await writer.finish())

        return await self._run(context, call)

    async def ReadSnapshot(self, request: pb.ReadSnapshotRequest, context):
        try:
            async for chunk in self._store.read_snapshot(request.matching_shard):
                yield pb.ReadSnapshotResponse(chunk=pb.SnapshotChunk(**chunk))
        except Exception as e:  # noqa: BLE001
            await abort(context, self._error(e))

    async def GetShardState(self, request: pb.GetShardStateRequest, context) -> pb.GetShardStateResponse:
        async def call():
            last, snapshot, when = await self._store.shard_state(request.matching_shard)
            response = pb.GetShardStateResponse(last_sequence=last, snapshot_sequence=snapshot)
            if when is not None:
                response.snapshot_time.CopyFrom(_timestamp(when))
            return response

        return await self._run(context, call)

    async def CreateApiKey(self, request: pb.CreateApiKeyRequest, context) -> pb.CreateApiKeyResponse:
        async def call():
            if len(request.key_hash) != 32:
                raise _bad("key_hash", "INVALID_KEY_HASH", "must be the key's SHA-256 (32 bytes)")
            if request.account_id <= 0:
                raise _bad("account_id", "INVALID_ACCOUNT_ID", "must be positive")
            if len(request.label) > _MAX_LABEL:
                raise _bad("label", "INVALID_LABEL", f"longer than {_MAX_LABEL}")
            row = await self._store.create_api_key(request.key_hash, request.account_id, request.label)
            self._log.info("api_key_created", key_id=row["key_id"], account_id=row["account_id"])
            return pb.CreateApiKeyResponse(key=api_key_message(row))

        return await self._run(context, call)

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context) -> pb.RevokeApiKeyResponse:
        async def call():
            row = await self._store.revoke_api_key(request.key_id) if len(request.key_id) <= 16 else None
            if row is None:
                raise BourseError(grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND", f"no key {request.key_id!r}")
            self._log.info("api_key_revoked", key_id=row["key_id"], account_id=row["account_id"])
            return pb.RevokeApiKeyResponse(key=api_key_message(row))

        return await self._run(context, call)

    async def ListApiKeys(self, request: pb.ListApiKeysRequest, context) -> pb.ListApiKeysResponse:
        async def call():
            limit = request.page_size if 0 < request.page_size <= _MAX_KEYS_PAGE else _MAX_KEYS_PAGE
            rows = await self._store.api_keys_after(request.after_revision, limit)
            return pb.ListApiKeysResponse(keys=[api_key_message(r) for r in rows])

        return await self._run(context, call)


def api_key_message(row: Row) -> pb.ApiKey:
    key = pb.ApiKey(key_id=row["key_id"], key_hash=row["key_hash"], account_id=row["account_id"],
                    label=row["label"], create_time=_timestamp(row["create_time"]), revision=row["revision"])
    if row["revoke_time"] is not None:
        key.revoke_time.CopyFrom(_timestamp(row["revoke_time"]))
    return key


def register(servicer: PersistenceServicer):
    return lambda server: pb_grpc.add_PersistenceServiceServicer_to_server(servicer, server)
