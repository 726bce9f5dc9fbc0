"""Operations on a running exchange.

    python -m infra.admin shards              each matching shard: sequence, durable
                                              sequence, snapshot, lag, queue, serving
    python -m infra.admin snapshot [--shard N]  take a snapshot now (all shards by default)
    python -m infra.admin halt SYMBOL         halt trading in an instrument (journaled by its
                                              shard: new orders and modifies are refused)
    python -m infra.admin resume SYMBOL       let it trade again
    python -m infra.admin risk ACCOUNT [--max-order-quantity N] [--max-notional N]
        [--max-open-orders N] [--price-collar-bps N]   an account's pre-trade limits, on
                                              every shard: all four are set (0 or absent:
                                              no limit), so name every limit it keeps
    python -m infra.admin keys create|list|revoke  API keys (infra/admin/keys.py)

Addresses come from --matching/--persistence, else BOURSE_MATCHING_ADDRS and
BOURSE_PERSISTENCE_ADDR, else the file the local stack writes (`.stack/endpoints.json`);
the shard of a symbol from --shard-ranges, else BOURSE_SHARD_RANGES, else that file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import grpc
from bourse.matching.v1 import matching_service_pb2 as matching_pb2
from bourse.matching.v1 import matching_service_pb2_grpc as matching_grpc
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2
from bourse.persistence.v1 import persistence_service_pb2_grpc as persistence_grpc
from bourse.type.v1 import types_pb2
from rich.console import Console
from rich.table import Table

from infra.admin import keys
from services.common.config import DEFAULT_SHARD_RANGES, ShardMap, addresses

ENDPOINTS_FILE = Path(".stack/endpoints.json")


def _saved() -> dict:
    return json.loads(ENDPOINTS_FILE.read_text()) if ENDPOINTS_FILE.exists() else {}


def persistence_of(args) -> str:
    persistence = args.persistence or os.environ.get("BOURSE_PERSISTENCE_ADDR") or _saved().get("persistence", "")
    if not persistence:
        raise SystemExit("no address: pass --persistence, or run `make up` first")
    return persistence


def endpoints(args, persistence: bool = True) -> tuple[list[str], str]:
    matching = args.matching or os.environ.get("BOURSE_MATCHING_ADDRS") or ",".join(_saved().get("matching", []))
    if not matching:
        raise SystemExit("no addresses: pass --matching and --persistence, or run `make up` first")
    return addresses(matching), persistence_of(args) if persistence else ""


def shard_rows(matching: list[str], persistence: str) -> list[dict]:
    rows = []
    with grpc.insecure_channel(persistence) as pchannel:
        store = persistence_grpc.PersistenceServiceStub(pchannel)
        for index, address in enumerate(matching):
            row = {"shard": index, "address": address}
            try:
                with grpc.insecure_channel(address) as channel:
                    status = matching_grpc.MatchingServiceStub(channel).GetShardStatus(
                        matching_pb2.GetShardStatusRequest(shard_index=index), timeout=5)
                row.update(symbols=len(status.symbols), sequence=status.sequence, queued=status.queued_commands,
                           resting=status.resting_orders, serving=status.serving,
                           avg_batch=round(status.committed_commands / max(status.committed_batches, 1), 1),
                           event_hash=f"{status.event_hash:016x}", halted=",".join(status.halted_symbols),
                           limits=" ".join(_limits_text(limits) for limits in status.risk_limits))
            except grpc.RpcError as error:
                row.update(error=f"matching: {error.code().name}")
            try:
                state = store.GetShardState(persistence_pb2.GetShardStateRequest(matching_shard=index), timeout=5)
                row.update(durable=state.last_sequence, snapshot=state.snapshot_sequence,
                           replay_lag=state.last_sequence - state.snapshot_sequence)
            except grpc.RpcError as error:
                row.setdefault("error", f"persistence: {error.code().name}")
            rows.append(row)
    return rows


def _limits_text(limits: matching_pb2.RiskLimits) -> str:
    """An account's limits in a word: 'account:qty=..,notional=..,open=..,collar=..bps' (0s left out)."""
    parts = [f"{name}={value}" for name, value in (
        ("qty", limits.max_order_quantity), ("notional", limits.max_notional), ("open", limits.max_open_orders),
        ("collar", limits.price_collar_bps)) if value]
    return f"{limits.account_id}:{','.join(parts) or 'none'}"


def print_shards(rows: list[dict]) -> None:
    table = Table(title="matching shards")
    columns = ["shard", "address", "symbols", "sequence", "durable", "snapshot", "replay_lag", "queued",
               "resting", "avg_batch", "serving", "event_hash", "halted", "limits", "error"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def take_snapshots(matching: list[str], only: int | None) -> int:
    failed = 0
    for index, address in enumerate(matching):
        if only is not None and index != only:
            continue
        try:
            with grpc.insecure_channel(address) as channel:
                done = matching_grpc.MatchingServiceStub(channel).TakeSnapshot(
                    matching_pb2.TakeSnapshotRequest(shard_index=index), timeout=300)
            print(f"shard {index}: snapshot at sequence {done.sequence}, {done.bytes} bytes")
        except grpc.RpcError as error:
            failed += 1
            print(f"shard {index}: snapshot failed: {error.code().name} {error.details()}", file=sys.stderr)
    return 1 if failed else 0


def set_trading_status(matching: list[str], shard_map: ShardMap, symbol: str, status: int) -> int:
    shard = shard_map.shard_of(symbol)
    if shard is None or shard >= len(matching):
        print(f"{symbol}: no shard owns it (shard ranges {shard_map.ranges})", file=sys.stderr)
        return 1
    request = matching_pb2.SetTradingStatusRequest(
        command=matching_pb2.SetTradingStatus(symbol=symbol, status=status))
    try:
        with grpc.insecure_channel(matching[shard]) as channel:
            done = matching_grpc.MatchingServiceStub(channel).SetTradingStatus(request, timeout=10)
    except grpc.RpcError as error:
        print(f"{symbol}: not set: {error.code().name} {error.details()}", file=sys.stderr)
        return 1
    print(f"{done.symbol}: {types_pb2.TradingStatus.Name(done.status)}")
    return 0


def set_risk_limits(matching: list[str], limits: matching_pb2.RiskLimits) -> int:
    """The limits on every shard (each journals them); 1 if a shard did not take them."""
    failed = 0
    for index, address in enumerate(matching):
        request = matching_pb2.SetRiskLimitsRequest(shard_index=index, limits=limits)
        try:
            with grpc.insecure_channel(address) as channel:
                matching_grpc.MatchingServiceStub(channel).SetRiskLimits(request, timeout=10)
            print(f"shard {index}: account {limits.account_id} limits set")
        except grpc.RpcError as error:
            failed += 1
            print(f"shard {index}: not set: {error.code().name} {error.details()}", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        return keys.main(argv[1:], persistence_of)
    parser = argparse.ArgumentParser(prog="python -m infra.admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["shards", "snapshot", "keys", "halt", "resume", "risk"])
    parser.add_argument("symbol", nargs="?", default="", help="halt, resume: the instrument; risk: the account")
    for limit in ("max-order-quantity", "max-notional", "max-open-orders", "price-collar-bps"):
        parser.add_argument(f"--{limit}", type=int, default=0, help="risk: this limit (0: none)")
    parser.add_argument("--shard-ranges", default="", help="halt, resume: as BOURSE_SHARD_RANGES")
    parser.add_argument("--shard", type=int, default=None)
    parser.add_argument("--matching", default="", help="host:port of each shard, comma separated, in order")
    parser.add_argument("--persistence", default="")
    parser.add_argument("--json", action="store_true", help="shards: print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.command == "risk":
        if not args.symbol.isdigit() or int(args.symbol) <= 0:
            parser.error("risk takes an ACCOUNT id (a positive integer)")
        limits = matching_pb2.RiskLimits(
            account_id=int(args.symbol), max_order_quantity=args.max_order_quantity, max_notional=args.max_notional,
            max_open_orders=args.max_open_orders, price_collar_bps=args.price_collar_bps)
        return set_risk_limits(endpoints(args, persistence=False)[0], limits)
    if args.command in ("halt", "resume"):
        if not args.symbol:
            parser.error(f"{args.command} takes a SYMBOL")
        matching = endpoints(args, persistence=False)[0]
        shard_map = ShardMap.parse(args.shard_ranges or os.environ.get("BOURSE_SHARD_RANGES")
                                   or _saved().get("shard_ranges") or DEFAULT_SHARD_RANGES)
        status = types_pb2.TRADING_STATUS_HALTED if args.command == "halt" else types_pb2.TRADING_STATUS_TRADING
        return set_trading_status(matching, shard_map, args.symbol, status)
    matching, persistence = endpoints(args)
    if args.command == "snapshot":
        return take_snapshots(matching, args.shard)
    rows = shard_rows(matching, persistence)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_shards(rows)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
